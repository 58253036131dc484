//! A real Apache httpd for tests: one TLS virtual host on a free 127.0.0.1 port, configured
//! from [`ApacheConfig`], run in the foreground from its own temp dir (`ServerRoot` stays
//! `/etc/apache2` for module paths; nothing of Debian's site config is loaded).
//!
//! It serves `/` (public) and `/secure` (static files, `public\n` and `secure\n`). Client
//! authentication is off, asked at the handshake for the whole virtual host, or asked only
//! for `/secure` — the late request: renegotiation under TLS 1.2, post-handshake
//! authentication under TLS 1.3. Responses carry `X-Client-Verify` and `X-Client-S-DN`.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{self, RunningServer};
use super::TlsVersion;

/// Where the Debian package keeps module objects.
const MODULES: &str = "/usr/lib/apache2/modules";

/// Modules loaded (`log_config` and `unixd` are compiled in on Debian).
const LOAD: [(&str, &str); 8] = [
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("mime_module", "mod_mime.so"),
    ("dir_module", "mod_dir.so"),
    ("alias_module", "mod_alias.so"),
    ("headers_module", "mod_headers.so"),
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
    ("ssl_module", "mod_ssl.so"),
];

/// Where `SSLVerifyClient require` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthScope {
    /// No client authentication anywhere.
    Off,
    /// At the virtual host: the certificate is asked for in the handshake.
    VirtualHost,
    /// Only inside `<Location /secure>`: asked after the request for `/secure` arrives.
    SecureLocation,
}

/// What the Apache virtual host does.
#[derive(Debug, Clone)]
pub struct ApacheConfig {
    /// Server certificate, optionally followed by its chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM); read by the master while still root.
    pub key: PathBuf,
    /// `SSLProtocol -all +...`.
    pub protocols: Vec<TlsVersion>,
    /// `SSLCACertificateFile`: CAs that verify clients and, by default, the CA names sent.
    pub ca_certificate: Option<PathBuf>,
    /// `SSLCADNRequestFile`: CA names sent instead of those of `ca_certificate`.
    pub ca_dn_request_file: Option<PathBuf>,
    /// Where `SSLVerifyClient require` applies.
    pub client_auth: ClientAuthScope,
    /// `SSLVerifyDepth`.
    pub verify_depth: Option<u32>,
    /// Offer HTTP/2 (`mod_http2`, `Protocols h2 http/1.1`).
    pub http2: bool,
    /// Free-form directives appended inside the `<VirtualHost>`.
    pub extra: String,
}

impl ApacheConfig {
    /// TLS 1.2 and 1.3, no client authentication, nothing extra.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        ApacheConfig {
            cert: cert.into(),
            key: key.into(),
            protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            ca_certificate: None,
            ca_dn_request_file: None,
            client_auth: ClientAuthScope::Off,
            verify_depth: None,
            http2: false,
            extra: String::new(),
        }
    }

    /// The whole httpd.conf for a server in `dir` listening on `port`.
    fn render(&self, dir: &Path, port: u16) -> String {
        let d = dir.display();
        let mut c = String::new();
        let _ = writeln!(c, "ServerRoot /etc/apache2\nServerName localhost");
        let _ = writeln!(c, "Listen 127.0.0.1:{port} https");
        for (name, file) in LOAD {
            let _ = writeln!(c, "LoadModule {name} {MODULES}/{file}");
        }
        if self.http2 {
            let _ = writeln!(c, "LoadModule http2_module {MODULES}/mod_http2.so");
        }
        let _ = writeln!(c, "PidFile \"{d}/httpd.pid\"\nDefaultRuntimeDir \"{d}\"");
        let _ = writeln!(c, "Mutex file:{d} default\nUser www-data\nGroup www-data");
        let _ = writeln!(c, "ErrorLog \"{d}/error.log\"\nLogLevel info");
        let _ = writeln!(
            c,
            "CustomLog \"{d}/access.log\" \"%h %t \\\"%r\\\" %>s %b\""
        );
        let _ = writeln!(c, "TypesConfig /etc/mime.types");
        // One small child: tests make a handful of connections.
        let _ = writeln!(
            c,
            "StartServers 1\nServerLimit 1\nThreadLimit 16\nThreadsPerChild 16\n\
             MaxRequestWorkers 16\nMinSpareThreads 1\nMaxSpareThreads 32"
        );
        let _ = writeln!(c, "SSLSessionCache \"shmcb:{d}/ssl_scache(512000)\"");
        let _ = writeln!(c, "DocumentRoot \"{d}/htdocs\"\nDirectoryIndex index.html");
        let _ = writeln!(
            c,
            "<Directory \"{d}/htdocs\">\n  Require all granted\n</Directory>"
        );
        let _ = writeln!(c, "Alias /secure \"{d}/htdocs/secure.txt\"");
        let _ = writeln!(c, "<VirtualHost 127.0.0.1:{port}>");
        let _ = writeln!(c, "  SSLEngine on");
        if self.http2 {
            let _ = writeln!(c, "  Protocols h2 http/1.1");
        }
        let _ = writeln!(c, "  SSLCertificateFile \"{}\"", self.cert.display());
        let _ = writeln!(c, "  SSLCertificateKeyFile \"{}\"", self.key.display());
        let protocols: Vec<String> = self
            .protocols
            .iter()
            .map(|p| format!("+{}", p.openssl_name()))
            .collect();
        let _ = writeln!(c, "  SSLProtocol -all {}", protocols.join(" "));
        if let Some(p) = &self.ca_certificate {
            let _ = writeln!(c, "  SSLCACertificateFile \"{}\"", p.display());
        }
        if let Some(p) = &self.ca_dn_request_file {
            let _ = writeln!(c, "  SSLCADNRequestFile \"{}\"", p.display());
        }
        if let Some(depth) = self.verify_depth {
            let _ = writeln!(c, "  SSLVerifyDepth {depth}");
        }
        let _ = writeln!(
            c,
            "  Header always set X-Client-Verify \"%{{SSL_CLIENT_VERIFY}}s\"\n  \
             Header always set X-Client-S-DN \"%{{SSL_CLIENT_S_DN}}s\""
        );
        match self.client_auth {
            ClientAuthScope::Off => {}
            ClientAuthScope::VirtualHost => {
                let _ = writeln!(c, "  SSLVerifyClient require");
            }
            ClientAuthScope::SecureLocation => {
                let _ = writeln!(
                    c,
                    "  <Location /secure>\n    SSLVerifyClient require\n  </Location>"
                );
            }
        }
        let _ = writeln!(c, "{}\n</VirtualHost>", self.extra);
        c
    }
}

/// A running Apache httpd; stopped (process group terminated) on drop.
#[derive(Debug)]
pub struct Apache(RunningServer);

impl std::ops::Deref for Apache {
    type Target = RunningServer;
    fn deref(&self) -> &RunningServer {
        &self.0
    }
}

impl std::ops::DerefMut for Apache {
    fn deref_mut(&mut self) -> &mut RunningServer {
        &mut self.0
    }
}

impl Apache {
    /// Writes config and static files into a fresh temp dir (world-readable, so the
    /// `www-data` children can serve them), starts httpd on a free port (retrying if the port
    /// is taken meanwhile) and waits up to 10 s until it accepts TCP.
    pub fn start(cfg: ApacheConfig) -> Result<Apache, String> {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .map_err(|e| format!("apache temp dir: {e}"))?;
        let htdocs = dir.path().join("htdocs");
        fs::create_dir(&htdocs).map_err(|e| format!("create htdocs: {e}"))?;
        write(&htdocs.join("index.html"), "public\n")?;
        write(&htdocs.join("secure.txt"), "secure\n")?;
        // The temp dir is 0700; the children run as www-data and must reach htdocs.
        for p in [dir.path(), htdocs.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("chmod {}: {e}", p.display()))?;
        }
        let conf = dir.path().join("httpd.conf");
        let logs = [dir.path().join("error.log")];
        let (process, port) = process::start_server("apache2", dir.path(), &logs, |port| {
            write(&conf, &cfg.render(dir.path(), port))?;
            let mut cmd = Command::new("apache2");
            cmd.arg("-f").arg(&conf).arg("-DFOREGROUND");
            Ok(cmd)
        })?;
        Ok(Apache(RunningServer::new(process, port, dir)))
    }
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("write {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}
