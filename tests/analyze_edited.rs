//! `mtlscope analyze` on edited and broken captures: hand-edited copies of a real capture (a
//! segment split and one piece dropped; every segment resent and two swapped) must give the
//! same facts, with the gap named; a file that is no capture, an unknown link type, a truncated
//! record and a snap-length cut are named.

mod common;

use common::captures::{analyze, nginx_tls12_verify_on};
use common::dumpcap::Dumpcap;
use common::{finding_ids, Curl, TestPki};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// One record of a pcap file (Ethernet, microseconds, little-endian as dumpcap -P writes).
#[derive(Clone)]
struct Rec {
    head: [u8; 16],
    data: Vec<u8>,
}

fn read_pcap(path: &Path) -> ([u8; 24], Vec<Rec>) {
    let bytes = std::fs::read(path).expect("read");
    let mut header = [0u8; 24];
    header.copy_from_slice(&bytes[..24]);
    assert_eq!(
        &header[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "little-endian µs pcap"
    );
    let mut at = 24;
    let mut recs = Vec::new();
    while at + 16 <= bytes.len() {
        let mut head = [0u8; 16];
        head.copy_from_slice(&bytes[at..at + 16]);
        let caplen = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
        recs.push(Rec {
            head,
            data: bytes[at + 16..at + 16 + caplen].to_vec(),
        });
        at += 16 + caplen;
    }
    (header, recs)
}

fn write_pcap(path: &Path, header: &[u8; 24], recs: &[Rec]) {
    let mut out = header.to_vec();
    for r in recs {
        let mut head = r.head;
        let len = (r.data.len() as u32).to_le_bytes();
        head[8..12].copy_from_slice(&len);
        head[12..16].copy_from_slice(&len);
        out.extend_from_slice(&head);
        out.extend_from_slice(&r.data);
    }
    std::fs::write(path, out).expect("write");
}

/// Offsets of an Ethernet/IPv4/TCP frame: (IP start, TCP start, payload start).
fn offsets(frame: &[u8]) -> Option<(usize, usize, usize)> {
    // IPv4 carrying TCP only (the capture also holds dumpcap's UDP probes).
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 6 {
        return None;
    }
    let ip = 14;
    let tcp = ip + usize::from(frame[ip] & 0x0f) * 4;
    let payload = tcp + usize::from(frame.get(tcp + 12)? >> 4) * 4;
    Some((ip, tcp, payload))
}

/// The frame with only `part` of its payload, starting `skip` bytes into it.
fn piece(r: &Rec, skip: usize, part: &[u8]) -> Rec {
    let (ip, tcp, payload) = offsets(&r.data).expect("tcp");
    let mut data = r.data[..payload].to_vec();
    data.extend_from_slice(part);
    let total = (data.len() - ip) as u16;
    data[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
    let seq = u32::from_be_bytes([data[tcp + 4], data[tcp + 5], data[tcp + 6], data[tcp + 7]]);
    data[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add(skip as u32).to_be_bytes());
    Rec { head: r.head, data }
}

/// The `wire` facts without the events (gap events differ by design) and the record's ids.
fn facts(r: &Value) -> (Value, Vec<String>) {
    let mut w = r["wire"].clone();
    if let Some(m) = w.as_object_mut() {
        m.remove("events");
    }
    (w, finding_ids(r))
}

#[test]
fn a_dropped_segment_and_retransmissions_give_the_clean_facts() {
    let pki = TestPki::generate().expect("pki");
    let nginx = nginx_tls12_verify_on(&pki);
    let dir = common::tmpdir();
    let cap = Dumpcap::start("lo", nginx.port(), &dir.path().join("clean.pcap"), true);
    let _ = Curl::new(format!("{}/", nginx.base_url()))
        .cacert(&pki.ca_cert)
        .run();
    let clean = cap.stop();
    let (header, recs) = read_pcap(&clean);
    let (clean_records, _) = analyze(&[&clean], &[]);
    assert_eq!(clean_records.len(), 1);
    let clean_facts = facts(&clean_records[0]);

    // The server's first application-data record (the 400 page), split in three; the middle
    // piece (inside the encrypted payload) is left out.
    let server_port = nginx.port().to_be_bytes();
    let target = recs
        .iter()
        .position(|r| {
            offsets(&r.data).is_some_and(|(_, tcp, p)| {
                r.data[tcp..tcp + 2] == server_port
                    && r.data.get(p) == Some(&23)
                    && r.data.len() > p + 60
            })
        })
        .expect("an application-data segment from the server");
    let (_, _, p) = offsets(&recs[target].data).expect("tcp");
    let payload = recs[target].data[p..].to_vec();
    let n = payload.len();
    let mut dropped = recs.clone();
    dropped[target] = piece(&recs[target], 0, &payload[..20]);
    dropped.insert(target + 1, piece(&recs[target], n - 20, &payload[n - 20..]));
    let dropped_file = dir.path().join("dropped.pcap");
    write_pcap(&dropped_file, &header, &dropped);
    let (records, _) = analyze(&[&dropped_file], &[]);
    assert_eq!(records.len(), 1);
    assert_eq!(
        facts(&records[0]),
        clean_facts,
        "a gap inside a record changes no fact"
    );
    let gaps = &records[0]["capture"]["gaps"];
    assert_eq!(
        gaps.as_array().map(Vec::len),
        Some(1),
        "{:#}",
        records[0]["capture"]
    );
    assert_eq!(gaps[0]["bytes"], (n - 40) as u64);
    assert_eq!(gaps[0]["direction"], "server_to_client");
    assert_eq!(gaps[0]["effect"], "inside_record");

    // Every data segment sent twice, and two of the server's segments swapped.
    let mut resent: Vec<Rec> = Vec::new();
    for r in &recs {
        resent.push(r.clone());
        if offsets(&r.data).is_some_and(|(_, _, p)| r.data.len() > p) {
            resent.push(r.clone());
        }
    }
    let split_at = resent
        .iter()
        .position(|r| offsets(&r.data).is_some_and(|(_, _, p)| r.data.len() > p + 100))
        .expect("a data segment");
    let whole = resent[split_at].clone();
    let (_, _, p) = offsets(&whole.data).expect("tcp");
    let body = whole.data[p..].to_vec();
    let half = body.len() / 2;
    // The second half arrives first (out of order), then the first half, then the original
    // (a retransmission covering both).
    resent[split_at] = piece(&whole, half, &body[half..]);
    resent.insert(split_at + 1, piece(&whole, 0, &body[..half]));
    let resent_file = dir.path().join("resent.pcap");
    write_pcap(&resent_file, &header, &resent);
    let (records, _) = analyze(&[&resent_file], &[]);
    assert_eq!(records.len(), 1);
    assert_eq!(
        facts(&records[0]),
        clean_facts,
        "retransmissions change no fact"
    );
    assert!(
        records[0]["capture"]["gaps"].is_null(),
        "no gap: {:#}",
        records[0]["capture"]
    );
}

#[test]
fn bad_captures_are_named() {
    let dir = common::tmpdir();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture at all").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_mtlscope"))
        .args(["analyze"])
        .arg(&junk)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a pcap or pcapng"), "{stderr}");

    // A pcap with an unknown link type (147, USER0) and a truncated last record.
    let mut bytes = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    bytes.extend_from_slice(&65535u32.to_le_bytes());
    bytes.extend_from_slice(&147u32.to_le_bytes());
    for _ in 0..2 {
        bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4]);
    }
    bytes.truncate(bytes.len() - 2);
    let odd = dir.path().join("odd.pcap");
    std::fs::write(&odd, &bytes).expect("write");
    let (records, stderr) = analyze(&[&odd], &[]);
    assert!(records.is_empty());
    assert!(stderr.contains("link type 147"), "{stderr}");
    assert!(stderr.contains("truncated"), "{stderr}");
}

#[test]
fn a_snap_length_cut_is_named() {
    let pki = TestPki::generate().expect("pki");
    let nginx = nginx_tls12_verify_on(&pki);
    let dir = common::tmpdir();
    let file = dir.path().join("cut.pcapng");
    // dumpcap with a 200-byte snap length: the certificate flight is cut.
    let cap = Dumpcap::start_with("lo", nginx.port(), &file, &["-s", "200"]);
    let _ = Curl::new(format!("{}/", nginx.base_url()))
        .cacert(&pki.ca_cert)
        .run();
    let file = cap.stop();
    let (records, stderr) = analyze(&[&file], &[]);
    assert!(
        stderr.contains("snap length") && stderr.contains("-s 0"),
        "{stderr}"
    );
    let gaps = records[0]["capture"]["gaps"].to_string();
    assert!(gaps.contains("snap_len"), "{gaps}");
}
