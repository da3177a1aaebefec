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
//! pushes an invalidation when anyone changes, deletes, expires or evicts it. `tracking.rs`
//! turns those pushes and the connection events into cache invalidations and flushes;
//! `options.rs` is where Redis is and how to connect.
//!
//! ~450 lines: the store's commands and their Lua scripts, one per `Store` operation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::interfaces::ClusterInterface;
use fred::prelude::{
    Client, ClientLike, Expiration, KeysInterface, LuaInterface, Pool, SetOptions, SetsInterface,
};

use super::cache::SessionCache;
use super::store::{Fetched, Origin, Replaced, Store, StoreError, StoredSession};
use super::StoreKey;

mod options;
mod tracking;

use self::options::builder;
pub use self::options::{Endpoint, RedisOptions};
use self::tracking::track;

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

/// The node name of a standalone server (one node: any loss flushes everything).
const STANDALONE: &str = "standalone";

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
