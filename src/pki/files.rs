//! Writing generated PKI files with the right permissions, and random serial numbers.
//!
//! Every file is written to a temporary sibling created with its final mode and then renamed into
//! place, so a private key is never readable by others, not even for a moment, and a rerun that
//! replaces an old file does not inherit the old file's mode.

use super::PkiError;
use std::io::Write;
use std::path::Path;

/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
pub(crate) const CERT_MODE: u32 = 0o644;

/// Write `contents` to `path` with `mode`, replacing any existing file.
pub(crate) fn write_replace(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = tmp_sibling(path);
    // A stale temporary from an interrupted run would make create_new fail.
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, contents, mode).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Write `contents` to `path` with `mode`; fail if `path` already exists.
pub(crate) fn write_exclusive(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    write_new(path, contents, mode).map_err(|source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn tmp_sibling(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Create `dir` (and parents) if missing; new directories are private to the user.
pub(crate) fn create_dir(dir: &Path, private: bool) -> Result<(), PkiError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    #[cfg(not(unix))]
    let _ = private;
    builder.create(dir).map_err(|source| PkiError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// A fresh random, positive, 16-byte serial number (RFC 5280 allows up to 20 octets).
pub(crate) fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system RNG failing is not recoverable in any useful way; fall back to the clock
        // and a counter so serials stay unique within this process.
        fallback_serial(&mut bytes);
    }
    // Positive and without a leading zero octet, so the DER INTEGER is exactly 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    rcgen::SerialNumber::from_slice(&bytes)
}

fn fallback_serial(bytes: &mut [u8; 16]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    bytes[..8].copy_from_slice(&nanos.to_be_bytes());
    bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
}
