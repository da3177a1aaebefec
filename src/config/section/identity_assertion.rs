//! Signed identity assertions (`[identity_assertion]`): keys, lifetime, claims.

use std::time::Duration;

use serde::Serialize;

use crate::config::keys::SigningKey;
use crate::config::reader::Section;
use crate::config::ser_duration;

/// Keys and contents of signed identity assertions (`routes[].identity_assertion`).
#[derive(Debug, Clone, Serialize)]
pub struct IdentityAssertionConfig {
    /// Signing keys: the first signs, all are published at the JWKS endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<SigningKey>,
    /// How long an assertion is valid (`exp - iat`).
    #[serde(serialize_with = "ser_duration")]
    pub lifetime: Duration,
    /// Claims of the session copied into assertions (besides `sub` and `sid`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
}

pub(in crate::config) fn identity_assertion(s: &Section<'_, '_>) -> IdentityAssertionConfig {
    let mut keys: Vec<SigningKey> = Vec::new();
    for k in s.table_list("keys") {
        let id = k.string("id").filter(|i| !i.is_empty());
        if id.is_none() {
            k.issue(
                "id",
                "missing or empty",
                "name the key, e.g. id = \"2026-01\"",
            );
        }
        let key = k.secret("private_key", "private_key_file");
        if key.is_none() && !k.has("private_key") && !k.has("private_key_file") {
            k.issue(
                "private_key_file",
                "missing",
                "point it at a PEM private key: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem",
            );
        }
        let (Some(id), Some(key)) = (id, key) else {
            continue;
        };
        let parsed = match crate::config::keys::signing_key(&id, key.expose()) {
            Ok(parsed) => parsed,
            Err(e) => {
                k.issue(
                "private_key",
                e,
                "give an EC P-256 key (ES256) or an RSA key of 2048 bits or more (RS256), in PEM",
            );
                continue;
            }
        };
        if keys.iter().any(|o| o.id == id) {
            k.issue(
                "id",
                format!("{id:?} is used by another key"),
                "give every key its own id",
            );
            continue;
        }
        keys.push(parsed);
    }
    let lifetime = s.duration("lifetime").unwrap_or(Duration::from_secs(60));
    if lifetime < Duration::from_secs(10) || lifetime > Duration::from_secs(600) {
        s.issue(
            "lifetime",
            "must be between 10s and 10m",
            "use e.g. \"60s\": long enough for one call chain, short enough that a copy is useless soon",
        );
    }
    IdentityAssertionConfig {
        keys,
        lifetime,
        claims: s.strings("claims").unwrap_or_default(),
    }
}
