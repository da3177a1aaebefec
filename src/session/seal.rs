//! Encryption at rest for session payloads (tokens): AES-256-GCM with a key ring.
//!
//! The first key seals, every key opens, so keys rotate without logging anyone out: add the
//! new key in front, keep the old one until the longest session has expired, then drop it.
//! The session id is bound in as associated data, so a sealed payload copied onto another
//! session's key in the store does not open.
//!
//! Layout: `version (1) | nonce (12) | ciphertext + tag (16)`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

const VERSION: u8 = 1;
const NONCE: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("encryption key {index} is not base64 of 32 bytes")]
    BadKey { index: usize },
    #[error("no encryption key configured")]
    NoKeys,
    #[error("sealed payload is malformed")]
    Malformed,
    #[error("sealed payload does not open with any configured key")]
    NoMatchingKey,
    #[error("encryption failed")]
    Encrypt,
}

pub struct KeyRing {
    keys: Vec<Aes256Gcm>,
}

impl KeyRing {
    /// Keys as base64 of 32 random bytes (`openssl rand -base64 32`); the first one seals.
    pub fn from_base64<S: AsRef<str>>(keys: &[S]) -> Result<KeyRing, SealError> {
        if keys.is_empty() {
            return Err(SealError::NoKeys);
        }
        let keys = keys
            .iter()
            .enumerate()
            .map(|(index, k)| {
                let bytes = STANDARD
                    .decode(k.as_ref().trim())
                    .map_err(|_| SealError::BadKey { index })?;
                Aes256Gcm::new_from_slice(&bytes).map_err(|_| SealError::BadKey { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyRing { keys })
    }

    /// A ring with one fresh random key: for the memory store when no key is configured, since
    /// nothing sealed with it outlives the process anyway.
    pub fn ephemeral() -> KeyRing {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        KeyRing {
            keys: vec![Aes256Gcm::new(&key.into())],
        }
    }

    pub fn seal(&self, plaintext: &[u8], bound_to: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.keys.first().ok_or(SealError::NoKeys)?;
        let mut nonce = [0u8; NONCE];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = key
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: bound_to,
                },
            )
            .map_err(|_| SealError::Encrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], bound_to: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Malformed)?;
        if version != VERSION || rest.len() < NONCE + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE);
        self.keys
            .iter()
            .find_map(|key| {
                key.decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: bound_to,
                    },
                )
                .ok()
            })
            .ok_or(SealError::NoMatchingKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> String {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        STANDARD.encode(k)
    }

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let ring = KeyRing::from_base64(&[key()]).unwrap();
        let sealed = ring.seal(b"refresh-token-abc", b"session-1").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"refresh"));
        assert_eq!(
            ring.open(&sealed, b"session-1").unwrap(),
            b"refresh-token-abc"
        );
    }

    #[test]
    fn payload_is_bound_to_its_session() {
        let ring = KeyRing::from_base64(&[key()]).unwrap();
        let sealed = ring.seal(b"tokens", b"session-1").unwrap();
        assert_eq!(
            ring.open(&sealed, b"session-2"),
            Err(SealError::NoMatchingKey)
        );
    }

    #[test]
    fn rotation_keeps_old_payloads_readable() {
        let (old, new) = (key(), key());
        let before = KeyRing::from_base64(std::slice::from_ref(&old)).unwrap();
        let sealed = before.seal(b"tokens", b"s").unwrap();
        let rotated = KeyRing::from_base64(&[new.clone(), old]).unwrap();
        assert_eq!(rotated.open(&sealed, b"s").unwrap(), b"tokens");
        let resealed = rotated.seal(b"tokens", b"s").unwrap();
        let only_new = KeyRing::from_base64(&[new]).unwrap();
        assert_eq!(only_new.open(&resealed, b"s").unwrap(), b"tokens");
        assert_eq!(only_new.open(&sealed, b"s"), Err(SealError::NoMatchingKey));
    }

    #[test]
    fn tampering_and_bad_keys_are_errors_not_panics() {
        let ring = KeyRing::from_base64(&[key()]).unwrap();
        let mut sealed = ring.seal(b"tokens", b"s").unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(ring.open(&sealed, b"s"), Err(SealError::NoMatchingKey));
        assert_eq!(ring.open(&[], b"s"), Err(SealError::Malformed));
        assert_eq!(ring.open(&[1, 2, 3], b"s"), Err(SealError::Malformed));
        assert!(matches!(
            KeyRing::from_base64(&["short"]),
            Err(SealError::BadKey { index: 0 })
        ));
        assert!(matches!(
            KeyRing::from_base64::<String>(&[]),
            Err(SealError::NoKeys)
        ));
    }
}
