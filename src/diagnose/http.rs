//! The server's HTTP answer, read for what it says about client certificates: nginx's
//! certificate pages and 495/496, IIS 403.x sub-statuses, HAProxy's text, service registries.

use crate::facts::Header;

/// The server's HTTP answer, read for what it says about client certificates.
pub(crate) struct HttpAnswer<'a> {
    /// Status code.
    pub status: u16,
    /// Body excerpt, as recorded.
    pub body: &'a str,
    /// Headers, as recorded.
    pub headers: &'a [Header],
}

impl HttpAnswer<'_> {
    /// `403 Forbidden`.
    pub fn status_line(&self) -> String {
        let reason = http::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        format!("{} {reason}", self.status).trim_end().to_string()
    }

    /// Body text with markup and runs of white space collapsed, at most 160 characters.
    pub fn snippet(&self) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for ch in self.body.chars() {
            match ch {
                '<' => in_tag = true,
                '>' if in_tag => {
                    in_tag = false;
                    out.push(' ');
                }
                _ if !in_tag => out.push(ch),
                _ => {}
            }
        }
        let words: Vec<&str> = out.split_whitespace().collect();
        let text = words.join(" ");
        match text.char_indices().nth(160) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text,
        }
    }

    /// The status line and body snippet as one evidence line.
    pub fn evidence(&self) -> String {
        let snippet = self.snippet();
        if snippet.is_empty() {
            format!("the server answered {}", self.status_line())
        } else {
            format!(
                "the server answered {}; body: \"{snippet}\"",
                self.status_line()
            )
        }
    }

    /// Whether the body contains `needle`, ASCII case aside. Asked of every answer, most of
    /// them empty or a success: no copies.
    fn body_has(&self, needle: &str) -> bool {
        let needle = needle.as_bytes();
        needle.is_empty()
            || self
                .body
                .as_bytes()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle))
    }

    /// A header value by (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Which server product the answer names (`Server` header or error page), lowercase.
    fn names_product(&self, product: &str) -> bool {
        self.header("server")
            .is_some_and(|s| s.to_ascii_lowercase().contains(product))
            || self.body_has(product)
    }

    /// The answer says no client certificate was sent; names who said it.
    pub fn says_no_cert(&self) -> Option<&'static str> {
        if self.status == 496 {
            Some("nginx status 496 (certificate required)")
        } else if self.status == 400 && self.body_has("No required SSL certificate was sent") {
            if self.body_has("Application-Gateway") {
                Some("Azure Application Gateway's 400 (nginx's internal 496)")
            } else {
                Some("nginx's 400 \"No required SSL certificate was sent\" (its internal 496)")
            }
        } else if self.iis_substatus() == Some(7) {
            Some("IIS 403.7 (client certificate required)")
        } else {
            None
        }
    }

    /// The answer says the certificate sent was refused as untrusted or invalid.
    pub fn says_cert_invalid(&self) -> Option<&'static str> {
        if self.status == 495 {
            Some("nginx status 495 (certificate verification failed)")
        } else if self.status == 400 && self.body_has("The SSL certificate error") {
            Some("nginx's 400 \"The SSL certificate error\" (its internal 495)")
        } else if self.body_has("SSL client certificate not trusted") {
            Some("HAProxy's \"SSL client certificate not trusted\"")
        } else if self.iis_substatus() == Some(16) {
            Some("IIS 403.16 (client certificate untrusted or invalid)")
        } else {
            None
        }
    }

    /// The IIS 403 sub-status the body or headers reveal (`403.16` → 16).
    pub fn iis_substatus(&self) -> Option<u8> {
        if self.status != 403 {
            return None;
        }
        std::iter::once(self.body)
            .chain(self.headers.iter().map(|h| h.value.as_str()))
            .find_map(find_403_sub)
    }

    /// The body names an invalid or unknown client certificate (a service's own registry).
    pub fn names_unknown_cert(&self) -> bool {
        let b = self.body.to_ascii_lowercase();
        if b.contains("auth0032") {
            return true;
        }
        let cert = b.contains("client certificate") || b.contains("client_certificate");
        cert && [
            "invalid",
            "unknown",
            "not registered",
            "unregistered",
            "not found",
            "not recognized",
        ]
        .iter()
        .any(|w| b.contains(w))
    }

    /// The answer is Apache's (header or error page).
    pub fn is_apache(&self) -> bool {
        self.names_product("apache")
    }

    /// The answer is HTTP.sys / IIS.
    pub fn is_http_sys(&self) -> bool {
        self.names_product("microsoft-httpapi") || self.names_product("microsoft-iis")
    }
}

/// `403.<n>` in `text`, not part of a longer number.
fn find_403_sub(text: &str) -> Option<u8> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find("403.") {
        let start = from + i;
        let digits: String = text[start + 4..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_digit() || bytes[start - 1] == b'.');
        if before_ok && (1..=2).contains(&digits.len()) {
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
        from = start + 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iis_substatus_is_found_in_text() {
        assert_eq!(find_403_sub("HTTP Error 403.16 - Forbidden"), Some(16));
        assert_eq!(
            find_403_sub("<h3>HTTP Error 403.7 - Forbidden</h3>"),
            Some(7)
        );
        assert_eq!(find_403_sub("10.403.1 and 1403.2"), None);
        assert_eq!(find_403_sub("403 Forbidden"), None);
    }

    #[test]
    fn snippet_strips_markup() {
        let a = HttpAnswer {
            status: 400,
            body: "<html><head><title>400 No required SSL certificate was sent</title></head>\n<body>x</body>",
            headers: &[],
        };
        assert_eq!(a.snippet(), "400 No required SSL certificate was sent x");
        assert!(a.says_no_cert().is_some());
        assert_eq!(a.status_line(), "400 Bad Request");
    }
}
