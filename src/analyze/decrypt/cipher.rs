//! Record protection for reading: TLS 1.3 (RFC 8446 §5.2, §7.1-7.3) and TLS 1.2 AEAD suites
//! (AES-GCM, RFC 5288; ChaCha20-Poly1305, RFC 7905) with the TLS 1.2 PRF (RFC 5246 §5). HKDF,
//! HMAC and the AEADs are aws-lc-rs'.

use aws_lc_rs::{aead, hkdf, hmac};

/// A cipher suite's algorithms, as far as reading its records needs.
#[derive(Clone, Copy, Debug)]
pub struct Suite {
    /// The AEAD.
    aead: &'static aead::Algorithm,
    /// TLS 1.3: the HKDF hash.
    hkdf: hkdf::Algorithm,
    /// TLS 1.2: the PRF's HMAC.
    hmac: hmac::Algorithm,
    /// The hash's output length.
    pub hash_len: usize,
    /// TLS 1.2: the IV bytes from the key block (4 for GCM, 12 for ChaCha20).
    fixed_iv: usize,
}

const SHA256: (hkdf::Algorithm, hmac::Algorithm, usize) =
    (hkdf::HKDF_SHA256, hmac::HMAC_SHA256, 32);
const SHA384: (hkdf::Algorithm, hmac::Algorithm, usize) =
    (hkdf::HKDF_SHA384, hmac::HMAC_SHA384, 48);

fn suite(
    aead: &'static aead::Algorithm,
    h: (hkdf::Algorithm, hmac::Algorithm, usize),
    fixed_iv: usize,
) -> Suite {
    Suite {
        aead,
        hkdf: h.0,
        hmac: h.1,
        hash_len: h.2,
        fixed_iv,
    }
}

/// The TLS 1.3 suite for a ServerHello's `cipher_suite`.
pub fn tls13_suite(id: u16) -> Option<Suite> {
    match id {
        0x1301 => Some(suite(&aead::AES_128_GCM, SHA256, 12)),
        0x1302 => Some(suite(&aead::AES_256_GCM, SHA384, 12)),
        0x1303 => Some(suite(&aead::CHACHA20_POLY1305, SHA256, 12)),
        _ => None,
    }
}

/// The TLS 1.2 AEAD suite for a ServerHello's `cipher_suite` (CBC suites are not read).
pub fn tls12_suite(id: u16) -> Option<Suite> {
    match id {
        0x009C | 0x009E | 0xC02B | 0xC02F => Some(suite(&aead::AES_128_GCM, SHA256, 4)),
        0x009D | 0x009F | 0xC02C | 0xC030 => Some(suite(&aead::AES_256_GCM, SHA384, 4)),
        0xCCA8..=0xCCAA => Some(suite(&aead::CHACHA20_POLY1305, SHA256, 12)),
        _ => None,
    }
}

/// An output length for HKDF-Expand.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
pub fn expand_label(suite: Suite, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let prk = hkdf::Prk::new_less_safe(suite.hkdf, secret);
    let full = format!("tls13 {label}");
    let out_len = u16::try_from(len).ok()?.to_be_bytes();
    let label_len = [u8::try_from(full.len()).ok()?];
    let info: [&[u8]; 4] = [&out_len, &label_len, full.as_bytes(), &[0]];
    let okm = prk.expand(&info, Len(len)).ok()?;
    let mut out = vec![0u8; len];
    okm.fill(&mut out).ok()?;
    Some(out)
}

/// The TLS 1.2 PRF: P_hash(secret, label || seed), `len` bytes.
pub fn prf12(suite: Suite, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let key = hmac::Key::new(suite.hmac, secret);
    let mut label_seed = label.to_vec();
    label_seed.extend_from_slice(seed);
    let mut a = hmac::sign(&key, &label_seed).as_ref().to_vec();
    let mut out = Vec::with_capacity(len + suite.hash_len);
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&a);
        ctx.update(&label_seed);
        out.extend_from_slice(ctx.sign().as_ref());
        a = hmac::sign(&key, &a).as_ref().to_vec();
    }
    out.truncate(len);
    out
}

/// Which record format a cipher reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// TLS 1.3: nonce = iv XOR seq; additional data = the record header; inner content type.
    Tls13,
    /// TLS 1.2 GCM: nonce = 4-byte salt || 8-byte explicit nonce from the record.
    Tls12Explicit,
    /// TLS 1.2 ChaCha20-Poly1305: nonce = iv XOR seq.
    Tls12Xor,
}

/// One direction's record protection.
pub struct Cipher {
    /// The key.
    key: aead::LessSafeKey,
    /// The IV (TLS 1.2 GCM: the 4-byte salt, rest zero).
    iv: [u8; 12],
    /// The record format.
    form: Form,
    /// The next record's sequence number.
    seq: u64,
    /// TLS 1.3: the traffic secret (for KeyUpdate).
    pub secret: Vec<u8>,
}

impl Cipher {
    /// TLS 1.3 protection from a traffic secret.
    pub fn tls13(suite: Suite, secret: &[u8]) -> Option<Cipher> {
        let key = expand_label(suite, secret, "key", suite.aead.key_len())?;
        let iv = expand_label(suite, secret, "iv", 12)?;
        let mut fixed = [0u8; 12];
        fixed.copy_from_slice(iv.get(..12)?);
        Cipher::new(suite, &key, fixed, Form::Tls13, secret.to_vec())
    }

    /// TLS 1.2 protection for both directions from the master secret and the randoms:
    /// (client's, server's).
    pub fn tls12(
        suite: Suite,
        master: &[u8],
        client_random: &[u8],
        server_random: &[u8],
    ) -> Option<(Cipher, Cipher)> {
        let k = suite.aead.key_len();
        let iv = suite.fixed_iv;
        let mut seed = server_random.to_vec();
        seed.extend_from_slice(client_random);
        let block = prf12(suite, master, b"key expansion", &seed, 2 * k + 2 * iv);
        let (ck, rest) = block.split_at(k);
        let (sk, rest) = rest.split_at(k);
        let (civ, siv) = rest.split_at(iv);
        let form = if iv == 4 {
            Form::Tls12Explicit
        } else {
            Form::Tls12Xor
        };
        let pad = |v: &[u8]| {
            let mut out = [0u8; 12];
            for (o, b) in out.iter_mut().zip(v) {
                *o = *b;
            }
            out
        };
        Some((
            Cipher::new(suite, ck, pad(civ), form, Vec::new())?,
            Cipher::new(suite, sk, pad(siv), form, Vec::new())?,
        ))
    }

    fn new(suite: Suite, key: &[u8], iv: [u8; 12], form: Form, secret: Vec<u8>) -> Option<Cipher> {
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(suite.aead, key).ok()?);
        Some(Cipher {
            key,
            iv,
            form,
            seq: 0,
            secret,
        })
    }

    /// Open one record (`header` as on the wire, `payload` after it). Returns the content type
    /// and the plaintext; `None` when it does not decrypt. The sequence number advances either
    /// way, as the sender's did.
    pub fn open(&mut self, header: [u8; 5], payload: &[u8]) -> Option<(u8, Vec<u8>)> {
        let seq = self.seq;
        self.seq += 1;
        let tag = self.key.algorithm().tag_len();
        let mut nonce = self.iv;
        let (body, aad) = match self.form {
            Form::Tls13 => {
                xor_seq(&mut nonce, seq);
                (payload, header.to_vec())
            }
            Form::Tls12Explicit => {
                let explicit = payload.get(..8)?;
                for (n, e) in nonce.iter_mut().skip(4).zip(explicit) {
                    *n = *e;
                }
                let body = payload.get(8..)?;
                (body, aad12(seq, header, body.len().checked_sub(tag)?))
            }
            Form::Tls12Xor => {
                xor_seq(&mut nonce, seq);
                (payload, aad12(seq, header, payload.len().checked_sub(tag)?))
            }
        };
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(aad),
                &mut buf,
            )
            .ok()?;
        if self.form != Form::Tls13 {
            return Some((header[0], plain.to_vec()));
        }
        let end = plain.iter().rposition(|b| *b != 0)?;
        let ty = *plain.get(end)?;
        Some((ty, plain.get(..end).unwrap_or(&[]).to_vec()))
    }
}

fn xor_seq(nonce: &mut [u8; 12], seq: u64) {
    for (n, s) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
        *n ^= s;
    }
}

/// TLS 1.2 additional data: seq_num || type || version || plaintext length.
fn aad12(seq: u64, header: [u8; 5], plain_len: usize) -> Vec<u8> {
    let mut aad = seq.to_be_bytes().to_vec();
    aad.extend_from_slice(&header[..3]);
    aad.extend_from_slice(&(plain_len as u16).to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::hex;

    fn unhex(s: &str) -> Vec<u8> {
        super::super::keylog::unhex(s).unwrap_or_default()
    }

    #[test]
    fn hkdf_expand_label_matches_rfc8448() {
        // RFC 8448 §3: server handshake traffic secret → key and iv (TLS_AES_128_GCM_SHA256).
        let secret = unhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38");
        let suite = tls13_suite(0x1301).expect("suite");
        let key = expand_label(suite, &secret, "key", 16).expect("key");
        let iv = expand_label(suite, &secret, "iv", 12).expect("iv");
        assert_eq!(hex(&key), "3fce516009c21727d0f2e4e86ee403bc");
        assert_eq!(hex(&iv), "5d313eb2671276ee13000b30");
    }

    #[test]
    fn tls12_prf_matches_the_published_sha256_vector() {
        // The TLS 1.2 PRF (SHA-256) test vector from the IETF TLS list (Joseph Birr-Pixton).
        let suite = tls12_suite(0xC02F).expect("suite");
        let out = prf12(
            suite,
            &unhex("9bbe436ba940f017b17652849a71db35"),
            b"test label",
            &unhex("a0ba9f936cda311827a6f796ffd5198c"),
            100,
        );
        assert_eq!(hex(&out[..16]), "e3f229ba727be17b8d122620557cd453");
    }
}
