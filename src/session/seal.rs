//! Encryption at rest for session payloads (tokens): AES-256-GCM with a key ring.
//!
//! The first key seals, every key opens, so keys rotate without logging anyone out: add the
//! new key in front, keep the old one until the longest session has expired, then drop it.
//! The session id is bound in as associated data, so a sealed payload copied onto another
//! session's key in the store does not open.
//!
//! Layout: `version (1) | nonce (12) | ciphertext + tag (16)`.
//!
//! Each key also yields a key for naming sessions in the store ([`KeyRing::store_keys`]): the
//! store sees HMAC-SHA256 of the session id, never the id, so a dump of it holds no cookie.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::id::{SessionId, StoreKey};

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
    /// One per key, same order: keyed hashes that name sessions in the store.
    namers: Vec<Hmac<Sha256>>,
}

/// Separates the store-naming key from the encryption key made from the same secret.
const NAMING_LABEL: &[u8] = b"portcullis session store key v1";

fn namer(key: &[u8]) -> Result<Hmac<Sha256>, SealError> {
    let mut derive =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| SealError::BadKey { index: 0 })?;
    derive.update(NAMING_LABEL);
    <Hmac<Sha256> as Mac>::new_from_slice(&derive.finalize().into_bytes())
        .map_err(|_| SealError::BadKey { index: 0 })
}

impl KeyRing {
    /// Keys as base64 of 32 random bytes (`openssl rand -base64 32`); the first one seals.
    pub fn from_base64<S: AsRef<str>>(keys: &[S]) -> Result<KeyRing, SealError> {
        let decoded = keys
            .iter()
            .enumerate()
            .map(|(index, k)| {
                STANDARD
                    .decode(k.as_ref().trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or(SealError::BadKey { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        KeyRing::from_keys(&decoded)
    }

    /// Keys already decoded (as the configuration holds them); the first one seals.
    pub fn from_keys(keys: &[[u8; 32]]) -> Result<KeyRing, SealError> {
        if keys.is_empty() {
            return Err(SealError::NoKeys);
        }
        let mut ring = KeyRing {
            keys: Vec::with_capacity(keys.len()),
            namers: Vec::with_capacity(keys.len()),
        };
        for (index, k) in keys.iter().enumerate() {
            ring.add(k).map_err(|_| SealError::BadKey { index })?;
        }
        Ok(ring)
    }

    fn add(&mut self, key: &[u8]) -> Result<(), SealError> {
        self.keys
            .push(Aes256Gcm::new_from_slice(key).map_err(|_| SealError::BadKey { index: 0 })?);
        self.namers.push(namer(key)?);
        Ok(())
    }

    /// The names the store may hold this session under: the current key's first, then the
    /// older keys' (a session keeps the name it was created with, so rotation logs nobody out).
    pub fn store_keys<'a>(&'a self, id: &'a SessionId) -> impl Iterator<Item = StoreKey> + 'a {
        (0..self.namers.len()).filter_map(move |i| self.store_key(id, i))
    }

    /// The name under the `index`th key (0 is the current one).
    pub fn store_key(&self, id: &SessionId, index: usize) -> Option<StoreKey> {
        let mut mac = self.namers.get(index)?.clone();
        mac.update(id.as_str().as_bytes());
        Some(StoreKey::from_digest(&mac.finalize().into_bytes()))
    }

    /// A ring with one fresh random key: for the memory store when no key is configured, since
    /// nothing sealed with it outlives the process anyway.
    pub fn ephemeral() -> KeyRing {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        KeyRing {
            keys: vec![Aes256Gcm::new(&key.into())],
            namers: namer(&key).into_iter().collect(),
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
    fn store_names_are_keyed_stable_and_survive_rotation() {
        let (old, new) = (key(), key());
        let id = SessionId::generate();
        let before = KeyRing::from_base64(std::slice::from_ref(&old)).unwrap();
        let name: Vec<StoreKey> = before.store_keys(&id).collect();
        assert_eq!(name.len(), 1);
        assert_eq!(name, before.store_keys(&id).collect::<Vec<_>>());
        assert!(!name[0].as_str().contains(id.as_str()));
        assert_ne!(
            name[0],
            before.store_keys(&SessionId::generate()).next().unwrap()
        );
        // After rotation the old name is still tried, after the new key's.
        let rotated = KeyRing::from_base64(&[new.clone(), old]).unwrap();
        let names: Vec<StoreKey> = rotated.store_keys(&id).collect();
        assert_eq!(names.len(), 2);
        assert_eq!(names[1], name[0]);
        assert_ne!(names[0], name[0]);
        // Without the key, the id alone does not give the name.
        let other = KeyRing::from_base64(&[new]).unwrap();
        assert_ne!(other.store_keys(&id).next().unwrap(), name[0]);
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
