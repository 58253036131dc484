//! Credentials given on the command line without putting them in `/proc/PID/cmdline`:
//! `--proxy-auth` and `--ui-auth` take `USER:PASS`, `@FILE` (the first line of FILE) or
//! `env:NAME` (the environment variable NAME).

use crate::error::CommandError;

/// The credential `value` stands for; `flag` names it in errors.
pub fn resolve(flag: &str, value: &str) -> Result<String, CommandError> {
    let text = if let Some(path) = value.strip_prefix('@') {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CommandError::usage(format!(
                "{flag} @{path}: cannot read the credential file: {e}"
            ))
        })?;
        text.lines().next().unwrap_or("").trim_end().to_string()
    } else if let Some(name) = value.strip_prefix("env:") {
        std::env::var(name).map_err(|_| {
            CommandError::usage(format!(
                "{flag} env:{name}: the environment variable {name} is not set (or not UTF-8)"
            ))
        })?
    } else {
        value.to_string()
    };
    if !text.contains(':') {
        // Name where it came from, never the text itself.
        let from = if text == value {
            String::new()
        } else {
            format!(" (in what {value} holds)")
        };
        return Err(CommandError::usage(format!(
            "{flag}: expected USER:PASS{from}"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_files_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cred");
        std::fs::write(&f, "alice:s3cret\n").unwrap();
        assert_eq!(
            resolve("--ui-auth", &format!("@{}", f.display())).unwrap(),
            "alice:s3cret"
        );
        std::env::set_var("MTLSCOPE_TEST_SECRET_RESOLVE", "bob:pw");
        assert_eq!(
            resolve("--proxy-auth", "env:MTLSCOPE_TEST_SECRET_RESOLVE").unwrap(),
            "bob:pw"
        );
        assert_eq!(resolve("--proxy-auth", "u:p").unwrap(), "u:p");
        let e = resolve("--proxy-auth", "env:MTLSCOPE_TEST_SECRET_UNSET").unwrap_err();
        assert!(
            e.message.contains("MTLSCOPE_TEST_SECRET_UNSET"),
            "{}",
            e.message
        );
        let e = resolve("--ui-auth", "@/nonexistent/cred").unwrap_err();
        assert!(e.message.contains("/nonexistent/cred"), "{}", e.message);
        assert!(resolve("--ui-auth", "nocolon").is_err());
    }
}
