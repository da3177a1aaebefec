//! The session store contract, shared by every backend.
//!
//! A store keeps four kinds of entries, each expiring on its own:
//! - sessions, by [`StoreKey`] (a keyed hash of the id: the store never sees a cookie value),
//!   holding the sealed payload plus the `sub` and `sid` they are indexed by;
//! - indexes from `sub` and from `sid` to store keys, so back-channel logout and the admin API
//!   can find every session of a user (entries may outlive their session: readers check);
//! - logout states, by `state`, readable exactly once (replayed states find nothing);
//! - refresh locks and once-only markers (logout token ids).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreKey;

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

/// A session as read for the per-replica cache, with what keeps a cached copy honest.
#[derive(Debug)]
pub struct Fetched {
    pub session: StoredSession,
    /// Time left before the store expires it unless it is used (its idle timeout).
    pub ttl: Duration,
    pub origin: Origin,
}

/// Who will report a later change of a fetched session, so a cached copy can be dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The store lives in this process: every change to it passes through this replica.
    Local,
    /// This Redis node tracks the key for us (`CLIENT TRACKING`) and pushes an invalidation
    /// when anyone changes it; it is named so its copies can be dropped if it goes away.
    Node(Arc<str>),
    /// Nobody will report a change (tracking is off or was interrupted): do not cache it.
    Untracked,
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
        key: &StoreKey,
        session: &StoredSession,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    async fn get(&self, key: &StoreKey) -> Result<Option<StoredSession>, StoreError>;

    /// Reads the session with its remaining time, in one round trip, without changing it (a
    /// read that changed the key would invalidate every other replica's cached copy). Where the
    /// store can, the key stays tracked so a later change is reported ([`Origin`]).
    async fn fetch(&self, key: &StoreKey) -> Result<Option<Fetched>, StoreError>;

    /// How long until the session expires unless used; `None` if it is gone.
    async fn ttl(&self, key: &StoreKey) -> Result<Option<Duration>, StoreError>;

    /// Pushes the expiry to `ttl` from now (sliding idle timeout). `false` if it is gone.
    async fn touch(&self, key: &StoreKey, ttl: Duration) -> Result<bool, StoreError>;

    /// Removes the session and its index entries. `false` if it was already gone.
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError>;

    /// The live sessions of a user.
    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError>;

    /// The live sessions created under one IdP session.
    async fn sessions_of_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError>;

    /// Replaces the session only if the stored one has version `expected` (fencing: a refresh
    /// that lost its lock cannot overwrite newer tokens). Keeps the remaining TTL.
    async fn replace(
        &self,
        key: &StoreKey,
        session: &StoredSession,
        expected: u64,
    ) -> Result<Replaced, StoreError>;

    /// Takes the session's refresh lock for `lease` unless another owner holds it.
    async fn try_lock(
        &self,
        key: &StoreKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Extends a lock this owner still holds; `false` if it was lost (expired, taken over).
    async fn renew_lock(
        &self,
        key: &StoreKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Releases the lock if this owner still holds it.
    async fn unlock(&self, key: &StoreKey, owner: &str) -> Result<(), StoreError>;

    /// Records `key` for `ttl`; `true` the first time, `false` while it is remembered (replay
    /// protection for logout tokens' `jti`).
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Forgets `key`, so its next [`first_use`](Self::first_use) is first again (a logout token
    /// whose work failed must work when the IdP retries it).
    async fn forget(&self, key: &str) -> Result<(), StoreError>;

    /// Keeps a logout in progress (where to return after the IdP) under its `state`.
    async fn put_login_state(
        &self,
        state: &str,
        data: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// Returns and removes the state in one step: the second caller gets `None`.
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
