//! The session lifecycle on top of a store: create at login, find (and slide) on requests,
//! update on refresh, end at logout or revocation. This is the only door to the store, so the
//! per-replica cache (`cache.rs`) sees every change this replica makes.
//!
//! Token material is sealed here, so no store ever holds it in the clear, and the store knows
//! a session only by its [`StoreKey`] (a keyed hash of the id), never by the cookie's value.
//!
//! Sliding expiry without a write per request: the store's expiry is pushed forward only once
//! a quarter of the idle window has passed since it was last pushed (ASP.NET's sliding
//! expiration does the same at half). A session therefore ends between ¾ of `idle_timeout`
//! and `idle_timeout` after its last use, never later, and `absolute_timeout` after login.
//!
//! Longer than most modules (~550 lines) because it is the one façade the rest of the program
//! uses for sessions: each operation is a few lines of cache-then-store, and splitting them
//! would scatter the invariants (versions, sliding, cache tickets) that tie them together.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::cache::{Entry, SessionCache};
use super::service::SessionStore;
use super::{cookie, KeyRing, Replaced, SessionId, Store, StoreError, StoreKey, StoredSession};
use crate::config::SessionConfig;

/// What the seal protects: the tokens and the claims they came with.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionData {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub id_token: String,
    /// Unix seconds; `None` when the IdP did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<u64>,
    /// Seconds the access token was granted for (`expires_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_lifetime: Option<u64>,
    /// The ID token's claims, with the userinfo endpoint's where the ID token has none of that
    /// name (`oidc.userinfo`): what `/bff/user` shows and rules judge.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The userinfo endpoint's claims at login, kept to merge again when a refresh replaces
    /// the ID token's.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub userinfo: serde_json::Map<String, serde_json::Value>,
    /// Tokens for other APIs (RFC 8707 resources) or scopes, by `"<resource> <scopes>"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_tokens: BTreeMap<String, ResourceToken>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ResourceToken {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<u64>,
}

/// The session of the current request: its id (the browser's credential) and the opened
/// session, shared with the cache.
#[derive(Clone)]
pub struct Current {
    pub id: SessionId,
    entry: Arc<Entry>,
}

impl Deref for Current {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        &self.entry
    }
}

impl Current {
    /// Time left before the session ends unless it is used again.
    pub fn idle_expires_in(&self) -> Duration {
        Duration::from_millis(self.idle_expires_at().saturating_sub(unix_millis()))
    }
}

/// The browser's cookie names the session; how it must be written.
#[derive(Clone)]
pub struct CookieSettings {
    pub name: String,
    pub secure: bool,
}

pub struct Sessions {
    store: Arc<SessionStore>,
    cache: Arc<SessionCache>,
    keys: KeyRing,
    idle: Duration,
    absolute: Duration,
    pub cookie: CookieSettings,
}

pub fn unix_now() -> u64 {
    unix_millis() / 1000
}

pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Sessions {
    /// With no configured keys (memory store only, enforced by config validation) a random key
    /// is made at startup: sessions end with the process anyway.
    pub fn new(
        config: &SessionConfig,
        store: Arc<SessionStore>,
        cache: Arc<SessionCache>,
    ) -> Result<Sessions, String> {
        let keys = if config.encryption_keys.is_empty() {
            KeyRing::ephemeral()
        } else {
            let keys: Vec<[u8; 32]> = config.encryption_keys.iter().map(|k| *k.bytes()).collect();
            KeyRing::from_keys(&keys).map_err(|e| format!("session.encryption_keys: {e}"))?
        };
        Ok(Sessions {
            store,
            cache,
            keys,
            idle: config.idle_timeout,
            absolute: config.absolute_timeout,
            cookie: CookieSettings {
                name: config.cookie_name.clone(),
                secure: !config.dev_insecure_cookie,
            },
        })
    }

    fn store(&self) -> Result<&Arc<dyn Store>, StoreError> {
        self.store
            .get()
            .ok_or_else(|| StoreError::Unavailable("not connected yet".into()))
    }

    /// The session id the browser sent, if it is well formed.
    pub fn id_in(&self, headers: &HeaderMap) -> Option<SessionId> {
        cookie::session_id(headers, &self.cookie.name)
    }

    /// The request's live session. `slide` extends the idle timeout (every use but a
    /// `/bff/user?slide=false` poll). Unknown, expired and undecryptable sessions are `None`.
    pub async fn find(
        &self,
        headers: &HeaderMap,
        slide: bool,
    ) -> Result<Option<Current>, StoreError> {
        match self.id_in(headers) {
            Some(id) => self.load(id, slide).await,
            None => Ok(None),
        }
    }

    /// The live session with this id (see [`find`](Self::find)): from the cache when it is
    /// there, else from the store under each name the key ring gives it.
    pub async fn load(&self, id: SessionId, slide: bool) -> Result<Option<Current>, StoreError> {
        match self.cached(id, slide).await? {
            Ok(current) => Ok(current),
            Err(id) => self.read_through(id, slide).await,
        }
    }

    /// The live session with this id if this replica's cache has it (`Ok`); `Err(id)` when
    /// only the store can tell. Every name is tried: during a key rotation a session stored
    /// under an older key's name must not cost a store read per call.
    pub async fn cached(
        &self,
        id: SessionId,
        slide: bool,
    ) -> Result<Result<Option<Current>, SessionId>, StoreError> {
        let mut index = 0;
        while let Some(key) = self.keys.store_key(&id, index) {
            if let Some(entry) = self.cache.get(&key) {
                return self.live(id, entry, slide).await.map(Ok);
            }
            index += 1;
        }
        Ok(Err(id))
    }

    /// The store's answer for a session the cache does not have (see [`cached`](Self::cached)).
    pub async fn read_through(
        &self,
        id: SessionId,
        slide: bool,
    ) -> Result<Option<Current>, StoreError> {
        self.cache.missed();
        let mut index = 0;
        while let Some(key) = self.keys.store_key(&id, index) {
            if let Some(entry) = self.read(&id, key).await? {
                return self.live(id, entry, slide).await;
            }
            index += 1;
        }
        Ok(None)
    }

    /// The session as the store holds it now, bypassing the cache (a refresh must see what
    /// other replicas wrote a moment ago); the cache takes the fresh copy.
    pub async fn reload(&self, current: &Current) -> Result<Option<Current>, StoreError> {
        match self.read(&current.id, current.key.clone()).await? {
            Some(entry) => self.live(current.id.clone(), entry, false).await,
            None => Ok(None),
        }
    }

    /// Reads and opens the session under `key`, and offers it to the cache.
    async fn read(&self, id: &SessionId, key: StoreKey) -> Result<Option<Arc<Entry>>, StoreError> {
        let store = self.store()?;
        let ticket = self.cache.ticket(&key);
        let Some(fetched) = timed(self.cache.metrics(), "read", store.fetch(&key)).await? else {
            return Ok(None);
        };
        let mut record = fetched.session;
        let data = match self
            .keys
            .open(&record.sealed, id.as_str().as_bytes())
            .ok()
            .and_then(|plain| serde_json::from_slice::<SessionData>(&plain).ok())
        {
            Some(data) => data,
            None => {
                // Sealed with a key no longer configured, or tampered with in the store.
                tracing::warn!("a session could not be opened with the configured keys; ending it");
                self.remove(&key).await;
                return Ok(None);
            }
        };
        record.sealed = Vec::new();
        let idle_expires_at = unix_millis().saturating_add(millis(fetched.ttl));
        let entry = Arc::new(Entry::new(
            key,
            record,
            data,
            fetched.origin,
            idle_expires_at,
        ));
        self.cache.fill(entry.clone(), ticket);
        Ok(Some(entry))
    }

    /// Checks both timeouts and slides the idle one when it is due.
    async fn live(
        &self,
        id: SessionId,
        entry: Arc<Entry>,
        slide: bool,
    ) -> Result<Option<Current>, StoreError> {
        let now = unix_millis();
        let absolute_end = entry.record.expires_at.saturating_mul(1000);
        if absolute_end <= now {
            // Past the absolute timeout: sliding kept the key alive, reading ends it.
            self.remove(&entry.key).await;
            return Ok(None);
        }
        let idle_end = entry.idle_expires_at();
        if idle_end <= now {
            // The store has ended it too (and will say so); no other replica slid it, or its
            // write would have invalidated this copy.
            self.cache.invalidate(&entry.key);
            return Ok(None);
        }
        let idle = millis(self.idle);
        if slide && idle_end.saturating_sub(now) < idle - idle / 4 {
            let to = now.saturating_add(idle).min(absolute_end);
            if to > idle_end && entry.push_idle_expiry(idle_end, to) {
                self.slide(entry.clone(), idle_end, to, to - now);
            }
        }
        Ok(Some(Current { id, entry }))
    }

    /// Pushes the store's expiry without holding up the request. Should it fail, the copy goes
    /// back to the expiry the store still has.
    fn slide(&self, entry: Arc<Entry>, previous: u64, pushed: u64, ttl_ms: u64) {
        let Ok(store) = self.store().cloned() else {
            return;
        };
        let cache = self.cache.clone();
        tokio::spawn(async move {
            let touched = timed(
                cache.metrics(),
                "slide",
                store.touch(&entry.key, Duration::from_millis(ttl_ms)),
            );
            match touched.await {
                Ok(true) => {}
                Ok(false) => cache.invalidate(&entry.key),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot slide a session's idle timeout");
                    entry.push_idle_expiry(pushed, previous);
                }
            }
        });
    }

    /// Stores a new session under a fresh id (never one the browser sent: no fixation).
    pub async fn create(
        &self,
        sub: String,
        sid: Option<String>,
        data: &SessionData,
    ) -> Result<SessionId, StoreError> {
        let id = SessionId::generate();
        let key = self.current_key(&id)?;
        let now = unix_now();
        let record = StoredSession {
            sub,
            sid,
            version: 1,
            created_at: now,
            expires_at: now + self.absolute.as_secs(),
            sealed: self.seal(&id, data)?,
        };
        timed(
            self.cache.metrics(),
            "create",
            self.store()?.put(&key, &record, self.idle),
        )
        .await?;
        Ok(id)
    }

    fn current_key(&self, id: &SessionId) -> Result<StoreKey, StoreError> {
        self.keys
            .store_key(id, 0)
            .ok_or_else(|| StoreError::Corrupt("no session key configured".into()))
    }

    fn seal(&self, id: &SessionId, data: &SessionData) -> Result<Vec<u8>, StoreError> {
        let plain = serde_json::to_vec(data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.keys
            .seal(&plain, id.as_str().as_bytes())
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Stores new session data (refreshed tokens) over the version `current` was read at.
    /// `Stale` means another writer was first: the caller re-reads instead of overwriting.
    pub async fn update(
        &self,
        current: &Current,
        data: &SessionData,
    ) -> Result<Replaced, StoreError> {
        let record = StoredSession {
            version: current.record.version + 1,
            sealed: self.seal(&current.id, data)?,
            ..current.record.clone()
        };
        let outcome = timed(
            self.cache.metrics(),
            "update",
            self.store()?
                .replace(&current.key, &record, current.record.version),
        )
        .await;
        self.cache.invalidate(&current.key);
        outcome
    }

    /// Ends the session the browser holds, under whichever name it is stored.
    pub async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        for key in self.keys.store_keys(id) {
            if self.delete_key(&key).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Ends a session found through an index (back-channel logout, admin API).
    pub async fn delete_key(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let deleted = timed(self.cache.metrics(), "delete", self.store()?.delete(key)).await;
        self.cache.invalidate(key);
        deleted
    }

    /// The name audit lines and the admin API give a session: a fingerprint of its store key,
    /// which leads to neither the cookie nor the store.
    pub fn fingerprint(&self, id: &SessionId) -> String {
        self.keys
            .store_key(id, 0)
            .map_or_else(String::new, |k| k.fingerprint("admin"))
    }

    /// Registers the one listener for session changes (see [`cache::Listener`]).
    pub fn on_change(&self, listener: super::cache::Listener) -> bool {
        self.cache.listen(listener)
    }

    /// Whether the store still holds the session under `key` within its absolute timeout,
    /// read from the store (its answer may be what a change notice was about).
    pub async fn is_live(&self, key: &StoreKey) -> Result<bool, StoreError> {
        Ok(
            timed(self.cache.metrics(), "check", self.store()?.fetch(key))
                .await?
                .is_some_and(|f| f.session.expires_at.saturating_mul(1000) > unix_millis()),
        )
    }

    /// Best effort, for sessions that are dead anyway (expired, unreadable).
    async fn remove(&self, key: &StoreKey) {
        if let Err(e) = self.delete_key(key).await {
            tracing::debug!(error = %e, "cannot remove a dead session");
        }
    }

    /// Every live session of a user (admin API, back-channel logout by `sub`).
    pub async fn of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.store()?.sessions_of_sub(sub).await
    }

    /// Every live session made under one IdP session (back-channel logout by `sid`).
    pub async fn of_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.store()?.sessions_of_sid(sid).await
    }

    /// What the admin API may show of a session: its record (sealed part dropped) and the
    /// time left before its idle timeout. `None` once it is gone.
    pub async fn describe(
        &self,
        key: &StoreKey,
    ) -> Result<Option<(StoredSession, Option<Duration>)>, StoreError> {
        let store = self.store()?;
        let Some(mut record) = store.get(key).await? else {
            return Ok(None);
        };
        record.sealed = Vec::new();
        Ok(Some((record, store.ttl(key).await?)))
    }

    /// Takes the session's refresh lock for `lease` unless another owner holds it.
    pub async fn try_lock(
        &self,
        key: &StoreKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.store()?.try_lock(key, owner, lease).await
    }

    /// Extends a refresh lock this owner still holds; `false` once it is lost.
    pub async fn renew_lock(
        &self,
        key: &StoreKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.store()?.renew_lock(key, owner, lease).await
    }

    pub async fn unlock(&self, key: &StoreKey, owner: &str) -> Result<(), StoreError> {
        self.store()?.unlock(key, owner).await
    }

    /// `true` the first time `key` is seen within `ttl` (logout token ids).
    pub async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.store()?.first_use(key, ttl).await
    }

    /// Undoes [`first_use`](Self::first_use) for `key`.
    pub async fn forget_use(&self, key: &str) -> Result<(), StoreError> {
        self.store()?.forget(key).await
    }

    /// Logout states are sealed too, bound to `state`.
    pub async fn put_logout_state(
        &self,
        state: &str,
        plain: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let sealed = self
            .keys
            .seal(plain, state.as_bytes())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store()?.put_login_state(state, &sealed, ttl).await
    }

    /// Single use: the state is gone from the store after this, whatever it held.
    pub async fn take_logout_state(&self, state: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(sealed) = self.store()?.take_login_state(state).await? else {
            return Ok(None);
        };
        Ok(self.keys.open(&sealed, state.as_bytes()).ok())
    }

    /// Seals `plain` for the browser to carry (the pending-login cookie), bound to `purpose`.
    pub fn seal_for_browser(&self, plain: &[u8], purpose: &str) -> Option<String> {
        use base64::Engine;
        let sealed = self.keys.seal(plain, purpose.as_bytes()).ok()?;
        Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens what [`seal_for_browser`](Self::seal_for_browser) made; `None` for anything else.
    pub fn open_from_browser(&self, value: &str, purpose: &str) -> Option<Vec<u8>> {
        use base64::Engine;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        self.keys.open(&sealed, purpose.as_bytes()).ok()
    }

    pub fn set_cookie(&self, id: &SessionId) -> String {
        cookie::set(&self.cookie.name, id, self.cookie.secure)
    }

    pub fn clear_cookie(&self) -> String {
        cookie::clear(&self.cookie.name, self.cookie.secure)
    }
}

/// Runs a store operation, timing it and counting its failure under `op` (and, in a traced
/// request, as a span of its own).
async fn timed<T>(
    metrics: &crate::metrics::SessionMetrics,
    op: &'static str,
    operation: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let outcome = crate::telemetry::traces::in_span(
        || {
            opentelemetry::trace::SpanBuilder::from_name(format!("session store {op}"))
                .with_kind(opentelemetry::trace::SpanKind::Client)
                .with_attributes([opentelemetry::KeyValue::new("db.operation.name", op)])
        },
        operation,
    )
    .await;
    metrics
        .store_duration
        .with_label_values(&[op])
        .observe(started.elapsed().as_secs_f64());
    if outcome.is_err() {
        metrics.store_errors.with_label_values(&[op]).inc();
    }
    outcome
}
