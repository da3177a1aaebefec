//! The Redis store (fred): standalone, cluster and TLS, shared by every replica.
//!
//! Keys (with `key_prefix`, default `portcullis`), where `<key>` is the session's [`StoreKey`]
//! (a keyed hash of its id: nothing here is a cookie value):
//! - `{prefix}:{<key>}:s` — the session, JSON, expiring with the session. The hash tag puts
//!   everything of one session (its refresh lock) in one cluster slot;
//! - `{prefix}:sub:{<sub>}`, `{prefix}:sid:{<sid>}` — sets of store keys, expiring after
//!   `index_ttl`; members whose session is gone are dropped when read;
//! - `{prefix}:login:{<state>}` — a logout in progress, read once with `GETDEL` (Redis ≥ 6.2).
//!
//! Every command has a timeout and the client reconnects with backoff: a Redis outage makes
//! requests that need the store fail fast with 503, and the gateway recovers by itself.
//!
//! Session reads for the per-replica cache go through a second, RESP3 client whose
//! connections have `CLIENT TRACKING` on: each node remembers what that connection read and
//! pushes an invalidation when anyone changes, deletes, expires or evicts it. [`Watcher`] turns
//! those pushes and the connection events into cache invalidations and flushes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::interfaces::{ClusterInterface, EventInterface, TrackingInterface};
use fred::prelude::{
    Builder, Client, ClientLike, Config as FredConfig, Expiration, KeysInterface, LuaInterface,
    Pool, ReconnectPolicy, ServerConfig, SetOptions, SetsInterface,
};
use fred::types::config::TlsConnector;
use fred::types::RespVersion;
use tokio::sync::broadcast::error::RecvError;

use super::cache::SessionCache;
use super::store::{Fetched, Origin, Replaced, Store, StoreError, StoredSession};
use super::StoreKey;

/// Where Redis is and how to talk to it.
#[derive(Clone)]
pub struct RedisOptions {
    pub endpoint: Endpoint,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to Redis (`rediss://` implies it).
    pub tls: bool,
    /// PEM CA certificates to trust instead of the system's (a private CA, self-signed Redis).
    pub ca_file: Option<std::path::PathBuf>,
    pub key_prefix: String,
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    pub pool_size: usize,
    /// How long the by-user and by-IdP-session indexes live after their last write; set it to
    /// the absolute session lifetime.
    pub index_ttl: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `redis://[user:pass@]host:port[/db]` or `rediss://...`.
    Url(String),
    /// One or more seed nodes of a Redis Cluster.
    Cluster(Vec<(String, u16)>),
    /// One standalone server.
    Standalone(String, u16),
}

impl RedisOptions {
    pub fn new(endpoint: Endpoint) -> Self {
        RedisOptions {
            endpoint,
            username: None,
            password: None,
            tls: false,
            ca_file: None,
            key_prefix: "portcullis".into(),
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            pool_size: 4,
            index_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// From a StackExchange.Redis connection string the configuration already read: one node
    /// is a standalone server unless `cluster`, several make a cluster.
    pub fn from_stackexchange(cs: &crate::config::StackExchange, cluster: bool) -> RedisOptions {
        let endpoint = match cs.nodes.as_slice() {
            [(host, port)] if !cluster => Endpoint::Standalone(host.clone(), *port),
            nodes => Endpoint::Cluster(nodes.to_vec()),
        };
        RedisOptions {
            username: cs.username.clone(),
            password: cs.password.clone(),
            tls: cs.ssl,
            ..RedisOptions::new(endpoint)
        }
    }

    fn fred_config(&self) -> Result<FredConfig, StoreError> {
        let mut config = match &self.endpoint {
            Endpoint::Url(url) => FredConfig::from_url(url)
                .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?,
            Endpoint::Cluster(nodes) => FredConfig {
                server: ServerConfig::new_clustered(nodes.clone()),
                ..FredConfig::default()
            },
            Endpoint::Standalone(host, port) => FredConfig {
                server: ServerConfig::new_centralized(host.clone(), *port),
                ..FredConfig::default()
            },
        };
        if self.username.is_some() {
            config.username = self.username.clone();
        }
        if self.password.is_some() {
            config.password = self.password.clone();
        }
        let url_tls = matches!(&self.endpoint, Endpoint::Url(u) if u.starts_with("rediss"));
        // `rediss://` URLs come with fred's default connector (system roots); a configured CA
        // replaces it.
        if (self.tls || url_tls) && (config.tls.is_none() || self.ca_file.is_some()) {
            let connector = match &self.ca_file {
                Some(path) => private_ca(path)?,
                None => TlsConnector::default_rustls().map_err(|e| {
                    StoreError::Unavailable(format!("cannot set up TLS to Redis: {e}"))
                })?,
            };
            config.tls = Some(connector.into());
        }
        Ok(config)
    }
}

/// A TLS connector that trusts exactly the CA certificates in `path`.
fn private_ca(path: &std::path::Path) -> Result<TlsConnector, StoreError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let problem =
        |e: String| StoreError::Unavailable(format!("redis.ca_file {}: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| problem(e.to_string()))? {
        roots
            .add(cert.map_err(|e| problem(e.to_string()))?)
            .map_err(|e| problem(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(problem("no certificate in the file".into()));
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(config))
}

/// Compare-and-set on the session's `version`, keeping its TTL. 1 written, 0 stale, -1 gone.
const REPLACE_IF_VERSION: &str = r#"
local current = redis.call('GET', KEYS[1])
if not current then return -1 end
if tostring(cjson.decode(current)['version']) ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return -1 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
return 1
"#;

const RENEW_IF_OWNER: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

const UNLOCK_IF_OWNER: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

pub struct RedisStore {
    pool: Pool,
    /// The tracking client for cached reads; `None` when the cache is off.
    tracker: Option<Client>,
    clustered: bool,
    prefix: String,
    index_ttl: Duration,
}

fn unavailable(e: fred::error::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl RedisStore {
    /// Connects (waiting at most `connect_timeout` for the first connection) and keeps
    /// reconnecting in the background afterwards. With a `cache`, session reads go through a
    /// tracking client whose invalidations keep the cache honest.
    pub async fn connect(
        options: &RedisOptions,
        cache: Option<Arc<SessionCache>>,
    ) -> Result<RedisStore, StoreError> {
        let config = options.fred_config()?;
        let clustered = config.server.is_clustered();
        let pool = builder(config.clone(), options)
            .build_pool(options.pool_size.max(1))
            .map_err(unavailable)?;
        if let Err(e) = pool.init().await {
            // Stop the pool's reconnect tasks; the caller decides when to try again.
            let _ = pool.quit().await;
            return Err(unavailable(e));
        }
        let tracker = match cache.filter(|c| c.enabled()) {
            Some(cache) => match track(config, options, cache, clustered).await {
                Ok(client) => Some(client),
                Err(e) => {
                    let _ = pool.quit().await;
                    return Err(e);
                }
            },
            None => None,
        };
        Ok(RedisStore {
            pool,
            tracker,
            clustered,
            prefix: options.key_prefix.clone(),
            index_ttl: options.index_ttl,
        })
    }

    fn session_key(&self, key: &StoreKey) -> String {
        format!("{}:{{{}}}:s", self.prefix, key.as_str())
    }

    /// Same hash tag as the session: the lock and the session live in one cluster slot.
    fn lock_key(&self, key: &StoreKey) -> String {
        format!("{}:{{{}}}:lock", self.prefix, key.as_str())
    }

    /// The node that serves `key` now, as the tracking client routes it.
    fn node_of(&self, client: &Client, key: &str) -> Option<Arc<str>> {
        if !self.clustered {
            return Some(Arc::from(STANDALONE));
        }
        let slot = fred::util::redis_keyslot(key.as_bytes());
        let state = client.cached_cluster_state()?;
        state.get_server(slot).map(|s| Arc::from(s.to_string()))
    }

    fn sub_key(&self, sub: &str) -> String {
        format!("{}:sub:{{{sub}}}", self.prefix)
    }

    fn sid_key(&self, sid: &str) -> String {
        format!("{}:sid:{{{sid}}}", self.prefix)
    }

    fn once_key(&self, key: &str) -> String {
        format!("{}:once:{{{key}}}", self.prefix)
    }

    fn login_key(&self, state: &str) -> String {
        format!("{}:login:{{{state}}}", self.prefix)
    }

    /// `SET key value NX PX ttl`: whether this call created the key.
    async fn set_if_absent(
        &self,
        key: String,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = self
            .pool
            .set(
                key,
                value,
                Some(Expiration::PX(millis(ttl))),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    async fn index(&self, key: String, id: &StoreKey) -> Result<(), StoreError> {
        self.pool
            .sadd::<(), _, _>(key.as_str(), id.as_str())
            .await
            .map_err(unavailable)?;
        self.pool
            .pexpire::<(), _>(key.as_str(), millis(self.index_ttl), None)
            .await
            .map_err(unavailable)
    }

    async fn unindex(&self, key: String, id: &StoreKey) -> Result<(), StoreError> {
        self.pool
            .srem::<(), _, _>(key, id.as_str())
            .await
            .map_err(unavailable)
    }

    /// Members of an index whose session still exists; drops the others from the index.
    async fn live_members(&self, key: String) -> Result<Vec<StoreKey>, StoreError> {
        let members: Vec<String> = self
            .pool
            .smembers(key.as_str())
            .await
            .map_err(unavailable)?;
        let mut live = Vec::with_capacity(members.len());
        for m in members {
            let Some(id) = StoreKey::parse(&m) else {
                self.pool
                    .srem::<(), _, _>(key.as_str(), m)
                    .await
                    .map_err(unavailable)?;
                continue;
            };
            let exists: u32 = self
                .pool
                .exists(self.session_key(&id))
                .await
                .map_err(unavailable)?;
            if exists > 0 {
                live.push(id);
            } else {
                self.unindex(key.clone(), &id).await?;
            }
        }
        Ok(live)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put(
        &self,
        id: &StoreKey,
        session: &StoredSession,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // Indexes first: a session that exists is always findable for revocation.
        self.index(self.sub_key(&session.sub), id).await?;
        if let Some(sid) = &session.sid {
            self.index(self.sid_key(sid), id).await?;
        }
        self.pool
            .set::<(), _, _>(
                self.session_key(id),
                json,
                Some(Expiration::PX(millis(ttl))),
                None,
                false,
            )
            .await
            .map_err(unavailable)
    }

    async fn get(&self, id: &StoreKey) -> Result<Option<StoredSession>, StoreError> {
        let json: Option<String> = self
            .pool
            .get(self.session_key(id))
            .await
            .map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn fetch(&self, key: &StoreKey) -> Result<Option<Fetched>, StoreError> {
        let name = self.session_key(key);
        // GET and PTTL in one round trip, without touching the key: a read that changed it
        // would invalidate every other replica's copy.
        let (found, origin) = match &self.tracker {
            Some(client) => {
                let before = self.node_of(client, &name);
                let pipe = client.pipeline();
                let found = read_with_ttl(&pipe, &name).await?;
                // A slot that moved meanwhile was read (and tracked) elsewhere: do not cache.
                let origin = match (before, self.node_of(client, &name)) {
                    (Some(a), Some(b)) if a == b => Origin::Node(a),
                    _ => Origin::Untracked,
                };
                (found, origin)
            }
            None => {
                let pipe = self.pool.next().pipeline();
                (read_with_ttl(&pipe, &name).await?, Origin::Untracked)
            }
        };
        let Some((json, ttl)) = found else {
            return Ok(None);
        };
        let session =
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(Fetched {
            session,
            ttl,
            origin,
        }))
    }

    async fn ttl(&self, id: &StoreKey) -> Result<Option<Duration>, StoreError> {
        let ms: i64 = self
            .pool
            .pttl(self.session_key(id))
            .await
            .map_err(unavailable)?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms.unsigned_abs())))
    }

    async fn touch(&self, id: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        let changed: u32 = self
            .pool
            .pexpire(self.session_key(id), millis(ttl), None)
            .await
            .map_err(unavailable)?;
        Ok(changed > 0)
    }

    async fn delete(&self, id: &StoreKey) -> Result<bool, StoreError> {
        let json: Option<String> = self
            .pool
            .getdel(self.session_key(id))
            .await
            .map_err(unavailable)?;
        let Some(json) = json else { return Ok(false) };
        if let Ok(session) = serde_json::from_str::<StoredSession>(&json) {
            self.unindex(self.sub_key(&session.sub), id).await?;
            if let Some(sid) = &session.sid {
                self.unindex(self.sid_key(sid), id).await?;
            }
        }
        Ok(true)
    }

    async fn replace(
        &self,
        id: &StoreKey,
        session: &StoredSession,
        expected: u64,
    ) -> Result<Replaced, StoreError> {
        let json =
            serde_json::to_string(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let outcome: i64 = self
            .pool
            .eval(
                REPLACE_IF_VERSION,
                vec![self.session_key(id)],
                vec![expected.to_string(), json],
            )
            .await
            .map_err(unavailable)?;
        Ok(match outcome {
            1 => Replaced::Done,
            0 => Replaced::Stale,
            _ => Replaced::Gone,
        })
    }

    async fn try_lock(
        &self,
        id: &StoreKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        self.set_if_absent(self.lock_key(id), owner, lease).await
    }

    async fn renew_lock(
        &self,
        id: &StoreKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .pool
            .eval(
                RENEW_IF_OWNER,
                vec![self.lock_key(id)],
                vec![owner.to_string(), millis(lease).to_string()],
            )
            .await
            .map_err(unavailable)?;
        Ok(renewed == 1)
    }

    async fn unlock(&self, id: &StoreKey, owner: &str) -> Result<(), StoreError> {
        self.pool
            .eval::<i64, _, _, _>(UNLOCK_IF_OWNER, vec![self.lock_key(id)], vec![owner])
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.set_if_absent(self.once_key(key), "1", ttl).await
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.pool
            .del::<(), _>(self.once_key(key))
            .await
            .map_err(unavailable)
    }

    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.live_members(self.sub_key(sub)).await
    }

    async fn sessions_of_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError> {
        self.live_members(self.sid_key(sid)).await
    }

    async fn put_login_state(
        &self,
        state: &str,
        data: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.pool
            .set::<(), _, _>(
                self.login_key(state),
                data.to_vec(),
                Some(Expiration::PX(millis(ttl))),
                None,
                false,
            )
            .await
            .map_err(unavailable)
    }

    async fn take_login_state(&self, state: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.pool
            .getdel(self.login_key(state))
            .await
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.ping::<()>(None).await.map_err(unavailable)
    }
}

/// How often to try turning tracking on again while it is off.
const RETRY_TRACKING: Duration = Duration::from_secs(5);

/// The node name of a standalone server (one node: any loss flushes everything).
const STANDALONE: &str = "standalone";

/// A client builder with the gateway's timeouts and reconnect policy.
fn builder(config: FredConfig, options: &RedisOptions) -> Builder {
    let (command_timeout, connect_timeout) = (options.command_timeout, options.connect_timeout);
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|p| p.default_command_timeout = command_timeout)
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            c.internal_command_timeout = connect_timeout;
            c.max_command_attempts = 2;
        })
        // Reconnect forever, from 100 ms up to 5 s between attempts.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    builder
}

async fn read_with_ttl(
    pipe: &fred::clients::Pipeline<Client>,
    name: &str,
) -> Result<Option<(String, Duration)>, StoreError> {
    let _: () = pipe.get(name).await.map_err(unavailable)?;
    let _: () = pipe.pttl(name).await.map_err(unavailable)?;
    let (json, ttl): (Option<String>, i64) = pipe.all().await.map_err(unavailable)?;
    // PTTL is -2 when the key went away between the two commands, -1 without an expiry.
    Ok(match (json, ttl) {
        (Some(json), ttl) if ttl > 0 => Some((json, Duration::from_millis(ttl.unsigned_abs()))),
        _ => None,
    })
}

/// Starts the tracking client and the task that watches it.
async fn track(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_string_makes_a_server_or_a_cluster() {
        let read = |s: &str| crate::config::parse_stackexchange(s).unwrap();
        let o =
            RedisOptions::from_stackexchange(&read("contoso:6380,password=s3cret,ssl=True"), false);
        assert_eq!(o.endpoint, Endpoint::Standalone("contoso".into(), 6380));
        assert_eq!(o.password.as_deref(), Some("s3cret"));
        assert!(o.tls);
        let o = RedisOptions::from_stackexchange(&read("a:7000,b:7001,user=app"), false);
        assert_eq!(
            o.endpoint,
            Endpoint::Cluster(vec![("a".into(), 7000), ("b".into(), 7001)])
        );
        assert_eq!(o.username.as_deref(), Some("app"));
        let o = RedisOptions::from_stackexchange(&read("one.example,ssl=true"), true);
        assert_eq!(
            o.endpoint,
            Endpoint::Cluster(vec![("one.example".into(), 6380)])
        );
    }
}
