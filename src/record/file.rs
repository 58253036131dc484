//! The recording file's own thread: it appends the batches of lines the writer task
//! serialised, rotates the file when told, and syncs on request. Only this thread touches the
//! file, so a slow disk slows recording, never the runtime that relays.
//!
//! The writer task serialises on the runtime's thread, where the flows were built and are
//! freed; only a batch of lines crosses to this thread. When each flow crossed, to be
//! serialised and freed here from a cold cache, a keep-alive exchange cost about 1.3 µs more
//! CPU (20.4–21.1 against 19.3–19.5 µs per request on one CPU, `wrk -c32`, three alternating
//! 8 s runs; 6–8% fewer requests a second).

use super::locate::{FlowKey, Location, Locator};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How many rotated files are kept (`FILE.1` … `FILE.N`).
pub(super) const KEEP_ROTATED: u32 = 9;

/// Batches on their way to the file before the writer task waits.
const QUEUE_DEPTH: usize = 4;

/// Lines serialised together, and what to report once they are written.
#[derive(Default)]
pub(super) struct Batch {
    /// The lines, each ending in `\n`.
    pub bytes: Vec<u8>,
    /// How many lines.
    pub lines: u64,
    /// Of those, exchanges written with `legs_from`.
    pub compacted: u64,
    /// Where each line goes, for the locator (only once it asked).
    pub located: Vec<(FlowKey, Location)>,
}

impl Batch {
    /// An empty batch with room for `bytes` of lines.
    pub fn with_capacity(bytes: usize) -> Batch {
        Batch {
            bytes: Vec::with_capacity(bytes),
            ..Batch::default()
        }
    }
}

/// What the file's thread is asked to do, in order.
pub(super) enum FileMsg {
    /// Append these lines.
    Append(Batch),
    /// Sync, move FILE → FILE.1 …, open a new FILE; answers whether the new file is open.
    Rotate(oneshot::Sender<bool>),
    /// Sync; answers with the totals so far.
    Sync(oneshot::Sender<Written>),
}

/// What reached the file so far.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Written {
    /// Lines written.
    pub lines: u64,
    /// Of those, compacted exchanges.
    pub compacted: u64,
    /// Lines lost to write errors (each batch logged).
    pub failed: u64,
}

/// The open recording, owned by its thread.
struct RecordFile {
    /// `--record`.
    path: PathBuf,
    /// The file being appended to.
    file: File,
    /// Totals so far.
    written: Written,
    /// Told where lines went, after they are written.
    locator: Option<Arc<Locator>>,
}

/// Start the thread that owns `file` (opened at `path`); its queue.
pub(super) fn start(
    path: &Path,
    file: File,
    locator: Option<Arc<Locator>>,
) -> std::io::Result<mpsc::Sender<FileMsg>> {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let owned = RecordFile {
        path: path.to_path_buf(),
        file,
        written: Written::default(),
        locator,
    };
    std::thread::Builder::new()
        .name("mtlscope-record".into())
        .spawn(move || owned.run(rx))?;
    Ok(tx)
}

impl RecordFile {
    fn run(mut self, mut rx: mpsc::Receiver<FileMsg>) {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                FileMsg::Append(batch) => self.append(batch),
                FileMsg::Rotate(done) => {
                    let _ = done.send(self.rotate());
                }
                FileMsg::Sync(done) => {
                    let _ = self.file.sync_data();
                    let _ = done.send(self.written);
                }
            }
        }
        let _ = self.file.sync_data();
    }

    fn append(&mut self, batch: Batch) {
        if batch.bytes.is_empty() {
            return;
        }
        match self.file.write_all(&batch.bytes) {
            Ok(()) => {
                self.written.lines += batch.lines;
                self.written.compacted += batch.compacted;
                if let Some(l) = &self.locator {
                    l.wrote(batch.located);
                }
            }
            Err(e) => {
                self.written.failed += batch.lines;
                tracing::error!(path = %self.path.display(), error = %e, lines = batch.lines, "cannot write recording");
            }
        }
    }

    /// FILE → FILE.1 → FILE.2 …, keeping [`KEEP_ROTATED`]; then a new FILE.
    /// False when FILE stays the one appended to.
    fn rotate(&mut self) -> bool {
        let _ = self.file.sync_data();
        let name = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let keep = KEEP_ROTATED;
        let _ = std::fs::remove_file(name(keep));
        for n in (1..keep).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        if let Err(e) = std::fs::rename(&self.path, name(1)) {
            tracing::error!(path = %self.path.display(), error = %e, "cannot rotate the recording; appending on");
            return false;
        }
        match open_append(&self.path) {
            Ok(file) => {
                self.file = file;
                if let Some(l) = &self.locator {
                    l.rotated();
                }
                true
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot open the new recording after rotating; writing to the rotated file");
                false
            }
        }
    }
}

/// Open for appending; a new file is created 0600 (recordings carry certificates, headers and
/// request excerpts: not for other users of the machine).
pub(super) fn open_append(path: &Path) -> std::io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}
