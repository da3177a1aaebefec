//! Session lookup, the phase between anti-forgery and token injection: on routes whose token
//! policy wants a user, finds the request's session (this replica's cache first, the store on
//! a miss) and keeps it in the request context for the phases after it.
//!
//! A store that cannot answer is a 503 with `Retry-After`, never a 401: the session may well be
//! alive, and the browser keeps its cookie.

use http::HeaderMap;

use crate::error::GatewayError;
use crate::session::{Current, Sessions};
use crate::upstream::Route;

pub async fn lookup(
    sessions: &Sessions,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Option<Current>, GatewayError> {
    if !route.token.wants_user() {
        return Ok(None);
    }
    sessions.find(headers, true).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot read the session");
        GatewayError::SessionStoreUnavailable
    })
}
