//! Signed identity assertions (`routes[].identity_assertion`): a short-lived JWT in
//! `X-Portcullis-Assertion` that tells an upstream who the user is, verifiable with the keys at
//! `/.well-known/portcullis/jwks.json`, for upstreams that get no user token (the SPA's server,
//! legacy APIs) and should not trust the network (Pomerium's `X-Pomerium-Jwt-Assertion` is the
//! model).
//!
//! Claims: `iss` (the public origin), `aud` (the route's `identity_assertion_audience`, else its
//! cluster), `sub`, `sid`, the configured `identity_assertion.claims`, `jti`, `iat`, `exp`.
//! Signed with `jsonwebtoken` (ES256 or RS256, by the key's type) by the first configured key;
//! every configured key is published, so a new key can be added first and an old one dropped
//! after a lifetime. An assertion is reused for its session, audience and session version until
//! half its lifetime is left: the hot path signs once per session per half-lifetime.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::HeaderValue;
use jsonwebtoken::Header;
use rand::RngCore;
use serde_json::{json, Map};

pub use crate::config::keys::SigningKey;

use crate::session::{Current, StoreKey};

pub const HEADER: &str = "x-portcullis-assertion";
pub const JWKS_PATH: &str = "/.well-known/portcullis/jwks.json";

type CacheKey = (StoreKey, u64, Arc<str>);

pub struct Signer {
    keys: Vec<SigningKey>,
    issuer: String,
    lifetime: Duration,
    claims: Vec<String>,
    jwks: Bytes,
    /// (session, its version, audience) -> (assertion, unix seconds at which to sign anew).
    cache: quick_cache::sync::Cache<CacheKey, (HeaderValue, u64)>,
}

impl Signer {
    /// The signer of `[identity_assertion]`, when it has keys (parsed by the config).
    pub fn from_config(config: &crate::config::Config) -> Option<Signer> {
        let c = &config.identity_assertion;
        let issuer = config
            .server
            .public_origin
            .as_ref()
            .map_or_else(String::new, |o| o.as_str().to_string());
        Signer::new(
            c.keys.clone(),
            issuer,
            c.lifetime,
            c.claims.clone(),
            config.session.cache_size,
        )
    }

    /// `keys` in order: the first signs, all are published.
    pub fn new(
        keys: Vec<SigningKey>,
        issuer: String,
        lifetime: Duration,
        claims: Vec<String>,
        cache_size: usize,
    ) -> Option<Signer> {
        if keys.is_empty() {
            return None;
        }
        let jwks = json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() });
        Some(Signer {
            jwks: Bytes::from(jwks.to_string()),
            keys,
            issuer,
            lifetime,
            claims,
            cache: quick_cache::sync::Cache::new(cache_size.max(16)),
        })
    }

    /// The public keys, as `/.well-known/portcullis/jwks.json` serves them.
    pub fn jwks(&self) -> Bytes {
        self.jwks.clone()
    }

    /// The assertion for this session and audience: a cached one while more than half its
    /// lifetime is left, else a freshly signed one. `None` if signing fails (logged).
    pub fn assertion(&self, current: &Current, audience: &Arc<str>) -> Option<HeaderValue> {
        let now = crate::session::sessions::unix_now();
        let key = (
            current.key.clone(),
            current.record.version,
            audience.clone(),
        );
        if let Some((value, renew_at)) = self.cache.get(&key) {
            if now < renew_at {
                return Some(value);
            }
        }
        let signed = self.sign(current, audience, now)?;
        let renew_at = now + self.lifetime.as_secs() / 2;
        self.cache.insert(key, (signed.clone(), renew_at));
        Some(signed)
    }

    fn sign(&self, current: &Current, audience: &str, now: u64) -> Option<HeaderValue> {
        let signing = self.keys.first()?;
        let mut claims = Map::new();
        for name in &self.claims {
            if let Some(v) = super::rules::claim(&current.data.claims, name) {
                claims.insert(name.clone(), v.clone());
            }
        }
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        claims.insert("iss".into(), self.issuer.clone().into());
        claims.insert("aud".into(), audience.into());
        claims.insert("sub".into(), current.record.sub.clone().into());
        if let Some(sid) = &current.record.sid {
            claims.insert("sid".into(), sid.clone().into());
        }
        claims.insert("jti".into(), URL_SAFE_NO_PAD.encode(jti).into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + self.lifetime.as_secs()).into());
        let mut header = Header::new(signing.alg);
        header.kid = Some(signing.id.clone());
        match jsonwebtoken::encode(&header, &claims, &signing.key) {
            Ok(jwt) => HeaderValue::from_str(&jwt).ok(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot sign an identity assertion; the upstream gets none");
                None
            }
        }
    }
}
