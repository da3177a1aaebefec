//! OpenID Connect discovery (`/.well-known/openid-configuration`) and the IdP's signing keys.
//!
//! Runs as a background service: Portcullis starts even when the IdP is unreachable, retries
//! with backoff, and `/readyz` reports `identity_provider` not ready until discovery succeeds.
//! Afterwards it re-reads discovery and the JWKS every `oidc.discovery_refresh`, so rotated
//! signing keys are picked up; a failed refresh keeps the last good metadata.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use openidconnect::{IssuerUrl, JsonWebKeySet};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::assertion::ClientAssertion;
use super::provider::{ClientSettings, Metadata, Provider};
use crate::config::{ClientAuth, Config};
use crate::dependency::DependencyCheck;

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An unknown `kid` reloads the JWKS at most this often, so a stream of bad tokens cannot turn
/// the gateway into a load generator against the IdP.
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(10);

/// Times `call` to the IdP's `endpoint` into `metrics` and, in a traced request, makes it a
/// client span.
async fn timed_call<T, E: std::fmt::Display>(
    metrics: Option<&crate::metrics::IdpMetrics>,
    host: &str,
    endpoint: &'static str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let outcome = crate::telemetry::traces::in_span(
        || {
            opentelemetry::trace::SpanBuilder::from_name(format!("idp {endpoint}"))
                .with_kind(opentelemetry::trace::SpanKind::Client)
                .with_attributes([
                    opentelemetry::KeyValue::new("portcullis.idp.endpoint", endpoint),
                    opentelemetry::KeyValue::new("server.address", host.to_string()),
                ])
        },
        call,
    )
    .await;
    if let Some(m) = metrics {
        m.duration
            .with_label_values(&[endpoint])
            .observe(started.elapsed().as_secs_f64());
        if outcome.is_err() {
            m.errors.with_label_values(&[endpoint]).inc();
        }
    }
    outcome
}

/// What discovery found, shared with the login flow.
pub struct IdentityProvider {
    provider: ArcSwapOption<Provider>,
    settings: Arc<ClientSettings>,
    /// One client for every call to the IdP: no redirects (SSRF), bounded by `http_timeout`.
    pub http: openidconnect::reqwest::Client,
    /// The last discovery failure, shown by `/readyz` until the first success.
    problem: Mutex<String>,
    last_key_reload: tokio::sync::Mutex<Option<Instant>>,
    metrics: std::sync::OnceLock<crate::metrics::IdpMetrics>,
    /// The issuer's host, for the spans of calls to it.
    host: String,
}

impl IdentityProvider {
    /// `None` when `[oidc]` is not configured.
    pub fn from_config(config: &Config) -> Result<Option<IdentityProvider>, String> {
        let Some(oidc) = &config.oidc else {
            return Ok(None);
        };
        let origin = config
            .server
            .public_origin
            .as_ref()
            .ok_or("server.public_origin: missing (needed by [oidc])")?;
        let assertion = match (oidc.client_auth, &oidc.private_key) {
            (ClientAuth::PrivateKeyJwt, Some(key)) => Some(Arc::new(ClientAssertion::new(
                key,
                oidc.private_key_id.clone(),
                oidc.certificate.as_ref(),
                oidc.client_id.clone(),
            ))),
            _ => None,
        };
        let settings = ClientSettings {
            client_id: oidc.client_id.clone(),
            client_secret: oidc.client_secret.as_ref().map(|s| s.expose().to_string()),
            auth: oidc.client_auth,
            assertion,
            redirect_uri: format!("{}{}", origin.as_str(), oidc.callback_path),
            scopes: oidc.scopes.clone(),
            authorize_params: oidc.authorize_params.clone(),
            resources: {
                let mut r: Vec<String> = config
                    .routes
                    .iter()
                    .filter_map(|r| r.resource.clone())
                    .collect();
                r.sort();
                r.dedup();
                r
            },
        };
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(oidc.http_timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the IdP: {e}"))?;
        Ok(Some(IdentityProvider {
            provider: ArcSwapOption::empty(),
            settings: Arc::new(settings),
            http,
            problem: Mutex::new(String::new()),
            last_key_reload: tokio::sync::Mutex::new(None),
            metrics: std::sync::OnceLock::new(),
            host: url::Url::parse(&oidc.issuer)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default(),
        }))
    }

    /// Counts calls to the IdP in `metrics` from now on.
    pub fn with_metrics(self, metrics: crate::metrics::IdpMetrics) -> Self {
        let _ = self.metrics.set(metrics);
        self
    }

    /// Runs a call to the IdP's `endpoint`, timing it and counting its failure (and, in a
    /// traced request, as a client span of its own).
    pub async fn timed<T, E: std::fmt::Display>(
        &self,
        endpoint: &'static str,
        call: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        timed_call(self.metrics.get(), &self.host, endpoint, call).await
    }

    /// RFC 7009 revocation of `refresh_token`, off the request path: the caller's answer does
    /// not wait for the IdP. Timed and traced like any call; a failure is logged with `why`.
    pub fn revoke_later(&self, provider: Arc<Provider>, refresh_token: String, why: &'static str) {
        let (http, metrics, host) = (
            self.http.clone(),
            self.metrics.get().cloned(),
            self.host.clone(),
        );
        let revoke = async move {
            let call = provider.revoke_refresh_token(&http, &refresh_token);
            match timed_call(metrics.as_ref(), &host, "revocation", call).await {
                Ok(true) => tracing::debug!("refresh token revoked at the IdP ({why})"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot revoke the refresh token ({why})"),
            }
        };
        tokio::spawn(opentelemetry::trace::FutureExt::with_current_context(
            revoke,
        ));
    }

    /// The provider as last discovered; `None` until discovery first succeeds.
    pub fn current(&self) -> Option<Arc<Provider>> {
        self.provider.load_full()
    }

    fn install(&self, metadata: Metadata) -> Result<(), String> {
        let provider = Provider::new(metadata, self.settings.clone())?;
        self.provider.store(Some(Arc::new(provider)));
        Ok(())
    }

    fn record(&self, problem: Option<String>) {
        if let Ok(mut p) = self.problem.lock() {
            *p = problem.unwrap_or_default();
        }
    }

    /// Re-reads the JWKS after a token named a key we do not know (the IdP rotated its keys
    /// since the last discovery). Rate-limited; returns the provider to retry with.
    pub async fn reload_keys(&self) -> Option<Arc<Provider>> {
        let mut last = self.last_key_reload.lock().await;
        if last.is_some_and(|t| t.elapsed() < KEY_RELOAD_EVERY) {
            // Reloaded a moment ago (perhaps while this caller waited for the lock): retry with
            // those keys rather than fetching again.
            return self.current();
        }
        let current = self.current()?;
        *last = Some(Instant::now());
        let fetch = JsonWebKeySet::fetch_async(current.metadata.jwks_uri(), &self.http);
        match self.timed("jwks", fetch).await {
            Ok(jwks) => {
                let metadata = current.metadata.clone().set_jwks(jwks);
                if let Err(e) = self.install(metadata) {
                    tracing::warn!(error = %e, "cannot use the reloaded signing keys");
                    return None;
                }
                tracing::info!("reloaded the IdP's signing keys after an unknown key id");
                self.current()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the IdP's signing keys");
                None
            }
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
        if self.provider.load().is_some() {
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
    shared: Arc<IdentityProvider>,
}

impl DiscoveryService {
    pub fn new(
        issuer: &str,
        refresh: Duration,
        shared: Arc<IdentityProvider>,
    ) -> Result<DiscoveryService, String> {
        let issuer = IssuerUrl::new(issuer.to_string()).map_err(|e| format!("oidc.issuer: {e}"))?;
        Ok(DiscoveryService {
            issuer,
            refresh,
            shared,
        })
    }

    async fn discover(&self) -> Result<(), String> {
        let discover = Metadata::discover_async(self.issuer.clone(), &self.shared.http);
        let metadata = self
            .shared
            .timed("discovery", discover)
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
            })?;
        if metadata.token_endpoint().is_none() {
            return Err("the discovery document has no token_endpoint".into());
        }
        self.shared.install(metadata)
    }
}

#[async_trait]
impl BackgroundService for DiscoveryService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let first = self.shared.provider.load().is_none();
            let wait = match self.discover().await {
                Ok(()) => {
                    if first {
                        tracing::info!(issuer = %self.issuer.as_str(), "OIDC discovery succeeded");
                    }
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
