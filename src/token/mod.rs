//! Token injection: which access token a route's upstream gets, kept fresh.
//!
//! ```text
//! route.token   session?   ->  Authorization
//! none          -          ->  (the browser's is dropped only on token routes)
//! user          yes / no   ->  the user's token / 401
//! user-or-none  yes / no   ->  the user's token / nothing
//! user-or-client yes / no  ->  the user's token / the gateway's client token
//! client        -          ->  the gateway's client-credentials token
//! ```
//!
//! The user's token is refreshed before it expires (`refresh.rs`: one refresh per session across
//! every replica); client tokens are cached and fetched one at a time (`client.rs`).

mod client;
mod refresh;

use std::sync::Arc;

use http::HeaderValue;

use crate::config::{TokenPolicy, TokensConfig};
use crate::error::GatewayError;
use crate::metrics::TokenMetrics;
use crate::oidc::IdentityProvider;
use crate::session::sessions::unix_now;
use crate::session::{Current, Sessions};
use crate::upstream::Route;

pub use self::refresh::RefreshError;

/// What token a route needs from the session: the login's, or one for another resource
/// and/or other scopes (kept in the session under [`key`](Target::key)).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub resource: Option<&'a str>,
    pub scopes: &'a [String],
}

impl Target<'_> {
    /// `None` for the login's own token.
    pub fn key(&self) -> Option<String> {
        if self.resource.is_none() && self.scopes.is_empty() {
            return None;
        }
        Some(format!(
            "{} {}",
            self.resource.unwrap_or("-"),
            self.scopes.join(" ")
        ))
    }
}

pub struct Tokens {
    idp: Option<Arc<IdentityProvider>>,
    refresh: refresh::Refresher,
    client: client::ClientTokens,
    skew: u64,
}

impl Tokens {
    pub fn new(
        config: &TokensConfig,
        sessions: Arc<Sessions>,
        idp: Option<Arc<IdentityProvider>>,
        metrics: TokenMetrics,
    ) -> Tokens {
        Tokens {
            refresh: refresh::Refresher::new(config, sessions.clone(), metrics.clone()),
            client: client::ClientTokens::new(config.refresh_skew, metrics),
            idp,
            skew: config.refresh_skew.as_secs(),
        }
    }

    /// The `Authorization` value for this request on `route`, or `None` to send none.
    /// `session` is what the session phase found (looked up only on routes that want a user).
    pub async fn authorization(
        &self,
        route: &Route,
        session: Option<&Current>,
    ) -> Result<Option<HeaderValue>, GatewayError> {
        if route.token == TokenPolicy::None {
            return Ok(None);
        }
        let Some(idp) = &self.idp else {
            return Err(GatewayError::Internal);
        };
        if let Some(current) = session.filter(|_| route.token.wants_user()) {
            return self.user_token(idp, current, route).await.map(Some);
        }
        match route.token {
            TokenPolicy::User => Err(GatewayError::Unauthenticated),
            TokenPolicy::UserOrNone | TokenPolicy::None => Ok(None),
            TokenPolicy::Client | TokenPolicy::UserOrClient => self
                .client
                .get(idp, route.resource.as_deref(), &route.scopes)
                .await
                .map(Some),
        }
    }

    async fn user_token(
        &self,
        idp: &IdentityProvider,
        current: &Current,
        route: &Route,
    ) -> Result<HeaderValue, GatewayError> {
        let target = Target {
            resource: route.resource.as_deref(),
            scopes: &route.scopes,
        };
        let key = target.key();
        if let Some(token) = fresh_token(current, key.as_deref(), self.skew) {
            // The login's own token has its header built once per cached session.
            return match (&key, &current.bearer) {
                (None, Some(header)) => Ok(header.clone()),
                _ => bearer(token),
            };
        }
        let refresh = self.refresh.refresh(idp, current, target, key.as_deref());
        let span = || opentelemetry::trace::SpanBuilder::from_name("token refresh");
        match crate::telemetry::traces::in_span(span, refresh).await {
            Ok(token) => bearer(&token),
            Err(e) => Err(e.into()),
        }
    }
}

/// The session's token under `key` (see [`Target::key`]) if it is not about to expire. A token
/// without a known expiry is used as is: the API will answer 401 when it is not valid any more.
pub(crate) fn fresh_token<'c>(
    current: &'c Current,
    key: Option<&str>,
    skew: u64,
) -> Option<&'c str> {
    let (token, expires_at, lifetime) = match key {
        None => (
            current.data.access_token.as_str(),
            current.data.access_expires_at,
            current.data.access_lifetime,
        ),
        Some(r) => {
            let t = current.data.resource_tokens.get(r)?;
            (t.access_token.as_str(), t.expires_at, t.lifetime)
        }
    };
    match expires_at {
        Some(at) if at <= unix_now() + effective_skew(skew, lifetime) => None,
        _ => Some(token),
    }
}

/// How long before expiry a token is replaced: `refresh_skew`, but never more than half the
/// token's lifetime. Tokens shorter-lived than the skew would otherwise be "about to expire" from
/// the moment they are granted, and every call would refresh.
pub(crate) fn effective_skew(skew: u64, lifetime: Option<u64>) -> u64 {
    lifetime.map_or(skew, |l| skew.min(l / 2))
}

/// Never printed by `Debug` (error lines, traces).
fn bearer(token: &str) -> Result<HeaderValue, GatewayError> {
    crate::session::cache::bearer(token).ok_or(GatewayError::IdentityProviderFailed)
}

#[cfg(test)]
mod tests {
    use super::effective_skew;

    #[test]
    fn the_skew_never_exceeds_half_a_tokens_lifetime() {
        assert_eq!(effective_skew(60, Some(3600)), 60);
        assert_eq!(effective_skew(60, Some(8)), 4);
        assert_eq!(effective_skew(60, Some(1)), 0);
        assert_eq!(effective_skew(60, None), 60);
    }
}
