//! Client-side caching: the RESP3 client whose connections have `CLIENT TRACKING` on, and
//! the task that turns its invalidation pushes and connection events into cache
//! invalidations and flushes. A lost connection flushes what it tracked: the cache never
//! serves a copy nobody is watching.

use std::sync::Arc;
use std::time::Duration;

use fred::interfaces::{EventInterface, TrackingInterface};
use fred::prelude::{Client, ClientLike, Config as FredConfig};
use fred::types::RespVersion;
use tokio::sync::broadcast::error::RecvError;

use super::super::cache::SessionCache;
use super::super::store::StoreError;
use super::super::StoreKey;
use super::options::{builder, RedisOptions};
use super::unavailable;

/// How often to try turning tracking on again while it is off.
const RETRY_TRACKING: Duration = Duration::from_secs(5);

/// Starts the tracking client and the task that watches it.
pub(super) async fn track(
    mut config: FredConfig,
    options: &RedisOptions,
    cache: Arc<SessionCache>,
    clustered: bool,
) -> Result<Client, StoreError> {
    // Invalidations arrive as RESP3 push frames on the connection that read the key.
    config.version = RespVersion::RESP3;
    let mut builder = builder(config, options);
    builder.with_performance_config(|p| {
        // Invalidations are broadcast to the watcher; a burst larger than this is not lost
        // silently (the watcher sees the lag and flushes), but it costs the cache.
        p.broadcast_channel_capacity = 4096;
    });
    let client = builder.build().map_err(unavailable)?;
    let watcher = Watcher {
        invalidations: client.invalidation_rx(),
        errors: client.error_rx(),
        reconnects: client.reconnect_rx(),
        client: client.clone(),
        cache,
        prefix: format!("{}:{{", options.key_prefix),
        clustered,
        refused: false,
    };
    if let Err(e) = client.init().await {
        let _ = client.quit().await;
        return Err(unavailable(e));
    }
    tokio::spawn(watcher.run());
    Ok(client)
}

/// Turns the tracking client's pushes and connection events into cache invalidations.
struct Watcher {
    invalidations: tokio::sync::broadcast::Receiver<fred::types::client::Invalidation>,
    errors:
        tokio::sync::broadcast::Receiver<(fred::error::Error, Option<fred::types::config::Server>)>,
    reconnects: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
    client: Client,
    cache: Arc<SessionCache>,
    /// `{prefix}:{`, what every session key starts with.
    prefix: String,
    clustered: bool,
    /// Whether the last attempt to turn tracking on failed (and was logged).
    refused: bool,
}

impl Watcher {
    async fn run(mut self) {
        self.enable().await;
        loop {
            tokio::select! {
                // Invalidations first: a change must not wait behind connection bookkeeping.
                biased;
                pushed = self.invalidations.recv() => match pushed {
                    Ok(invalidation) if invalidation.keys.is_empty() => {
                        // FLUSHALL / FLUSHDB: every key is gone.
                        self.cache.flush_all();
                    }
                    Ok(invalidation) => {
                        for key in &invalidation.keys {
                            if let Some(key) = key.as_str().and_then(|k| self.session_of(k)) {
                                self.cache.invalidate(&key);
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        tracing::warn!("session cache invalidations came faster than handled; flushing the cache");
                        self.cache.flush_all();
                    }
                    Err(RecvError::Closed) => return,
                },
                event = self.errors.recv() => match event {
                    // A connection to this node broke: what it tracked is unheard of now.
                    Ok((_, Some(server))) => self.lost(Some(&server.to_string())),
                    // A (re)connection attempt failed: no tracking connection was lost by it
                    // (that came with its node), and a new one reports in when it is made.
                    Ok((_, None)) => {}
                    Err(RecvError::Lagged(_)) => {
                        self.lost(None);
                        self.enable().await;
                    }
                    Err(RecvError::Closed) => return,
                },
                event = self.reconnects.recv() => match event {
                    Ok(server) => {
                        self.lost(Some(&server.to_string()));
                        self.enable().await;
                    }
                    Err(RecvError::Lagged(_)) => {
                        self.lost(None);
                        self.enable().await;
                    }
                    Err(RecvError::Closed) => return,
                },
                // Turning tracking on failed (a node was away or slow): try again rather than
                // leave the cache off until the next reconnect happens to come.
                _ = tokio::time::sleep(RETRY_TRACKING), if self.cache.suspended() => {
                    self.enable().await;
                }
            }
        }
    }

    /// A connection went away (or came back fresh): what it tracked may have changed unseen.
    fn lost(&self, node: Option<&str>) {
        self.cache.suspend();
        match node {
            Some(node) if self.clustered => self.cache.flush_node(node),
            _ => self.cache.flush_all(),
        }
    }

    /// Turns tracking on for every connection; the cache takes new reads once it is.
    async fn enable(&mut self) {
        match self
            .client
            .start_tracking(None, false, false, false, false)
            .await
        {
            Ok(()) => {
                self.cache.resume();
                self.refused = false;
            }
            // Said once per outage, not at every retry.
            Err(e) if self.refused => tracing::debug!(error = %e, "client tracking still off"),
            Err(e) => {
                self.refused = true;
                tracing::warn!(
                    error = %e,
                    "Redis refused client tracking; sessions are read from Redis on every call until it accepts"
                );
            }
        }
    }

    /// The store key inside a session's Redis key, `{prefix}:{<key>}:s`.
    fn session_of(&self, redis_key: &str) -> Option<StoreKey> {
        let inner = redis_key.strip_prefix(&self.prefix)?.strip_suffix("}:s")?;
        StoreKey::parse(inner)
    }
}
