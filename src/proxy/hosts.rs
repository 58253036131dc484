//! Host patterns for `forward`: which hosts are intercepted, and which identity each host gets.
//!
//! A pattern is an exact host (`api.example.com`), a host and port (`api.example.com:8443`), a
//! wildcard (`*.example.com`, matching any subdomain but not the apex), or `*`.

use crate::capture::upstream_auth::IdentityPolicy;
use crate::pki::load::Identity;
use std::path::PathBuf;
use std::sync::Arc;

/// One host pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    /// Lowercase host part; may start with `*.` or be `*`.
    host: String,
    /// Port, if the pattern names one.
    port: Option<u16>,
}

impl HostPattern {
    /// Parse `host`, `host:port`, `*.domain` or `*`.
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty host pattern".into());
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{s:?}: bad port {p:?}"))?;
                (h.trim_start_matches('[').trim_end_matches(']'), Some(port))
            }
            _ => (s.trim_start_matches('[').trim_end_matches(']'), None),
        };
        let valid_wildcard = host == "*" || (host.starts_with("*.") && !host[2..].contains('*'));
        if host.contains('*') && !valid_wildcard {
            return Err(format!(
                "{s:?}: a wildcard must be `*` or lead as `*.domain`"
            ));
        }
        Ok(HostPattern {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether `host:port` matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(domain) => {
                host.len() > domain.len() + 1
                    && host.ends_with(domain)
                    && host[..host.len() - domain.len()].ends_with('.')
            }
            None => self.host == host,
        }
    }

    /// How specific the pattern is, for choosing among several matches.
    fn specificity(&self) -> (u8, usize) {
        let exact = !self.host.starts_with('*');
        (
            u8::from(exact) * 2 + u8::from(self.port.is_some()),
            self.host.len(),
        )
    }
}

/// `--intercept` / `--passthrough`: which CONNECT targets are intercepted.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Intercepted hosts; empty = all.
    pub intercept: Vec<HostPattern>,
    /// Tunnelled untouched (wins over `intercept`).
    pub passthrough: Vec<HostPattern>,
}

impl Scope {
    /// Whether TLS to `host:port` is intercepted.
    pub fn intercepts(&self, host: &str, port: u16) -> bool {
        if self.passthrough.iter().any(|p| p.matches(host, port)) {
            return false;
        }
        self.intercept.is_empty() || self.intercept.iter().any(|p| p.matches(host, port))
    }
}

/// Per-host upstream identities.
#[derive(Clone, Debug)]
pub struct IdentityMap {
    /// `(pattern, policy)` rules; the most specific match wins.
    pub rules: Vec<(HostPattern, IdentityPolicy)>,
    /// A directory of `<host>.pem` files (certificate, chain and key in one PEM).
    pub dir: Option<PathBuf>,
    /// For hosts no rule or file names.
    pub default: IdentityPolicy,
}

impl IdentityMap {
    /// The policy for `host:port`, and how it was chosen (for the record).
    pub fn policy_for(&self, host: &str, port: u16) -> (IdentityPolicy, String) {
        let best = self
            .rules
            .iter()
            .filter(|(p, _)| p.matches(host, port))
            .max_by_key(|(p, _)| p.specificity());
        if let Some((pattern, policy)) = best {
            return (
                policy.clone(),
                format!("host rule {}", pattern_text(pattern)),
            );
        }
        if let Some(dir) = &self.dir {
            for name in [format!("{host}:{port}.pem"), format!("{host}.pem")] {
                let path = dir.join(&name);
                if path.is_file() {
                    return match Identity::load(&path, &path) {
                        Ok(id) => (
                            IdentityPolicy::Fixed(Arc::new(id)),
                            format!("identity directory file {name}"),
                        ),
                        Err(e) => {
                            tracing::warn!(file = %path.display(), error = %e, "unusable identity file");
                            (
                                self.default.clone(),
                                format!("identity file {name} is unusable ({e}); default identity"),
                            )
                        }
                    };
                }
            }
        }
        (self.default.clone(), "default identity".into())
    }
}

/// Per-host upstream engines (`[[host]] engine = "openssl"`); hosts no rule names use the
/// listener's engine.
#[derive(Clone, Debug, Default)]
pub struct HostEngines {
    /// `(pattern, engine)` rules; the most specific match wins.
    pub rules: Vec<(HostPattern, crate::upstream::Engine)>,
}

impl HostEngines {
    /// The engine a rule names for `host:port`, if any.
    pub fn engine_for(&self, host: &str, port: u16) -> Option<crate::upstream::Engine> {
        self.rules
            .iter()
            .filter(|(p, _)| p.matches(host, port))
            .max_by_key(|(p, _)| p.specificity())
            .map(|(_, e)| e.clone())
    }
}

fn pattern_text(p: &HostPattern) -> String {
    match p.port {
        Some(port) => format!("{}:{port}", p.host),
        None => p.host.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("api.example.com", 443));
        assert!(p.matches("a.b.example.com", 443));
        assert!(!p.matches("example.com", 443));
        assert!(!p.matches("badexample.com", 443));
        let p = HostPattern::parse("api.example.com:8443").unwrap();
        assert!(p.matches("API.example.com", 8443));
        assert!(!p.matches("api.example.com", 443));
        assert!(HostPattern::parse("*").unwrap().matches("anything", 1));
        assert!(HostPattern::parse("[::1]:443").unwrap().matches("::1", 443));
        assert!(HostPattern::parse("a*.com").is_err());
        assert!(HostPattern::parse("x:notaport").is_err());
    }

    #[test]
    fn scope_passthrough_wins() {
        let scope = Scope {
            intercept: vec![],
            passthrough: vec![HostPattern::parse("*.bank.example").unwrap()],
        };
        assert!(scope.intercepts("api.example.com", 443));
        assert!(!scope.intercepts("www.bank.example", 443));
    }

    #[test]
    fn most_specific_identity_rule_wins() {
        let map = IdentityMap {
            rules: vec![
                (
                    HostPattern::parse("*.example.com").unwrap(),
                    IdentityPolicy::Auto(vec![]),
                ),
                (
                    HostPattern::parse("api.example.com").unwrap(),
                    IdentityPolicy::None,
                ),
            ],
            dir: None,
            default: IdentityPolicy::Auto(vec![]),
        };
        let (p, why) = map.policy_for("api.example.com", 443);
        assert!(matches!(p, IdentityPolicy::None), "{why}");
        let (_, why) = map.policy_for("www.example.com", 443);
        assert_eq!(why, "host rule *.example.com");
        let (_, why) = map.policy_for("other.org", 443);
        assert_eq!(why, "default identity");
    }
}
