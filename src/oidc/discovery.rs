//! OpenID Connect discovery (`/.well-known/openid-configuration`) and the IdP's signing keys.
//!
//! Runs as a background service: Portcullis starts even when the IdP is unreachable, retries
//! with backoff, and `/readyz` reports `identity_provider` not ready until discovery succeeds.
//! Afterwards it re-reads discovery and the JWKS every `oidc.discovery_refresh`, so rotated
//! signing keys are picked up; a failed refresh keeps the last good metadata.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use openidconnect::core::CoreProviderMetadata;
use openidconnect::IssuerUrl;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::admin::DependencyCheck;
use crate::config::OidcConfig;

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What discovery found, shared with the login flow.
#[derive(Default)]
pub struct IdentityProvider {
    metadata: ArcSwapOption<CoreProviderMetadata>,
    /// The last discovery failure, shown by `/readyz` until the first success.
    problem: Mutex<String>,
}

impl IdentityProvider {
    pub fn metadata(&self) -> Option<Arc<CoreProviderMetadata>> {
        self.metadata.load_full()
    }

    fn record(&self, problem: Option<String>) {
        if let Ok(mut p) = self.problem.lock() {
            *p = problem.unwrap_or_default();
        }
    }
}

impl DependencyCheck for IdentityProvider {
    fn name(&self) -> &'static str {
        "identity_provider"
    }

    /// Ready once discovery has succeeded; a later failed refresh keeps the last good
    /// metadata, so it does not make the gateway unready.
    fn check(&self) -> Result<(), String> {
        if self.metadata.load().is_some() {
            return Ok(());
        }
        let problem = self.problem.lock().map(|p| p.clone()).unwrap_or_default();
        Err(if problem.is_empty() {
            "discovering".into()
        } else {
            problem
        })
    }
}

pub struct DiscoveryService {
    issuer: IssuerUrl,
    refresh: Duration,
    http: openidconnect::reqwest::Client,
    shared: Arc<IdentityProvider>,
}

impl DiscoveryService {
    pub fn new(
        config: &OidcConfig,
        shared: Arc<IdentityProvider>,
    ) -> Result<DiscoveryService, String> {
        let issuer =
            IssuerUrl::new(config.issuer.clone()).map_err(|e| format!("oidc.issuer: {e}"))?;
        // Redirects are refused: a discovery document must not send us elsewhere (SSRF).
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(config.http_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the IdP: {e}"))?;
        Ok(DiscoveryService {
            issuer,
            refresh: config.discovery_refresh,
            http,
            shared,
        })
    }

    async fn discover(&self) -> Result<CoreProviderMetadata, String> {
        CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    source = s.source();
                }
                msg
            })
    }
}

#[async_trait]
impl BackgroundService for DiscoveryService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let wait = match self.discover().await {
                Ok(metadata) => {
                    if self.shared.metadata.load().is_none() {
                        tracing::info!(issuer = %self.issuer.as_str(), "OIDC discovery succeeded");
                    }
                    self.shared.metadata.store(Some(Arc::new(metadata)));
                    self.shared.record(None);
                    backoff = Duration::from_millis(500);
                    self.refresh
                }
                Err(problem) => {
                    tracing::warn!(issuer = %self.issuer.as_str(), error = %problem, "OIDC discovery failed; retrying");
                    self.shared.record(Some(problem));
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
