//! Connects the configured session store and keeps watching it.
//!
//! The memory store is ready at once. Redis is connected by a background service that retries
//! until it succeeds (the gateway starts and serves routes that need no session while Redis is
//! away), then pings it every couple of seconds. Redis being away *degrades* `/readyz` (and
//! sets `portcullis_session_store_degraded`) without making the replica unready: every
//! replica shares it, and the pages, assets and cached sessions do not need it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::config::{Config, RedisConfig, RedisEndpoint, StoreKind};
use crate::dependency::DependencyCheck;

use super::cache::SessionCache;
use super::memory::MemoryStore;
use super::redis::{Endpoint, RedisOptions, RedisStore};
use super::Store;

const PING_EVERY: Duration = Duration::from_secs(2);
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The store every replica-local component shares, once it is connected.
pub struct SessionStore {
    store: OnceLock<Arc<dyn Store>>,
    up: AtomicBool,
    problem: Mutex<String>,
    degraded: prometheus::IntGauge,
}

impl SessionStore {
    pub fn new(degraded: prometheus::IntGauge) -> SessionStore {
        degraded.set(1);
        SessionStore {
            store: OnceLock::new(),
            up: AtomicBool::new(false),
            problem: Mutex::new(String::new()),
            degraded,
        }
    }

    pub fn get(&self) -> Option<&Arc<dyn Store>> {
        self.store.get()
    }

    fn set_up(&self, up: bool, problem: String) {
        self.up.store(up, Ordering::Release);
        self.degraded.set(i64::from(!up));
        if let Ok(mut p) = self.problem.lock() {
            *p = problem;
        }
    }
}

impl DependencyCheck for SessionStore {
    fn name(&self) -> &'static str {
        "session_store"
    }

    fn degrades_only(&self) -> bool {
        true
    }

    fn check(&self) -> Result<(), String> {
        if self.up.load(Ordering::Acquire) {
            return Ok(());
        }
        let problem = self.problem.lock().map(|p| p.clone()).unwrap_or_default();
        Err(if problem.is_empty() {
            "connecting".to_string()
        } else {
            problem
        })
    }
}

/// Redis connection settings from the validated config.
pub fn redis_options(c: &RedisConfig, index_ttl: Duration) -> RedisOptions {
    let mut options = match &c.endpoint {
        RedisEndpoint::Url(url) => RedisOptions::new(Endpoint::Url(url.expose().to_string())),
        RedisEndpoint::ConnectionString(cs) => {
            RedisOptions::from_stackexchange(&cs.parsed, c.cluster)
        }
        RedisEndpoint::ClusterNodes(nodes) => RedisOptions::new(Endpoint::Cluster(nodes.clone())),
    };
    if c.username.is_some() {
        options.username = c.username.clone();
    }
    if let Some(p) = &c.password {
        options.password = Some(p.expose().to_string());
    }
    options.tls |= c.tls;
    options.ca_file = c.ca_file.clone();
    options.key_prefix = c.key_prefix.clone();
    options.command_timeout = c.command_timeout;
    options.connect_timeout = c.connect_timeout;
    options.pool_size = c.pool_size;
    options.index_ttl = index_ttl;
    options
}

/// The background service that connects and watches the store.
pub struct StoreService {
    redis: Option<RedisOptions>,
    shared: Arc<SessionStore>,
    cache: Arc<SessionCache>,
}

impl StoreService {
    pub fn new(
        config: &Config,
        shared: Arc<SessionStore>,
        cache: Arc<SessionCache>,
    ) -> StoreService {
        let redis = match (config.session.store, &config.redis) {
            (StoreKind::Redis, Some(r)) => Some(redis_options(r, config.session.absolute_timeout)),
            _ => None,
        };
        StoreService {
            redis,
            shared,
            cache,
        }
    }
}

#[async_trait]
impl BackgroundService for StoreService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(options) = &self.redis else {
            let _ = self.shared.store.set(Arc::new(MemoryStore::new()));
            self.shared.set_up(true, String::new());
            return;
        };
        let store = loop {
            match RedisStore::connect(options, Some(self.cache.clone())).await {
                Ok(store) => break store,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect to Redis; retrying");
                    self.shared.set_up(false, e.to_string());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        };
        let store: Arc<dyn Store> = Arc::new(store);
        let _ = self.shared.store.set(store.clone());
        tracing::info!("connected to Redis");
        loop {
            match store.ping().await {
                Ok(()) => self.shared.set_up(true, String::new()),
                Err(e) => {
                    if self.shared.up.load(Ordering::Acquire) {
                        tracing::warn!(error = %e, "Redis stopped answering");
                    }
                    self.shared.set_up(false, e.to_string());
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(PING_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
