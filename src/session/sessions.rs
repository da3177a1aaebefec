//! The session lifecycle on top of a store: create at login, find (and slide) on requests,
//! end at logout. Token material is sealed here, so no store ever holds it in the clear.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::service::SessionStore;
use super::{cookie, KeyRing, Replaced, SessionId, Store, StoreError, StoredSession};
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
    /// The ID token's claims, for `/bff/user`.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Tokens for other APIs (RFC 8707 resources) or scopes, by `"<resource> <scopes>"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_tokens: BTreeMap<String, ResourceToken>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ResourceToken {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// The session of the current request.
pub struct Current {
    pub id: SessionId,
    pub record: StoredSession,
    pub data: SessionData,
    /// Unix seconds at which the session ends unless used again.
    pub idle_expires_at: u64,
}

/// The browser's cookie names the session; how it must be written.
#[derive(Clone)]
pub struct CookieSettings {
    pub name: String,
    pub secure: bool,
}

pub struct Sessions {
    store: Arc<SessionStore>,
    keys: KeyRing,
    idle: Duration,
    absolute: Duration,
    pub cookie: CookieSettings,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sessions {
    /// With no configured keys (memory store only, enforced by config validation) a random key
    /// is made at startup: sessions end with the process anyway.
    pub fn new(config: &SessionConfig, store: Arc<SessionStore>) -> Result<Sessions, String> {
        let keys = if config.encryption_keys.is_empty() {
            KeyRing::ephemeral()
        } else {
            let raw: Vec<&str> = config.encryption_keys.iter().map(|k| k.expose()).collect();
            KeyRing::from_base64(&raw).map_err(|e| format!("session.encryption_keys: {e}"))?
        };
        Ok(Sessions {
            store,
            keys,
            idle: config.idle_timeout,
            absolute: config.absolute_timeout,
            cookie: CookieSettings {
                name: config.cookie_name.clone(),
                secure: !config.dev_insecure_cookie,
            },
        })
    }

    pub fn store(&self) -> Result<&Arc<dyn Store>, StoreError> {
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

    /// The live session with this id (see [`find`](Self::find)).
    pub async fn load(&self, id: SessionId, slide: bool) -> Result<Option<Current>, StoreError> {
        let store = self.store()?;
        let record = if slide {
            store.get_and_touch(&id, self.idle).await?
        } else {
            store.get(&id).await?
        };
        let Some(record) = record else {
            return Ok(None);
        };
        let now = unix_now();
        if record.expires_at <= now {
            // Past the absolute timeout: sliding kept the key alive, reading ends it.
            let _ = store.delete(&id).await;
            return Ok(None);
        }
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
                let _ = store.delete(&id).await;
                return Ok(None);
            }
        };
        // Exact after a slide; without one it is an upper bound (the store's remaining TTL
        // would cost another round trip).
        let idle_expires_at = (now + self.idle.as_secs()).min(record.expires_at);
        Ok(Some(Current {
            id,
            record,
            data,
            idle_expires_at,
        }))
    }

    /// Stores a new session under a fresh id (never one the browser sent: no fixation).
    pub async fn create(
        &self,
        sub: String,
        sid: Option<String>,
        data: &SessionData,
    ) -> Result<SessionId, StoreError> {
        let id = SessionId::generate();
        let now = unix_now();
        let record = StoredSession {
            sub,
            sid,
            version: 1,
            created_at: now,
            expires_at: now + self.absolute.as_secs(),
            sealed: self.seal(&id, data)?,
        };
        self.store()?.put(&id, &record, self.idle).await?;
        Ok(id)
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
        self.store()?
            .replace(&current.id, &record, current.record.version)
            .await
    }

    pub async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.store()?.delete(id).await
    }

    /// Login states are sealed too (they hold the PKCE verifier and nonce), bound to `state`.
    pub async fn put_login_state(
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
    pub async fn take_login_state(&self, state: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(sealed) = self.store()?.take_login_state(state).await? else {
            return Ok(None);
        };
        Ok(self.keys.open(&sealed, state.as_bytes()).ok())
    }

    pub fn set_cookie(&self, id: &SessionId) -> String {
        cookie::set(&self.cookie.name, id, self.cookie.secure)
    }

    pub fn clear_cookie(&self) -> String {
        cookie::clear(&self.cookie.name, self.cookie.secure)
    }
}
