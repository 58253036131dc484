//! The source tree read as text: each file's module and the crate paths it names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One path a file names, resolved to a path from the crate root.
#[derive(Debug)]
pub struct Ref {
    /// The path's segments from the crate root (items and macros included).
    pub target: Vec<String>,
    /// The line it is on, from 1.
    pub line: usize,
}

/// One source file of `src/`.
pub struct SourceFile {
    /// The path relative to the crate, with `/`.
    pub rel: String,
    /// Its module path (`["pki", "inspect"]`); empty for `lib.rs`.
    pub module: Vec<String>,
    /// Whether it is `src/main.rs` (the binary, not the library).
    pub is_main: bool,
    /// The paths it names.
    pub refs: Vec<Ref>,
}

/// Every source file of the library and the binary.
pub struct Tree {
    pub files: Vec<SourceFile>,
}

impl Tree {
    pub fn read() -> Tree {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let src = root.join("src");
        let mut paths = Vec::new();
        rust_files(&src, &mut paths);
        assert!(paths.len() > 50, "found only {} files in src/", paths.len());
        // `#[path = "x_tests.rs"] mod tests;` puts a file under another name.
        let mut renamed: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for p in &paths {
            let module = module_of(&src, p);
            let text = read(p);
            let mut lines = text.lines().map(str::trim);
            while let Some(line) = lines.next() {
                let Some(rest) = line.strip_prefix("#[path = \"") else {
                    continue;
                };
                let Some(file) = rest.strip_suffix("\"]") else {
                    continue;
                };
                let decl = lines.next().unwrap_or("");
                let name = decl
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ")
                    .trim_start_matches("mod ")
                    .trim_end_matches(';');
                let dir = p.parent().expect("a file has a directory");
                let mut m = module.clone();
                m.push(name.to_string());
                renamed.insert(dir.join(file), m);
            }
        }
        let files = paths
            .iter()
            .map(|p| {
                let module = renamed
                    .get(p)
                    .cloned()
                    .unwrap_or_else(|| module_of(&src, p));
                let rel = relative(root, p);
                SourceFile {
                    is_main: rel == "src/main.rs",
                    refs: references(&read(p), &module),
                    module,
                    rel,
                }
            })
            .collect();
        Tree { files }
    }
}

/// The module a file is by its place: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_string());
    }
    parts
}

/// The crate paths `src` names, resolved from `module` (the file's own module).
pub fn references(src: &str, module: &[String]) -> Vec<Ref> {
    let tokens = tokenize(src);
    let mut refs = Vec::new();
    // Inline `mod name {` blocks open at the current position: (name, brace depth inside).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let (tok, line) = (&tokens[i].text, tokens[i].line);
        match tok.as_str() {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if is_ident(text_at(&tokens, i + 1)) && text_at(&tokens, i + 2) == "{" => {
                inline.push((text_at(&tokens, i + 1).to_string(), depth + 1));
            }
            "crate" | "$crate" | "super" | "mtlscope" if text_at(&tokens, i + 1) == "::" => {
                let preceded = i > 0 && matches!(text_at(&tokens, i - 1), "::" | "self");
                if !preceded {
                    let mut here: Vec<String> = module.to_vec();
                    here.extend(inline.iter().map(|(n, _)| n.clone()));
                    let (paths, end) = path_at(&tokens, i);
                    for p in paths {
                        if let Some(target) = resolve(&p, &here) {
                            refs.push(Ref { target, line });
                        }
                    }
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

/// `crate`/`super` paths from the crate root; `None` for one that climbs above it.
fn resolve(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = here.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate" | "$crate" | "mtlscope") => {
            base.clear();
            rest = &rest[1..];
        }
        _ => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
    }
    base.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(base)
}

/// The path (or, for a `use` group, the paths) starting at token `i`, and the index after it.
fn path_at(tokens: &[Token], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        let t = text_at(tokens, i);
        if is_ident(t) {
            prefix.push(t.to_string());
            i += 1;
            if text_at(tokens, i) != "::" {
                return (vec![prefix], i);
            }
            i += 1;
        } else if t == "{" {
            let mut out = Vec::new();
            i += 1;
            loop {
                match text_at(tokens, i) {
                    "}" => return (out, i + 1),
                    "," => i += 1,
                    "" => return (out, i),
                    _ => {
                        let (inner, end) = path_at(tokens, i);
                        for p in inner {
                            let mut full = prefix.clone();
                            full.extend(p);
                            out.push(full);
                        }
                        // Skip `as name` and anything else up to the next item.
                        i = end;
                        while !matches!(text_at(tokens, i), "," | "}" | "") {
                            i += 1;
                        }
                    }
                }
            }
        } else {
            // `crate::*` or a path that ends at `::` (a glob): the prefix is what it names.
            return (vec![prefix], i);
        }
    }
}

fn text_at(tokens: &[Token], i: usize) -> &str {
    tokens.get(i).map_or("", |t| t.text.as_str())
}

fn is_ident(t: &str) -> bool {
    let mut chars = t.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// One token: an identifier (with `$crate`), `::`, or a single punctuation character.
struct Token {
    text: String,
    line: usize,
}

/// Rust source as identifiers and punctuation, without comments, string and character
/// literals (enough to follow paths and braces).
fn tokenize(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut nest = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    nest += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    nest -= 1;
                    i += 2;
                    if nest == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&chars, i + 1, false, 0, &mut line);
        } else if (c == 'r' || (c == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(c == 'b')), '"' | '#')
        {
            // A raw string: r"…", r#"…"#, br"…".
            let mut j = i + 1 + usize::from(c == 'b');
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) == '"' {
                i = skip_string(&chars, j + 1, true, hashes, &mut line);
            } else {
                tokens.push(Token {
                    text: c.to_string(),
                    line,
                });
                i += 1;
            }
        } else if c == '\'' {
            // A character literal ('x', '\n', '{'), or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' || (c == '$' && at(i + 1).is_alphabetic()) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            if c == 'b' && i == start + 1 && at(i) == '"' {
                continue; // b"…": the string comes next
            }
            tokens.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    tokens
}

/// The index after a string whose body starts at `i`: it ends at `"` followed by `hashes`
/// `#`; backslash escapes apply unless it is `raw`.
fn skip_string(chars: &[char], mut i: usize, raw: bool, hashes: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' if !raw => {
                if chars.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' if chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == '#')
                .count()
                == hashes =>
            {
                return i + 1 + hashes;
            }
            c => {
                if c == '\n' {
                    *line += 1;
                }
                i += 1;
            }
        }
    }
    i
}

pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).expect("inside the crate");
    rel.iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
