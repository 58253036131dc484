//! The `--keylog` files: NSS key log lines (`LABEL CLIENT_RANDOM SECRET`), by client random.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The secrets of one session, by the label they came with.
#[derive(Clone, Debug, Default)]
pub(super) struct Secrets {
    /// CLIENT_HANDSHAKE_TRAFFIC_SECRET.
    pub(super) client_hs: Option<Vec<u8>>,
    /// SERVER_HANDSHAKE_TRAFFIC_SECRET.
    pub(super) server_hs: Option<Vec<u8>>,
    /// CLIENT_TRAFFIC_SECRET_0.
    pub(super) client_app: Option<Vec<u8>>,
    /// SERVER_TRAFFIC_SECRET_0.
    pub(super) server_app: Option<Vec<u8>>,
    /// CLIENT_RANDOM (TLS 1.2 master secret).
    pub(super) master: Option<Vec<u8>>,
}

/// Why a key log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyLogError {
    /// The file could not be read.
    #[error("--keylog {path}: cannot read: {source}")]
    Io {
        /// The key log.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not `LABEL HEX HEX`.
    #[error("--keylog {path}:{line}: not an NSS key log line (expected LABEL CLIENT_RANDOM SECRET in hex): {why}")]
    BadLine {
        /// The key log.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        why: &'static str,
    },
}

/// Every session secret of the `--keylog` files, by ClientHello random.
#[derive(Debug, Default)]
pub struct KeyLog {
    /// Secrets by client random.
    pub(super) sessions: HashMap<[u8; 32], Secrets>,
    /// Sessions of the capture the key log had secrets for.
    pub(super) matched: AtomicU64,
}

impl KeyLog {
    /// Read the key log files.
    pub fn load(paths: &[PathBuf]) -> Result<KeyLog, KeyLogError> {
        let mut log = KeyLog::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| KeyLogError::Io {
                path: path.clone(),
                source,
            })?;
            log.add(path, &text)?;
        }
        Ok(log)
    }

    /// Add the lines of one key log.
    pub fn add(&mut self, path: &Path, text: &str) -> Result<(), KeyLogError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why| KeyLogError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                why,
            };
            let mut parts = line.split_ascii_whitespace();
            let (Some(label), Some(random), Some(secret), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad("not three fields"));
            };
            let random = unhex(random).ok_or(bad("the client random is not hex"))?;
            let random: [u8; 32] = random
                .try_into()
                .map_err(|_| bad("the client random is not 32 bytes"))?;
            let secret = unhex(secret).ok_or(bad("the secret is not hex"))?;
            let s = self.sessions.entry(random).or_default();
            let slot = match label {
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut s.client_hs,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut s.server_hs,
                "CLIENT_TRAFFIC_SECRET_0" => &mut s.client_app,
                "SERVER_TRAFFIC_SECRET_0" => &mut s.server_app,
                "CLIENT_RANDOM" => &mut s.master,
                _ => continue, // EXPORTER_SECRET, early traffic: not needed
            };
            *slot = Some(secret);
        }
        Ok(())
    }

    /// How many sessions it holds.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// How many sessions of the captures it had secrets for.
    pub fn matched(&self) -> u64 {
        self.matched.load(Ordering::Relaxed)
    }
}

pub(super) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_log_lines_are_read_and_bad_ones_named() {
        let mut log = KeyLog::default();
        let r = "01".repeat(32);
        let text = format!(
            "# comment\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {}\nEXPORTER_SECRET {r} 00\n",
            "ab".repeat(32)
        );
        log.add(Path::new("k.log"), &text).expect("reads");
        assert_eq!(log.len(), 1);
        let e = log
            .add(Path::new("k.log"), "CLIENT_RANDOM zz 00\n")
            .expect_err("bad hex");
        assert!(e.to_string().contains("k.log:1"), "{e}");
    }
}
