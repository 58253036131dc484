//! The capture front end: pcap (both byte orders, micro- and nanosecond) and pcapng (several
//! interfaces and sections) read as a stream of frames, and each frame's link, IP and TCP
//! headers decoded into a [`TcpPacket`].
//!
//! `pcap-parser` reads the blocks through a bounded buffer (the file is never held whole);
//! `etherparse` slices the headers (Ethernet with VLAN tags, IPv4, IPv6 with extension headers,
//! TCP). Its "lax" slicer is used so a frame cut by the capture's snap length still yields its
//! TCP header and the bytes that were kept; the frame then says how many were cut off.

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The read buffer; a block larger than this grows it, up to [`MAX_BLOCK`].
const BUFFER: usize = 1 << 20;
/// The largest block accepted (a jumbo frame is 9 KB; a 256 KB packet is already absurd).
const MAX_BLOCK: usize = 16 << 20;

/// A link-layer header type (the pcap `LINKTYPE_` registry), as far as analyze reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Ethernet II, with optional VLAN tags (1).
    Ethernet,
    /// Linux cooked capture v1, `-i any` (113).
    LinuxSll,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
    /// Raw IPv4 or IPv6 (101, 12, 14, 228, 229).
    RawIp,
    /// BSD loopback with a host-order address family (0).
    Null,
    /// OpenBSD loopback with a network-order address family (108).
    Loop,
    /// Anything else: frames on it are counted, not read.
    Other(i32),
}

impl Link {
    /// The link type for a `LINKTYPE_` number.
    pub fn from_number(n: i32) -> Link {
        match n {
            1 => Link::Ethernet,
            113 => Link::LinuxSll,
            276 => Link::LinuxSll2,
            101 | 12 | 14 | 228 | 229 => Link::RawIp,
            0 => Link::Null,
            108 => Link::Loop,
            other => Link::Other(other),
        }
    }
}

/// One captured frame.
#[derive(Debug)]
pub struct Frame<'a> {
    /// 1-based frame number, as Wireshark counts them.
    pub number: u64,
    /// Capture time, seconds since the Unix epoch.
    pub ts: f64,
    /// Its link type.
    pub link: Link,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Bytes the frame had on the wire; more than `data.len()` when the snap length cut it.
    pub orig_len: u32,
}

/// How reading a file ended, when it did not end cleanly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The last block was complete.
    Complete,
    /// The file ends inside a block (copied while the capture was running, or cut off).
    Truncated {
        /// The last complete frame.
        after_frame: u64,
    },
    /// A block does not parse; nothing after it was read.
    Malformed {
        /// The last good frame.
        after_frame: u64,
        /// Byte offset of the bad block.
        offset: usize,
        /// What was wrong, in words.
        why: String,
    },
}

/// Why a capture could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Opening or reading the file failed.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The capture.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{path}: the file is empty")]
    Empty {
        /// The capture.
        path: PathBuf,
    },
    /// The file starts with neither a pcap nor a pcapng header.
    #[error("{path}: not a pcap or pcapng capture (unknown file header)")]
    NotACapture {
        /// The capture.
        path: PathBuf,
    },
}

/// Interface facts a pcapng packet block needs.
#[derive(Clone, Copy, Debug)]
struct Interface {
    /// Its link type.
    link: Link,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: u64,
}

/// Read every frame of the capture at `path`, in file order, handing each to `f`. Returns how
/// the file ended; a file that cannot be read at all is an error.
pub fn for_each_frame(path: &Path, mut f: impl FnMut(Frame<'_>)) -> Result<Ending, CaptureError> {
    let file = File::open(path).map_err(|source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_frames(path, file, &mut f)
}

/// [`for_each_frame`] over any reader (`path` only names it in errors); the fuzz target's entry.
pub fn read_frames<R: Read>(
    path: &Path,
    reader: R,
    f: &mut dyn FnMut(Frame<'_>),
) -> Result<Ending, CaptureError> {
    let mut reader = match pcap_parser::create_reader(BUFFER, reader) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(CaptureError::Empty {
                path: path.to_path_buf(),
            })
        }
        Err(PcapError::ReadError) => {
            return Err(CaptureError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("read failed"),
            })
        }
        Err(_) => {
            return Err(CaptureError::NotACapture {
                path: path.to_path_buf(),
            })
        }
    };
    let mut legacy: Option<(Link, bool)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut number = 0u64;
    let mut last_ts = 0.0f64;
    let mut capacity = BUFFER;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy =
                            Some((Link::from_number(h.network.0), h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (link, nanos) = legacy.unwrap_or((Link::Ethernet, false));
                        let frac = if nanos { 1e-9 } else { 1e-6 };
                        number += 1;
                        last_ts = f64::from(b.ts_sec) + f64::from(b.ts_usec) * frac;
                        f(Frame {
                            number,
                            ts: last_ts,
                            link,
                            data: b.data,
                            orig_len: b.origlen,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            link: Link::from_number(idb.linktype.0),
                            resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            offset: u64::try_from(idb.ts_offset()).unwrap_or(0),
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        number += 1;
                        let iface = usize::try_from(epb.if_id)
                            .ok()
                            .and_then(|i| interfaces.get(i).copied());
                        let (link, ts) = match iface {
                            Some(i) => (i.link, epb.decode_ts_f64(i.offset, i.resolution)),
                            None => (Link::Other(-1), last_ts),
                        };
                        last_ts = ts;
                        f(Frame {
                            number,
                            ts,
                            link,
                            data: epb.data,
                            orig_len: epb.origlen,
                        });
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        number += 1;
                        let link = interfaces.first().map_or(Link::Other(-1), |i| i.link);
                        let kept = spb.data.len().min(spb.origlen as usize);
                        f(Frame {
                            number,
                            ts: last_ts,
                            link,
                            data: spb.data.get(..kept).unwrap_or(spb.data),
                            orig_len: spb.origlen,
                        });
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => return Ok(Ending::Complete),
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    return Err(CaptureError::Io {
                        path: path.to_path_buf(),
                        source: std::io::Error::other("read failed"),
                    });
                }
            }
            Err(PcapError::UnexpectedEof) => {
                // The reader also says this when the last block ended exactly at the end.
                if reader.data().is_empty() {
                    return Ok(Ending::Complete);
                }
                return Ok(Ending::Truncated {
                    after_frame: number,
                });
            }
            Err(PcapError::BufferTooSmall) if capacity < MAX_BLOCK => {
                capacity *= 2;
                if !reader.grow(capacity) {
                    return Ok(malformed(
                        number,
                        reader.consumed(),
                        "a block too large to read",
                    ));
                }
                if reader.refill().is_err() {
                    return Err(CaptureError::Io {
                        path: path.to_path_buf(),
                        source: std::io::Error::other("read failed"),
                    });
                }
            }
            Err(PcapError::BufferTooSmall) => {
                return Ok(malformed(
                    number,
                    reader.consumed(),
                    "a block larger than 16 MB",
                ))
            }
            Err(PcapError::ReadError) => {
                return Err(CaptureError::Io {
                    path: path.to_path_buf(),
                    source: std::io::Error::other("read failed"),
                })
            }
            Err(e) => {
                let why = format!("{e:?}");
                let why = why.chars().take(120).collect::<String>();
                return Ok(malformed(number, reader.consumed(), &why));
            }
        }
    }
}

fn malformed(after_frame: u64, offset: usize, why: &str) -> Ending {
    Ending::Malformed {
        after_frame,
        offset,
        why: why.to_string(),
    }
}

/// The TCP facts of one frame.
#[derive(Debug)]
pub struct TcpPacket<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (of the SYN itself when `syn`).
    pub seq: u32,
    /// Acknowledgment number, when the ACK flag is set.
    pub ack: Option<u32>,
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// The payload bytes captured.
    pub payload: &'a [u8],
    /// Payload bytes the snap length cut off (0 for a whole frame).
    pub cut: usize,
}

/// What a frame that is not a readable TCP segment was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotTcp {
    /// Not TCP (UDP, ARP, ICMP, …): skipped quietly.
    OtherProtocol,
    /// The frame's link type is not one analyze reads.
    UnknownLink(i32),
    /// The capture cut the frame before its TCP header ended.
    CutHeaders,
    /// An IPv4 fragment (TCP over fragments is not reassembled).
    Fragment,
}

/// Decode a frame down to its TCP segment.
pub fn tcp_packet<'a>(frame: &Frame<'a>) -> Result<TcpPacket<'a>, NotTcp> {
    use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
    let data = frame.data;
    let cut_frame = (frame.orig_len as usize).saturating_sub(data.len());
    let sliced = match frame.link {
        Link::Ethernet => {
            LaxSlicedPacket::from_ethernet(data).map_err(|_| cut_or_other(cut_frame))?
        }
        Link::RawIp => LaxSlicedPacket::from_ip(data).map_err(|_| cut_or_other(cut_frame))?,
        Link::LinuxSll => {
            let proto = be16(data, 14).ok_or(NotTcp::CutHeaders)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), data.get(16..).unwrap_or(&[]))
        }
        Link::LinuxSll2 => {
            let proto = be16(data, 0).ok_or(NotTcp::CutHeaders)?;
            LaxSlicedPacket::from_ether_type(EtherType(proto), data.get(20..).unwrap_or(&[]))
        }
        Link::Null | Link::Loop => {
            let family = data.get(..4).ok_or(NotTcp::CutHeaders)?;
            let le = u32::from_le_bytes([family[0], family[1], family[2], family[3]]);
            let be = u32::from_be_bytes([family[0], family[1], family[2], family[3]]);
            // AF_INET is 2 everywhere; AF_INET6 is 10, 24, 28 or 30 depending on the OS.
            let af = if frame.link == Link::Loop {
                be
            } else if le < 256 {
                le
            } else {
                be
            };
            if !matches!(af, 2 | 10 | 24 | 28 | 30) {
                return Err(NotTcp::OtherProtocol);
            }
            LaxSlicedPacket::from_ip(data.get(4..).unwrap_or(&[]))
                .map_err(|_| cut_or_other(cut_frame))?
        }
        Link::Other(n) => return Err(NotTcp::UnknownLink(n)),
    };
    let (src_ip, dst_ip, fragment): (IpAddr, IpAddr, bool) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
            v4.payload().fragmented,
        ),
        Some(LaxNetSlice::Ipv6(v6)) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
            v6.payload().fragmented,
        ),
        None => return Err(cut_or_other(cut_frame)),
    };
    if fragment {
        return Err(NotTcp::Fragment);
    }
    let tcp = match sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => tcp,
        Some(_) => return Err(NotTcp::OtherProtocol),
        None => {
            let is_tcp = match &sliced.net {
                Some(LaxNetSlice::Ipv4(v4)) => v4.payload().ip_number == etherparse::IpNumber::TCP,
                Some(LaxNetSlice::Ipv6(v6)) => v6.payload().ip_number == etherparse::IpNumber::TCP,
                None => false,
            };
            return Err(if is_tcp {
                NotTcp::CutHeaders
            } else {
                NotTcp::OtherProtocol
            });
        }
    };
    Ok(TcpPacket {
        src: SocketAddr::new(src_ip, tcp.source_port()),
        dst: SocketAddr::new(dst_ip, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.ack().then(|| tcp.acknowledgment_number()),
        syn: tcp.syn(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
        cut: cut_frame,
    })
}

fn cut_or_other(cut: usize) -> NotTcp {
    if cut > 0 {
        NotTcp::CutHeaders
    } else {
        NotTcp::OtherProtocol
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}
