//! Session ids: 256 random bits, base64url without padding (43 characters).
//!
//! The id is the only thing the browser holds, so it must be unguessable (RFC 6265bis §8.4
//! advice for session identifiers) and checked before it is used as a store key.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

const BYTES: usize = 32;
/// `ceil(32 * 4 / 3)` without padding.
pub const LEN: usize = 43;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh id from the OS-seeded CSPRNG.
    pub fn generate() -> SessionId {
        let mut bytes = [0u8; BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionId(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts exactly what [`generate`](Self::generate) makes; anything else (a tampered or
    /// truncated cookie, an injection attempt) is `None` and never reaches the store.
    pub fn parse(s: &str) -> Option<SessionId> {
        let ok = s.len() == LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == BYTES);
        ok.then(|| SessionId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, stable name for this session that does not reveal the id (which is the
    /// credential): SHA-256 over `purpose` and the id, 16 bytes, base64url. Different purposes
    /// give unrelated values.
    pub fn fingerprint(&self, purpose: &str) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(self.0.as_bytes());
        URL_SAFE_NO_PAD.encode(&h.finalize()[..16])
    }
}

/// The name a session is stored under: base64url of HMAC-SHA256(id) with a key only the
/// gateway holds (`KeyRing::store_keys`). Keys, index members and lock names in the store are
/// built from it, so nothing in the store leads back to a cookie.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(String);

impl StoreKey {
    pub(crate) fn from_digest(digest: &[u8]) -> StoreKey {
        StoreKey(URL_SAFE_NO_PAD.encode(digest))
    }

    /// Accepts exactly the shape [`from_digest`](Self::from_digest) makes (index members and
    /// invalidated keys come back from the store as text).
    pub fn parse(s: &str) -> Option<StoreKey> {
        SessionId::parse(s).map(|id| StoreKey(id.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short, stable name for this session in logs and the admin API (see
    /// [`SessionId::fingerprint`]).
    pub fn fingerprint(&self, purpose: &str) -> String {
        SessionId(self.0.clone()).fingerprint(purpose)
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({})", self.fingerprint("debug"))
    }
}

/// Compares two secrets without an early exit, so response times do not reveal how much of a
/// guess was right.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Never prints the id itself: it is a bearer credential.
impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_long_unique_and_parse_back() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), LEN);
        assert_eq!(SessionId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(format!("{a:?}"), "SessionId(***)");
    }

    #[test]
    fn rejects_anything_else() {
        let good = SessionId::generate();
        let s = good.as_str();
        assert!(SessionId::parse(&s[..42]).is_none());
        assert!(SessionId::parse(&format!("{s}A")).is_none());
        assert!(SessionId::parse(&format!("{}*", &s[..42])).is_none());
        assert!(SessionId::parse("").is_none());
        assert!(SessionId::parse(&"{".repeat(43)).is_none());
    }
}
