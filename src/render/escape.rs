//! HTML escaping for every page and drawing mtlscope writes: recorded strings are
//! attacker-controlled (headers, bodies, certificate names), so none is written raw.

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
