//! Finding the table's words in a user's text, and the closest entries when none is there.
//!
//! Matching is ASCII-case-insensitive and byte-offset preserving (the text is never rewritten),
//! so a match can quote the exact part of the text it found.

use super::{table, Mapping, Next, Vendor, Words};
use crate::facts::FindingId;
use serde::Serialize;

/// What `mtlscope explain` found in a text (the `--json` output; see `docs/findings.md`).
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The text as given.
    pub text: String,
    /// Whether any entry of the table was found in the text.
    pub matched: bool,
    /// Every entry found, in the order its words appear in the text.
    pub matches: Vec<Match>,
    /// When nothing matched: the closest entries, best first (empty otherwise).
    pub closest: Vec<Candidate>,
}

/// An entry whose words are in the text.
#[derive(Debug, Serialize)]
pub struct Match {
    /// The entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// The part of the text that matched, as written there.
    pub found: String,
    /// Its byte offset in the text.
    pub at: usize,
}

/// An entry close to a text that matched nothing.
#[derive(Debug, Serialize)]
pub struct Candidate {
    /// The entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// How close, from 0 to 1: the higher of edit-distance similarity and shared words.
    pub score: f64,
}

/// A table entry as reported.
#[derive(Debug, Serialize)]
pub struct Entry {
    /// The vendor's id, e.g. `aws-alb`.
    pub vendor: Vendor,
    /// The vendor as a person names it, e.g. `AWS ALB`.
    pub vendor_name: &'static str,
    /// The vendor's words as documented, e.g. `Failed:ClientCertUntrusted`.
    pub words: &'static str,
    /// The catalogue ids they can mean, most likely first.
    pub ids: Vec<FindingId>,
    /// Why.
    pub why: &'static str,
    /// The command that tells the ids apart.
    pub next: NextStep,
    /// The vendor page the mapping was checked against.
    pub source: &'static str,
}

/// The command that decides between an entry's ids.
#[derive(Debug, Serialize)]
pub struct NextStep {
    /// Which kind of command.
    pub kind: Next,
    /// The command, with placeholders in capitals.
    pub command: &'static str,
    /// What it shows that decides.
    pub decides: &'static str,
}

impl Entry {
    fn of(m: &Mapping) -> Entry {
        Entry {
            vendor: m.vendor,
            vendor_name: m.vendor.name(),
            words: m.shown,
            ids: m.ids.to_vec(),
            why: m.why,
            next: NextStep {
                kind: m.next,
                command: m.next.command(),
                decides: m.next.decides(),
            },
            source: m.source,
        }
    }
}

/// How many closest entries an unmatched text gets at least, and at most.
const CLOSEST_MIN: usize = 3;
const CLOSEST_MAX: usize = 5;
/// A candidate beyond the first [`CLOSEST_MIN`] is listed only this close or closer.
const CLOSEST_SCORE: f64 = 0.4;
/// Edit distance is computed on at most this many bytes of the text (a whole pasted log would
/// make it quadratic for nothing: far-apart texts score low anyway).
const EDIT_PREFIX: usize = 400;

/// Every table entry whose words are in `text`; the closest entries when none is.
pub fn explain(text: &str) -> Explanation {
    // ASCII lowercasing keeps byte offsets, so spans found in `lower` quote `text`.
    let lower = text.to_ascii_lowercase();
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for (index, m) in table().enumerate() {
        for w in m.words {
            spans.extend(
                find(text, &lower, w)
                    .into_iter()
                    .map(|(s, e)| (s, e, index)),
            );
        }
    }
    spans.sort_unstable();
    spans.dedup();
    // Longer words win over words inside them ("sslv3 alert certificate revoked" over OpenSSL's
    // verify text "certificate revoked"). Spans are sorted by start, so a span can only be
    // inside one that starts at or before it.
    let inner = |i: usize| {
        let (start, end, _) = spans[i];
        spans[..spans.partition_point(|b| b.0 <= start)]
            .iter()
            .any(|b| b.1 >= end && (b.0, b.1) != (start, end))
    };
    let rows: Vec<&Mapping> = table().collect();
    let mut matches: Vec<Match> = Vec::new();
    let mut seen: Vec<usize> = Vec::new();
    for (i, &(start, end, index)) in spans.iter().enumerate() {
        // A log with the same words on many lines: one match per entry, at its first place.
        if seen.contains(&index) || inner(i) {
            continue;
        }
        seen.push(index);
        matches.push(Match {
            entry: Entry::of(rows[index]),
            found: text[start..end].to_string(),
            at: start,
        });
    }
    let closest = if matches.is_empty() {
        closest(text, &rows)
    } else {
        Vec::new()
    };
    Explanation {
        text: text.to_string(),
        matched: !matches.is_empty(),
        matches,
        closest,
    }
}

/// Byte spans of `text` (`lower` is its ASCII-lowercase copy) where `words` appear.
fn find(text: &str, lower: &str, words: &Words) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    match *words {
        Words::Phrase(phrase) => phrase_spans(bytes, lower, phrase, true),
        Words::Code { after, code } => {
            let trimmed = text.trim();
            if trimmed == code {
                let start = text.len() - text.trim_start().len();
                return vec![(start, start + code.len())];
            }
            let mut out = Vec::new();
            for prefix in after {
                for (start, end) in phrase_spans(bytes, lower, prefix, false) {
                    let mut at = end;
                    let mut skipped = 0;
                    while skipped < 3 && at < bytes.len() && b" :=(#\"".contains(&bytes[at]) {
                        at += 1;
                        skipped += 1;
                    }
                    if let Some(code_end) = phrase_at(bytes, at, code.as_bytes()) {
                        let digit_after = bytes.get(code_end).is_some_and(|b| is_word(*b));
                        if !digit_after {
                            // `curl: (56)`, `(-117)`: quote the closing parenthesis too.
                            let closes =
                                prefix.ends_with('(') && bytes.get(code_end) == Some(&b')');
                            out.push((start, code_end + usize::from(closes)));
                        }
                    }
                }
            }
            out
        }
    }
}

/// Spans where `phrase` matches `bytes` at word boundaries (`end_boundary`: also after it).
/// Candidates are where the phrase's first word occurs in `lower` (a fast substring search);
/// each is then matched whole, whitespace-flexibly.
fn phrase_spans(
    bytes: &[u8],
    lower: &str,
    phrase: &str,
    end_boundary: bool,
) -> Vec<(usize, usize)> {
    let p = phrase.as_bytes();
    let (Some(first), Some(last)) = (p.first(), p.last()) else {
        return Vec::new();
    };
    let head = phrase
        .split(' ')
        .next()
        .unwrap_or(phrase)
        .to_ascii_lowercase();
    let mut out = Vec::new();
    for (start, _) in lower.match_indices(head.as_str()) {
        if is_word(*first) && start > 0 && is_word(bytes[start - 1]) {
            continue;
        }
        let Some(end) = phrase_at(bytes, start, p) else {
            continue;
        };
        if end_boundary && is_word(*last) && bytes.get(end).is_some_and(|b| is_word(*b)) {
            continue;
        }
        out.push((start, end));
    }
    out
}

/// Where `phrase` ends if it matches `bytes` from `start`: ASCII case ignored, a space in the
/// phrase matching one or more whitespace bytes.
fn phrase_at(bytes: &[u8], start: usize, phrase: &[u8]) -> Option<usize> {
    let mut at = start;
    for &p in phrase {
        if p == b' ' {
            if !bytes.get(at)?.is_ascii_whitespace() {
                return None;
            }
            while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
                at += 1;
            }
        } else {
            if !bytes.get(at)?.eq_ignore_ascii_case(&p) {
                return None;
            }
            at += 1;
        }
    }
    Some(at)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The entries closest to `text`, best first.
fn closest(text: &str, rows: &[&Mapping]) -> Vec<Candidate> {
    let lower = text.trim().to_ascii_lowercase();
    let head: String = lower.chars().take(EDIT_PREFIX).collect();
    let tokens = tokens(&lower);
    let mut scored: Vec<(f64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let spellings =
                std::iter::once(m.shown).chain(m.words.iter().filter_map(|w| match w {
                    Words::Phrase(p) => Some(*p),
                    Words::Code { .. } => None,
                }));
            let best = spellings
                .map(|s| {
                    let s = s.to_ascii_lowercase();
                    let edit = strsim::normalized_levenshtein(&head, &s);
                    edit.max(jaccard(&tokens, &self::tokens(&s)))
                })
                .fold(0.0, f64::max);
            (best, index)
        })
        .collect();
    // Best first; the table's order breaks ties, so the output is stable.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .enumerate()
        .take_while(|(rank, (score, _))| *rank < CLOSEST_MIN || *score >= CLOSEST_SCORE)
        .take(CLOSEST_MAX)
        .map(|(_, (score, index))| Candidate {
            entry: Entry::of(rows[index]),
            score: (score * 100.0).round() / 100.0,
        })
        .collect()
}

/// Lowercase words of two characters or more (letters and digits; `_`, `.`, `:` split).
fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| t.len() >= 2)
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Shared words over all words.
fn jaccard(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let shared = a.iter().filter(|t| b.contains(t)).count();
    shared as f64 / (a.len() + b.len() - shared) as f64
}
