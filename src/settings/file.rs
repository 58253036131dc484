//! The TOML file behind `--config`: reading it, typed values with the line of any error, the
//! keys a command does not read, and naming a key by its line.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A config file problem; every variant names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A syntax or type error.
    #[error("config {path}: line {line}, column {column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where (1-based).
        line: usize,
        /// Where on the line (1-based).
        column: usize,
        /// toml's or serde's message.
        message: String,
    },
    /// A syntax or type error toml could not place.
    #[error("config {path}: {message}")]
    Unplaced {
        /// The file.
        path: PathBuf,
        /// toml's or serde's message.
        message: String,
    },
    /// A key this command does not read.
    #[error("config {path}: line {line}: `{key}` does not apply to `mtlscope {command}`{why}")]
    NotForCommand {
        /// The file.
        path: PathBuf,
        /// Where the key is.
        line: usize,
        /// The key.
        key: String,
        /// The command.
        command: String,
        /// Why, when there is more to say.
        why: String,
    },
}

/// A config file as read: its text, for lines, and its directory, for relative paths.
#[derive(Debug)]
pub struct SourceFile {
    /// The file, as named.
    pub path: PathBuf,
    /// The directory its relative paths are relative to.
    pub base: PathBuf,
    /// Its text.
    text: String,
    /// Its top-level keys.
    keys: Vec<String>,
}

impl SourceFile {
    /// Read `path` and check its syntax.
    pub fn read(path: &Path) -> Result<SourceFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file = SourceFile {
            path: path.to_path_buf(),
            base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            text,
            keys: Vec::new(),
        };
        let table: toml::Table = file.parse()?;
        file.keys = table.keys().cloned().collect();
        Ok(file)
    }

    /// The file's values as `T` (keys `T` has no field for are left to other groups).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| self.error(&e))
    }

    /// A toml error, placed by line and column.
    fn error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().to_string();
        let Some(span) = e.span() else {
            return ConfigError::Unplaced {
                path: self.path.clone(),
                message,
            };
        };
        let before = &self.text[..span.start.min(self.text.len())];
        ConfigError::Parse {
            path: self.path.clone(),
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
            message,
        }
    }

    /// Refuse every top-level key not in `allowed`, naming its line.
    pub fn only(&self, command: &str, allowed: &[&str]) -> Result<(), ConfigError> {
        let Some(key) = self.keys.iter().find(|k| !allowed.contains(&k.as_str())) else {
            return Ok(());
        };
        let why = match (command, key.as_str()) {
            ("forward", "upstream") => {
                ": a forward proxy goes where each client asks (CONNECT or an absolute URL); \
                 use `reverse` for one upstream"
            }
            ("observe", _) => {
                ": observe terminates no TLS, so it presents and checks no certificate"
            }
            _ => "",
        };
        Err(ConfigError::NotForCommand {
            path: self.path.clone(),
            line: self.line_of(key).unwrap_or(1),
            key: key.clone(),
            command: command.to_string(),
            why: why.to_string(),
        })
    }

    /// The line (1-based) where top-level `key` is set (`key =`, `[key]` or `[[key]]`).
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.text
            .lines()
            .position(|l| {
                let l = l.trim_start();
                let assigned = l
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='));
                let table = l
                    .trim_start_matches('[')
                    .strip_prefix(key)
                    .is_some_and(|rest| l.starts_with('[') && rest.trim_start().starts_with(']'));
                assigned || table
            })
            .map(|i| i + 1)
    }

    /// `FILE line N (label)`, the line being where `key` is set.
    pub fn describe(&self, key: &str, label: &str) -> String {
        match self.line_of(key) {
            Some(line) => format!("{} line {line} ({label})", self.path.display()),
            None => format!("{} ({label})", self.path.display()),
        }
    }
}

/// The field names serde's derive gives `T`: the keys a group reads. (serde hands them to
/// `deserialize_struct`; this deserializer only listens.)
pub(super) fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Listen<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Listen<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("listened"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Listen(&mut fields));
    fields
}
