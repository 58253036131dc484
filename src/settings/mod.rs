//! One settings model for flags and the config file.
//!
//! Each group of settings is one struct that clap parses from the command line and serde from the
//! TOML file named by `--config`. A field's name is both its config key and its flag
//! (`client_ca` ↔ `--client-ca`), so the two cannot drift apart. [`load`] fills what the flags
//! left unset from the file (flags win), rebases the file's relative paths on the file's
//! directory, refuses keys the command does not read (naming their line), and returns the
//! [`Origins`] that let a later error name the flag, or the file and line, a value came from.
//!
//! Groups are declared with [`settings_group!`], which adds the field-by-field merge; a new field
//! is therefore a flag, a config key and part of the merge at once.

mod file;
pub mod values;

pub use file::{ConfigError, SourceFile};
pub use values::{CaNames, CertKey, HostEntry};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Declare a group of settings: the struct as written (with its derives and clap/serde
/// attributes), plus [`Group`], whose merge visits every field. Every field's type implements
/// [`Merge`]: `bool` (a flag turns it on), `Option<T>` and `Vec<T>` (the file fills what the
/// flags left empty), with `T` a [`Rebase`] value.
macro_rules! settings_group {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $fvis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
        }

        impl $crate::settings::Group for $name {
            fn fill_from(
                &mut self,
                file: Self,
                base: &std::path::Path,
                taken: &mut Vec<&'static str>,
            ) {
                $(
                    if $crate::settings::Merge::fill_from(&mut self.$field, file.$field, base) {
                        taken.push(stringify!($field));
                    }
                )*
            }
        }
    };
}
pub(crate) use settings_group;

/// A group of settings that clap reads from flags and serde from the config file.
pub trait Group: clap::Args + serde::de::DeserializeOwned + Default {
    /// Fill what the flags left unset from the file's values, paths rebased on `base`; push
    /// the name of every field taken from the file onto `taken`.
    fn fill_from(&mut self, file: Self, base: &Path, taken: &mut Vec<&'static str>);
}

/// A setting's value type: how a value from the file joins the flags' one.
pub trait Merge: Sized {
    /// Take `file` where the flags left this unset; true when the file's value was taken.
    fn fill_from(&mut self, file: Self, base: &Path) -> bool;
}

impl Merge for bool {
    /// A flag can only turn a switch on, so either source turning it on wins.
    fn fill_from(&mut self, file: bool, _: &Path) -> bool {
        let took = file && !*self;
        *self |= file;
        took
    }
}

impl<T: Rebase> Merge for Option<T> {
    fn fill_from(&mut self, file: Self, base: &Path) -> bool {
        match (self.is_none(), file) {
            (true, Some(v)) => {
                *self = Some(v.rebase(base));
                true
            }
            _ => false,
        }
    }
}

impl<T: Rebase> Merge for Vec<T> {
    /// A repeatable flag given once replaces the file's whole list, as curl's config does.
    fn fill_from(&mut self, file: Self, base: &Path) -> bool {
        if !self.is_empty() || file.is_empty() {
            return false;
        }
        *self = file.into_iter().map(|v| v.rebase(base)).collect();
        true
    }
}

/// A value from the config file, with its relative paths made relative to the file's directory.
pub trait Rebase: Sized {
    /// This value with its paths joined onto `base` (absolute paths stay as they are).
    fn rebase(self, base: &Path) -> Self;
}

impl Rebase for PathBuf {
    fn rebase(self, base: &Path) -> Self {
        base.join(self)
    }
}

/// Values that hold no path.
macro_rules! no_paths {
    ($($t:ty),*) => { $(impl Rebase for $t { fn rebase(self, _: &Path) -> Self { self } })* };
}
no_paths!(
    bool,
    String,
    u64,
    usize,
    crate::capture::client_auth::ClientAuthMode,
    CaNames,
    crate::upstream::EngineChoice,
    crate::proxy::resumption::UpstreamResume
);

/// The config keys group `G` reads (its serde field names).
pub fn keys<G: Group>() -> &'static [&'static str] {
    file::struct_fields::<G>()
}

/// A group as [`load`] handles it, whatever its type.
pub trait Part {
    /// The config keys it reads (its serde field names).
    fn keys(&self) -> &'static [&'static str];
    /// Each of its settings' flag (`client_ca` → `--client-ca`), from clap.
    fn flags(&self, out: &mut HashMap<String, String>);
    /// Fill unset values from the file.
    fn read(&mut self, file: &SourceFile, taken: &mut Vec<&'static str>)
        -> Result<(), ConfigError>;
}

impl<G: Group> Part for G {
    fn keys(&self) -> &'static [&'static str] {
        keys::<G>()
    }

    fn flags(&self, out: &mut HashMap<String, String>) {
        let cmd = G::augment_args(clap::Command::new("mtlscope"));
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                out.insert(arg.get_id().to_string(), format!("--{long}"));
            }
        }
    }

    fn read(
        &mut self,
        file: &SourceFile,
        taken: &mut Vec<&'static str>,
    ) -> Result<(), ConfigError> {
        let values: G = file.parse()?;
        self.fill_from(values, &file.base, taken);
        Ok(())
    }
}

/// Where each setting's value came from, to name it in errors.
#[derive(Debug, Default)]
pub struct Origins {
    /// The config file, when one was read.
    file: Option<SourceFile>,
    /// The keys whose value came from the file.
    from_file: Vec<&'static str>,
    /// Each key's flag.
    flags: HashMap<String, String>,
}

impl Origins {
    /// How to name `key`'s value in a message: `FILE line N (key)` when it came from the config
    /// file, else its flag (`--client-ca`).
    pub fn name(&self, key: &str) -> String {
        self.name_with(key, key)
    }

    /// As [`Origins::name`], with `label` in the brackets (e.g. `host api.example.com`).
    pub fn name_with(&self, key: &str, label: &str) -> String {
        match &self.file {
            Some(f) if self.from_file(key) => f.describe(key, label),
            _ => self
                .flags
                .get(key)
                .cloned()
                .unwrap_or_else(|| format!("--{}", key.replace('_', "-"))),
        }
    }

    /// Whether `key`'s value came from the config file.
    pub fn from_file(&self, key: &str) -> bool {
        self.from_file.contains(&key)
    }
}

/// Merge the config file (if any) under the flags already parsed into `parts`, refusing keys
/// none of the parts reads; `command` names the command in those errors.
pub fn load(
    config: Option<&Path>,
    command: &str,
    parts: &mut [&mut dyn Part],
) -> Result<Origins, ConfigError> {
    let mut origins = Origins::default();
    for part in parts.iter() {
        part.flags(&mut origins.flags);
    }
    let Some(path) = config else {
        return Ok(origins);
    };
    let file = SourceFile::read(path)?;
    let keys: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.keys().iter().copied())
        .collect();
    file.only(command, &keys)?;
    for part in parts.iter_mut() {
        part.read(&file, &mut origins.from_file)?;
    }
    origins.file = Some(file);
    Ok(origins)
}
