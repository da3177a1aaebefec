//! The session store contract, shared by every backend.
//!
//! A store keeps three kinds of entries, each expiring on its own:
//! - sessions, by id, holding the sealed payload plus the `sub` and `sid` they are indexed by;
//! - indexes from `sub` and from `sid` to session ids, so back-channel logout and the admin API
//!   can find every session of a user (entries may outlive their session: readers check);
//! - login states, by OAuth `state`, readable exactly once (replayed states find nothing).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::SessionId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or did not answer in time. Callers answer 503 and keep the
    /// session: a network blip must not log anyone out.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// An entry exists but cannot be decoded (written by an incompatible version, or damaged).
    #[error("session store entry is corrupt: {0}")]
    Corrupt(String),
}

/// What the store keeps for one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Subject of the ID token, for the by-user index.
    pub sub: String,
    /// The IdP's session id (`sid` claim), for back-channel logout.
    pub sid: Option<String>,
    /// Bumped on every write that changes tokens, so a stale writer can be detected.
    pub version: u64,
    /// Unix seconds of the login.
    #[serde(default)]
    pub created_at: u64,
    /// Unix seconds of the absolute timeout: no sliding goes past it.
    #[serde(default)]
    pub expires_at: u64,
    /// Sealed with the key ring (tokens and claims); opaque to the store.
    #[serde(with = "b64")]
    pub sealed: Vec<u8>,
}

/// What a conditional write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// Written: the stored version was the expected one.
    Done,
    /// Not written: someone stored a newer version first (a stale writer is refused).
    Stale,
    /// Not written: the session is gone (logged out, revoked, expired).
    Gone,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Writes the session (replacing any previous one) to expire after `ttl`, and indexes it.
    async fn put(
        &self,
        id: &SessionId,
        session: &StoredSession,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    async fn get(&self, id: &SessionId) -> Result<Option<StoredSession>, StoreError>;

    /// Reads the session and, when it exists, pushes its expiry to `ttl` from now, in one round
    /// trip where the backend allows (the hot path of every authenticated request).
    async fn get_and_touch(
        &self,
        id: &SessionId,
        ttl: Duration,
    ) -> Result<Option<StoredSession>, StoreError> {
        let found = self.get(id).await?;
        if found.is_some() {
            self.touch(id, ttl).await?;
        }
        Ok(found)
    }

    /// How long until the session expires unless used; `None` if it is gone.
    async fn ttl(&self, id: &SessionId) -> Result<Option<Duration>, StoreError>;

    /// Pushes the expiry to `ttl` from now (sliding idle timeout). `false` if it is gone.
    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<bool, StoreError>;

    /// Removes the session and its index entries. `false` if it was already gone.
    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError>;

    /// Ids of the live sessions of a user.
    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<SessionId>, StoreError>;

    /// Ids of the live sessions created under one IdP session.
    async fn sessions_of_sid(&self, sid: &str) -> Result<Vec<SessionId>, StoreError>;

    /// Replaces the session only if the stored one has version `expected` (fencing: a refresh
    /// that lost its lock cannot overwrite newer tokens). Keeps the remaining TTL.
    async fn replace(
        &self,
        id: &SessionId,
        session: &StoredSession,
        expected: u64,
    ) -> Result<Replaced, StoreError>;

    /// Takes the session's refresh lock for `lease` unless another owner holds it.
    async fn try_lock(
        &self,
        id: &SessionId,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Extends a lock this owner still holds; `false` if it was lost (expired, taken over).
    async fn renew_lock(
        &self,
        id: &SessionId,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Releases the lock if this owner still holds it.
    async fn unlock(&self, id: &SessionId, owner: &str) -> Result<(), StoreError>;

    /// Records `key` for `ttl`; `true` the first time, `false` while it is remembered (replay
    /// protection for logout tokens' `jti`).
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Keeps a login in progress under its `state`, for at most `ttl`.
    async fn put_login_state(
        &self,
        state: &str,
        data: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Returns and removes the login state in one step: the second caller gets `None`.
    async fn take_login_state(&self, state: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Whether the store answers; used by `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;
}

mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}
