//! Server-side sessions (`[session]`): store, cookie, timeouts, keys, the per-replica cache.

use std::time::Duration;

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::{ser_duration, Secret};

/// Server-side sessions: where they live and how long.
#[derive(Debug, Clone, Serialize)]
pub struct SessionConfig {
    pub store: StoreKind,
    pub cookie_name: String,
    /// Plain-http development only: drops `Secure` (and so the `__Host-` prefix).
    pub dev_insecure_cookie: bool,
    /// Sliding: a session unused this long ends.
    #[serde(serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    /// Hard limit from login, however active the session is.
    #[serde(serialize_with = "ser_duration")]
    pub absolute_timeout: Duration,
    /// Base64 AES-256 keys; the first seals, all open.
    pub encryption_keys: Vec<SessionKey>,
    /// Opened sessions kept per replica (0: no cache, every call reads the store).
    pub cache_size: usize,
    /// How long a cached session is trusted before the store is read again, even without an
    /// invalidation (a safety net; invalidations normally arrive within milliseconds).
    #[serde(serialize_with = "ser_duration")]
    pub cache_max_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Memory,
    Redis,
}

/// Session keys that appear in this repository's demo files (`docker/compose.yaml`): accepted
/// only for a loopback origin, and then with a warning.
pub const PUBLISHED_SESSION_KEYS: &[&str] = &["q0S8pJlY0E9o1cJc3m2m4G7mQ3cGmZq1v7bS0lJcR2U="];

pub(in crate::config) fn session(s: &Section<'_, '_>) -> Option<SessionConfig> {
    let store = s
        .parsed(
            "store",
            "use \"memory\" (one replica) or \"redis\" (shared)",
            |v| match v {
                "memory" => Ok(StoreKind::Memory),
                "redis" => Ok(StoreKind::Redis),
                _ => Err(format!("{v:?} is not a session store")),
            },
        )
        .unwrap_or(StoreKind::Memory);
    let cookie_name = s.parsed(
        "cookie_name",
        "use letters, digits, '-' and '_', e.g. \"__Host-portcullis\"",
        |v| {
            if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                Ok(v.to_string())
            } else {
                Err(format!("{v:?} is not a valid cookie name"))
            }
        },
    );
    let dev_insecure_cookie = s.bool("dev_insecure_cookie").unwrap_or(false);
    let cookie_name = match cookie_name {
        Some(name)
            if dev_insecure_cookie
                && (name.starts_with("__Host-") || name.starts_with("__Secure-")) =>
        {
            s.issue(
                "cookie_name",
                format!("{name:?} has a prefix browsers only accept on Secure cookies, and dev_insecure_cookie drops Secure"),
                "use a name without __Host-/__Secure-, e.g. \"portcullis\"",
            );
            name
        }
        // Without the prefix, a sibling subdomain (or plain-http page) can plant a cookie of
        // the same name that the browser sends first (RFC 6265bis §4.1.3.2).
        Some(name) if !dev_insecure_cookie && !name.starts_with("__Host-") => {
            s.issue(
                "cookie_name",
                format!("{name:?} lacks the __Host- prefix, so another subdomain could plant a cookie of that name"),
                "use a name that starts with __Host-, e.g. \"__Host-portcullis\"",
            );
            name
        }
        Some(name) => name,
        None if dev_insecure_cookie => "portcullis".into(),
        None => "__Host-portcullis".into(),
    };
    let idle_timeout = s
        .duration("idle_timeout")
        .unwrap_or(Duration::from_secs(20 * 60));
    let absolute_timeout = s
        .duration("absolute_timeout")
        .unwrap_or(Duration::from_secs(12 * 3600));
    if idle_timeout.is_zero() {
        s.issue(
            "idle_timeout",
            "must be longer than zero",
            "use e.g. \"20m\"",
        );
    }
    if absolute_timeout < idle_timeout {
        s.issue(
            "absolute_timeout",
            "is shorter than idle_timeout",
            "make absolute_timeout at least as long as idle_timeout",
        );
    }
    let mut encryption_keys = Vec::new();
    for (i, key) in s
        .secret_list("encryption_keys", "encryption_keys_file")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match SessionKey::decode(key) {
            Some(k) => encryption_keys.push(k),
            None => s.issue(
                &format!("encryption_keys[{i}]"),
                "is not base64 of 32 bytes",
                "generate one with: openssl rand -base64 32",
            ),
        }
    }
    let cache_size = s
        .integer("cache_size", 0, 10_000_000)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(10_000);
    let cache_max_age = s
        .duration("cache_max_age")
        .unwrap_or(Duration::from_secs(300));
    if cache_max_age.is_zero() {
        s.issue(
            "cache_max_age",
            "must be longer than zero",
            "use e.g. \"5m\", or set cache_size = 0 to turn the session cache off",
        );
    }
    if store == StoreKind::Redis && encryption_keys.is_empty() {
        s.issue(
            "encryption_keys",
            "missing: sessions in Redis hold tokens and must be encrypted with keys every replica shares",
            "set encryption_keys = [\"<openssl rand -base64 32>\"] or encryption_keys_file",
        );
    }
    Some(SessionConfig {
        store,
        cookie_name,
        dev_insecure_cookie,
        idle_timeout,
        absolute_timeout,
        encryption_keys,
        cache_size,
        cache_max_age,
    })
}

/// A session encryption key: decoded once here, so nothing later can find it malformed.
/// Printed and debugged as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    text: Secret,
    bytes: [u8; 32],
}

impl SessionKey {
    /// Base64 (standard alphabet, as `openssl rand -base64 32` writes it) of 32 bytes.
    pub fn decode(text: Secret) -> Option<SessionKey> {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text.expose().trim())
            .ok()?;
        Some(SessionKey {
            bytes: decoded.try_into().ok()?,
            text,
        })
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key as configured (to recognise the demo's published key).
    pub fn expose(&self) -> &str {
        self.text.expose()
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for SessionKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.text.serialize(s)
    }
}
