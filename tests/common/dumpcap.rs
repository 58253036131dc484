//! dumpcap recording loopback traffic for `analyze`'s tests, started and stopped on what it
//! reports, not on a clock: it counts packets on stderr (`Packets: N`), and the capture also
//! takes UDP probes to a port of the test's own, so a probe that shows in the count proves the
//! capture live (at start) and everything sent before it read (at stop).

use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// What dumpcap says on stderr.
enum Said {
    /// A line of text (`Capturing on 'lo'`, `File: …`, errors).
    Line(String),
    /// A packet count update.
    Packets(u64),
}

/// A running dumpcap; stopped with SIGINT by [`Dumpcap::stop`] (killed on drop otherwise).
pub struct Dumpcap {
    /// The dumpcap process.
    child: Child,
    /// Where it writes.
    file: PathBuf,
    /// The probe socket: its own port is the probe target, kept bound so no one else uses it.
    probe: UdpSocket,
    /// dumpcap's stderr, parsed.
    said: Receiver<Said>,
    /// The last packet count dumpcap reported.
    count: u64,
}

impl Dumpcap {
    /// Capture `tcp port PORT` on `iface` into `file` (`pcap` selects the pcap format).
    pub fn start(iface: &str, port: u16, file: &Path, pcap: bool) -> Dumpcap {
        Dumpcap::start_with(iface, port, file, if pcap { &["-P"] } else { &[] })
    }

    /// [`Dumpcap::start`] with more dumpcap flags; returns once a probe has been captured.
    pub fn start_with(iface: &str, port: u16, file: &Path, extra: &[&str]) -> Dumpcap {
        let probe = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
        let probe_port = probe.local_addr().expect("probe port").port();
        let filter = format!("tcp port {port} or udp port {probe_port}");
        let mut child = Command::new("dumpcap")
            .args(["-i", iface, "-f", &filter, "-w"])
            .arg(file)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dumpcap runs (Debian package tshark)");
        let said = parse_stderr(child.stderr.take().expect("stderr"));
        let mut cap = Dumpcap {
            child,
            file: file.to_path_buf(),
            probe,
            said,
            count: 0,
        };
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match cap
                .said
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Said::Line(l)) if l.contains("Capturing on") => break,
                Ok(Said::Line(l)) => seen.push(l),
                Ok(Said::Packets(n)) => cap.count = n,
                Err(_) => panic!("dumpcap did not start: {seen:?}"),
            }
        }
        // "Capturing on" comes just before the capture loop; a probe counted shows it running.
        cap.probe_seen("start");
        cap
    }

    /// Send probes until dumpcap's count passes the count before the first one (≤ 15 s).
    fn probe_seen(&mut self, when: &str) {
        let before = self.count;
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.count <= before {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "dumpcap counted no probe at {when}");
            // One probe per wait: a lost one (capture not live yet) is followed by another.
            let _ = self
                .probe
                .send_to(b"probe", self.probe.local_addr().expect("probe port"));
            match self.said.recv_timeout(left.min(Duration::from_millis(250))) {
                Ok(Said::Packets(n)) => self.count = n,
                Ok(Said::Line(_)) | Err(_) => {}
            }
        }
    }

    /// Stop with SIGINT once a probe sent after the traffic is counted (dumpcap reads in
    /// order, so the traffic is read too), then wait for it to write everything, bounded.
    pub fn stop(mut self) -> PathBuf {
        self.probe_seen("stop");
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        // dumpcap closes stderr as it exits: the reader's channel then ends.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.said.recv_timeout(left) {
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("dumpcap did not stop"),
            }
        }
        let _ = self.child.wait();
        self.file.clone()
    }
}

impl Drop for Dumpcap {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dumpcap's stderr as lines and packet counts (it rewrites `\rPackets: N ` in place).
fn parse_stderr(mut stderr: impl Read + Send + 'static) -> Receiver<Said> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut pending = String::new();
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            pending.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(end) = pending.find(['\r', '\n']) {
                let piece: String = pending.drain(..=end).collect();
                let piece = piece.trim();
                let said = match piece.strip_prefix("Packets:") {
                    Some(count) => match count.trim().parse() {
                        Ok(n) => Said::Packets(n),
                        Err(_) => Said::Line(piece.to_string()),
                    },
                    None => Said::Line(piece.to_string()),
                };
                if !piece.is_empty() && tx.send(said).is_err() {
                    return;
                }
            }
        }
    });
    rx
}
