//! The shape of the source tree, read from the files themselves: the command line is a leaf
//! (nothing outside `src/cli/` and `src/main.rs` names `crate::cli`), modules do not import each
//! other in a circle (between the top-level modules of `src/`, and between the submodules of
//! any one module), and no Rust file in `src/` or `tests/` is longer than [`MAX_LINES`].
//!
//! Imports are read as text: every path that starts with `crate::`, `$crate::`, `super::` or
//! `mtlscope::` outside comments and string literals, `use` groups (`crate::{a, b::{c}}`)
//! expanded, `super::` resolved against the module it is written in (inline `mod` blocks and
//! `#[path]` attributes included). A reference from a module to one of its ancestors or
//! descendants is not an edge; one from `a::x` to `a::y::…` is the edge `a::x → a::y`.
//!
//! The diagnosis rules go further: a rule module imports none of the other rules, only the
//! modules they share ([`DIAGNOSE_SHARED`]), so no rule's change reaches another through it.
//!
//! What the issue-23 work has not yet reached is listed in [`PENDING_CYCLES`] and
//! [`PENDING_LONG_FILES`]. The lists may only shrink: an entry that no longer describes the
//! tree (the cycle is gone or changed, the file is short enough) fails the test until it is
//! removed.

mod source;

use source::{read, references, relative, rust_files, Tree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The longest a Rust source file may be.
const MAX_LINES: usize = 600;

/// Import cycles still to be broken, each the exact set of modules that import each other.
/// Every entry must go; remove it with the change that breaks the cycle.
const PENDING_CYCLES: &[&[&str]] = &[];

/// The submodules of `diagnose` that rules share: the view of a flow, alert meanings, signals
/// several rules read, the finding builders, the catalogue (and the tests' flow builder).
const DIAGNOSE_SHARED: &[&str] = &[
    "view",
    "alerts",
    "signals",
    "finding",
    "catalogue",
    "http",
    "test_support",
];

/// Files still longer than [`MAX_LINES`], relative to the crate. Every entry must go; remove it
/// with the change that splits the file.
const PENDING_LONG_FILES: &[&str] = &[
    // Issue 23 part 4 (tests on typed flows, big test files split).
    "tests/analyze.rs",
    "tests/certs_choose.rs",
    "tests/paths.rs",
    "tests/security.rs",
    "tests/ui_browser.rs",
];

#[test]
fn nothing_outside_the_command_line_imports_it() {
    let tree = Tree::read();
    let mut offenders = Vec::new();
    for file in &tree.files {
        if file.module.first().map(String::as_str) == Some("cli") || file.is_main {
            continue;
        }
        for r in &file.refs {
            if r.target.first().map(String::as_str) == Some("cli") {
                offenders.push(format!("{}:{}: {}", file.rel, r.line, r.target.join("::")));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only src/cli/ and src/main.rs may import the command line; move what these need out \
         of cli/ instead:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn modules_do_not_import_each_other_in_a_circle() {
    let tree = Tree::read();
    let graph = Graph::of(&tree);
    let cycles = graph.cycles();
    let pending: BTreeSet<BTreeSet<String>> = PENDING_CYCLES
        .iter()
        .map(|c| c.iter().map(|m| m.to_string()).collect())
        .collect();
    let mut problems = Vec::new();
    for cycle in &cycles {
        if !pending.contains(cycle) {
            problems.push(format!(
                "these modules import each other in a circle:\n{}",
                graph.describe(cycle)
            ));
        }
    }
    for p in &pending {
        if !cycles.contains(p) {
            problems.push(format!(
                "PENDING_CYCLES lists {:?}, which is no longer a cycle as listed: remove the \
                 entry (or, if part of it remains, list exactly what remains)",
                p.iter().collect::<Vec<_>>()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn diagnose_rules_share_helpers_not_each_other() {
    let tree = Tree::read();
    let submodules: BTreeSet<&str> = tree
        .files
        .iter()
        .filter(|f| f.module.len() >= 2 && f.module[0] == "diagnose")
        .map(|f| f.module[1].as_str())
        .collect();
    assert!(submodules.len() > 10, "diagnose's rule files were not read");
    let mut offenders = Vec::new();
    for file in tree
        .files
        .iter()
        .filter(|f| f.module.len() >= 2 && f.module[0] == "diagnose")
    {
        let from = file.module[1].as_str();
        if DIAGNOSE_SHARED.contains(&from) || from.ends_with("_tests") {
            continue;
        }
        for r in &file.refs {
            let Some(to) = r.target.get(1).map(String::as_str) else {
                continue;
            };
            let is_rule = r.target[0] == "diagnose"
                && to != from
                && submodules.contains(to)
                && !DIAGNOSE_SHARED.contains(&to);
            if is_rule {
                offenders.push(format!("{}:{}: {}", file.rel, r.line, r.target.join("::")));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "a diagnosis rule imports another rule; move what both need to a shared module \
         (view.rs, signals.rs, alerts.rs, finding.rs):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn no_file_is_longer_than_the_limit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut problems = Vec::new();
    let mut long = BTreeSet::new();
    for f in &files {
        let rel = relative(root, f);
        let lines = read(f).lines().count();
        if lines > MAX_LINES {
            long.insert(rel.clone());
            if !PENDING_LONG_FILES.contains(&rel.as_str()) {
                problems.push(format!(
                    "{rel} has {lines} lines (at most {MAX_LINES}): split it by what each part does"
                ));
            }
        }
    }
    for p in PENDING_LONG_FILES {
        if !long.contains(*p) {
            problems.push(format!(
                "PENDING_LONG_FILES lists {p}, which is no longer over {MAX_LINES} lines (or is \
                 gone): remove the entry"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The tokenizer and resolver on small inputs, so a change to them that stops seeing imports
/// fails here rather than letting every check above pass silently.
#[test]
fn imports_are_read_from_paths_groups_and_super() {
    let module: Vec<String> = vec!["a".into(), "b".into()];
    let src = r#"
        use crate::{x::{y, z::W}, v};
        use super::sibling::Thing;
        // use crate::commented;
        const S: &str = "crate::in_a_string";
        const R: &str = r"crate::in_a_raw_string";
        fn f() -> char { '{' }
        mod tests {
            use super::*;
            use super::super::up;
        }
        fn g() { mtlscope::m::f(); $crate::n!(); }
    "#;
    let refs: Vec<String> = references(src, &module)
        .into_iter()
        .map(|r| r.target.join("::"))
        .collect();
    assert_eq!(
        refs,
        [
            "x::y",
            "x::z::W",
            "v",
            "a::sibling::Thing",
            "a::b",
            "a::up",
            "m::f",
            "n"
        ]
    );
}

/// Modules and who imports whom.
struct Graph {
    /// `(from, to)` → where `from` names `to`.
    edges: BTreeMap<(String, String), BTreeSet<String>>,
}

impl Graph {
    /// Edges between sibling modules, each with the files and lines that make it.
    fn of(tree: &Tree) -> Graph {
        let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for file in tree.files.iter().filter(|f| !f.is_main) {
            for r in &file.refs {
                let from = &file.module;
                let to = &r.target;
                let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
                if common >= from.len() || common >= to.len() {
                    continue; // an ancestor or a descendant
                }
                let a = from[..=common].join("::");
                let b = to[..=common].join("::");
                edges
                    .entry((a, b))
                    .or_default()
                    .insert(format!("{}:{}", file.rel, r.line));
            }
        }
        Graph { edges }
    }

    fn next(&self, from: &str) -> Vec<&str> {
        self.edges
            .keys()
            .filter(|(a, _)| a == from)
            .map(|(_, b)| b.as_str())
            .collect()
    }

    /// The strongly connected components of more than one module (Tarjan's algorithm).
    fn cycles(&self) -> BTreeSet<BTreeSet<String>> {
        struct State<'g> {
            graph: &'g Graph,
            index: BTreeMap<&'g str, usize>,
            low: BTreeMap<&'g str, usize>,
            stack: Vec<&'g str>,
            on_stack: BTreeSet<&'g str>,
            found: BTreeSet<BTreeSet<String>>,
        }
        fn visit<'g>(s: &mut State<'g>, v: &'g str) {
            let i = s.index.len();
            s.index.insert(v, i);
            s.low.insert(v, i);
            s.stack.push(v);
            s.on_stack.insert(v);
            for w in s.graph.next(v) {
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = BTreeSet::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    s.found.insert(component);
                }
            }
        }
        let nodes: BTreeSet<&str> = self
            .edges
            .keys()
            .flat_map(|(a, b)| [a.as_str(), b.as_str()])
            .collect();
        let mut s = State {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            found: BTreeSet::new(),
        };
        for v in nodes {
            if !s.index.contains_key(v) {
                visit(&mut s, v);
            }
        }
        s.found
    }

    /// Each edge inside `cycle` and the first places that make it.
    fn describe(&self, cycle: &BTreeSet<String>) -> String {
        let mut out = String::new();
        for ((a, b), at) in &self.edges {
            if cycle.contains(a) && cycle.contains(b) {
                let places: Vec<&str> = at.iter().take(3).map(String::as_str).collect();
                out.push_str(&format!("  {a} -> {b} ({})\n", places.join(", ")));
            }
        }
        out
    }
}
