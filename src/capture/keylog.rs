//! `--keylog FILE`: NSS key-log lines (what Wireshark reads) for both legs.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Appends `LABEL CLIENT_RANDOM SECRET` lines to one file, shared by every connection.
#[derive(Debug)]
pub struct KeyLogFile {
    /// The open file.
    file: Mutex<File>,
    /// Its path, for error messages.
    path: PathBuf,
}

impl KeyLogFile {
    /// Open `path` for appending (created with mode 0600: the secrets decrypt traffic).
    pub fn open(path: &Path) -> std::io::Result<KeyLogFile> {
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        Ok(KeyLogFile {
            file: Mutex::new(opts.open(path)?),
            path: path.to_path_buf(),
        })
    }
}

impl rustls::KeyLog for KeyLogFile {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!(
            "{label} {} {}\n",
            crate::cert::hex(client_random),
            crate::cert::hex(secret)
        );
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write key log");
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}
