//! Naming a network path: `direct`, an `http://[user:pass@]host:port` CONNECT proxy, or `env`
//! (the proxy an HTTPS client would use from the environment, as curl chooses it:
//! `https_proxy`, `HTTPS_PROXY`, then `all_proxy`/`ALL_PROXY`, unless `no_proxy`/`NO_PROXY`
//! matches the host).

use crate::upstream::ConnectProxy;
use std::net::IpAddr;

/// One path to the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Via {
    /// No proxy.
    Direct,
    /// Through this CONNECT proxy.
    Proxy(ConnectProxy),
    /// Chosen from the environment: the proxy (or none), and why, in words.
    Env {
        /// The proxy to use; `None` when the environment says to connect directly.
        proxy: Option<ConnectProxy>,
        /// The variable that decided, e.g. `HTTPS_PROXY` or `NO_PROXY matches localhost`.
        from: String,
    },
}

impl Via {
    /// Parse one `--via` value for a server named `host`; `env` reads variables through `var`.
    pub fn parse(
        arg: &str,
        host: &str,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Via, String> {
        match arg {
            "direct" => Ok(Via::Direct),
            "env" => from_env(host, var),
            url => ConnectProxy::parse(url)
                .map(Via::Proxy)
                .map_err(|e| e.to_string()),
        }
    }

    /// The proxy to connect through, if any.
    pub fn proxy(&self) -> Option<ConnectProxy> {
        match self {
            Via::Direct => None,
            Via::Proxy(p) => Some(p.clone()),
            Via::Env { proxy, .. } => proxy.clone(),
        }
    }

    /// The path's name in reports: `direct`, the proxy's URL (never its password), and for
    /// `env` where it came from.
    pub fn label(&self) -> String {
        match self {
            Via::Direct => "direct".into(),
            Via::Proxy(p) => p.url(),
            Via::Env {
                proxy: Some(p),
                from,
            } => format!("{} (from {from})", p.url()),
            Via::Env { proxy: None, from } => format!("direct ({from})"),
        }
    }
}

/// The first variable of `names` that is set and not empty, with its name.
fn first_set(names: &[&str], var: &dyn Fn(&str) -> Option<String>) -> Option<(String, String)> {
    names.iter().find_map(|n| {
        var(n)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (n.to_string(), v.trim().to_string()))
    })
}

fn from_env(host: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Via, String> {
    if let Some((name, list)) = first_set(&["no_proxy", "NO_PROXY"], var) {
        if let Some(entry) = no_proxy_match(&list, host) {
            return Ok(Via::Env {
                proxy: None,
                from: format!("{name} entry {entry:?} matches {host}"),
            });
        }
    }
    let Some((name, url)) = first_set(
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
        var,
    ) else {
        return Ok(Via::Env {
            proxy: None,
            from: "no https_proxy, HTTPS_PROXY or ALL_PROXY set".into(),
        });
    };
    let proxy = ConnectProxy::parse(&url).map_err(|e| format!("{name}: {e}"))?;
    Ok(Via::Env {
        proxy: Some(proxy),
        from: name,
    })
}

/// The `NO_PROXY` entry that exempts `host`, as curl matches them: `*` matches every host; a
/// name matches itself and its subdomains (a leading dot is ignored); an IP address matches
/// itself, or falls in a CIDR block (`10.0.0.0/8`). Ports in entries are not compared.
pub fn no_proxy_match(list: &str, host: &str) -> Option<String> {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    list.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .find(|entry| {
            if *entry == "*" {
                return true;
            }
            let e = entry
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            match host_ip {
                Some(ip) => ip_matches(ip, &e),
                None => host == e || host.ends_with(&format!(".{e}")),
            }
        })
        .map(String::from)
}

fn ip_matches(ip: IpAddr, entry: &str) -> bool {
    let entry = entry.trim_start_matches('[');
    let (addr, bits) = match entry.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (entry.trim_end_matches(']'), None),
    };
    let Ok(net) = addr.trim_end_matches(']').parse::<IpAddr>() else {
        return false;
    };
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (ip >> shift) == (net >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn no_proxy_matches_as_curl_does() {
        assert_eq!(
            no_proxy_match("example.com", "api.example.com").as_deref(),
            Some("example.com")
        );
        assert!(no_proxy_match(".example.com", "example.com").is_some());
        assert!(no_proxy_match("example.com", "badexample.com").is_none());
        assert!(no_proxy_match("localhost, 10.0.0.0/8", "10.1.2.3").is_some());
        assert!(no_proxy_match("10.0.0.0/8", "11.1.2.3").is_none());
        assert!(no_proxy_match("127.0.0.1", "127.0.0.1").is_some());
        assert!(no_proxy_match("::1", "[::1]").is_some());
        assert!(no_proxy_match("fd00::/8", "fd12::1").is_some());
        assert!(no_proxy_match("*", "anything.test").is_some());
        assert!(no_proxy_match("", "x").is_none());
    }

    #[test]
    fn env_prefers_lowercase_and_honours_no_proxy() {
        let v = Via::parse(
            "env",
            "srv.test",
            &env(&[
                ("HTTPS_PROXY", "http://upper:1"),
                ("https_proxy", "http://lower:2"),
            ]),
        )
        .unwrap();
        assert_eq!(v.proxy().map(|p| p.host), Some("lower".into()));
        assert_eq!(v.label(), "http://lower:2 (from https_proxy)");
        let v = Via::parse(
            "env",
            "srv.test",
            &env(&[("HTTPS_PROXY", "u:p@upper:1"), ("NO_PROXY", "other, .test")]),
        )
        .unwrap();
        assert_eq!(v.proxy(), None);
        assert_eq!(
            v.label(),
            "direct (NO_PROXY entry \".test\" matches srv.test)"
        );
        let v = Via::parse("env", "srv.test", &env(&[])).unwrap();
        assert_eq!(v.proxy(), None);
        let e =
            Via::parse("env", "srv.test", &env(&[("HTTPS_PROXY", "socks5://p:1")])).unwrap_err();
        assert!(e.starts_with("HTTPS_PROXY: "), "{e}");
        assert_eq!(Via::parse("direct", "x", &env(&[])).unwrap(), Via::Direct);
    }
}
