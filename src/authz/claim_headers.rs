//! `claim_headers`: the signed-in user's claims as request headers for a route's upstream.
//!
//! Values come from the session only. Arrays are joined with `,`; numbers and booleans are
//! written as JSON writes them; objects are not sent. A value with control characters or
//! bytes outside visible ASCII is not sent (an upstream might split or misread it) and is
//! logged. Incoming headers of these names are removed on every route (`proxy/forwarded.rs`).

use http::HeaderValue;
use serde_json::{Map, Value};

use super::rules::claim;

/// The header value for the claim at `path`, if it has one that can be sent.
pub fn value(claims: &Map<String, Value>, path: &str) -> Option<HeaderValue> {
    let text = match claim(claims, path)? {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Some(s.clone()),
                Value::Bool(_) | Value::Number(_) => Some(i.to_string()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?
            .join(","),
        Value::Object(_) | Value::Null => return None,
    };
    if !text.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        tracing::warn!(
            claim = path,
            "a claim value has control or non-ASCII characters; its header is not sent"
        );
        return None;
    }
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_joined_and_hostile_ones_are_not_sent() {
        let c = json!({
            "sub": "alice", "groups": ["a", "b"], "n": 3, "ok": true,
            "evil": "x\r\nX-Injected: 1", "name": "José", "obj": { "a": 1 }, "mixed": ["a", {"b": 1}],
        });
        let c = c.as_object().unwrap();
        let v = |p: &str| value(c, p).map(|h| h.to_str().unwrap().to_string());
        assert_eq!(v("sub").as_deref(), Some("alice"));
        assert_eq!(v("groups").as_deref(), Some("a,b"));
        assert_eq!(v("n").as_deref(), Some("3"));
        assert_eq!(v("ok").as_deref(), Some("true"));
        assert_eq!(v("evil"), None);
        assert_eq!(v("name"), None);
        assert_eq!(v("obj"), None);
        assert_eq!(v("mixed"), None);
        assert_eq!(v("missing"), None);
    }
}
