//! `--resolve HOST:PORT:ADDR` overrides: where to connect for a host and port instead of what
//! DNS says, applied to each upstream [`Target`](crate::upstream::Target).

use crate::error::CommandError;
use std::net::SocketAddr;

/// `--resolve HOST:PORT:ADDR` overrides.
#[derive(Clone, Debug, Default)]
pub struct Resolve(Vec<(String, u16, SocketAddr)>);

impl Resolve {
    /// Parse the flags.
    pub fn parse(flags: &[String]) -> Result<Resolve, CommandError> {
        flags
            .iter()
            .map(|f| {
                let bad = || CommandError::usage(format!("--resolve {f:?}: expected HOST:PORT:ADDR (e.g. api.example.com:443:127.0.0.1)"));
                let (host, rest) = f.split_once(':').ok_or_else(bad)?;
                let (port, addr) = rest.split_once(':').ok_or_else(bad)?;
                let port: u16 = port.parse().map_err(|_| bad())?;
                let ip: std::net::IpAddr = addr.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| bad())?;
                Ok((host.to_ascii_lowercase(), port, SocketAddr::new(ip, port)))
            })
            .collect::<Result<_, _>>()
            .map(Resolve)
    }

    /// Apply to a target.
    pub fn apply(&self, target: &mut crate::upstream::Target) {
        let host = target.host.to_ascii_lowercase();
        if let Some((_, _, addr)) = self
            .0
            .iter()
            .find(|(h, p, _)| *h == host && *p == target.port)
        {
            target.connect_addr = Some(*addr);
        }
    }
}
