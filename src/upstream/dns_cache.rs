//! A short-lived cache of upstream name lookups: every new upstream connection used to ask the
//! resolver (a hand-off to tokio's blocking pool and a read of /etc/hosts or a DNS query), where
//! nginx resolves its upstream once at start-up. Answers are kept a few seconds, so a changed
//! record is still followed; failures are never kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an answer is used.
const KEEP_FOR: Duration = Duration::from_secs(5);
/// Names remembered at most (a forward proxy sees many hosts).
const MAX_NAMES: usize = 1024;

type Answers = HashMap<(String, u16), (Instant, Vec<SocketAddr>)>;

fn answers() -> &'static Mutex<Answers> {
    static CACHE: OnceLock<Mutex<Answers>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The addresses of `host:port`, from the cache when answered in the last few seconds.
pub async fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let key = (host.to_string(), port);
    if let Ok(a) = answers().lock() {
        if let Some((at, addrs)) = a.get(&key) {
            if at.elapsed() < KEEP_FOR {
                return Ok(addrs.clone());
            }
        }
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    if let Ok(mut a) = answers().lock() {
        if a.len() >= MAX_NAMES {
            a.retain(|_, (at, _)| at.elapsed() < KEEP_FOR);
            if a.len() >= MAX_NAMES {
                a.clear();
            }
        }
        a.insert(key, (Instant::now(), addrs.clone()));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_literals_and_names_resolve_and_names_are_kept() {
        let ip = lookup("127.0.0.1", 8443).await.unwrap();
        assert_eq!(ip, vec!["127.0.0.1:8443".parse().unwrap()]);
        let first = lookup("localhost", 8443).await.unwrap();
        assert!(!first.is_empty());
        assert!(answers()
            .lock()
            .unwrap()
            .contains_key(&("localhost".to_string(), 8443)));
        assert_eq!(lookup("localhost", 8443).await.unwrap(), first);
    }
}
