//! A reader of Java's JKS keystore format, for the aliases, their order and their certificate
//! chains: what `certs choose` needs of a keystore. Private keys stay encrypted (their presence
//! is all the selection depends on).
//!
//! Why not a crate: the one JKS crate (`jks`) decrypts keys mtlscope never uses and brings a
//! second, older copy of `p12-keystore` and an older `asn1-rs`; the format is small and
//! documented by its only implementation, OpenJDK's `sun.security.provider.JavaKeyStore`
//! (`engineLoad`/`engineStore`): big-endian, magic `0xFEEDFEED`, version 1 or 2, an entry
//! count, each entry a tag (1 private key, 2 trusted certificate), an alias in modified UTF-8,
//! a timestamp, then the protected key and its chain or one certificate (version 2 prefixes
//! each certificate with its type, `X.509`), and a SHA-1 over the password, the words
//! "Mighty Aphrodite" and everything before it.

use std::fmt;

/// JKS's magic number.
pub const MAGIC: [u8; 4] = [0xFE, 0xED, 0xFE, 0xED];

/// One entry of a keystore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JksEntry {
    /// The alias as stored (keytool stores it lower-cased).
    pub alias: String,
    /// Whether it is a private-key entry (a trusted-certificate entry is not).
    pub has_key: bool,
    /// The certificate chain, leaf first, DER; one certificate for a trusted entry.
    pub chain: Vec<Vec<u8>>,
}

/// Why a keystore could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JksError {
    /// Not a JKS file.
    NotJks,
    /// A version this reader does not know.
    Version(u32),
    /// The file ends inside an entry.
    Truncated {
        /// Offset where more bytes were needed.
        at: usize,
    },
    /// An entry tag other than private key or trusted certificate (e.g. JCEKS's secret keys).
    UnknownTag {
        /// The tag.
        tag: u32,
        /// The entry's index.
        entry: usize,
    },
    /// The integrity check failed: wrong password or a damaged file.
    Integrity,
}

impl fmt::Display for JksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JksError::NotJks => write!(f, "not a JKS keystore (no 0xFEEDFEED magic)"),
            JksError::Version(v) => write!(f, "JKS version {v} is not known (1 or 2 are)"),
            JksError::Truncated { at } => write!(f, "the keystore ends early (at byte {at})"),
            JksError::UnknownTag { tag, entry } => {
                write!(
                    f,
                    "entry {entry} has tag {tag}, neither a key nor a certificate"
                )
            }
            JksError::Integrity => write!(
                f,
                "the keystore's integrity check failed: wrong --password, or a damaged file"
            ),
        }
    }
}

impl std::error::Error for JksError {}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], JksError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(JksError::Truncated { at: self.at })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u16(&mut self) -> Result<usize, JksError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u32(&mut self) -> Result<u32, JksError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// `DataInput.readUTF`: a length, then modified UTF-8 (plain UTF-8 for any alias keytool
    /// writes; anything else is shown lossily).
    fn utf(&mut self) -> Result<String, JksError> {
        let n = self.u16()?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn cert(&mut self, version: u32) -> Result<Vec<u8>, JksError> {
        if version == 2 {
            self.utf()?; // the certificate type, "X.509"
        }
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

/// Read a JKS keystore's entries in file order. With `password`, the integrity check is
/// verified as Java's `KeyStore.load` does; without, it is skipped.
pub fn read(bytes: &[u8], password: Option<&str>) -> Result<Vec<JksEntry>, JksError> {
    if !bytes.starts_with(&MAGIC) {
        return Err(JksError::NotJks);
    }
    let mut r = Reader { bytes, at: 4 };
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return Err(JksError::Version(version));
    }
    let count = r.u32()? as usize;
    // Bounded by the file: every entry takes at least 14 bytes.
    let mut entries = Vec::with_capacity(count.min(bytes.len() / 14));
    for entry in 0..count {
        let tag = r.u32()?;
        let alias = r.utf()?;
        r.take(8)?; // creation time
        match tag {
            1 => {
                let key_len = r.u32()? as usize;
                r.take(key_len)?;
                let n = r.u32()? as usize;
                let mut chain = Vec::with_capacity(n.min(16));
                for _ in 0..n {
                    chain.push(r.cert(version)?);
                }
                entries.push(JksEntry {
                    alias,
                    has_key: true,
                    chain,
                });
            }
            2 => entries.push(JksEntry {
                alias,
                has_key: false,
                chain: vec![r.cert(version)?],
            }),
            tag => return Err(JksError::UnknownTag { tag, entry }),
        }
    }
    let body = r.at;
    let digest = r.take(20)?;
    if let Some(password) = password {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
        let pw: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
        ctx.update(&pw);
        ctx.update(b"Mighty Aphrodite");
        ctx.update(&bytes[..body]);
        if ctx.finish().as_ref() != digest {
            return Err(JksError::Integrity);
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    /// A version-2 keystore with one key entry (chain of two) and one trusted certificate.
    fn sample(password: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend(2u32.to_be_bytes());
        b.extend(2u32.to_be_bytes());
        b.extend(1u32.to_be_bytes());
        b.extend(utf("client"));
        b.extend(0u64.to_be_bytes());
        b.extend(3u32.to_be_bytes());
        b.extend([9, 9, 9]);
        b.extend(2u32.to_be_bytes());
        for cert in [[1u8, 2], [3, 4]] {
            b.extend(utf("X.509"));
            b.extend(2u32.to_be_bytes());
            b.extend(cert);
        }
        b.extend(2u32.to_be_bytes());
        b.extend(utf("root"));
        b.extend(0u64.to_be_bytes());
        b.extend(utf("X.509"));
        b.extend(1u32.to_be_bytes());
        b.extend([5]);
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
        let pw: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
        ctx.update(&pw);
        ctx.update(b"Mighty Aphrodite");
        ctx.update(&b);
        b.extend(ctx.finish().as_ref());
        b
    }

    #[test]
    fn reads_entries_in_file_order() {
        let e = read(&sample("changeit"), Some("changeit")).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!((e[0].alias.as_str(), e[0].has_key), ("client", true));
        assert_eq!(e[0].chain, vec![vec![1, 2], vec![3, 4]]);
        assert_eq!((e[1].alias.as_str(), e[1].has_key), ("root", false));
    }

    #[test]
    fn wrong_password_and_truncation_are_named() {
        assert_eq!(
            read(&sample("changeit"), Some("nope")),
            Err(JksError::Integrity)
        );
        let short = &sample("x")[..30];
        assert!(matches!(read(short, None), Err(JksError::Truncated { .. })));
        assert_eq!(read(b"PK\x03\x04", None), Err(JksError::NotJks));
    }
}
