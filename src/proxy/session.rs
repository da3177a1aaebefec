//! Session lookup, the phase between anti-forgery and token injection: on routes whose token
//! policy wants a user, finds the request's session (this replica's cache first, the store on
//! a miss) and keeps it in the request context for the phases after it.
//!
//! A store that cannot answer is a 503 with `Retry-After`, never a 401: the session may well be
//! alive, and the browser keeps its cookie.

use std::net::IpAddr;

use http::HeaderMap;

use super::limits::{Limited, Limits};
use crate::error::GatewayError;
use crate::session::{Current, Sessions};
use crate::upstream::Route;

/// A client whose cookies keep matching no session (guessing, or a replayed dead cookie) is
/// held to `rate_limits.failed_session_lookups`: each one is a store read.
pub async fn lookup(
    sessions: &Sessions,
    limits: &Limits,
    route: &Route,
    headers: &HeaderMap,
    client: impl FnOnce() -> Option<IpAddr>,
) -> Result<Option<Current>, GatewayError> {
    if !route.token.wants_user() {
        return Ok(None);
    }
    let Some(id) = sessions.id_in(headers) else {
        note_source("no_cookie");
        return Ok(None);
    };
    // A cached session costs nothing and is never refused: the limit guards store reads, and
    // users behind one address (an office's NAT) keep working while another's dead cookies
    // use up that address's allowance.
    let id = match sessions.cached(id, true).await? {
        Ok(current) => {
            note_source("cache");
            return Ok(current);
        }
        Err(id) => id,
    };
    note_source("store");
    let client = client();
    if let Some(ip) = client {
        limits.check(Limited::FailedSessionLookup, ip)?;
    }
    let found = sessions.read_through(id, true).await?;
    if let (None, Some(ip)) = (&found, client) {
        limits.admit(Limited::FailedSessionLookup, ip)?;
    }
    Ok(found)
}

/// Where the session came from, on the lookup's span: `cache` (no store round trip),
/// `store`, or `no_cookie`.
fn note_source(source: &'static str) {
    crate::telemetry::traces::note(|| {
        opentelemetry::KeyValue::new("portcullis.session.source", source)
    });
}
