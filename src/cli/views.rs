//! `mtlscope report`, `diff` and `export`: views of recordings. They read JSON Lines recordings
//! (see [`crate::recording`]), hand the records to a renderer, and print or write the result.
//!
//! Skipped lines are warned about on stderr (file and line named) and never end the command; a
//! file that cannot be read, or a record that is not there, is bad usage (exit 2); failing to
//! write an output is a runtime failure (exit 1).

use crate::error::CommandError;
use crate::recording::{self, Record, Recording, Selector};
use crate::render::{diff, har, html, report};
use clap::Args;
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
    /// Only records that failed (4xx/5xx, a recorded error, or an error finding).
    #[arg(long)]
    pub only_failures: bool,
    /// Only records carrying this finding id.
    #[arg(long, value_name = "FINDING_ID")]
    pub id: Option<String>,
    /// After the table, print every finding's evidence and fix under its record.
    #[arg(long, short = 'v')]
    pub explain: bool,
    /// Only records of this run (each record's `run`: the mtlscope process that wrote it).
    #[arg(long, value_name = "RUN")]
    pub run: Option<String>,
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
    /// The recording (JSON Lines).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write HAR 1.2 here.
    #[arg(long, value_name = "OUT.har")]
    pub har: PathBuf,
}

/// Read recordings, warning on stderr about every skipped line.
fn load(paths: &[PathBuf]) -> Result<Recording, CommandError> {
    let rec = recording::read_all(paths).map_err(CommandError::usage)?;
    for s in &rec.skipped {
        eprintln!("mtlscope: warning: {}", report::clean(&s.to_string()));
    }
    Ok(rec)
}

/// Write an output file; a new one is created 0600, as recordings are (a HAR or report holds
/// what the recording holds).
fn write_file(path: &Path, what: &str, contents: &str) -> Result<(), CommandError> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|e| CommandError::runtime(format!("cannot write {what} {}: {e}", path.display())))
}

/// Run `mtlscope report`.
pub fn run_report(args: ReportArgs) -> Result<(), CommandError> {
    let rec = load(&args.files)?;
    let filter = report::Filter {
        only_failures: args.only_failures,
        id: args.id.clone(),
        run: args.run.clone(),
    };
    let shown: Vec<&Record> = rec.records.iter().filter(|r| filter.keeps(r)).collect();
    let rows: Vec<report::Row> = shown.iter().map(|r| report::row(r)).collect();
    let summary = report::summary(&rows, &rec.skipped);
    if let Some(out) = &args.html {
        write_file(
            out,
            "HTML report",
            &html::page(&shown, &rows, &summary, &rec.skipped),
        )?;
        eprintln!("mtlscope: wrote HTML report to {}", out.display());
    }
    if args.json {
        let v = report::json(&rows, &summary, &rec.skipped);
        crate::outln!("{}", pretty(&v)?);
    } else {
        crate::out!("{}", report::text(&rows, &summary));
        if args.explain {
            crate::out!("{}", report::explain_text(&shown));
        }
    }
    Ok(())
}

/// One side of a diff: which record of the loaded file.
fn pick(
    rec: &Recording,
    path: &Path,
    in_arg: Option<Selector>,
    by_id: Option<&str>,
    flag: &str,
) -> Result<Record, CommandError> {
    let selector = match (by_id, in_arg) {
        (Some(id), _) => {
            Selector::connection(id).map_err(|e| CommandError::usage(format!("{flag}: {e}")))?
        }
        (None, Some(s)) => s,
        (None, None) => Selector::Default,
    };
    recording::select(rec, &selector)
        .cloned()
        .map_err(|why| CommandError::usage(format!("recording {} {why}", path.display())))
}

/// Run `mtlscope diff`.
pub fn run_diff(args: DiffArgs) -> Result<(), CommandError> {
    if args.paths {
        return run_diff_paths(&args);
    }
    let (path_a, index_a) = recording::split_file_selector(&args.a);
    let (path_b, index_b) = recording::split_file_selector(&args.b);
    let rec_a = load(std::slice::from_ref(&path_a))?;
    // Comparing two records of one file reads (and warns about) it once.
    let rec_b = if path_b == path_a {
        None
    } else {
        Some(load(std::slice::from_ref(&path_b))?)
    };
    let a = pick(&rec_a, &path_a, index_a, args.a_id.as_deref(), "--a-id")?;
    let b = pick(
        rec_b.as_ref().unwrap_or(&rec_a),
        &path_b,
        index_b,
        args.b_id.as_deref(),
        "--b-id",
    )?;
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

/// Run `mtlscope export`.
pub fn run_export(args: ExportArgs) -> Result<(), CommandError> {
    let rec = load(std::slice::from_ref(&args.file))?;
    let doc = har::har(&rec.records);
    write_file(&args.har, "HAR file", &pretty(&doc)?)?;
    let entries = doc["log"]["entries"].as_array().map_or(0, Vec::len);
    let conns = doc["log"]["_mtlscope_connections"]
        .as_array()
        .map_or(0, Vec::len);
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
