//! `mtlscope analyze CAPTURE… [--keylog FILE]…`: the CLI of [`crate::analyze`]. Reading runs on
//! a blocking thread; each finished connection goes through the usual sink (diagnose, print,
//! record, web view) on the runtime.

use crate::analyze::{analyze_file, decrypt::KeyLog, pcap::Ending, FileSummary};
use crate::error::CommandError;
use crate::record::{RecordSettings, Sink};
use std::path::PathBuf;
use std::sync::Arc;

/// Flags of `mtlscope analyze`.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// Packet captures (pcap or pcapng: tcpdump, Wireshark, dumpcap, converted pktmon).
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<PathBuf>,
    /// NSS key log (SSLKEYLOGFILE) to decrypt TLS 1.3 handshakes with (repeatable).
    #[arg(long, value_name = "FILE")]
    pub keylog: Vec<PathBuf>,
    /// Append one JSON object per TLS connection to FILE (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Under each connection, print every finding's evidence and fix.
    #[arg(long, short = 'v')]
    pub explain: bool,
    /// Print each record as one JSON line on stdout instead of the terminal line.
    #[arg(long)]
    pub json: bool,
    /// The web view, fed while the capture is read (then kept until interrupted).
    #[command(flatten)]
    pub ui: crate::cli::ui::UiArgs,
}

/// Read every capture and record its TLS connections.
pub fn run(args: AnalyzeArgs) -> Result<(), CommandError> {
    for c in &args.captures {
        if !c.is_file() {
            return Err(CommandError::usage(format!(
                "{}: no such capture file",
                c.display()
            )));
        }
    }
    let keys = if args.keylog.is_empty() {
        None
    } else {
        let log = KeyLog::load(&args.keylog).map_err(|e| CommandError::usage(e.to_string()))?;
        Some(Arc::new(log))
    };
    let ui = args.ui.options(None)?;
    let settings = RecordSettings {
        path: args.record.clone(),
        max_size: None,
    };
    let printer = (!args.json).then(|| super::printer::Printer::new(args.explain));
    let rt = crate::cli::runtime()?;
    rt.block_on(async move {
        let sink = Sink::open(&settings)
            .map_err(|e| CommandError::usage(format!("--record: {e}")))?;
        let sink = super::printer::Printer::attach(printer, sink);
        let (sink, ui) = crate::cli::ui::attach(ui, sink).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        let captures = args.captures.clone();
        let reading_keys = keys.clone();
        let reader = tokio::task::spawn_blocking(move || {
            let mut next_id = 1u64;
            let mut out = Vec::new();
            for path in captures {
                let tx = tx.clone();
                let mut emit = |flow| {
                    let _ = tx.blocking_send(flow);
                };
                let r = analyze_file(&path, reading_keys.clone(), &mut next_id, &mut emit);
                out.push((path, r));
            }
            out
        });
        while let Some(flow) = rx.recv().await {
            let flow = sink.emit_returning(flow).await;
            if args.json {
                match serde_json::to_string(&*flow) {
                    Ok(line) => {
                        crate::io::stdout::try_write(format_args!("{line}\n"));
                    }
                    Err(e) => tracing::error!(error = %e, "cannot serialise a record"),
                }
            }
        }
        let results = reader
            .await
            .map_err(|e| CommandError::runtime(format!("reading the captures failed: {e}")))?;
        let mut failed = None;
        let mut tls = 0;
        for (path, r) in results {
            match r {
                Ok(summary) => {
                    tls += summary.tls_connections;
                    for line in notices(&path, &summary) {
                        eprintln!("mtlscope analyze: {line}");
                    }
                }
                Err(e) => {
                    eprintln!("mtlscope analyze: {e}");
                    failed.get_or_insert(e.to_string());
                }
            }
        }
        if let Some(k) = &keys {
            if k.matched() == 0 && tls > 0 {
                let names: Vec<String> = args.keylog.iter().map(|p| p.display().to_string()).collect();
                eprintln!(
                    "mtlscope analyze: --keylog {}: {} sessions in the key log, none of them in the \
                     capture (its ClientHello randoms match no line)",
                    names.join(", "),
                    k.len()
                );
            }
        }
        let _ = sink.flush().await;
        if let Some(ui) = ui {
            eprintln!("mtlscope analyze: web view on http://{}/ until interrupted", ui.local_addr);
            let _ = crate::lifecycle::stop_signal().await;
        }
        match failed {
            Some(e) => Err(CommandError::runtime(e)),
            None => Ok(()),
        }
    })
}

/// What the user should know about a capture besides its records.
pub fn notices(path: &std::path::Path, s: &FileSummary) -> Vec<String> {
    let name = path.display();
    let mut out = vec![format!(
        "{name}: {} frames, {} TCP connections, {} with TLS",
        s.frames, s.tcp_connections, s.tls_connections
    )];
    match &s.ending {
        Some(Ending::Truncated { after_frame }) => out.push(format!(
            "{name}: the file is truncated: it ends inside the block after frame {after_frame}; \
             everything before was read"
        )),
        Some(Ending::Malformed {
            after_frame,
            offset,
            why,
        }) => out.push(format!(
            "{name}: a malformed block at byte {offset} (after frame {after_frame}): {why}; \
             nothing after it was read"
        )),
        _ => {}
    }
    if s.cut_frames > 0 || s.cut_headers > 0 {
        out.push(format!(
            "{name}: {} frames were cut by the capture's snap length, so handshake bytes are \
             missing (named as gaps in the records); capture again with -s 0",
            s.cut_frames + s.cut_headers
        ));
    }
    for (link, n) in &s.unknown_links {
        out.push(format!(
            "{name}: {n} frames on link type {link}, which analyze does not read (Ethernet, \
             Linux cooked SLL/SLL2, raw IP and loopback are read)"
        ));
    }
    if s.fragments > 0 {
        out.push(format!(
            "{name}: {} IP fragments were skipped (not reassembled)",
            s.fragments
        ));
    }
    out
}
