//! What recordings leave out unless `--no-redact`: values of query parameters, form fields,
//! JSON keys and multipart parts whose names suggest a secret, and every query value of a
//! `Location` header (OAuth redirects carry codes and tokens there).
//!
//! Names are matched after percent-decoding (`access%5Ftoken` is `access_token`) and
//! case-insensitively. The list is documented in `docs/recording.md`: a name is secret when it
//! contains one of [`SECRET_WORDS`], or one of its parts (split at `_`, `-`, `.`, `[`, `]`,
//! and lowercase-to-uppercase steps) is one of [`SECRET_PARTS`].

/// Substrings that make a name secret.
pub const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "credential",
    "private",
    "assertion",
    "session",
    "cookie",
    "authorization",
    "signature",
];

/// Whole name parts that make a name secret (short words that would match too much as
/// substrings: `key` but not `keyword`, `pin` but not `shipping`).
pub const SECRET_PARTS: &[&str] = &[
    "key", "code", "pwd", "pin", "pass", "otp", "sig", "auth", "jwt", "sid", "ticket", "nonce",
];

/// What stands for a redacted value.
pub const REDACTED: &str = "<redacted>";

/// Whether a (possibly percent-encoded) parameter or field name suggests a secret.
pub fn secret_name(name: &str) -> bool {
    let decoded = percent_decode(name);
    let lower = decoded.to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    let found = parts(&decoded).any(|p| SECRET_PARTS.contains(&p.to_ascii_lowercase().as_str()));
    found
}

/// The parts of a name: split at separators and at camelCase steps.
fn parts(name: &str) -> impl Iterator<Item = String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if matches!(c, '_' | '-' | '.' | '[' | ']' | ' ') {
            out.push(std::mem::take(&mut cur));
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().filter(|p| !p.is_empty())
}

/// `%XX` decoded and `+` as space; invalid escapes kept as they are.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&code=x` → `a=1&code=<redacted>`: the values of secret-named parameters; with
/// `all`, every value.
pub fn query(text: &str, all: bool) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() && (all || secret_name(k)) => format!("{k}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A request target or URL with its query redacted ([`query`]); `all` redacts every value
/// (a `Location` header).
pub fn uri(text: &str, all: bool) -> String {
    match text.split_once('?') {
        Some((path, rest)) => {
            let (q, fragment) = match rest.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (rest, None),
            };
            let mut out = format!("{path}?{}", query(q, all));
            if let Some(f) = fragment {
                // An implicit-flow fragment carries `access_token=…` the same way.
                out.push('#');
                out.push_str(&query(f, all));
            }
            out
        }
        None => text.to_string(),
    }
}

/// A `multipart/form-data` excerpt with the content of every part whose name is secret
/// replaced; `content_type` gives the boundary. Parts cut off by the excerpt's end are
/// redacted too.
pub fn multipart(text: &str, content_type: &str) -> String {
    let Some(boundary) = boundary(content_type) else {
        return text.to_string();
    };
    let delimiter = format!("--{boundary}");
    let mut pieces = text.split(delimiter.as_str());
    let mut out = pieces.next().unwrap_or("").to_string();
    for piece in pieces {
        out.push_str(&delimiter);
        let (head, body) = match piece.split_once("\r\n\r\n") {
            Some(x) => x,
            None => match piece.split_once("\n\n") {
                Some(x) => x,
                None => {
                    out.push_str(piece);
                    continue;
                }
            },
        };
        let sep = if piece.contains("\r\n\r\n") {
            "\r\n\r\n"
        } else {
            "\n\n"
        };
        if part_name(head).is_some_and(|n| secret_name(&n)) {
            out.push_str(head);
            out.push_str(sep);
            out.push_str(REDACTED);
            // Keep the line break before the next delimiter.
            if body.ends_with("\r\n") {
                out.push_str("\r\n");
            } else if body.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(head);
            out.push_str(sep);
            out.push_str(body);
        }
    }
    out
}

fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// `name="…"` of a part's `Content-Disposition`.
fn part_name(head: &str) -> Option<String> {
    head.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .trim_start()
                .starts_with("content-disposition")
        })?
        .split(';')
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            (k.trim().eq_ignore_ascii_case("name")).then(|| v.trim().trim_matches('"').to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_after_decoding_and_by_part() {
        for n in [
            "access_token",
            "code",
            "password",
            "passwd",
            "pwd",
            "pin",
            "client_secret",
            "api_key",
            "apiKey",
            "session_id",
            "PASSPHRASE",
            "access%5Ftoken",
            "pass%77ord",
            "auth_code",
            "user[password]",
            "X-Api-Key",
            "refresh_token",
            "id_token",
            "sig",
        ] {
            assert!(secret_name(n), "{n}");
        }
        for n in [
            "user", "keyword", "shipping", "q", "page", "codec", "state", "monkey",
        ] {
            assert!(!secret_name(n), "{n}");
        }
    }

    #[test]
    fn queries_and_locations() {
        assert_eq!(
            uri("/cb?code=abc&state=xyz&access_token=t", false),
            "/cb?code=<redacted>&state=xyz&access_token=<redacted>"
        );
        assert_eq!(uri("/p?x=1", false), "/p?x=1");
        assert_eq!(uri("/p", false), "/p");
        assert_eq!(
            uri("https://app.example/cb?state=s&code=c#access_token=t&x=1", true),
            "https://app.example/cb?state=<redacted>&code=<redacted>#access_token=<redacted>&x=<redacted>"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%41%zz+b"), "A%zz b");
    }

    #[test]
    fn multipart_parts_with_secret_names_are_redacted() {
        let body = "--XYZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nann\r\n--XYZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--XYZ--\r\n";
        let out = multipart(body, "multipart/form-data; boundary=XYZ");
        assert!(out.contains("\r\n\r\nann\r\n"), "{out}");
        assert!(!out.contains("hunter2"), "{out}");
        assert!(
            out.contains("name=\"password\"\r\n\r\n<redacted>\r\n--XYZ--"),
            "{out}"
        );
        let cut = "--XYZ\r\nContent-Disposition: form-data; name=\"pin\"\r\n\r\n12";
        assert!(!multipart(cut, "multipart/form-data; boundary=\"XYZ\"").contains("12"));
    }
}
