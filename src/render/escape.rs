//! Escaping recorded text for where it is shown: HTML ([`esc`]) for every page and drawing, and
//! the terminal ([`clean`], [`cell`]). Recorded strings are attacker-controlled (headers,
//! bodies, certificate names), so none is written raw.

/// HTML-escape text for element content and double-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Line breaks and tabs are text; a carriage return (HTTP bodies are full of CRLF)
            // renders as a line break in HTML, so it is kept rather than shown as garbage.
            '\n' | '\t' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Replace control characters (escape sequences from recorded headers and bodies) so text
/// output cannot drive the terminal.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// At most `max` characters of `s`, cleaned, with `…` when cut.
pub fn cell(s: &str, max: usize) -> String {
    let s = clean(s);
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
