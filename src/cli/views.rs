//! `mtlscope report`, `diff` and `export`: views of recordings. They read JSON Lines recordings
//! (see [`crate::recording`]), hand the records to a renderer, and print or write the result.
//!
//! Skipped lines are warned about on stderr (file and line named) and never end the command; a
//! file that cannot be read, or a record that is not there, is bad usage (exit 2); failing to
//! write an output is a runtime failure (exit 1).

use crate::error::CommandError;
use crate::recording::filter::{self, Filter, StatusMatch};
use crate::recording::{self, Item, Record, RecordStream, Recording, Selector};
use crate::render::{diff, har_stream, html, report};
use clap::Args;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// `mtlscope report` flags.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Recordings (JSON Lines), read in order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also write a self-contained HTML report here.
    #[arg(long, value_name = "OUT.html")]
    pub html: Option<PathBuf>,
    /// Print the table and summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// After the table, print every finding's evidence and fix under its record.
    #[arg(long, short = 'v')]
    pub explain: bool,
    /// Diagnose every record again with this mtlscope's rules (for a recording made by an
    /// older one) instead of showing the findings it was recorded with.
    #[arg(long)]
    pub rediagnose: bool,
    /// Which records to show.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// The record filters `report`, `export` and `ui` share, applied while reading.
#[derive(Debug, Args, Default, Clone)]
pub struct FilterArgs {
    /// Only records that failed (4xx/5xx, a recorded error, or an error finding).
    #[arg(long)]
    pub only_failures: bool,
    /// Only records carrying this finding id.
    #[arg(long = "finding", visible_alias = "id", value_name = "FINDING_ID")]
    pub finding: Option<String>,
    /// Only flows to this host (SNI, Host header or upstream; `*.example.com` for any
    /// subdomain). Repeat for several.
    #[arg(long, value_name = "HOST")]
    pub host: Vec<String>,
    /// Only these statuses: a code (403), a class (5xx) or `none`; comma-separated or repeated.
    #[arg(long, value_name = "STATUS", value_delimiter = ',')]
    pub status: Vec<String>,
    /// Only flows at or after this time (RFC 3339, e.g. 2026-03-01T09:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only flows before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only records of this run (each record's `run`: the mtlscope process that wrote it).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
}

impl FilterArgs {
    /// The filter, or a usage error naming the flag.
    pub fn filter(&self) -> Result<Filter, CommandError> {
        let statuses = self
            .status
            .iter()
            .map(|s| {
                StatusMatch::parse(s).map_err(|e| CommandError::usage(format!("--status: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| filter::parse_time(flag, t).map_err(CommandError::usage))
                .transpose()
        };
        if let Some(id) = &self.finding {
            if !crate::facts::FindingId::ALL
                .iter()
                .any(|f| f.as_str() == id)
            {
                return Err(CommandError::usage(format!(
                    "--finding: {id:?} is not a finding id (see docs/findings.md)"
                )));
            }
        }
        Ok(Filter {
            only_failures: self.only_failures,
            id: self.finding.clone(),
            run: self.run.clone(),
            hosts: self.host.clone(),
            statuses,
            since: time("--since", &self.since)?,
            until: time("--until", &self.until)?,
        })
    }
}

/// `mtlscope diff` flags.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first flow: FILE, FILE:N for its N-th record, or FILE:RUN/ID for a connection of
    /// one run (default: its first exchange).
    #[arg(value_name = "FILE[:N|:RUN/ID]")]
    pub a: String,
    /// The second flow: FILE, FILE:M or FILE:RUN/ID.
    #[arg(value_name = "FILE[:M|:RUN/ID]")]
    pub b: String,
    /// Pick the first flow by connection id instead of by position: ID, or RUN/ID when the
    /// file holds several runs (each record's `run`).
    #[arg(long, value_name = "[RUN/]ID")]
    pub a_id: Option<String>,
    /// Pick the second flow by connection id: ID or RUN/ID.
    #[arg(long, value_name = "[RUN/]ID")]
    pub b_id: Option<String>,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compare two recordings as two network paths to the same servers (A made directly, B
    /// through the device): flows are paired by host, version, path and identity, and the path
    /// findings are reported per host.
    #[arg(long, conflicts_with_all = ["a_id", "b_id"])]
    pub paths: bool,
}

/// `mtlscope export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The recording (JSON Lines); rotated files may follow, oldest first
    /// (`FILE.2 FILE.1 FILE`).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Write HAR 1.2 here.
    #[arg(long, value_name = "OUT.har")]
    pub har: PathBuf,
    /// Which entries carry a connection's TLS legs in full: the first that has them (later
    /// ones name it in `_mtlscope.legs_same_as`), or all.
    #[arg(long, value_name = "WHICH", default_value = "first")]
    pub har_legs: har_stream::LegsIn,
    /// Keep the certificates' and CA names' DER (hex) in the legs.
    #[arg(long)]
    pub har_der: bool,
    /// Which records to export.
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// Read recordings whole, warning on stderr about every skipped line (`diff --paths`).
fn load(paths: &[PathBuf]) -> Result<Recording, CommandError> {
    let rec = recording::read_all(paths).map_err(CommandError::usage)?;
    for s in &rec.skipped {
        warn_skipped(s);
    }
    Ok(rec)
}

/// Create (or truncate) an output file; a new one is created 0600, as recordings are (a HAR
/// or report holds what the recording holds).
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

fn warn_skipped(s: &recording::Skipped) {
    eprintln!("mtlscope: warning: {}", report::clean(&s.to_string()));
}

/// Open recordings for streaming; an unreadable file is bad usage.
fn open(paths: &[PathBuf]) -> Result<RecordStream, CommandError> {
    RecordStream::open(paths).map_err(CommandError::usage)
}

/// Every record of `stream` that `filter` keeps, in order; skipped lines are warned about
/// and collected. A read error midway (the file went away) is a runtime failure.
fn each_record(
    stream: RecordStream,
    filter: &Filter,
    skipped: &mut Vec<recording::Skipped>,
    mut f: impl FnMut(Record) -> Result<(), CommandError>,
) -> Result<(), CommandError> {
    for item in stream {
        match item.map_err(|e| CommandError::runtime(e.to_string()))? {
            Item::Record(r) => {
                if filter.keeps(&r) {
                    f(*r)?;
                }
            }
            Item::Skipped(s) => {
                warn_skipped(&s);
                skipped.push(s);
            }
        }
    }
    Ok(())
}

/// Standard output, written in large pieces.
struct Out {
    /// What is not written yet.
    buf: String,
}

impl Out {
    const FLUSH_AT: usize = 256 * 1024;

    fn new() -> Out {
        Out {
            buf: String::with_capacity(Self::FLUSH_AT + 4096),
        }
    }

    fn maybe_flush(&mut self) {
        if self.buf.len() >= Self::FLUSH_AT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            crate::out!("{}", self.buf);
            self.buf.clear();
        }
    }
}

/// A temporary file written in order and read back once.
struct Spool {
    /// The file.
    file: std::io::BufWriter<std::fs::File>,
}

impl Spool {
    fn new() -> Result<Spool, CommandError> {
        let file = tempfile::tempfile()
            .map_err(|e| CommandError::runtime(format!("cannot create a temporary file: {e}")))?;
        Ok(Spool {
            file: std::io::BufWriter::with_capacity(256 * 1024, file),
        })
    }

    fn write(&mut self, s: &str) -> Result<(), CommandError> {
        self.file
            .write_all(s.as_bytes())
            .map_err(|e| CommandError::runtime(format!("cannot write a temporary file: {e}")))
    }

    /// Copy everything written to `to`.
    fn copy_to(self, to: &mut impl Write) -> std::io::Result<()> {
        let mut f = self.file.into_inner().map_err(|e| e.into_error())?;
        f.rewind()?;
        std::io::copy(&mut f, to)?;
        Ok(())
    }
}

/// `--json`: `{"records": [...], "skipped": [...], "summary": {...}}`, as
/// `serde_json::to_string_pretty` prints it, a row at a time.
struct JsonRows {
    /// Rows written.
    n: usize,
}

impl JsonRows {
    fn push(&mut self, out: &mut Out, row: &report::Row) -> Result<(), CommandError> {
        out.buf.push_str(if self.n == 0 {
            "{\n  \"records\": [\n"
        } else {
            ",\n"
        });
        indent(
            &mut out.buf,
            &pretty(&serde_json::to_value(row).unwrap_or_default())?,
            4,
        );
        self.n += 1;
        Ok(())
    }

    fn finish(
        self,
        out: &mut Out,
        summary: &report::Summary,
        skipped: &[recording::Skipped],
    ) -> Result<(), CommandError> {
        out.buf.push_str(if self.n == 0 {
            "{\n  \"records\": [],\n"
        } else {
            "\n  ],\n"
        });
        let tail = report::json(&[], summary, skipped);
        out.buf.push_str("  \"skipped\": ");
        indent_rest(&mut out.buf, &pretty(&tail["skipped"])?, 2);
        out.buf.push_str(",\n  \"summary\": ");
        indent_rest(&mut out.buf, &pretty(&tail["summary"])?, 2);
        out.buf.push_str("\n}\n");
        Ok(())
    }
}

/// Append `text` with every line indented by `n` spaces.
fn indent(buf: &mut String, text: &str, n: usize) {
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            buf.push('\n');
        }
        buf.extend(std::iter::repeat_n(' ', n));
        buf.push_str(line);
    }
}

/// Append `text` with every line but the first indented by `n` spaces.
fn indent_rest(buf: &mut String, text: &str, n: usize) {
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            buf.push('\n');
            buf.extend(std::iter::repeat_n(' ', n));
        }
        buf.push_str(line);
    }
}

/// Run `mtlscope report`: rows are printed as records are read; the summary follows.
pub fn run_report(args: ReportArgs) -> Result<(), CommandError> {
    let filter = args.filter.filter()?;
    let stream = open(&args.files)?.rediagnosing(args.rediagnose);
    let mut out = Out::new();
    // Records that do not say whether they were diagnosed (written before records said so).
    let mut unmarked = 0usize;
    let mut table = report::TextTable::default();
    let mut json_rows = JsonRows { n: 0 };
    let mut summary = report::Summary::default();
    let mut skipped = Vec::new();
    // Parts printed or written after the summary, which needs every row first.
    let mut explain = if args.explain && !args.json {
        Some(Spool::new()?)
    } else {
        None
    };
    let mut html = match &args.html {
        Some(_) => Some((Spool::new()?, Spool::new()?)),
        None => None,
    };
    let mut piece = String::new();
    each_record(stream, &filter, &mut skipped, |r| {
        unmarked += usize::from(!r.flow.diagnosed);
        let row = report::row(&r);
        if let Some((table_part, flows_part)) = html.as_mut() {
            piece.clear();
            html::table_row(&mut piece, summary.records, &row);
            table_part.write(&piece)?;
            piece.clear();
            html::flow_html(&mut piece, summary.records, &r, &row);
            flows_part.write(&piece)?;
        }
        summary.add(&row);
        if args.json {
            json_rows.push(&mut out, &row)?;
        } else {
            table.push(&row, &mut out.buf);
            if let Some(spool) = explain.as_mut() {
                if !r.flow.findings.is_empty() {
                    spool.write(&report::explain_text(&[&r]))?;
                }
            }
        }
        out.maybe_flush();
        Ok(())
    })?;
    summary.skipped_lines = skipped.len();
    if unmarked > 0 {
        eprintln!(
            "mtlscope report: {unmarked} record(s) come from an mtlscope that did not record whether it diagnosed them; their findings are shown as recorded (--rediagnose applies this mtlscope's rules)"
        );
    }
    if let (Some(path), Some((table_part, flows_part))) = (&args.html, html) {
        write_html(path, &summary, &skipped, table_part, flows_part).map_err(|e| {
            CommandError::runtime(format!("cannot write HTML report {}: {e}", path.display()))
        })?;
        eprintln!("mtlscope: wrote HTML report to {}", path.display());
    }
    if args.json {
        json_rows.finish(&mut out, &summary, &skipped)?;
        out.flush();
    } else {
        table.finish(&mut out.buf);
        out.buf.push('\n');
        out.buf.push_str(&report::summary_text(&summary));
        out.flush();
        if let Some(spool) = explain {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = spool.copy_to(&mut stdout).and_then(|()| stdout.flush()) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    std::process::exit(0);
                }
                return Err(CommandError::runtime(format!(
                    "cannot write to standard output: {e}"
                )));
            }
        }
    }
    Ok(())
}

/// The HTML page: head and summary, then the table and the flows gathered while reading.
fn write_html(
    path: &Path,
    summary: &report::Summary,
    skipped: &[recording::Skipped],
    table_part: Spool,
    flows_part: Spool,
) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(create_private(path)?);
    f.write_all(html::page_head().as_bytes())?;
    f.write_all(html::summary_section(summary, skipped).as_bytes())?;
    f.write_all(html::TABLE_HEAD.as_bytes())?;
    table_part.copy_to(&mut f)?;
    f.write_all(html::TABLE_END.as_bytes())?;
    f.write_all(html::FLOWS_HEAD.as_bytes())?;
    flows_part.copy_to(&mut f)?;
    f.write_all(html::PAGE_END.as_bytes())?;
    f.flush()
}

/// One side of a diff: its selector.
fn selector(
    in_arg: Option<Selector>,
    by_id: Option<&str>,
    flag: &str,
) -> Result<Selector, CommandError> {
    Ok(match (by_id, in_arg) {
        (Some(id), _) => {
            Selector::connection(id).map_err(|e| CommandError::usage(format!("{flag}: {e}")))?
        }
        (None, Some(s)) => s,
        (None, None) => Selector::Default,
    })
}

/// Run `mtlscope diff`: each file is read once, as a stream, until both records are found.
pub fn run_diff(args: DiffArgs) -> Result<(), CommandError> {
    if args.paths {
        return run_diff_paths(&args);
    }
    let (path_a, index_a) = recording::split_file_selector(&args.a);
    let (path_b, index_b) = recording::split_file_selector(&args.b);
    let sel_a = selector(index_a, args.a_id.as_deref(), "--a-id")?;
    let sel_b = selector(index_b, args.b_id.as_deref(), "--b-id")?;
    let fail = |path: &Path, why: String| {
        CommandError::usage(format!("recording {} {why}", path.display()))
    };
    let (a, b) = if path_b == path_a {
        // Comparing two records of one file reads (and warns about) it once.
        let mut found = recording::select_stream(
            open(std::slice::from_ref(&path_a))?,
            &[sel_a, sel_b],
            warn_skipped,
        )
        .map_err(|e| CommandError::runtime(e.to_string()))?;
        let b = found
            .pop()
            .unwrap_or_else(|| Err("has no readable record".into()));
        let a = found
            .pop()
            .unwrap_or_else(|| Err("has no readable record".into()));
        (
            a.map_err(|w| fail(&path_a, w))?,
            b.map_err(|w| fail(&path_b, w))?,
        )
    } else {
        let pick = |path: &PathBuf, sel: Selector| -> Result<Record, CommandError> {
            recording::select_stream(open(std::slice::from_ref(path))?, &[sel], warn_skipped)
                .map_err(|e| CommandError::runtime(e.to_string()))?
                .pop()
                .unwrap_or_else(|| Err("has no readable record".into()))
                .map_err(|w| fail(path, w))
        };
        (pick(&path_a, sel_a)?, pick(&path_b, sel_b)?)
    };
    if args.json {
        crate::outln!("{}", pretty(&diff::json(&a, &b))?);
    } else {
        crate::out!("{}", diff::text(&a, &b));
    }
    Ok(())
}

/// `diff --paths A.jsonl B.jsonl`.
fn run_diff_paths(args: &DiffArgs) -> Result<(), CommandError> {
    let a = load(&[PathBuf::from(&args.a)])?;
    let b = load(&[PathBuf::from(&args.b)])?;
    let fa: Vec<&crate::facts::Flow> = a.records.iter().map(|x| &x.flow).collect();
    let fb: Vec<&crate::facts::Flow> = b.records.iter().map(|x| &x.flow).collect();
    let (hosts, alone) = crate::paths::recordings::compare(&args.a, &fa, &args.b, &fb);
    if args.json {
        crate::outln!(
            "{}",
            pretty(&crate::render::paths::recordings_json(&hosts, &alone))?
        );
    } else {
        crate::out!("{}", crate::render::paths::recordings_text(&hosts, &alone));
    }
    Ok(())
}

/// Run `mtlscope export`: HAR entries are written as records are read.
pub fn run_export(args: ExportArgs) -> Result<(), CommandError> {
    let filter = args.filter.filter()?;
    let stream = open(&args.files)?;
    let what = |e: std::io::Error| {
        CommandError::runtime(format!("cannot write HAR file {}: {e}", args.har.display()))
    };
    let file = create_private(&args.har).map_err(what)?;
    let opts = har_stream::HarOptions {
        legs: args.har_legs,
        der: args.har_der,
    };
    let mut doc = har_stream::HarWriter::new(file, opts).map_err(what)?;
    let mut skipped = Vec::new();
    each_record(stream, &filter, &mut skipped, |r| {
        doc.push(&r).map_err(what)
    })?;
    let (entries, conns) = doc.finish().map_err(what)?;
    eprintln!(
        "mtlscope: wrote {} ({entries} entries, {conns} connection records)",
        args.har.display()
    );
    Ok(())
}

fn pretty(v: &serde_json::Value) -> Result<String, CommandError> {
    serde_json::to_string_pretty(v)
        .map_err(|e| CommandError::runtime(format!("cannot serialise the output: {e}")))
}
