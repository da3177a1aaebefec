//! The per-replica cache of opened sessions: an authenticated API call whose session is here
//! costs no store round trip, no decryption and no JSON decoding.
//!
//! A cached copy is only as good as the news of its changes, so every path that changes a
//! session reaches this cache:
//! - this replica's own writes and deletes evict here directly (`Sessions` is the only door to
//!   the store);
//! - other replicas' writes, deletes, expiries and evictions arrive as Redis invalidation pushes
//!   (`CLIENT TRACKING` on the connection that read the key, see `redis.rs`), within
//!   milliseconds;
//! - when a Redis connection is lost, the copies that node was tracking are dropped (whatever
//!   it invalidated meanwhile is never re-sent), and nothing new is cached until tracking is on
//!   again ([`suspend`](SessionCache::suspend) / [`resume`](SessionCache::resume));
//! - `max_age` bounds how long any copy is trusted without reading the store again.
//!
//! A fill races with invalidations: the invalidation of a key read a moment ago may be handled
//! before the read's answer is cached. So a fill takes a [`Ticket`] before it reads, and its
//! copy is dropped again if an invalidation of that key, or a flush, came in between.
//!
//! ~410 lines with its tests; the fill/invalidation race above is easier to check in one file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use super::sessions::SessionData;
use super::store::Origin;
use super::{StoreKey, StoredSession};
use crate::metrics::SessionMetrics;

/// Invalidation counters, by a few bits of the key: enough that a busy key rarely spoils the
/// fill of another.
const STRIPES: usize = 256;

/// An opened session as the request path uses it.
pub struct Entry {
    pub key: StoreKey,
    /// What the store holds, minus the sealed bytes (opened into `data`).
    pub record: StoredSession,
    pub data: SessionData,
    /// `Authorization` for the login's own access token, built once per fill.
    pub bearer: Option<http::HeaderValue>,
    origin: Origin,
    filled: Instant,
    /// Unix milliseconds at which the store ends the session unless it is used again.
    idle_expires_at: AtomicU64,
}

impl Entry {
    pub fn new(
        key: StoreKey,
        record: StoredSession,
        data: SessionData,
        origin: Origin,
        idle_expires_at: u64,
    ) -> Entry {
        let bearer = bearer(&data.access_token);
        Entry {
            key,
            record,
            data,
            bearer,
            origin,
            filled: Instant::now(),
            idle_expires_at: AtomicU64::new(idle_expires_at),
        }
    }

    pub fn idle_expires_at(&self) -> u64 {
        self.idle_expires_at.load(Ordering::Acquire)
    }

    /// Moves the idle expiry from `seen` to `to`; `false` if another request did it first (so
    /// one request per slide writes to the store).
    pub fn push_idle_expiry(&self, seen: u64, to: u64) -> bool {
        self.idle_expires_at
            .compare_exchange(seen, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// `Bearer <token>`, marked sensitive so `Debug` never prints it.
pub fn bearer(token: &str) -> Option<http::HeaderValue> {
    let mut value = String::with_capacity(7 + token.len());
    value.push_str("Bearer ");
    value.push_str(token);
    let mut header = http::HeaderValue::from_str(&value).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// Taken before a store read; the read's answer is cached only if nothing invalidated it since.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    stripe: u64,
    generation: u64,
}

#[derive(Clone)]
struct Evictions(prometheus::IntCounter);

impl Lifecycle<StoreKey, Arc<Entry>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: StoreKey, _val: Arc<Entry>) {
        self.0.inc();
    }
}

type Map = Cache<StoreKey, Arc<Entry>, UnitWeighter, DefaultHashBuilder, Evictions>;

/// What a [`Listener`] hears: one session changed or ended, or copies were dropped without
/// knowing which sessions changed (a lost connection, a lagging listener).
pub enum Change<'a> {
    Key(&'a StoreKey),
    Unknown,
}

/// Told of every change the cache learns of, whether or not it held a copy (long-lived
/// connections opened with a session use it to notice the session ending).
pub type Listener = Box<dyn Fn(Change<'_>) + Send + Sync>;

pub struct SessionCache {
    /// `None` when `session.cache_size = 0`: every lookup reads the store.
    map: Option<Map>,
    stripes: Box<[AtomicU64]>,
    /// Bumped by 2 on every flush; odd while fills are suspended (tracking is off).
    generation: AtomicU64,
    max_age: Duration,
    metrics: SessionMetrics,
    listener: OnceLock<Listener>,
}

impl SessionCache {
    /// At most `size` sessions, each trusted for at most `max_age`. Fills start suspended when
    /// `tracked` is true: the store's tracking must report in first ([`resume`](Self::resume)).
    pub fn new(size: usize, max_age: Duration, tracked: bool, metrics: SessionMetrics) -> Self {
        let map = (size > 0).then(|| {
            Cache::with(
                size,
                u64::try_from(size).unwrap_or(u64::MAX),
                UnitWeighter,
                DefaultHashBuilder::default(),
                Evictions(metrics.cache_evictions.clone()),
            )
        });
        SessionCache {
            map,
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(u64::from(tracked)),
            max_age,
            metrics,
            listener: OnceLock::new(),
        }
    }

    /// Sets the one listener; `false` when there is one already.
    pub fn listen(&self, listener: Listener) -> bool {
        self.listener.set(listener).is_ok()
    }

    fn tell(&self, change: Change<'_>) {
        if let Some(listener) = self.listener.get() {
            listener(change);
        }
    }

    /// The session tier's metrics (the store's timings are counted by `Sessions`).
    pub fn metrics(&self) -> &SessionMetrics {
        &self.metrics
    }

    pub fn enabled(&self) -> bool {
        self.map.is_some()
    }

    /// The cached session under `key`, if it is there and young enough.
    pub fn get(&self, key: &StoreKey) -> Option<Arc<Entry>> {
        let map = self.map.as_ref()?;
        match map.get(key) {
            Some(entry) if entry.filled.elapsed() < self.max_age => {
                self.metrics.cache_hits.inc();
                Some(entry)
            }
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Counted where a lookup goes to the store instead.
    pub fn missed(&self) {
        self.metrics.cache_misses.inc();
    }

    pub fn ticket(&self, key: &StoreKey) -> Ticket {
        Ticket {
            stripe: self.stripe(key).load(Ordering::SeqCst),
            generation: self.generation.load(Ordering::SeqCst),
        }
    }

    /// Caches what a read under `ticket` found, unless it is untracked or went stale meanwhile.
    pub fn fill(&self, entry: Arc<Entry>, ticket: Ticket) {
        let Some(map) = &self.map else { return };
        if ticket.generation % 2 == 1 || entry.origin == Origin::Untracked {
            return;
        }
        let key = entry.key.clone();
        map.insert(key.clone(), entry);
        // Checked after inserting: an invalidation between the read and the insert has bumped
        // a counter by now, and one after the insert has removed the entry itself.
        if self.stripe(&key).load(Ordering::SeqCst) != ticket.stripe
            || self.generation.load(Ordering::SeqCst) != ticket.generation
        {
            map.remove(&key);
        }
        self.metrics.cache_entries.set(len(map));
    }

    /// The session under `key` changed or ended (here, or reported by the store).
    pub fn invalidate(&self, key: &StoreKey) {
        self.stripe(key).fetch_add(1, Ordering::SeqCst);
        self.tell(Change::Key(key));
        if let Some(map) = &self.map {
            if map.remove(key).is_some() {
                self.metrics
                    .cache_invalidations
                    .with_label_values(&["changed"])
                    .inc();
                self.metrics.cache_entries.set(len(map));
            }
        }
    }

    /// Drops every copy that `node` was tracking: its connection was lost.
    pub fn flush_node(&self, node: &str) {
        self.generation.fetch_add(2, Ordering::SeqCst);
        self.flush_where(|e| matches!(&e.origin, Origin::Node(n) if &**n == node));
    }

    /// Drops everything (invalidations may have been missed, e.g. a lagging listener).
    pub fn flush_all(&self) {
        self.generation.fetch_add(2, Ordering::SeqCst);
        self.flush_where(|_| true);
    }

    fn flush_where(&self, drop: impl Fn(&Entry) -> bool) {
        self.tell(Change::Unknown);
        let Some(map) = &self.map else { return };
        let before = map.len();
        map.retain(|_, e| !drop(e));
        let dropped = before.saturating_sub(map.len());
        self.metrics
            .cache_invalidations
            .with_label_values(&["flushed"])
            .inc_by(u64::try_from(dropped).unwrap_or(0));
        self.metrics.cache_entries.set(len(map));
    }

    /// Stops caching new reads (copies already held stay): tracking is off or reconnecting.
    pub fn suspend(&self) {
        let _ = self
            .generation
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |g| {
                (g % 2 == 0).then_some(g + 1)
            });
    }

    /// Caches reads again: every connection tracks what it reads.
    pub fn resume(&self) {
        let _ = self
            .generation
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |g| {
                (g % 2 == 1).then_some(g + 1)
            });
    }

    pub fn suspended(&self) -> bool {
        self.generation.load(Ordering::SeqCst) % 2 == 1
    }

    fn stripe(&self, key: &StoreKey) -> &AtomicU64 {
        // Keys are base64 of an HMAC: any two bytes are uniformly spread.
        let b = key.as_str().as_bytes();
        let i = usize::from(b.first().copied().unwrap_or(0)) * 31
            + usize::from(b.get(1).copied().unwrap_or(0));
        &self.stripes[i % STRIPES]
    }
}

fn len(map: &Map) -> i64 {
    i64::try_from(map.len()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn key(n: u8) -> StoreKey {
        StoreKey::from_digest(&[n; 32])
    }

    fn entry(k: &StoreKey, origin: Origin) -> Arc<Entry> {
        let record = StoredSession {
            sub: "alice".into(),
            sid: None,
            version: 1,
            created_at: 0,
            expires_at: u64::MAX / 2,
            sealed: Vec::new(),
        };
        let data = SessionData {
            access_token: "at".into(),
            refresh_token: None,
            id_token: "it".into(),
            access_expires_at: None,
            access_lifetime: None,
            claims: Default::default(),
            userinfo: Default::default(),
            resource_tokens: Default::default(),
        };
        Arc::new(Entry::new(k.clone(), record, data, origin, u64::MAX / 2))
    }

    fn cache(tracked: bool) -> SessionCache {
        let metrics = Metrics::new().unwrap().sessions;
        SessionCache::new(100, Duration::from_secs(60), tracked, metrics)
    }

    fn node(name: &str) -> Origin {
        Origin::Node(name.into())
    }

    #[test]
    fn an_invalidation_during_the_read_keeps_the_stale_answer_out() {
        let c = cache(false);
        let k = key(1);
        let ticket = c.ticket(&k);
        // The store reported a change while our read was on the wire.
        c.invalidate(&k);
        c.fill(entry(&k, Origin::Local), ticket);
        assert!(c.get(&k).is_none());
        // A read that started after the change is cached.
        let ticket = c.ticket(&k);
        c.fill(entry(&k, Origin::Local), ticket);
        assert!(c.get(&k).is_some());
        c.invalidate(&k);
        assert!(c.get(&k).is_none());
    }

    #[test]
    fn nothing_is_cached_while_tracking_is_off_and_untracked_reads_never_are() {
        let c = cache(true);
        let k = key(2);
        c.fill(entry(&k, node("a:1")), c.ticket(&k));
        assert!(c.get(&k).is_none(), "tracking has not reported in yet");
        c.resume();
        c.fill(entry(&k, Origin::Untracked), c.ticket(&k));
        assert!(c.get(&k).is_none());
        c.fill(entry(&k, node("a:1")), c.ticket(&k));
        assert!(c.get(&k).is_some());
        // A connection lost mid-read: its answer is not kept.
        let ticket = c.ticket(&key(3));
        c.suspend();
        c.flush_node("b:2");
        c.resume();
        c.fill(entry(&key(3), node("a:1")), ticket);
        assert!(c.get(&key(3)).is_none());
    }

    #[test]
    fn a_lost_node_drops_only_its_own_copies() {
        let c = cache(false);
        let (a, b) = (key(4), key(5));
        c.fill(entry(&a, node("a:1")), c.ticket(&a));
        c.fill(entry(&b, node("b:2")), c.ticket(&b));
        c.flush_node("a:1");
        assert!(c.get(&a).is_none());
        assert!(
            c.get(&b).is_some(),
            "a healthy shard's sessions stay cached"
        );
        c.flush_all();
        assert!(c.get(&b).is_none());
    }

    #[test]
    fn copies_age_out_and_the_size_is_bounded() {
        let metrics = Metrics::new().unwrap().sessions;
        let c = SessionCache::new(10, Duration::ZERO, false, metrics.clone());
        let k = key(6);
        c.fill(entry(&k, Origin::Local), c.ticket(&k));
        assert!(c.get(&k).is_none(), "older than max_age");
        let c = SessionCache::new(10, Duration::from_secs(60), false, metrics.clone());
        for n in 0..50 {
            let k = key(n);
            c.fill(entry(&k, Origin::Local), c.ticket(&k));
        }
        assert!(c.map.as_ref().unwrap().len() <= 10);
        assert!(metrics.cache_evictions.get() >= 40);
        let off = SessionCache::new(0, Duration::from_secs(60), false, metrics);
        off.fill(entry(&k, Origin::Local), off.ticket(&k));
        assert!(!off.enabled() && off.get(&k).is_none());
    }
}
