//! The gateway's own client-credentials tokens, for routes with `token = "client"` (and
//! `user-or-client` without a session): cached per resource and scopes until shortly before
//! they expire, fetched one at a time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderValue;

use crate::error::GatewayError;
use crate::metrics::TokenMetrics;
use crate::oidc::IdentityProvider;
use crate::session::sessions::unix_now;

/// Used when the IdP does not say how long a client token lives.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

struct Cached {
    header: HeaderValue,
    refresh_after: Instant,
}

pub struct ClientTokens {
    cache: Mutex<HashMap<String, Cached>>,
    /// One fetch at a time: concurrent misses wait and then find the cached token.
    fetching: tokio::sync::Mutex<()>,
    skew: Duration,
    metrics: TokenMetrics,
}

impl ClientTokens {
    pub fn new(skew: Duration, metrics: TokenMetrics) -> Self {
        ClientTokens {
            cache: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
            skew,
            metrics,
        }
    }

    fn cached(&self, key: &str) -> Option<HeaderValue> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(key)
            .filter(|c| c.refresh_after > Instant::now())
            .map(|c| c.header.clone())
    }

    pub async fn get(
        &self,
        idp: &IdentityProvider,
        resource: Option<&str>,
        scopes: &[String],
    ) -> Result<HeaderValue, GatewayError> {
        let key = format!("{}|{}", resource.unwrap_or(""), scopes.join(" "));
        if let Some(header) = self.cached(&key) {
            return Ok(header);
        }
        let _one = self.fetching.lock().await;
        if let Some(header) = self.cached(&key) {
            return Ok(header);
        }
        let provider = idp
            .current()
            .ok_or(GatewayError::IdentityProviderUnavailable)?;
        let call = provider.client_credentials(&idp.http, resource, scopes);
        let granted = idp.timed("token", call).await.map_err(|e| {
            self.metrics
                .client_fetches
                .with_label_values(&["failed"])
                .inc();
            tracing::warn!(error = %e, "cannot get a client-credentials token");
            GatewayError::IdentityProviderUnavailable
        })?;
        self.metrics
            .client_fetches
            .with_label_values(&["fetched"])
            .inc();
        let lifetime = granted.expires_at.map_or(DEFAULT_LIFETIME, |at| {
            Duration::from_secs(at.saturating_sub(unix_now()))
        });
        let mut header = HeaderValue::from_str(&format!("Bearer {}", granted.access_token))
            .map_err(|_| GatewayError::IdentityProviderFailed)?;
        header.set_sensitive(true);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            key,
            Cached {
                header: header.clone(),
                refresh_after: Instant::now()
                    + lifetime.saturating_sub(Duration::from_secs(super::effective_skew(
                        self.skew.as_secs(),
                        Some(lifetime.as_secs()),
                    ))),
            },
        );
        Ok(header)
    }
}
