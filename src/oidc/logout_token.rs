//! OIDC Back-Channel Logout 1.0 §2.6: validating a `logout_token`.
//!
//! The JWS part (header, signature against the IdP's keys, `iss`, `aud`) is `jsonwebtoken`'s;
//! what makes a JWT a logout token (event, no nonce, `sid`/`sub`, `jti`, age) is checked here.
//! Every check below is a forgery or replay that gets refused.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use openidconnect::core::CoreJsonWebKey;
use openidconnect::{JsonWebKey, JsonWebKeySet};
use serde_json::Value;

pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old (`iat`) a logout token may be; also how long its `jti` is remembered.
pub const MAX_AGE_SECS: u64 = 300;
/// Clock difference tolerated between the IdP and us.
const SKEW_SECS: u64 = 60;

/// Who to log out.
#[derive(Debug, PartialEq, Eq)]
pub struct LogoutClaims {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    /// Signed with a key that is not in our copy of the JWKS: reload the keys and retry.
    #[error("signed with an unknown key")]
    UnknownKey,
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> LogoutTokenError {
    LogoutTokenError::Invalid(msg.into())
}

/// Asymmetric algorithms only: never `none`, never HMAC (which would turn the IdP's public key
/// into a shared secret anyone can sign with).
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub fn validate(
    token: &str,
    jwks: &JsonWebKeySet<CoreJsonWebKey>,
    issuer: &str,
    client_id: &str,
    now: u64,
) -> Result<LogoutClaims, LogoutTokenError> {
    // An `alg` jsonwebtoken does not know (`none`, ES512) fails here.
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| invalid(format!("not a signed JWT with an accepted algorithm: {e}")))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(invalid(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    if let Some(typ) = &header.typ {
        if !typ.eq_ignore_ascii_case("logout+jwt") && !typ.eq_ignore_ascii_case("jwt") {
            return Err(invalid(format!("typ {typ} is not a logout token")));
        }
    }
    let kid = header.kid.as_deref();
    let candidates: Vec<DecodingKey> = jwks
        .keys()
        .iter()
        .filter(|k| match kid {
            Some(kid) => k.key_id().is_some_and(|id| id.as_str() == kid),
            None => true,
        })
        .filter_map(decoding_key)
        .collect();
    if candidates.is_empty() {
        return Err(LogoutTokenError::UnknownKey);
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[client_id]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    // Times are checked below against the caller's clock, with the spec's rules.
    validation.validate_exp = false;
    let mut outcome = Err(invalid("signature does not verify"));
    for key in &candidates {
        match jsonwebtoken::decode::<Value>(token, key, &validation) {
            Ok(data) => {
                outcome = Ok(data.claims);
                break;
            }
            // Another key with the same (or no) `kid` may be the right one.
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::InvalidSignature => {}
            Err(e) => {
                outcome = Err(invalid(match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => "wrong issuer".into(),
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        "not for this client (aud)".into()
                    }
                    other => format!("{other:?}"),
                }));
                break;
            }
        }
    }
    let claims = outcome?;

    let iat = claims["iat"].as_u64().ok_or_else(|| invalid("no iat"))?;
    if iat + MAX_AGE_SECS < now || iat > now + SKEW_SECS {
        return Err(invalid("iat is not recent"));
    }
    // Required by Back-Channel Logout 1.0 (final, §2.4): a token without one never expires.
    let exp = claims["exp"].as_u64().ok_or_else(|| invalid("no exp"))?;
    if exp + SKEW_SECS < now {
        return Err(invalid("expired"));
    }
    if !claims["events"][EVENT].is_object() {
        return Err(invalid("no back-channel logout event"));
    }
    // A nonce would make it usable as an ID token; the spec forbids it.
    if !claims["nonce"].is_null() {
        return Err(invalid("has a nonce"));
    }
    let sub = claims["sub"].as_str().map(String::from);
    let sid = claims["sid"].as_str().map(String::from);
    if sub.is_none() && sid.is_none() {
        return Err(invalid("neither sub nor sid"));
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| invalid("no jti"))?
        .to_string();
    Ok(LogoutClaims { sub, sid, jti })
}

/// The IdP's key (as openidconnect keeps the JWKS) as jsonwebtoken takes it; keys it cannot
/// use (encryption keys, unknown types) are skipped.
fn decoding_key(key: &CoreJsonWebKey) -> Option<DecodingKey> {
    let jwk: Jwk = serde_json::from_value(serde_json::to_value(key).ok()?).ok()?;
    DecodingKey::from_jwk(&jwk).ok()
}
