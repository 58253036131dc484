//! Facts of where a `mode: capture` record came from: the capture file, the frames, and what
//! the capture itself lacked (gaps, cut frames, keys).

use serde::{Deserialize, Serialize};

/// The capture behind a record (`analyze`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CaptureFacts {
    /// The capture file, as given on the command line.
    pub file: String,
    /// The connection's first frame (1-based, as Wireshark numbers them).
    pub first_frame: u64,
    /// Its last frame.
    pub last_frame: u64,
    /// Whether the capture holds the TCP handshake (else it started mid-connection and what
    /// came before is unknown).
    pub from_syn: bool,
    /// The frames where a TLS fact appeared, with their `at_ms`: evidence to jump to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<FrameMark>,
    /// Stream bytes the capture does not have, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<StreamGap>,
    /// Bytes seen more than once (TCP retransmissions and overlaps), both directions.
    #[serde(default)]
    pub retransmitted_bytes: u64,
    /// Whether encrypted records were read with a key log.
    pub decryption: Decryption,
}

/// A frame where something was seen.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FrameMark {
    /// When, ms from the connection start (matches an event's `at_ms`).
    pub at_ms: f64,
    /// The frame number.
    pub frame: u64,
    /// What it carried, e.g. `ClientHello`.
    pub what: String,
}

/// A direction of a captured stream.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StreamDirection {
    /// Bytes the TLS client sent.
    ClientToServer,
    /// Bytes the TLS server sent.
    ServerToClient,
}

/// Bytes of one direction that are not in the capture.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StreamGap {
    /// Which direction.
    pub direction: StreamDirection,
    /// Position in that direction's stream.
    pub offset: u64,
    /// How many bytes.
    pub bytes: u64,
    /// Why they are missing.
    pub cause: GapKind,
    /// The frame after which (or in which, for a cut frame) they are missing.
    pub frame: u64,
    /// When, ms from the connection start.
    pub at_ms: f64,
    /// What the gap did to the reading of TLS.
    pub effect: GapEffect,
}

/// Why bytes are missing.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// The segment is not in the capture.
    NotCaptured,
    /// The frame was cut by the capture's snap length (capture with `-s 0`).
    SnapLen,
}

/// What a gap did to the facts.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GapEffect {
    /// It fell inside one record's encrypted payload: the record framing is kept and no fact
    /// the wire shows was lost (a decrypted record there is lost).
    InsideRecord,
    /// It hit record headers or plaintext handshake bytes: TLS in this direction is not read
    /// after it.
    LostTrack,
    /// The direction was already not being read.
    AfterLostTrack,
}

/// Whether encrypted records were read.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Decryption {
    /// No `--keylog` was given: what is encrypted is unknown.
    #[default]
    NoKeyLog,
    /// The key logs have no secrets for this session's ClientHello random.
    NoKeysForSession,
    /// Decrypted with the key log; `records` records were read, `failed` did not decrypt.
    Decrypted {
        /// Records decrypted.
        records: u64,
        /// Records that did not decrypt (a gap inside them, or a wrong key).
        failed: u64,
    },
    /// Keys were found but the session could not be read (e.g. an unsupported cipher suite).
    Unsupported {
        /// Why, in words.
        why: String,
    },
}
