//! `mtlscope explain` in words for a terminal: one block per match (or per closest entry), the
//! labels aligned, long lines wrapped under their label. Formats only; [`super::explain`]
//! decided everything.

use super::matcher::{Entry, Explanation};

/// Width the text wraps at.
const WIDTH: usize = 100;
/// Labels are padded to this width.
const LABEL: usize = 8;

/// The explanation as terminal text.
pub fn text(e: &Explanation) -> String {
    let mut out = String::new();
    if e.matched {
        let n = e.matches.len();
        out.push_str(&format!(
            "{n} {} in the text\n",
            if n == 1 { "match" } else { "matches" }
        ));
        for m in &e.matches {
            out.push('\n');
            heading(&mut out, &m.entry, &format!("found {:?}", m.found));
            entry(&mut out, &m.entry);
        }
        return out;
    }
    out.push_str(&format!(
        "no exact match: mtlscope knows no vendor words in {:?}\n",
        shorten(&e.text, 80)
    ));
    out.push_str(
        "closest entries of its table (similarity; `mtlscope explain 'WORDS'` explains one):\n",
    );
    let names: Vec<String> = e
        .closest
        .iter()
        .map(|c| format!("{}: {}", c.entry.vendor_name, c.entry.words))
        .collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (c, name) in e.closest.iter().zip(&names) {
        let ids: Vec<&str> = c.entry.ids.iter().map(|id| id.as_str()).collect();
        out.push_str(&format!(
            "  {:.2}  {name:<width$}  -> {}\n",
            c.score,
            ids.join(", ")
        ));
    }
    out
}

fn heading(out: &mut String, e: &Entry, note: &str) {
    out.push_str(&format!("{}: {}   ({note})\n", e.vendor_name, e.words));
}

fn entry(out: &mut String, e: &Entry) {
    let ids: Vec<String> = e
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| match (i, e.ids.len()) {
            (0, n) if n > 1 => format!("{id} (most likely)"),
            _ => id.to_string(),
        })
        .collect();
    field(out, "means", &ids.join(", "));
    field(out, "why", e.why);
    // The command stays on one line, so it can be copied.
    out.push_str(&format!("  {:<LABEL$}{}\n", "next", e.next.command));
    field(out, "", &format!("shows {}", e.next.decides));
    field(out, "source", e.source);
}

/// `  label   text`, the text wrapped at [`WIDTH`] and continued under itself.
fn field(out: &mut String, label: &str, text: &str) {
    let indent = 2 + LABEL;
    let mut line = format!("  {label:<LABEL$}");
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// At most `max` characters of `text`, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    let t = text.trim();
    if t.chars().count() <= max {
        return t.to_string();
    }
    let mut s: String = t.chars().take(max).collect();
    s.push('…');
    s
}
