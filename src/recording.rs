//! Reading JSON Lines recordings back: the input of the views (`report`, `diff`, `export`).
//!
//! Reading is forgiving by design: a recording may be cut off by a crash, edited by hand, or
//! written by a newer mtlscope. A line that is not valid UTF-8 or JSON, not a record, or of a
//! newer `schema` is skipped with a [`Skipped`] note naming the file and line; only a file that
//! cannot be read at all is an error. Readers never diagnose: every view shows the findings the
//! recording carries (made once, when the flow was recorded), so a newer mtlscope cannot change
//! them unnoticed; `report --rediagnose` applies today's rules on request
//! ([`RecordStream::rediagnosing`]).

pub mod filter;
mod stream;
#[cfg(test)]
pub(crate) mod test_lines;

use crate::facts::{Flow, RecordKind, SCHEMA};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
pub use stream::{Item, RecordStream};

/// One record read from a recording, with where it came from.
#[derive(Clone, Debug)]
pub struct Record {
    /// The recording file, as named on the command line.
    pub file: PathBuf,
    /// 1-based line number in that file.
    pub line: usize,
    /// 1-based position among the file's readable records (what `FILE:N` selects).
    pub index: usize,
    /// The record itself, with the findings it was recorded with.
    pub flow: std::sync::Arc<Flow>,
    /// Whether the findings were computed on reading by today's rules (`report
    /// --rediagnose`) instead of taken from the recording.
    pub diagnosed_on_read: bool,
}

impl Record {
    /// Replace the recorded findings with today's rules' (`report --rediagnose`).
    pub fn rediagnose(&mut self) {
        let findings = crate::diagnose::diagnose(&self.flow);
        let flow = std::sync::Arc::make_mut(&mut self.flow);
        flow.findings = findings;
        flow.diagnosed = true;
        self.diagnosed_on_read = true;
    }

    /// `FILE:N`, the name `diff` accepts for this record.
    pub fn label(&self) -> String {
        format!("{}:{}", self.file.display(), self.index)
    }
}

/// A line that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The recording file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// Why it was skipped, in words.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: skipped: {}",
            self.file.display(),
            self.line,
            self.reason
        )
    }
}

/// The readable records of one or more recordings, and the lines skipped.
#[derive(Clone, Debug, Default)]
pub struct Recording {
    /// Records in file order (files in the order given).
    pub records: Vec<Record>,
    /// Lines that were not records, in order.
    pub skipped: Vec<Skipped>,
}

/// A recording that could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read recording {}: {source}", path.display())]
pub struct ReadError {
    /// The file named.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Read one recording file whole (the views stream instead: [`RecordStream`]).
pub fn read(path: &Path) -> Result<Recording, ReadError> {
    read_all(std::slice::from_ref(&path.to_path_buf()))
}

/// Read several recording files whole, concatenated in order.
pub fn read_all(paths: &[PathBuf]) -> Result<Recording, ReadError> {
    collect(RecordStream::open(paths)?)
}

/// Gather a stream's records and skipped lines.
fn collect(stream: RecordStream) -> Result<Recording, ReadError> {
    let mut all = Recording::default();
    for item in stream {
        match item? {
            Item::Record(r) => all.records.push(*r),
            Item::Skipped(s) => all.skipped.push(s),
        }
    }
    Ok(all)
}

/// Just enough of a record to check its schema before committing to the full model.
#[derive(Deserialize)]
struct Head {
    /// The record's schema version.
    schema: Option<u64>,
}

/// Parse the bytes of a recording named `file`.
pub fn parse(file: &Path, bytes: &[u8]) -> Recording {
    // Reading from memory cannot fail.
    collect(RecordStream::from_bytes(file, bytes.to_vec())).unwrap_or_default()
}

/// One line as a record. The common case (a record of a schema this mtlscope reads) is one
/// parse; only a line that is not one is looked at again, to say why.
pub(crate) fn parse_line(raw: &[u8]) -> Result<Flow, String> {
    let text = std::str::from_utf8(raw)
        .map_err(|e| format!("malformed line: not UTF-8 ({e})"))?
        .trim();
    if let Ok(flow) = serde_json::from_str::<Flow>(text) {
        if flow.schema <= SCHEMA {
            return Ok(flow);
        }
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("malformed JSON ({e})"))?;
    let head = Head::deserialize(&value).map_err(|e| format!("not a record ({e})"))?;
    match head.schema {
        None => return Err("not a record (no \"schema\")".into()),
        Some(s) if s > u64::from(SCHEMA) => {
            return Err(format!(
                "schema {s} is newer than this mtlscope reads (schema {SCHEMA})"
            ))
        }
        Some(_) => {}
    }
    Flow::deserialize(&value).map_err(|e| format!("not a record ({e})"))
}

impl Recording {
    /// The records of one exchange kind, in order.
    pub fn exchanges(&self) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .filter(|r| r.flow.kind == RecordKind::Exchange)
    }
}

/// Which record of a file `diff` compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// The first exchange record (or the first record, if there is no exchange).
    Default,
    /// The N-th readable record (1-based).
    Index(usize),
    /// The first record of this connection (an exchange if it has one), in `run` when given;
    /// without a run the id must belong to one run only.
    Connection {
        /// The run id (`Flow::run`), when named.
        run: Option<String>,
        /// The connection id.
        id: u64,
    },
}

impl Selector {
    /// A connection as `ID` or `RUN/ID` (what `--a-id` and `FILE:RUN/ID` take).
    pub fn connection(text: &str) -> Result<Selector, String> {
        let (run, id) = match text.rsplit_once('/') {
            Some((run, id)) => (Some(run.to_string()), id),
            None => (None, text),
        };
        let id = id
            .parse()
            .map_err(|_| format!("{text:?} is not a connection id (ID or RUN/ID)"))?;
        Ok(Selector::Connection { run, id })
    }
}

/// Split `FILE[:N]` or `FILE:RUN/ID` into a path and an optional selector. A path that exists
/// as written wins, so a file whose name ends in `:3` can still be named.
pub fn split_file_selector(arg: &str) -> (PathBuf, Option<Selector>) {
    if !Path::new(arg).exists() {
        if let Some((file, sel)) = arg.rsplit_once(':') {
            if let Ok(n) = sel.parse::<usize>() {
                return (PathBuf::from(file), Some(Selector::Index(n)));
            }
            if sel.contains('/') {
                if let Ok(s) = Selector::connection(sel) {
                    return (PathBuf::from(file), Some(s));
                }
            }
        }
    }
    (PathBuf::from(arg), None)
}

/// Pick one record out of a file's records; `Err` says why none matched.
pub fn select<'a>(recording: &'a Recording, selector: &Selector) -> Result<&'a Record, String> {
    let records = &recording.records;
    match selector {
        Selector::Default => recording
            .exchanges()
            .next()
            .or_else(|| records.first())
            .ok_or_else(|| "has no readable record".to_string()),
        Selector::Index(n) => records
            .iter()
            .find(|r| r.index == *n)
            .ok_or_else(|| format!("has no record {n} (it has {})", records.len())),
        Selector::Connection { run, id } => {
            let of_conn = || {
                records.iter().filter(|r| {
                    r.flow.connection_id == *id && run.as_ref().is_none_or(|run| &r.flow.run == run)
                })
            };
            if run.is_none() {
                let mut runs: Vec<&str> = of_conn().map(|r| r.flow.run.as_str()).collect();
                runs.dedup();
                runs.sort_unstable();
                runs.dedup();
                if runs.len() > 1 {
                    let named: Vec<String> = runs
                        .iter()
                        .map(|r| {
                            if r.is_empty() {
                                "(no run id)".into()
                            } else {
                                format!("{r}/{id}")
                            }
                        })
                        .collect();
                    return Err(format!(
                        "has connection {id} in {} runs: name one of {}",
                        runs.len(),
                        named.join(", ")
                    ));
                }
            }
            let name = match run {
                Some(run) => format!("{run}/{id}"),
                None => id.to_string(),
            };
            of_conn()
                .find(|r| r.flow.kind == RecordKind::Exchange)
                .or_else(|| of_conn().next())
                .ok_or_else(|| format!("has no record of connection {name}"))
        }
    }
}

/// What one selector has found so far while streaming.
#[derive(Default)]
struct Search {
    /// The record chosen (an exchange, or a first record standing in until one comes).
    found: Option<Record>,
    /// Whether `found` is final.
    done: bool,
    /// Runs in which the connection was seen (a connection selector without a run).
    runs: Vec<String>,
}

/// [`select`] over a stream: reads until every selector has its record (a connection named
/// without its run needs the whole file, to tell whether the id is ambiguous). Returns one
/// result per selector, in order; `on_skip` hears every skipped line.
pub fn select_stream(
    stream: RecordStream,
    selectors: &[Selector],
    mut on_skip: impl FnMut(&Skipped),
) -> Result<Vec<Result<Record, String>>, ReadError> {
    let mut searches: Vec<Search> = selectors.iter().map(|_| Search::default()).collect();
    let mut count = 0;
    for item in stream {
        let r = match item? {
            Item::Record(r) => *r,
            Item::Skipped(s) => {
                on_skip(&s);
                continue;
            }
        };
        count += 1;
        let exchange = r.flow.kind == RecordKind::Exchange;
        for (sel, search) in selectors.iter().zip(searches.iter_mut()) {
            if search.done && !matches!(sel, Selector::Connection { run: None, .. }) {
                continue;
            }
            let hit = match sel {
                Selector::Default => true,
                Selector::Index(n) => r.index == *n,
                Selector::Connection { run, id } => {
                    r.flow.connection_id == *id && run.as_ref().is_none_or(|run| &r.flow.run == run)
                }
            };
            if !hit {
                continue;
            }
            if let Selector::Connection { run: None, .. } = sel {
                if !search.runs.contains(&r.flow.run) {
                    search.runs.push(r.flow.run.clone());
                }
            }
            if search.done {
                continue;
            }
            if exchange || matches!(sel, Selector::Index(_)) {
                search.found = Some(r.clone());
                search.done = true;
            } else if search.found.is_none() {
                search.found = Some(r.clone());
            }
        }
        let finished = selectors
            .iter()
            .zip(&searches)
            .all(|(sel, s)| s.done && !matches!(sel, Selector::Connection { run: None, .. }));
        if finished {
            break;
        }
    }
    Ok(selectors
        .iter()
        .zip(searches)
        .map(|(sel, mut search)| match sel {
            Selector::Default => search
                .found
                .ok_or_else(|| "has no readable record".to_string()),
            Selector::Index(n) => search
                .found
                .ok_or_else(|| format!("has no record {n} (it has {count})")),
            Selector::Connection { run, id } => {
                if run.is_none() && search.runs.len() > 1 {
                    search.runs.sort_unstable();
                    let named: Vec<String> = search
                        .runs
                        .iter()
                        .map(|r| {
                            if r.is_empty() {
                                "(no run id)".into()
                            } else {
                                format!("{r}/{id}")
                            }
                        })
                        .collect();
                    return Err(format!(
                        "has connection {id} in {} runs: name one of {}",
                        search.runs.len(),
                        named.join(", ")
                    ));
                }
                let name = match run {
                    Some(run) => format!("{run}/{id}"),
                    None => id.to_string(),
                };
                search
                    .found
                    .ok_or_else(|| format!("has no record of connection {name}"))
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Mode;

    fn line(conn: u64) -> String {
        let mut f = Flow::new(Mode::Reverse, conn, time::OffsetDateTime::UNIX_EPOCH);
        f.findings = vec![];
        serde_json::to_string(&f).unwrap()
    }

    #[test]
    fn legs_from_is_resolved_within_its_run_and_connection() {
        let exchange = |run: &str, index: u32, alpn: Option<&str>, from: Option<u32>| {
            let mut f = Flow::new(Mode::Reverse, 1, time::OffsetDateTime::UNIX_EPOCH);
            f.run = run.into();
            f.kind = RecordKind::Exchange;
            f.exchange_index = Some(index);
            f.legs_from = from;
            if from.is_none() {
                let leg = crate::facts::Leg {
                    alpn: alpn.map(String::from),
                    ..Default::default()
                };
                f.upstream_leg = Some(std::sync::Arc::new(leg));
            }
            serde_json::to_string(&f).unwrap()
        };
        // Two runs appending at once, both with connection 1.
        let text = [
            exchange("a", 0, Some("h2"), None),
            exchange("b", 0, Some("http/1.1"), None),
            exchange("a", 1, None, Some(0)),
            exchange("b", 1, None, Some(0)),
        ]
        .join("\n");
        let r = parse(Path::new("rec.jsonl"), text.as_bytes());
        let alpn = |i: usize| {
            r.records[i]
                .flow
                .upstream_leg
                .as_ref()
                .and_then(|l| l.alpn.clone())
        };
        assert_eq!(alpn(2).as_deref(), Some("h2"));
        assert_eq!(alpn(3).as_deref(), Some("http/1.1"));
        assert!(r.records[2].flow.legs_from.is_none(), "resolved");
    }

    #[test]
    fn skips_garbage_newer_schema_and_a_truncated_tail() {
        let newer = line(2).replace(&format!("\"schema\":{SCHEMA}"), "\"schema\":7");
        let text = format!(
            "{}\n{{not json\n\n{newer}\n[1,2]\n{}\n{}",
            line(1),
            line(3),
            &line(4)[..20]
        );
        let r = parse(Path::new("rec.jsonl"), text.as_bytes());
        let ids: Vec<u64> = r.records.iter().map(|r| r.flow.connection_id).collect();
        assert_eq!(ids, vec![1, 3]);
        assert_eq!(r.records[1].line, 6);
        assert_eq!(r.records[1].index, 2);
        let lines: Vec<usize> = r.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 7]);
        assert!(r.skipped[0]
            .to_string()
            .starts_with("rec.jsonl:2: skipped: malformed JSON"));
        assert!(r.skipped[1].reason.contains("schema 7 is newer"));
        assert!(r.skipped[3].reason.starts_with("truncated last line"));
    }

    #[test]
    fn readers_show_the_recorded_findings_and_rediagnose_only_when_asked() {
        use crate::diagnose::test_support::*;
        use crate::facts::{Direction, LegFailure};
        let flow = success_builder()
            .upstream(|l| {
                l.chain = vec![];
                l.identity = None;
                l.alerts = vec![alert(Direction::Received, 116, 12.0)];
                l.failure = Some(LegFailure {
                    stage: crate::facts::Stage::AfterHandshake,
                    kind: crate::facts::FailureKind::AlertReceived,
                });
            })
            .own_response(502)
            .build();
        // Written without findings, as a recording made before records said whether they
        // were diagnosed.
        assert!(flow.findings.is_empty() && !flow.diagnosed);
        let text = format!("{}\n{}\n", serde_json::to_string(&flow).unwrap(), line(2));
        let r = parse(Path::new("x"), text.as_bytes());
        assert!(r.records[0].flow.findings.is_empty(), "a reader diagnosed");
        assert!(!r.records[0].diagnosed_on_read && !r.records[0].flow.diagnosed);
        let again: Vec<Record> = RecordStream::from_bytes(Path::new("x"), text.into_bytes())
            .rediagnosing(true)
            .filter_map(|i| match i {
                Ok(Item::Record(r)) => Some(*r),
                _ => None,
            })
            .collect();
        assert!(again[0].diagnosed_on_read && again[0].flow.diagnosed);
        assert_eq!(again[0].flow.findings[0].id, "no-client-cert");
        assert!(again[1].flow.findings.is_empty());
    }

    #[test]
    fn invalid_utf8_is_skipped_not_fatal() {
        let mut bytes = line(1).into_bytes();
        bytes.extend_from_slice(b"\n\xff\xfe\n");
        let r = parse(Path::new("x"), &bytes);
        assert_eq!(r.records.len(), 1);
        assert!(r.skipped[0].reason.contains("not UTF-8"));
    }

    #[test]
    fn selectors() {
        let text = format!("{}\n{}\n", line(5), line(9));
        let r = parse(Path::new("x"), text.as_bytes());
        assert_eq!(
            select(&r, &Selector::Default).unwrap().flow.connection_id,
            5
        );
        assert_eq!(
            select(&r, &Selector::Index(2)).unwrap().flow.connection_id,
            9
        );
        assert!(select(&r, &Selector::Index(3))
            .unwrap_err()
            .contains("has no record 3"));
        let conn = |s: &str| Selector::connection(s).unwrap();
        assert_eq!(select(&r, &conn("9")).unwrap().index, 2);
        assert_eq!(
            split_file_selector("/nonexistent/rec.jsonl:12"),
            (
                PathBuf::from("/nonexistent/rec.jsonl"),
                Some(Selector::Index(12))
            )
        );
        assert_eq!(
            split_file_selector("/nonexistent/rec.jsonl:R1/3").1,
            Some(conn("R1/3"))
        );
        assert_eq!(split_file_selector("a:b").1, None);
    }

    #[test]
    fn connection_ids_of_several_runs_need_the_run() {
        let in_run = |run: &str, id: u64| {
            let mut f = Flow::new(Mode::Reverse, id, time::OffsetDateTime::UNIX_EPOCH);
            f.run = run.to_string();
            serde_json::to_string(&f).unwrap()
        };
        let text = format!(
            "{}\n{}\n{}\n",
            in_run("A", 1),
            in_run("B", 1),
            in_run("B", 2)
        );
        let r = parse(Path::new("x"), text.as_bytes());
        let conn = |s: &str| Selector::connection(s).unwrap();
        let e = select(&r, &conn("1")).unwrap_err();
        assert!(e.contains("A/1") && e.contains("B/1"), "{e}");
        assert_eq!(select(&r, &conn("B/1")).unwrap().index, 2);
        assert_eq!(select(&r, &conn("2")).unwrap().index, 3);
        assert!(select(&r, &conn("C/1")).unwrap_err().contains("C/1"));
    }
}
