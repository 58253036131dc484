//! Faults: mtlscope behaving like the middleboxes that break mTLS in the field, on purpose, so a
//! team can reproduce a breakage. `--fault NAME[=VALUE]`, repeatable.
//!
//! Every fault that acts on a connection is recorded as a [`FaultEffect`], and the diagnosis
//! reports `injected-fault` first, so a reproduced failure is never taken for a real one.

use crate::facts::FaultEffect;
use std::path::Path;
use std::time::Duration;

/// One configured fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `strip-client-cert`: a TLS offloader that does not forward the client's identity: the
    /// upstream leg presents no certificate.
    StripClientCert,
    /// `empty-ca-list`: the client leg's CertificateRequest carries no CA names.
    EmptyCaList,
    /// `ca-list=FILE`: the client leg's CertificateRequest names the subjects of FILE's
    /// certificates instead (a wrong list).
    CaList {
        /// The file, for the record.
        file: String,
        /// The names, DER.
        names: Vec<Vec<u8>>,
    },
    /// `cut-on-cert-request`: close the upstream connection when the server asks for a
    /// certificate (a firewall that drops mutual TLS).
    CutOnCertRequest,
    /// `block-renegotiation` (observe, forward passthrough): cut the tunnel when a TLS 1.2
    /// renegotiation starts (a firewall that blocks renegotiation).
    BlockRenegotiation,
    /// `alert=NAME`: answer the client's ClientHello with this fatal alert and close.
    Alert(u8),
    /// `allow-fingerprint=SHA256`: an access manager that answers 403 unless the client's
    /// certificate has one of these SHA-256 fingerprints (repeat the fault for more).
    AllowFingerprint(String),
    /// `delay=STEP:MS`: hold a step back (`client-hello`, `upstream-connect`, `response`).
    Delay(DelayStep, Duration),
}

/// Where `delay` acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayStep {
    /// Before answering the client's ClientHello.
    ClientHello,
    /// Before connecting upstream.
    UpstreamConnect,
    /// Before relaying the response head.
    Response,
}

/// The configured faults of a listener.
#[derive(Clone, Debug, Default)]
pub struct Faults(Vec<Fault>);

impl Faults {
    /// Parse `--fault` values; errors name the value and what was expected.
    pub fn parse(values: &[String]) -> Result<Faults, String> {
        values
            .iter()
            .map(|v| parse_one(v))
            .collect::<Result<_, _>>()
            .map(Faults)
    }

    /// Whether `fault` is configured.
    pub fn has(&self, fault: &Fault) -> bool {
        self.0.contains(fault)
    }

    /// The alert to answer ClientHellos with, if any.
    pub fn alert(&self) -> Option<u8> {
        self.0.iter().find_map(|f| match f {
            Fault::Alert(code) => Some(*code),
            _ => None,
        })
    }

    /// The CA names the client leg must send instead of its own, and the effect to record.
    pub fn ca_names_override(&self) -> Option<(Vec<Vec<u8>>, FaultEffect)> {
        self.0.iter().rev().find_map(|f| match f {
            Fault::EmptyCaList => Some((
                Vec::new(),
                effect("empty-ca-list", "sent the client an empty CA list"),
            )),
            Fault::CaList { file, names } => Some((
                names.clone(),
                effect(
                    &format!("ca-list={file}"),
                    &format!(
                        "sent the client {} CA name(s) from {file} instead of the configured ones",
                        names.len()
                    ),
                ),
            )),
            _ => None,
        })
    }

    /// The allow-list of client certificate fingerprints, if any.
    pub fn allowed_fingerprints(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|f| match f {
                Fault::AllowFingerprint(fp) => Some(fp.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The delay configured for `step`.
    pub fn delay(&self, step: DelayStep) -> Option<Duration> {
        self.0.iter().find_map(|f| match f {
            Fault::Delay(s, d) if *s == step => Some(*d),
            _ => None,
        })
    }
}

/// A recorded fault effect.
pub fn effect(name: &str, what: &str) -> FaultEffect {
    FaultEffect {
        name: name.to_string(),
        effect: what.to_string(),
    }
}

fn parse_one(v: &str) -> Result<Fault, String> {
    let (name, value) = match v.split_once('=') {
        Some((n, val)) => (n.trim(), Some(val.trim())),
        None => (v.trim(), None),
    };
    let need = |what: &str| {
        value
            .filter(|x| !x.is_empty())
            .ok_or_else(|| format!("--fault {name}: expected {name}={what}"))
    };
    let none = |f: Fault| match value {
        Some(_) => Err(format!("--fault {name} takes no value")),
        None => Ok(f),
    };
    match name {
        "strip-client-cert" => none(Fault::StripClientCert),
        "empty-ca-list" => none(Fault::EmptyCaList),
        "cut-on-cert-request" => none(Fault::CutOnCertRequest),
        "block-renegotiation" => none(Fault::BlockRenegotiation),
        "ca-list" => {
            let file = need("FILE")?;
            let certs = crate::pki::load::load_certs(Path::new(file)).map_err(|e| format!("--fault ca-list: {e}"))?;
            let names = certs
                .iter()
                .filter_map(|c| crate::cert::summarize(c).ok())
                .filter_map(|s| crate::cert::unhex(&s.subject_der))
                .collect();
            Ok(Fault::CaList { file: file.to_string(), names })
        }
        "alert" => {
            let want = need("NAME")?;
            let code = (0..=255u8)
                .find(|c| crate::wire::alert_name(*c) == want)
                .or_else(|| want.parse().ok())
                .ok_or_else(|| format!("--fault alert={want}: not an alert name (e.g. bad_certificate, unknown_ca, handshake_failure)"))?;
            Ok(Fault::Alert(code))
        }
        "allow-fingerprint" => {
            let fp: String = need("SHA256")?.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
            if fp.len() != 64 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("--fault allow-fingerprint={fp}: expected a SHA-256 fingerprint (64 hex digits)"));
            }
            Ok(Fault::AllowFingerprint(fp))
        }
        "delay" => {
            let spec = need("STEP:MS")?;
            let (step, ms) = spec.split_once(':').ok_or_else(|| format!("--fault delay={spec}: expected STEP:MS"))?;
            let step = match step {
                "client-hello" => DelayStep::ClientHello,
                "upstream-connect" => DelayStep::UpstreamConnect,
                "response" => DelayStep::Response,
                other => return Err(format!("--fault delay: unknown step {other:?} (client-hello, upstream-connect, response)")),
            };
            let ms: u64 = ms.parse().map_err(|_| format!("--fault delay={spec}: {ms:?} is not a number of milliseconds"))?;
            Ok(Fault::Delay(step, Duration::from_millis(ms)))
        }
        other => Err(format!(
            "--fault {other:?}: unknown fault (strip-client-cert, empty-ca-list, ca-list=FILE, cut-on-cert-request, block-renegotiation, alert=NAME, allow-fingerprint=SHA256, delay=STEP:MS)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault_and_names_bad_ones() {
        let f = Faults::parse(&[
            "strip-client-cert".into(),
            "alert=unknown_ca".into(),
            "alert=42".into(),
            format!("allow-fingerprint={}", "AB:".repeat(31) + "AB"),
            "delay=response:250".into(),
        ])
        .unwrap();
        assert!(f.has(&Fault::StripClientCert));
        assert_eq!(f.alert(), Some(48));
        assert_eq!(f.allowed_fingerprints(), vec!["ab".repeat(32).as_str()]);
        assert_eq!(
            f.delay(DelayStep::Response),
            Some(Duration::from_millis(250))
        );
        assert_eq!(f.delay(DelayStep::ClientHello), None);
        for bad in [
            "nope",
            "alert=nonsense",
            "allow-fingerprint=12",
            "delay=sometime:1",
            "delay=response",
            "strip-client-cert=1",
            "ca-list=/nonexistent.pem",
        ] {
            let e = Faults::parse(&[bad.to_string()]).unwrap_err();
            assert!(e.contains("--fault"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_last_ca_list_fault_wins() {
        let f = Faults::parse(&["empty-ca-list".into()]).unwrap();
        let (names, eff) = f.ca_names_override().unwrap();
        assert!(names.is_empty());
        assert_eq!(eff.name, "empty-ca-list");
        assert!(Faults::default().ca_names_override().is_none());
    }
}
