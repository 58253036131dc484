//! [`named_words!`]: an enum whose values are recorded as fixed words (`client_hello`,
//! `clientAuth`, `HTTP/1.1`), with an `Other` variant that keeps a word this version does not
//! know (a newer recording, an unnamed OID) so reading and writing a recording loses nothing.

/// Declares `enum $name { $variant, …, Other(String) }` with `as_str`, `from_name`, serde as a
/// string and `Display`.
macro_rules! named_words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$doc:meta])* $variant:ident = $word:literal,)*
        }
        $(#[$other_doc:meta])*
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$doc])* $variant,)*
            $(#[$other_doc])*
            Other(String),
        }

        impl $name {
            /// The recorded word.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)*
                    $name::Other(word) => word,
                }
            }

            /// The value a recorded word stands for.
            pub fn from_name(word: &str) -> $name {
                match word {
                    $($word => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = std::borrow::Cow::<'de, str>::deserialize(d)?;
                Ok($name::from_name(&word))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use named_words;
