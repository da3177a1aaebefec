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

/// Property tests: a logout token is whatever an attacker posts to `/bff/backchannel`. Any
/// string is judged without panicking, and a token signed with the IdP's key is accepted
/// exactly when every rule of Back-Channel Logout 1.0 holds.
#[cfg(test)]
mod props {
    use std::sync::OnceLock;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://op.example";
    const CLIENT: &str = "portcullis";
    const NOW: u64 = 1_800_000_000;

    /// The IdP's signing key (P-256: quick to make) and its JWKS.
    fn idp() -> &'static (EncodingKey, JsonWebKeySet<CoreJsonWebKey>) {
        static IDP: OnceLock<(EncodingKey, JsonWebKeySet<CoreJsonWebKey>)> = OnceLock::new();
        IDP.get_or_init(|| {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("a P-256 key");
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .expect("the key just made");
            let point = pair.public_key().as_ref();
            let jwks = json!({"keys": [{
                "kty": "EC", "crv": "P-256", "kid": "op-key", "use": "sig", "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            }]});
            (
                EncodingKey::from_ec_der(pkcs8.as_ref()),
                serde_json::from_value(jwks).expect("a JWKS"),
            )
        })
    }

    /// One claim, in a form that is right (`true`) or wrong (`false`) for a logout token.
    fn claim(good: Vec<Value>, bad: Vec<Value>) -> impl Strategy<Value = (Option<Value>, bool)> {
        // Mostly right, so that a fair share of tokens is entirely right.
        prop_oneof![
            5 => prop::sample::select(good).prop_map(|v| (Some(v), true)),
            1 => prop::sample::select(bad).prop_map(|v| (Some(v), false)),
        ]
    }

    fn optional(
        s: impl Strategy<Value = (Option<Value>, bool)>,
        missing_ok: bool,
    ) -> impl Strategy<Value = (Option<Value>, bool)> {
        prop_oneof![6 => s, 1 => Just((None, missing_ok))]
    }

    prop_compose! {
        fn claims()(
            iss in optional(claim(vec![json!(ISSUER)], vec![json!("https://evil.example"), json!(1)]), false),
            aud in optional(claim(
                vec![json!(CLIENT), json!(["other", CLIENT])],
                vec![json!("other"), json!(["other"]), json!(7)],
            ), false),
            iat in optional(claim(
                vec![json!(NOW), json!(NOW - 200), json!(NOW + 30)],
                vec![json!(NOW - 3600), json!(NOW + 600), json!("now")],
            ), false),
            exp in optional(claim(
                vec![json!(NOW + 120), json!(NOW - 30)],
                vec![json!(NOW - 600), json!("later")],
            ), false),
            events in optional(claim(
                vec![json!({ EVENT: {} })],
                vec![json!({ EVENT: "yes" }), json!({ "other": {} }), json!([])],
            ), false),
            // Only an absent nonce is right.
            nonce in prop_oneof![1 => Just((Some(json!("n")), false)), 4 => Just((None, true))],
            sub in prop::option::of(prop::sample::select(vec!["alice", "bob"])),
            sid in prop::option::of(prop::sample::select(vec!["s1", "s2"])),
            jti in optional(claim(vec![json!("j1"), json!("x".repeat(256))], vec![json!(""), json!("x".repeat(257)), json!(3)]), false),
        ) -> (Value, bool, Option<LogoutClaims>) {
            let mut c = serde_json::Map::new();
            let mut valid = sub.is_some() || sid.is_some();
            for (name, (v, ok)) in [("iss", iss), ("aud", aud), ("iat", iat), ("exp", exp),
                                    ("events", events), ("nonce", nonce), ("jti", jti)] {
                valid &= ok;
                if let Some(v) = v {
                    c.insert(name.into(), v);
                }
            }
            if let Some(s) = sub { c.insert("sub".into(), json!(s)); }
            if let Some(s) = sid { c.insert("sid".into(), json!(s)); }
            let expected = valid.then(|| LogoutClaims {
                sub: sub.map(String::from),
                sid: sid.map(String::from),
                jti: c["jti"].as_str().unwrap_or_default().to_string(),
            });
            (Value::Object(c), valid, expected)
        }
    }

    #[test]
    fn the_generator_makes_both_kinds_of_token() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut right, mut wrong) = (0, 0);
        for _ in 0..256 {
            let tree = claims().new_tree(&mut runner).expect("a value");
            if tree.current().1 {
                right += 1;
            } else {
                wrong += 1;
            }
        }
        assert!(right >= 10 && wrong >= 10, "{right} right, {wrong} wrong");
    }

    proptest! {
        #[test]
        fn signed_tokens_are_accepted_exactly_when_every_rule_holds((claims, valid, expected) in claims()) {
            let (key, jwks) = idp();
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some("op-key".into());
            header.typ = Some("logout+jwt".into());
            let token = jsonwebtoken::encode(&header, &claims, key)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let outcome = validate(&token, jwks, ISSUER, CLIENT, NOW);
            prop_assert_eq!(outcome.is_ok(), valid, "{} -> {:?}", claims, outcome);
            if let Some(expected) = expected {
                prop_assert_eq!(outcome.ok(), Some(expected));
            }
        }

        #[test]
        fn any_string_is_judged_without_panicking(
            parts in prop::collection::vec(prop_oneof!["[A-Za-z0-9_-]{0,40}", "[ -~]{0,20}"], 0..5),
            header in prop::option::of("[ -~]{0,40}"),
        ) {
            let (_, jwks) = idp();
            let mut parts = parts;
            if let Some(h) = header {
                // A readable header with any content, to get past the first decode.
                parts.insert(0, URL_SAFE_NO_PAD.encode(h));
            }
            let _ = validate(&parts.join("."), jwks, ISSUER, CLIENT, NOW);
        }
    }
}
