//! Tests of the `ui FILE` index: the compact columns and their overflow maps.

use super::*;
use crate::recording::test_lines::{alpn, exchange_line};

fn line(conn: u64, index: u32, from: Option<u32>, alpn: &str, run: &str, status: u16) -> String {
    exchange_line(conn, index, from, alpn, run, Some(status))
}

#[test]
fn compact_columns_overflow_into_maps_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.jsonl");
    // Record 0: connection 1's legs, then a line of 100 KB (its successor's offset does
    // not fit 16 bits), 300 distinct statuses (more than 8 bits intern), and 70,000
    // records before connection 1 names its legs again (farther than 16 bits back).
    let mut text = line(1, 0, None, "first", "a", 200);
    let mut big: Flow = serde_json::from_str(&line(2, 0, None, "big", "a", 200)).unwrap();
    big.request = Some(crate::facts::Request {
        uri: "x".repeat(100_000),
        ..Default::default()
    });
    text.push_str(&serde_json::to_string(&big).unwrap());
    text.push('\n');
    for i in 0..70_000u32 {
        let status = if i < 300 { 100 + i as u16 } else { 204 };
        let run = if i < 35_000 { "a" } else { "b" };
        text.push_str(&line(10 + u64::from(i), 0, None, "x", run, status));
    }
    // (A reference names a connection of its own run.)
    text.push_str(&line(1, 1, Some(0), "", "a", 200));
    text.push_str(&line(2, 1, Some(0), "", "a", 200));
    std::fs::write(&path, text).unwrap();
    let ix = FileIndex::build(std::slice::from_ref(&path), &Filter::default(), |_| {}).unwrap();
    let n = ix.len();
    assert_eq!(n, 70_004);
    assert!(!ix.far_offset.is_empty(), "a long line pushes offsets out");
    assert!(!ix.far_status.is_empty() && !ix.far_src.is_empty());
    assert_eq!(ix.record(1).unwrap().flow.connection_id, 2);
    assert_eq!(ix.record(2).unwrap().flow.connection_id, 10);
    let far = ix.record(n - 2).unwrap();
    assert_eq!(
        (far.flow.connection_id, alpn(&far).as_deref()),
        (1, Some("first"))
    );
    let near = ix.record(n - 1).unwrap();
    assert_eq!(alpn(&near).as_deref(), Some("big"));
    // Filters and counts see every record's status and run.
    let q = |status: &str, run: &str| Query {
        status: Some(status.into()),
        run: Some(run.into()),
        limit: 10,
        ..Query::default()
    };
    assert_eq!(
        ix.page(&q("399", "a")).1,
        1,
        "a status past the 8-bit table"
    );
    assert_eq!(ix.page(&q("204", "b")).1, 35_000);
    let counts = ix.counts();
    assert_eq!(counts["statuses"]["399"], 1);
    assert_eq!(counts["statuses"]["200"], 5, "four, and 100 + 100");
    let runs = counts["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[0]["n"].as_u64().unwrap() + runs[1]["n"].as_u64().unwrap(),
        n as u64
    );
    assert_eq!(ix.run_ranges.len(), 3, "runs are stored as ranges: a, b, a");
}
