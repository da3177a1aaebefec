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
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Map, Value};

use crate::session::{Current, StoreKey};

pub const HEADER: &str = "x-portcullis-assertion";
pub const JWKS_PATH: &str = "/.well-known/portcullis/jwks.json";

/// One signing key and its public half as a JWK.
pub struct SigningKey {
    id: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

/// Reads a PEM private key: RSA (PKCS#8 or PKCS#1, 2048 bits or more) signs RS256, an EC P-256
/// key (PKCS#8) signs ES256.
pub fn parse_key(id: &str, pem_text: &str) -> Result<SigningKey, String> {
    let rsa = rsa::RsaPrivateKey::from_pkcs8_pem(pem_text)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem_text));
    if let Ok(key) = rsa {
        if key.size() < 256 {
            return Err("is an RSA key shorter than 2048 bits".into());
        }
        let encoding = EncodingKey::from_rsa_pem(pem_text.as_bytes())
            .map_err(|e| format!("cannot sign RS256 with it: {e}"))?;
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": id,
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        });
        return Ok(SigningKey {
            id: id.to_string(),
            alg: Algorithm::RS256,
            key: encoding,
            jwk,
        });
    }
    let der = pem::parse(pem_text)
        .ok()
        .filter(|p| p.tag() == "PRIVATE KEY")
        .ok_or(
            "is neither an RSA key nor an EC P-256 key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)",
        )?;
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.contents(),
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|_| "is not an RSA key or an EC key on P-256".to_string())?;
    let point = pair.public_key().as_ref();
    let (x, y) = (point.get(1..33), point.get(33..65));
    let (Some(x), Some(y)) = (x, y) else {
        return Err("has an unexpected public key encoding".into());
    };
    Ok(SigningKey {
        id: id.to_string(),
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_der(der.contents()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": id,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }),
    })
}

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
