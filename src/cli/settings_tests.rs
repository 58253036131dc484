//! The settings model as the commands use it: one struct read from flags and from the file,
//! flags winning, paths rebased, keys refused with their line, values named by where they came
//! from. The tests live here because they parse the commands' own flag groups.

use super::{
    forward::ForwardOnly, observe::ObserveOnly, offload_args::OffloadArgs, probe::ProbeOnly,
    proxy_args::TlsArgs, reverse::ReverseOnly, run_args::RunArgs, ui::UiArgs,
    upstream_args::UpstreamArgs,
};
use crate::capture::client_auth::ClientAuthMode;
use crate::settings::*;
use clap::Parser;
use std::path::{Path, PathBuf};

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mtlscope.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `reverse`'s groups parsed from `argv`, as the command line does.
#[derive(Debug, clap::Parser)]
struct Reverse {
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    up: UpstreamArgs,
}

fn reverse(argv: &[&str], config: Option<&Path>) -> Result<(Reverse, Origins), ConfigError> {
    let mut r =
        Reverse::try_parse_from(std::iter::once("mtlscope").chain(argv.iter().copied())).unwrap();
    let origins = load(config, "reverse", &mut [&mut r.run, &mut r.tls, &mut r.up])?;
    Ok((r, origins))
}

#[test]
fn flags_win_and_the_file_fills_the_rest_with_paths_rebased() {
    let (dir, path) = write(
        "client_auth = \"optional\"\nclient_ca = [\"ca.pem\"]\nquiet = true\n\
         identity = [\"a.pem,a.key\", { cert = \"/abs/b.pem\", key = \"b.key\" }, \"c.p12\"]\n\
         timeout = 3\nrecord = \"flows.jsonl\"\n",
    );
    let (r, origins) = reverse(
        &[
            "--client-auth",
            "required",
            "--record",
            "here.jsonl",
            "--no-redact",
        ],
        Some(&path),
    )
    .unwrap();
    let base = dir.path();
    assert_eq!(r.tls.client_auth, Some(ClientAuthMode::Required));
    assert_eq!(r.tls.client_ca, vec![base.join("ca.pem")]);
    assert_eq!(r.run.record, Some(PathBuf::from("here.jsonl")));
    assert!(r.run.quiet);
    assert_eq!(r.up.timeout, Some(3));
    assert_eq!(r.tls.redact, Some(false));
    assert_eq!(
        r.up.identity,
        vec![
            CertKey::pem(base.join("a.pem"), base.join("a.key")),
            CertKey::pem("/abs/b.pem", base.join("b.key")),
            CertKey::Pkcs12(base.join("c.p12")),
        ]
    );
    // Named by where each value came from.
    assert_eq!(origins.name("client_auth"), "--client-auth");
    assert_eq!(
        origins.name("client_ca"),
        format!("{} line 2 (client_ca)", path.display())
    );
    assert_eq!(origins.name("redact"), "--no-redact");
    assert_eq!(
        origins.name("identity"),
        format!("{} line 4 (identity)", path.display())
    );
}

#[test]
fn a_repeatable_flag_replaces_the_files_list() {
    let (_d, path) = write("upstream_ca = [\"a.pem\", \"b.pem\"]\n");
    let (r, origins) = reverse(&["--upstream-ca", "c.pem"], Some(&path)).unwrap();
    assert_eq!(r.up.upstream_ca, vec![PathBuf::from("c.pem")]);
    assert_eq!(origins.name("upstream_ca"), "--upstream-ca");
}

#[test]
fn without_a_file_flags_are_named_as_flags() {
    let (r, origins) = reverse(&["--timeout", "4"], None).unwrap();
    assert_eq!(r.up.timeout, Some(4));
    assert_eq!(origins.name("timeout"), "--timeout");
    assert_eq!(origins.name("record_max_size"), "--record-max-size");
}

#[test]
fn type_and_syntax_errors_name_file_line_and_column() {
    let (_d, path) = write("listen = \"127.0.0.1:1\"\n\nclient_auth = \"sometimes\"\n");
    let err = reverse(&[], Some(&path)).unwrap_err().to_string();
    assert!(
        err.contains("mtlscope.toml") && err.contains("line 3"),
        "{err}"
    );
    assert!(err.contains("sometimes"), "{err}");
    let (_d, path) = write("timeout = \"ten\"\n");
    let err = reverse(&[], Some(&path)).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    let (_d, path) = write("identity = [\"only-a-cert.pem\"]\n");
    let err = reverse(&[], Some(&path)).unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("CERT,KEY"), "{err}");
    let (_d, path) = write("listen = [\n");
    let err = reverse(&[], Some(&path)).unwrap_err().to_string();
    assert!(err.contains("line "), "{err}");
}

#[test]
fn keys_a_command_does_not_read_are_refused_with_their_line() {
    let (_d, path) = write("listen = \"127.0.0.1:1\"\n\nbogus_key = 1\n");
    let err = reverse(&[], Some(&path)).unwrap_err().to_string();
    assert!(
        err.contains("line 3") && err.contains("`bogus_key`"),
        "{err}"
    );
    // `cert`/`key` are curl's flag spellings only; the file says `identity`.
    let (_d, path) = write("cert = \"a.pem\"\n");
    let err = reverse(&[], Some(&path)).unwrap_err().to_string();
    assert!(err.contains("`cert`"), "{err}");
    // forward reads no `upstream`, and says why.
    let (_d, path) = write("listen = \"127.0.0.1:1\"\nupstream = \"https://x:1\"\n");
    let mut fwd = ForwardOnly::default();
    let mut run = RunArgs::default();
    let err = load(Some(&path), "forward", &mut [&mut run, &mut fwd])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("goes where each client asks"),
        "{err}"
    );
}

#[test]
fn forward_host_tables_and_flags_are_one_setting() {
    let (dir, path) = write(
        "[[host]]\npattern = \"api.example.com\"\nidentity = [\"api.pem,api.key\"]\n\
         [[host]]\npattern = \"*.corp\"\npkcs12 = \"corp.p12\"\npassword_file = \"pw\"\n\
         engine = \"openssl\"\n",
    );
    let mut fwd = ForwardOnly::default();
    load(Some(&path), "forward", &mut [&mut fwd]).unwrap();
    assert_eq!(fwd.host.len(), 2);
    assert_eq!(
        fwd.host[1].identities().collect::<Vec<_>>(),
        vec![CertKey::Pkcs12(dir.path().join("corp.p12"))]
    );
    assert_eq!(fwd.host[1].password_file, Some(dir.path().join("pw")));
    let flag: HostEntry = "api.example.com=a.pem, a.key".parse().unwrap();
    assert_eq!(flag.identity, vec![CertKey::pem("a.pem", "a.key")]);
    assert!("no-equals-sign".parse::<HostEntry>().is_err());
}

/// The groups each command reads, as its `load` call lists them.
fn command_keys() -> [(&'static str, Vec<&'static [&'static str]>); 4] {
    let (run, tls, up, ui) = (
        keys::<RunArgs>(),
        keys::<TlsArgs>(),
        keys::<UpstreamArgs>(),
        keys::<UiArgs>(),
    );
    [
        (
            "reverse",
            vec![
                run,
                tls,
                up,
                ui,
                keys::<ReverseOnly>(),
                keys::<OffloadArgs>(),
            ],
        ),
        ("forward", vec![run, tls, up, ui, keys::<ForwardOnly>()]),
        ("observe", vec![run, ui, keys::<ObserveOnly>()]),
        ("probe", vec![up, keys::<ProbeOnly>()]),
    ]
}

/// Every key some command reads is shown in config/example.toml, and the example is valid for
/// reverse (forward's block commented out).
#[test]
fn every_key_is_in_the_example() {
    let example_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let example = std::fs::read_to_string(&example_path).unwrap();
    for (_, groups) in command_keys() {
        for key in groups.iter().flat_map(|g| g.iter()) {
            let shown = example.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} =")) || l.starts_with(&format!("[[{key}]]"))
            });
            assert!(shown, "{key} missing from config/example.toml");
        }
    }
    let mut r = Reverse::try_parse_from(["mtlscope"]).unwrap();
    let (mut rev, mut off, mut ui) = (
        ReverseOnly::default(),
        OffloadArgs::default(),
        UiArgs::default(),
    );
    let parts: &mut [&mut dyn Part] = &mut [
        &mut r.run, &mut r.tls, &mut r.up, &mut rev, &mut off, &mut ui,
    ];
    load(Some(&example_path), "reverse", parts).unwrap();
    assert_eq!(r.tls.client_auth, Some(ClientAuthMode::Optional));
    assert_eq!(r.up.identity.len(), 1);
}

/// A key is read by one group only, within each command (clap would also refuse a flag twice).
#[test]
fn no_key_belongs_to_two_groups_of_a_command() {
    for (command, groups) in command_keys() {
        let mut seen = std::collections::HashSet::new();
        for key in groups.iter().flat_map(|g| g.iter()) {
            assert!(seen.insert(*key), "{command}: {key} in two groups");
        }
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = load(Some(Path::new("/nonexistent/x.toml")), "reverse", &mut [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/x.toml"), "{err}");
}

/// Flags and keys are one model: every long flag of a command is one of its config keys, and
/// every key is a flag, except `--config` itself and curl's `--cert`/`--key` spellings.
#[test]
fn every_flag_is_a_key_and_every_key_a_flag() {
    use clap::CommandFactory;
    let cli = super::Cli::command();
    let flag_only = [
        "config",
        "cert",
        "key",
        "help",
        "version",
        "log_level",
        "url",
    ];
    for (command, groups) in command_keys() {
        let sub = cli.find_subcommand(command).expect(command);
        let keys: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
        let mut flags = Vec::new();
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if flag_only.contains(&id) || arg.is_positional() {
                continue;
            }
            assert!(keys.contains(&id), "{command} --{id:?} has no config key");
            flags.push(id);
        }
        for key in keys {
            assert!(flags.contains(&key), "{command}: key {key} has no flag");
        }
    }
}

#[test]
fn curls_cert_and_key_replace_the_files_identities_like_identity_does() {
    let (_d, path) = write("identity = [\"file.pem,file.key\"]\n");
    let argv = ["mtlscope", "--cert", "a.pem", "--key", "a.key"];
    let mut r = Reverse::try_parse_from(argv).unwrap();
    r.up.fold_curl_spellings().unwrap();
    let origins = load(
        Some(&path),
        "reverse",
        &mut [&mut r.run, &mut r.tls, &mut r.up],
    )
    .unwrap();
    assert_eq!(r.up.identity, vec![CertKey::pem("a.pem", "a.key")]);
    assert!(!origins.from_file("identity"));
    // Without them, the file's list is read.
    let mut r = Reverse::try_parse_from(["mtlscope"]).unwrap();
    r.up.fold_curl_spellings().unwrap();
    load(
        Some(&path),
        "reverse",
        &mut [&mut r.run, &mut r.tls, &mut r.up],
    )
    .unwrap();
    assert_eq!(r.up.identity.len(), 1);
    assert!(r.up.identity[0].to_string().contains("file.pem"));
}
