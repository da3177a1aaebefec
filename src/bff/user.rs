//! `GET /bff/user`: the signed-in user as Duende-style claims, for the SPA to render.
//!
//! `[{"type":"sub","value":"..."}, ..., {"type":"bff:logout_url","value":"/bff/logout?sid=..."},
//! {"type":"bff:session_expires_in","value":1199}]`. Tokens are never part of it.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use super::logout::logout_key;
use super::{param, Bff, Reply};
use crate::error::GatewayError;

/// Protocol claims of the ID token that say nothing about the user.
const HIDDEN: &[&str] = &[
    "aud", "azp", "at_hash", "c_hash", "s_hash", "exp", "iat", "nbf", "nonce", "jti",
];

pub async fn claims(bff: &Bff, headers: &HeaderMap, query: &[(String, String)]) -> Reply {
    // `?slide=false` lets an SPA poll the session without keeping it alive.
    let slide = param(query, "slide") != Some("false");
    let current = match bff.sessions.find(headers, slide).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Reply::Error {
                error: GatewayError::Unauthenticated,
                // The browser may hold a dead session's cookie; forget it.
                cookies: bff
                    .sessions
                    .id_in(headers)
                    .map(|_| vec![bff.sessions.clear_cookie()])
                    .unwrap_or_default(),
            };
        }
        Err(e) => return GatewayError::from(e).into(),
    };
    let mut out = Vec::with_capacity(current.data.claims.len() + 2);
    for (name, value) in &current.data.claims {
        if HIDDEN.contains(&name.as_str()) {
            continue;
        }
        match value {
            // Multi-valued claims (roles, groups, amr) become one entry per value.
            Value::Array(values) => {
                out.extend(values.iter().map(|v| json!({ "type": name, "value": v })))
            }
            v => out.push(json!({ "type": name, "value": v })),
        }
    }
    let logout_url = format!(
        "/bff/logout?sid={}",
        form_urlencoded::byte_serialize(logout_key(&current).as_bytes()).collect::<String>()
    );
    out.push(json!({ "type": "bff:logout_url", "value": logout_url }));
    // Exact: the session's copy knows the expiry the store has (read with it, pushed by
    // slides, and dropped when another replica pushes it).
    out.push(json!({
        "type": "bff:session_expires_in",
        "value": current.idle_expires_in().as_secs(),
    }));
    Reply::Json {
        body: Bytes::from(Value::Array(out).to_string()),
    }
}
