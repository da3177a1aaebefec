//! Refreshing a session's access token, once per session across the whole deployment.
//!
//! IdPs that rotate refresh tokens revoke the whole grant when a rotated token is used twice,
//! so two replicas refreshing the same session at once log the user out. The protocol:
//!
//! 1. In-process single flight: one task per session and process goes on; the others wait
//!    for it and then find fresh tokens.
//! 2. A per-session lock in the session store (`SET NX PX` in Redis), renewed while the IdP
//!    call runs; the session is re-read after taking it, since the previous holder (on any
//!    replica) has usually refreshed already.
//! 3. The new tokens are written only over the version that was read (fencing): a writer that
//!    lost its lock cannot overwrite a newer token set.
//! 4. Only the fatal OAuth errors (`invalid_grant`, ...) end the session; an unreachable IdP
//!    answers 503 and the session survives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::config::TokensConfig;
use crate::error::GatewayError;
use crate::metrics::TokenMetrics;
use crate::oidc::{same_authentication, IdentityProvider, TokenError};
use crate::session::{Current, Replaced, ResourceToken, SessionId, Sessions, StoreError, StoreKey};

use super::{fresh_token, Target};

/// How often a waiting request looks again whether the holder has finished.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the session ended")]
    Gone,
    #[error("the session has no refresh token")]
    NoRefreshToken,
    #[error("the identity provider refused the refresh token: {0}")]
    Fatal(TokenError),
    /// The IdP refused this request (scope, resource, client settings) but not the session.
    #[error("the identity provider refused this token request: {0}")]
    Refused(TokenError),
    #[error("{0}")]
    Unavailable(TokenError),
    #[error("another refresh of this session did not finish in time")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RefreshError> for GatewayError {
    fn from(e: RefreshError) -> GatewayError {
        match e {
            RefreshError::Gone | RefreshError::NoRefreshToken | RefreshError::Fatal(_) => {
                GatewayError::Unauthenticated
            }
            RefreshError::Refused(_) => GatewayError::TokenNotGranted,
            RefreshError::Unavailable(_) | RefreshError::Busy => {
                GatewayError::IdentityProviderUnavailable
            }
            RefreshError::Store(_) => GatewayError::SessionStoreUnavailable,
        }
    }
}

pub struct Refresher {
    sessions: Arc<Sessions>,
    metrics: TokenMetrics,
    skew: u64,
    lease: Duration,
    wait: Duration,
    /// This process, as a lock owner.
    owner_prefix: String,
    next_owner: AtomicU64,
    flights: Mutex<HashMap<StoreKey, Weak<tokio::sync::Mutex<()>>>>,
}

impl Refresher {
    pub fn new(config: &TokensConfig, sessions: Arc<Sessions>, metrics: TokenMetrics) -> Self {
        Refresher {
            sessions,
            metrics,
            skew: config.refresh_skew.as_secs(),
            lease: config.refresh_lock_lease,
            wait: config.refresh_wait,
            owner_prefix: SessionId::generate().as_str()[..16].to_string(),
            next_owner: AtomicU64::new(0),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The per-session in-process mutex, shared by every task refreshing that session now.
    fn flight(&self, id: &StoreKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = flights.get(id).and_then(Weak::upgrade) {
            return existing;
        }
        if flights.len() > 1024 {
            flights.retain(|_, w| w.strong_count() > 0);
        }
        let flight = Arc::new(tokio::sync::Mutex::new(()));
        flights.insert(id.clone(), Arc::downgrade(&flight));
        flight
    }

    /// A fresh access token of the session for `target`, stored under `key`.
    pub async fn refresh(
        &self,
        idp: &IdentityProvider,
        current: &Current,
        target: Target<'_>,
        key: Option<&str>,
    ) -> Result<String, RefreshError> {
        let id = &current.key;
        let flight = self.flight(id);
        let _local = flight.lock().await;
        let owner = format!(
            "{}-{}",
            self.owner_prefix,
            self.next_owner.fetch_add(1, Ordering::Relaxed)
        );
        let deadline = Instant::now() + self.wait;
        let mut waited = false;
        // From the first refusal of the lock until this refresh ends (dropped with it).
        let mut _wait_span = None;
        loop {
            if self.sessions.try_lock(id, &owner, self.lease).await? {
                let outcome = self.refresh_locked(idp, current, &owner, target, key).await;
                if let Err(e) = self.sessions.unlock(id, &owner).await {
                    tracing::warn!(error = %e, "cannot release a refresh lock; it expires with its lease");
                }
                match outcome {
                    // Someone wrote newer tokens despite the lock (our lease ran out): use theirs.
                    Ok(None) => {}
                    Ok(Some(token)) => return Ok(token),
                    Err(e) => return Err(e),
                }
            } else {
                if !waited {
                    self.metrics.lock_waits.inc();
                    waited = true;
                    _wait_span = crate::telemetry::traces::child(|| {
                        opentelemetry::trace::SpanBuilder::from_name("refresh lock wait")
                    });
                }
                // Another request (here or on another replica) is refreshing: wait for it.
                let current = self.reload(current).await?;
                if let Some(token) = fresh_token(&current, key, self.skew) {
                    return Ok(token.to_string());
                }
            }
            if Instant::now() >= deadline {
                return Err(RefreshError::Busy);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The session as stored now (not as cached: another replica may have just refreshed).
    async fn reload(&self, current: &Current) -> Result<Current, RefreshError> {
        self.sessions
            .reload(current)
            .await?
            .ok_or(RefreshError::Gone)
    }

    /// Holding the lock: re-read, refresh if still needed, write over the version read.
    /// `Ok(None)` when the write lost to a newer one (the caller reads that instead).
    async fn refresh_locked(
        &self,
        idp: &IdentityProvider,
        current: &Current,
        owner: &str,
        target: Target<'_>,
        key: Option<&str>,
    ) -> Result<Option<String>, RefreshError> {
        let current = self.reload(current).await?;
        let id = &current.key;
        if let Some(token) = fresh_token(&current, key, self.skew) {
            return Ok(Some(token.to_string()));
        }
        let refresh_token = current
            .data
            .refresh_token
            .clone()
            .ok_or(RefreshError::NoRefreshToken)?;
        let provider = idp.current().ok_or_else(|| {
            RefreshError::Unavailable(TokenError::Unavailable(
                "discovery has not succeeded".into(),
            ))
        })?;
        let started = Instant::now();
        let call = idp.timed(
            "token",
            provider.refresh(&idp.http, &refresh_token, target.resource, target.scopes),
        );
        let granted = tokio::select! {
            r = call => r,
            _ = self.keep_lease(id, owner) => unreachable_lease(),
        };
        self.metrics
            .refresh_duration
            .observe(started.elapsed().as_secs_f64());
        let granted = match granted {
            Ok(g) => g,
            Err(e) if e.is_fatal() => {
                self.metrics.refreshes.with_label_values(&["fatal"]).inc();
                tracing::info!(error = %e, "refresh token refused; ending the session");
                if let Err(del) = self.sessions.delete_key(id).await {
                    tracing::warn!(error = %del, "cannot delete the session after a fatal refresh error");
                }
                return Err(RefreshError::Fatal(e));
            }
            Err(e @ TokenError::Rejected { .. }) => {
                self.metrics.refreshes.with_label_values(&["refused"]).inc();
                tracing::warn!(error = %e, resource = target.resource.unwrap_or("-"), "the IdP refused a token for this route; check its resource and scopes");
                return Err(RefreshError::Refused(e));
            }
            Err(e) => {
                self.metrics
                    .refreshes
                    .with_label_values(&["unavailable"])
                    .inc();
                tracing::warn!(error = %e, "token refresh failed; the session is kept");
                return Err(RefreshError::Unavailable(e));
            }
        };
        let mut data = current.data.clone();
        if let Some(rotated) = granted.refresh_token {
            data.refresh_token = Some(rotated);
        }
        // OIDC Core 12.2: a new ID token replaces the session's claims (what `/bff/user`
        // shows) only if it is valid and describes the same sign-in.
        match granted
            .id_token
            .map(|t| t.and_then(|t| same_authentication(&data.claims, &t.claims).map(|()| t)))
        {
            Some(Ok(t)) => {
                data.id_token = t.raw;
                data.claims = t.claims;
                crate::authz::rules::merge(&mut data.claims, &data.userinfo);
            }
            Some(Err(why)) => {
                tracing::warn!(reason = %why, "ignoring the ID token returned by a refresh");
            }
            None => {}
        }
        match key {
            None => {
                data.access_token = granted.access_token.clone();
                data.access_expires_at = granted.expires_at;
                data.access_lifetime = granted.lifetime;
            }
            Some(r) => {
                data.resource_tokens.insert(
                    r.to_string(),
                    ResourceToken {
                        access_token: granted.access_token.clone(),
                        expires_at: granted.expires_at,
                        lifetime: granted.lifetime,
                    },
                );
            }
        }
        match self.sessions.update(&current, &data).await? {
            Replaced::Done => {
                self.metrics
                    .refreshes
                    .with_label_values(&["refreshed"])
                    .inc();
                Ok(Some(granted.access_token))
            }
            Replaced::Stale => {
                self.metrics.refreshes.with_label_values(&["stale"]).inc();
                tracing::warn!("a newer token set was stored during this refresh; using it");
                Ok(None)
            }
            Replaced::Gone => Err(RefreshError::Gone),
        }
    }

    /// Renews the lock every third of its lease for as long as the IdP call runs. Never
    /// returns: the `select!` ends when the call does.
    async fn keep_lease(&self, id: &StoreKey, owner: &str) {
        loop {
            tokio::time::sleep(self.lease / 3).await;
            match self.sessions.renew_lock(id, owner, self.lease).await {
                Ok(true) => {}
                // Lost: the fenced write still protects newer tokens; stop renewing.
                Ok(false) => {
                    tracing::warn!("refresh lock lost while the IdP call runs");
                    return std::future::pending().await;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the refresh lock"),
            }
        }
    }
}

fn unreachable_lease() -> Result<crate::oidc::GrantedToken, TokenError> {
    Err(TokenError::Unavailable("lease keeper stopped".into()))
}
