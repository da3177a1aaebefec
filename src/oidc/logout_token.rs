//! OIDC Back-Channel Logout 1.0 §2.6: validating a `logout_token`.
//!
//! openidconnect has no logout-token validator; the checks are spelled out here on top of its
//! JWK signature verification, so no second crypto stack is compiled. Every check below is a
//! forgery or replay that gets refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm};
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

pub fn validate(
    token: &str,
    jwks: &JsonWebKeySet<CoreJsonWebKey>,
    issuer: &str,
    client_id: &str,
    now: u64,
) -> Result<LogoutClaims, LogoutTokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a signed JWT"));
    };
    let decode = |part: &str| -> Result<Value, LogoutTokenError> {
        URL_SAFE_NO_PAD
            .decode(part)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("malformed JWT"))
    };
    let header = decode(header_b64)?;
    let claims = decode(payload_b64)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| invalid("malformed signature"))?;

    // The algorithm comes from an allow-list of asymmetric ones: never `none`, never HMAC
    // (which would turn a public key into a shared secret).
    let alg = header["alg"].as_str().unwrap_or("none");
    if !matches!(
        alg,
        "RS256"
            | "RS384"
            | "RS512"
            | "PS256"
            | "PS384"
            | "PS512"
            | "ES256"
            | "ES384"
            | "ES512"
            | "EdDSA"
    ) {
        return Err(invalid(format!("algorithm {alg} is not accepted")));
    }
    if let Some(typ) = header["typ"].as_str() {
        if !typ.eq_ignore_ascii_case("logout+jwt") && !typ.eq_ignore_ascii_case("jwt") {
            return Err(invalid(format!("typ {typ} is not a logout token")));
        }
    }
    let alg: CoreJwsSigningAlgorithm =
        serde_json::from_value(Value::String(alg.into())).map_err(|_| invalid("bad alg"))?;
    let kid = header["kid"].as_str();
    let candidates: Vec<&CoreJsonWebKey> = jwks
        .keys()
        .iter()
        .filter(|k| match kid {
            Some(kid) => k.key_id().is_some_and(|id| id.as_str() == kid),
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(LogoutTokenError::UnknownKey);
    }
    let message = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    let verified = candidates
        .iter()
        .any(|k| k.verify_signature(&alg, message, &signature).is_ok());
    if !verified {
        return Err(invalid("signature does not verify"));
    }

    if claims["iss"].as_str() != Some(issuer) {
        return Err(invalid("wrong issuer"));
    }
    let audience_ok = match &claims["aud"] {
        Value::String(a) => a == client_id,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(invalid("not for this client (aud)"));
    }
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
