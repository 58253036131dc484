//! A real nginx for tests: one TLS server on a free 127.0.0.1 port, configured from
//! [`NginxConfig`], run in the foreground as a single process from its own temp dir.
//!
//! The default location answers 200 with what nginx concluded about the client certificate
//! (`verify=$ssl_client_verify`, `s_dn=$ssl_client_s_dn`, ...), so a test can assert on it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{self, RunningServer};
use super::TlsVersion;

/// nginx's `ssl_verify_client` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    /// No CertificateRequest.
    Off,
    /// Require a certificate that verifies; 400 otherwise.
    On,
    /// Ask; pass the verdict to the config in `$ssl_client_verify`.
    Optional,
    /// Ask without CA names and without verifying (the result is still in `$ssl_client_verify`).
    OptionalNoCa,
}

impl VerifyClient {
    fn directive(self) -> &'static str {
        match self {
            VerifyClient::Off => "off",
            VerifyClient::On => "on",
            VerifyClient::Optional => "optional",
            VerifyClient::OptionalNoCa => "optional_no_ca",
        }
    }
}

/// What the nginx server block does.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// `ssl_verify_client`.
    pub verify_client: VerifyClient,
    /// `ssl_client_certificate`: CAs that verify clients and whose names go in the
    /// CertificateRequest.
    pub client_certificate: Option<PathBuf>,
    /// `ssl_trusted_certificate`: CAs that verify clients without being advertised.
    pub trusted_certificate: Option<PathBuf>,
    /// `ssl_verify_depth` (nginx's default is 1: one intermediate needs 2).
    pub verify_depth: Option<u32>,
    /// `ssl_protocols`.
    pub protocols: Vec<TlsVersion>,
    /// Adds `location /app` answering 403 unless `$ssl_client_verify` is `SUCCESS`.
    pub app_location: bool,
    /// Listen with `http2` as well.
    pub http2: bool,
    /// Free-form directives appended inside the `server` block.
    pub extra: String,
}

impl NginxConfig {
    /// TLS 1.2 and 1.3, no client authentication, no `/app`, nothing extra.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        NginxConfig {
            cert: cert.into(),
            key: key.into(),
            verify_client: VerifyClient::Off,
            client_certificate: None,
            trusted_certificate: None,
            verify_depth: None,
            protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            app_location: false,
            http2: false,
            extra: String::new(),
        }
    }

    /// The whole nginx.conf for a server in `dir` listening on `port`.
    fn render(&self, dir: &Path, port: u16) -> String {
        let d = dir.display();
        let mut c = String::new();
        let _ = writeln!(c, "daemon off;\nmaster_process off;\nworker_processes 1;");
        let _ = writeln!(
            c,
            "pid \"{d}/nginx.pid\";\nerror_log \"{d}/error.log\" info;"
        );
        let _ = writeln!(c, "events {{ worker_connections 64; }}");
        let _ = writeln!(c, "http {{");
        let _ = writeln!(
            c,
            "  access_log \"{d}/access.log\";\n  default_type text/plain;"
        );
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            let _ = writeln!(c, "  {t}_temp_path \"{d}/{t}_temp\";");
        }
        let http2 = if self.http2 { " http2" } else { "" };
        let _ = writeln!(c, "  server {{\n    listen 127.0.0.1:{port} ssl{http2};");
        let _ = writeln!(c, "    server_name localhost;");
        let _ = writeln!(c, "    ssl_certificate \"{}\";", self.cert.display());
        let _ = writeln!(c, "    ssl_certificate_key \"{}\";", self.key.display());
        let protocols: Vec<&str> = self.protocols.iter().map(|p| p.openssl_name()).collect();
        let _ = writeln!(c, "    ssl_protocols {};", protocols.join(" "));
        let _ = writeln!(
            c,
            "    ssl_verify_client {};",
            self.verify_client.directive()
        );
        if let Some(p) = &self.client_certificate {
            let _ = writeln!(c, "    ssl_client_certificate \"{}\";", p.display());
        }
        if let Some(p) = &self.trusted_certificate {
            let _ = writeln!(c, "    ssl_trusted_certificate \"{}\";", p.display());
        }
        if let Some(depth) = self.verify_depth {
            let _ = writeln!(c, "    ssl_verify_depth {depth};");
        }
        let report = "verify=$ssl_client_verify\\ns_dn=$ssl_client_s_dn\\n\
                      i_dn=$ssl_client_i_dn\\nprotocol=$ssl_protocol\\n";
        let _ = writeln!(c, "    location / {{ return 200 \"{report}\"; }}");
        if self.app_location {
            let _ = writeln!(
                c,
                "    location /app {{\n      if ($ssl_client_verify != SUCCESS) \
                 {{ return 403 \"app: forbidden\\n{report}\"; }}\n      \
                 return 200 \"app: welcome\\n{report}\";\n    }}"
            );
        }
        let _ = writeln!(c, "{}", self.extra);
        let _ = writeln!(c, "  }}\n}}");
        c
    }
}

/// A running nginx; stopped (process group killed) on drop.
#[derive(Debug)]
pub struct Nginx(RunningServer);

impl std::ops::Deref for Nginx {
    type Target = RunningServer;
    fn deref(&self) -> &RunningServer {
        &self.0
    }
}

impl std::ops::DerefMut for Nginx {
    fn deref_mut(&mut self) -> &mut RunningServer {
        &mut self.0
    }
}

impl Nginx {
    /// Writes the config into a fresh temp dir, starts nginx on a free port (retrying if the
    /// port is taken meanwhile) and waits up to 10 s until it accepts TCP.
    pub fn start(cfg: NginxConfig) -> Result<Nginx, String> {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .map_err(|e| format!("nginx temp dir: {e}"))?;
        let conf = dir.path().join("nginx.conf");
        let logs = [dir.path().join("error.log")];
        let (process, port) = process::start_server("nginx", dir.path(), &logs, |port| {
            std::fs::write(&conf, cfg.render(dir.path(), port))
                .map_err(|e| format!("write {}: {e}", conf.display()))?;
            let mut cmd = Command::new("nginx");
            // `-e` also moves the log nginx opens before reading the config into DIR.
            cmd.arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(&logs[0])
                .arg("-c")
                .arg(&conf);
            Ok(cmd)
        })?;
        Ok(Nginx(RunningServer::new(process, port, dir)))
    }
}
