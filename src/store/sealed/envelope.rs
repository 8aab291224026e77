//! The envelope a sealed value is stored in, and the AEAD that makes it.
//!
//! `omtd:enc:v1:<keyid>:<base64(nonce || ciphertext)>`: XChaCha20-Poly1305 with a random
//! 24-byte nonce from the OS (large enough that random nonces never repeat in practice, so
//! no counter has to be kept across processes), and the store key as associated data, so a
//! value copied to another key (another credential, another node's plan) does not open.
//! The key id is in the clear beside the value: it says which key opens it, so rotation can
//! keep old keys for reading while the first one seals.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::keyring::SecretKey;

/// What every envelope starts with. A plaintext record (JSON) never does.
pub const PREFIX: &[u8] = b"omtd:enc:v1:";

/// Put before the body of an envelope whose key this process holds but which does not
/// authenticate (see `SealedStore`): not base64, so it never opens, and its reader can tell
/// "altered or copied" from "key not given".
pub const REFUSED_MARK: u8 = b'!';

const NONCE_LEN: usize = 24;
/// Poly1305's tag, appended to the ciphertext.
const TAG_LEN: usize = 16;

/// Why a value could not be sealed or opened. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("not an omtd envelope")]
    NotAnEnvelope,
    #[error("damaged envelope: {0}")]
    Malformed(&'static str),
    /// Wrong key, a value moved from another store key, or altered bytes: AEAD cannot tell
    /// which, and says nothing more on purpose.
    #[error("the value does not authenticate with key {key_id}")]
    Authentication { key_id: String },
}

/// An envelope as read, not yet opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub key_id: &'a str,
    /// Marked as not opening with the key this process holds for it ([`REFUSED_MARK`]).
    pub refused: bool,
    /// The base64 text of nonce || ciphertext.
    body: &'a [u8],
}

/// Whether `bytes` are an envelope (well formed or not): such a value must never be taken
/// for a plaintext record.
pub fn is_envelope(bytes: &[u8]) -> bool {
    bytes.starts_with(PREFIX)
}

/// A key id is shown in messages and stored in the clear, so it is kept to a plain,
/// short alphabet: that also keeps ':' (the envelope's separator) out of it.
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl<'a> Envelope<'a> {
    /// Splits an envelope into its key id and body.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, EnvelopeError> {
        let rest = bytes
            .strip_prefix(PREFIX)
            .ok_or(EnvelopeError::NotAnEnvelope)?;
        let colon = rest
            .iter()
            .position(|b| *b == b':')
            .ok_or(EnvelopeError::Malformed("no key id"))?;
        let key_id = std::str::from_utf8(&rest[..colon])
            .ok()
            .filter(|id| valid_key_id(id))
            .ok_or(EnvelopeError::Malformed("the key id is not a valid one"))?;
        let body = &rest[colon + 1..];
        let refused = body.first() == Some(&REFUSED_MARK);
        Ok(Envelope {
            key_id,
            refused,
            body: if refused { &body[1..] } else { body },
        })
    }

    /// The envelope with [`REFUSED_MARK`] before its body.
    pub fn refused_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PREFIX.len() + self.key_id.len() + 2 + self.body.len());
        out.extend_from_slice(PREFIX);
        out.extend_from_slice(self.key_id.as_bytes());
        out.push(b':');
        out.push(REFUSED_MARK);
        out.extend_from_slice(self.body);
        out
    }

    /// The plaintext, if `key` opens it for `store_key`.
    pub fn open(&self, key: &SecretKey, store_key: &str) -> Result<Vec<u8>, EnvelopeError> {
        if self.refused {
            return Err(EnvelopeError::Authentication {
                key_id: self.key_id.to_owned(),
            });
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.body)
            .map_err(|_| EnvelopeError::Malformed("the body is not base64"))?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(EnvelopeError::Malformed("too short"));
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        cipher(key)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: store_key.as_bytes(),
                },
            )
            .map_err(|_| EnvelopeError::Authentication {
                key_id: self.key_id.to_owned(),
            })
    }
}

/// Seals `plaintext` for `store_key` with `key`, naming it `key_id` in the envelope.
pub fn seal(
    key: &SecretKey,
    key_id: &str,
    store_key: &str,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| EnvelopeError::Random(e.to_string()))?;
    let ciphertext = cipher(key)
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: store_key.as_bytes(),
            },
        )
        // Encryption fails only for a message beyond the cipher's limit (256 GiB).
        .map_err(|_| EnvelopeError::Malformed("value too large to seal"))?;
    let mut raw = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&ciphertext);
    let body = base64::engine::general_purpose::STANDARD.encode(raw);
    let mut out = Vec::with_capacity(PREFIX.len() + key_id.len() + 1 + body.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(key_id.as_bytes());
    out.push(b':');
    out.extend_from_slice(body.as_bytes());
    Ok(out)
}

fn cipher(key: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        SecretKey::from_bytes([b; 32])
    }

    const K: &str = "/omtd/c/spec/credential/node1";

    #[test]
    fn round_trip_and_shape() {
        let sealed = seal(&key(1), "k1", K, b"{\"secret\":\"hunter2\"}").unwrap();
        assert!(sealed.starts_with(b"omtd:enc:v1:k1:"));
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        let env = Envelope::parse(&sealed).unwrap();
        assert_eq!(env.key_id, "k1");
        assert_eq!(env.open(&key(1), K).unwrap(), b"{\"secret\":\"hunter2\"}");
        // A fresh nonce each time: the same value never seals to the same bytes.
        assert_ne!(
            seal(&key(1), "k1", K, b"x").unwrap(),
            seal(&key(1), "k1", K, b"x").unwrap()
        );
    }

    #[test]
    fn what_does_not_open() {
        let sealed = seal(&key(1), "k1", K, b"value").unwrap();
        let auth = |r: Result<Vec<u8>, EnvelopeError>| matches!(r, Err(EnvelopeError::Authentication { ref key_id }) if key_id == "k1");
        let env = Envelope::parse(&sealed).unwrap();
        // Another key; the same value under another store key.
        assert!(auth(env.open(&key(2), K)));
        assert!(auth(env.open(&key(1), "/omtd/c/spec/credential/node2")));
        // Any flipped byte of the body.
        let body_start = b"omtd:enc:v1:k1:".len();
        for i in [body_start, body_start + 30, sealed.len() - 2] {
            let mut t = sealed.clone();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let r = Envelope::parse(&t).unwrap().open(&key(1), K);
            assert!(r.is_err(), "tampered byte {i} opened");
        }
        // Damaged envelopes say how, never "plaintext".
        let table: [(&[u8], EnvelopeError); 5] = [
            (b"{\"a\":1}", EnvelopeError::NotAnEnvelope),
            (b"omtd:enc:v1:", EnvelopeError::Malformed("no key id")),
            (
                b"omtd:enc:v1:bad id:AAAA",
                EnvelopeError::Malformed("the key id is not a valid one"),
            ),
            (
                b"omtd:enc:v1::AAAA",
                EnvelopeError::Malformed("the key id is not a valid one"),
            ),
            (
                b"omtd:enc:v1:k1:@@@",
                EnvelopeError::Malformed("the body is not base64"),
            ),
        ];
        for (bytes, want) in table {
            let got = Envelope::parse(bytes).and_then(|e| e.open(&key(1), K));
            assert_eq!(got, Err(want), "{}", String::from_utf8_lossy(bytes));
        }
        // Marked as refused: never opens, even with the right key; the mark comes off.
        let env = Envelope::parse(&sealed).unwrap();
        let marked = env.refused_bytes();
        let back = Envelope::parse(&marked).unwrap();
        assert!(back.refused && back.key_id == "k1");
        assert!(auth(back.open(&key(1), K)));
        assert_eq!(back.body, env.body);
        let short = Envelope::parse(b"omtd:enc:v1:k1:AAAA")
            .unwrap()
            .open(&key(1), K);
        assert_eq!(short, Err(EnvelopeError::Malformed("too short")));
    }

    #[test]
    fn key_ids() {
        for ok in ["k1", "omtd-20250101-ab12cd", "a.b_c"] {
            assert!(valid_key_id(ok), "{ok}");
        }
        for bad in ["", "a:b", "a b", "é", &"x".repeat(65)] {
            assert!(!valid_key_id(bad), "{bad}");
        }
    }
}
