//! One conformance suite for every session store: memory, standalone Redis, a 6-node cluster.

use std::time::Duration;

use portcullis::session::memory::MemoryStore;
use portcullis::session::redis::{Endpoint, RedisOptions, RedisStore};
use portcullis::session::{
    Origin, Replaced, SessionId, Store, StoreError, StoreKey, StoredSession,
};

use crate::harness::redis::{RedisCluster, RedisServer, SESSION_KEY as KEY};
use crate::harness::{client, eventually, free_port, GatewayConfig, Upstream};

fn session(sub: &str, sid: Option<&str>) -> StoredSession {
    StoredSession {
        sub: sub.into(),
        sid: sid.map(String::from),
        version: 1,
        created_at: 1_700_000_000,
        expires_at: 1_700_043_200,
        sealed: vec![1, 2, 3, 0, 255],
    }
}

const LONG: Duration = Duration::from_secs(600);

/// A store key as the gateway makes them (the shape of a keyed hash).
fn new_key() -> StoreKey {
    StoreKey::parse(SessionId::generate().as_str()).unwrap()
}

async fn conformance(store: &dyn Store) {
    store.ping().await.unwrap();

    // Round trip, and nothing for an id never stored.
    let id = new_key();
    let s = session("alice", Some("idp-session-1"));
    store.put(&id, &s, LONG).await.unwrap();
    assert_eq!(store.get(&id).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get(&new_key()).await.unwrap(), None);

    // Indexes find every session of a user and of an IdP session, across cluster slots.
    let other = new_key();
    store
        .put(&other, &session("alice", Some("idp-session-2")), LONG)
        .await
        .unwrap();
    let bob = new_key();
    store.put(&bob, &session("bob", None), LONG).await.unwrap();
    let mut of_alice = store.sessions_of_sub("alice").await.unwrap();
    of_alice.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected = vec![id.clone(), other.clone()];
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(of_alice, expected);
    assert_eq!(
        store.sessions_of_sid("idp-session-1").await.unwrap(),
        vec![id.clone()]
    );
    assert_eq!(store.sessions_of_sub("nobody").await.unwrap(), vec![]);

    // Delete removes the session and its index entries, once.
    assert!(store.delete(&id).await.unwrap());
    assert!(!store.delete(&id).await.unwrap());
    assert_eq!(store.get(&id).await.unwrap(), None);
    assert_eq!(
        store.sessions_of_sub("alice").await.unwrap(),
        vec![other.clone()]
    );
    assert_eq!(
        store.sessions_of_sid("idp-session-1").await.unwrap(),
        vec![]
    );

    // Sessions expire with their TTL, and expired ones leave the indexes.
    let short = new_key();
    store
        .put(
            &short,
            &session("carol", Some("idp-c")),
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    eventually(
        "the short session to expire",
        Duration::from_secs(10),
        || async { store.get(&short).await.unwrap().is_none().then_some(()) },
    )
    .await;
    assert_eq!(store.sessions_of_sub("carol").await.unwrap(), vec![]);
    assert!(!store.touch(&short, LONG).await.unwrap());

    // Touch slides the expiry forward.
    let sliding = new_key();
    store
        .put(
            &sliding,
            &session("dave", None),
            Duration::from_millis(1500),
        )
        .await
        .unwrap();
    assert!(store.touch(&sliding, LONG).await.unwrap());
    let left = store.ttl(&sliding).await.unwrap().unwrap();
    assert!(left > Duration::from_secs(500) && left <= LONG, "{left:?}");
    assert_eq!(store.ttl(&new_key()).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        store.get(&sliding).await.unwrap().is_some(),
        "touch did not extend the session"
    );

    // The cache's read: the record with its remaining time, and the read changes nothing.
    let fetched = new_key();
    let record = session("erin", None);
    store
        .put(&fetched, &record, Duration::from_millis(1500))
        .await
        .unwrap();
    let got = store.fetch(&fetched).await.unwrap().unwrap();
    assert_eq!(got.session, record);
    assert!(
        got.ttl <= Duration::from_millis(1500) && got.ttl > Duration::from_millis(500),
        "{:?}",
        got.ttl
    );
    assert!(store.fetch(&new_key()).await.unwrap().is_none());
    eventually(
        "a fetched session to expire (fetch does not slide)",
        Duration::from_secs(10),
        || async { store.get(&fetched).await.unwrap().is_none().then_some(()) },
    )
    .await;

    // Conditional replace (fencing): only over the expected version, keeping the TTL.
    let fenced = new_key();
    let v1 = session("frank", Some("idp-f"));
    store.put(&fenced, &v1, LONG).await.unwrap();
    let v2 = StoredSession {
        version: 2,
        sealed: vec![9, 9],
        ..v1.clone()
    };
    assert_eq!(
        store.replace(&fenced, &v2, 1).await.unwrap(),
        Replaced::Done
    );
    let stale = StoredSession {
        version: 2,
        sealed: vec![6, 6],
        ..v1.clone()
    };
    assert_eq!(
        store.replace(&fenced, &stale, 1).await.unwrap(),
        Replaced::Stale
    );
    assert_eq!(store.get(&fenced).await.unwrap(), Some(v2.clone()));
    assert_eq!(
        store.sessions_of_sid("idp-f").await.unwrap(),
        vec![fenced.clone()]
    );
    assert_eq!(
        store.replace(&new_key(), &v2, 1).await.unwrap(),
        Replaced::Gone
    );

    // The refresh lock: one owner at a time, renewable by its owner only, expiring on its own.
    let lease = Duration::from_millis(600);
    assert!(store.try_lock(&fenced, "replica-a", lease).await.unwrap());
    assert!(!store.try_lock(&fenced, "replica-b", lease).await.unwrap());
    assert!(!store.renew_lock(&fenced, "replica-b", lease).await.unwrap());
    assert!(store.renew_lock(&fenced, "replica-a", lease).await.unwrap());
    store.unlock(&fenced, "replica-b").await.unwrap();
    assert!(
        !store.try_lock(&fenced, "replica-b", lease).await.unwrap(),
        "unlock by a non-owner"
    );
    store.unlock(&fenced, "replica-a").await.unwrap();
    assert!(store.try_lock(&fenced, "replica-b", lease).await.unwrap());
    // A crashed owner's lease runs out and the lock can be taken over.
    eventually("the lease to expire", Duration::from_secs(10), || async {
        store
            .try_lock(&fenced, "replica-c", lease)
            .await
            .unwrap()
            .then_some(())
    })
    .await;
    assert!(
        !store.renew_lock(&fenced, "replica-b", lease).await.unwrap(),
        "a lost lock renews"
    );

    // Replay protection: a key is new once, until it expires.
    assert!(store
        .first_use("jti-1", Duration::from_millis(300))
        .await
        .unwrap());
    assert!(!store
        .first_use("jti-1", Duration::from_millis(300))
        .await
        .unwrap());
    assert!(store.first_use("jti-2", LONG).await.unwrap());
    // Forgotten (the work it guarded failed): the next use is first again.
    store.forget("jti-2").await.unwrap();
    assert!(store.first_use("jti-2", LONG).await.unwrap());
    assert!(!store.first_use("jti-2", LONG).await.unwrap());
    eventually(
        "the remembered key to expire",
        Duration::from_secs(10),
        || async { store.first_use("jti-1", LONG).await.unwrap().then_some(()) },
    )
    .await;

    // Login states are single use: a replayed state finds nothing.
    store
        .put_login_state("state-1", b"verifier+nonce", LONG)
        .await
        .unwrap();
    assert_eq!(
        store.take_login_state("state-1").await.unwrap().as_deref(),
        Some(&b"verifier+nonce"[..])
    );
    assert_eq!(store.take_login_state("state-1").await.unwrap(), None);
    assert_eq!(store.take_login_state("never-issued").await.unwrap(), None);
    store
        .put_login_state("state-2", b"x", Duration::from_millis(200))
        .await
        .unwrap();
    eventually(
        "the login state to expire",
        Duration::from_secs(10),
        || async {
            let r = store.take_login_state("state-2").await.unwrap();
            r.is_none().then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(&MemoryStore::new()).await;
}

#[tokio::test]
async fn standalone_redis_store_conforms() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(
        &RedisOptions::new(Endpoint::Url(format!("redis://127.0.0.1:{}", redis.port))),
        None,
    )
    .await
    .unwrap();
    conformance(&store).await;
    // The sealed payload is what Redis holds: no plaintext beyond the indexed ids.
    let keys = redis.cli(&["--scan", "--pattern", "portcullis:*"]);
    assert!(
        keys.lines()
            .any(|k| k.starts_with("portcullis:sub:{alice}")),
        "{keys}"
    );
}

#[tokio::test]
async fn clustered_redis_store_conforms() {
    let cluster = RedisCluster::start();
    let store = RedisStore::connect(&RedisOptions::new(Endpoint::Cluster(cluster.seeds())), None)
        .await
        .unwrap();
    conformance(&store).await;
}

#[tokio::test]
async fn stackexchange_connection_string_connects() {
    let redis = RedisServer::start();
    let read = portcullis::config::parse_stackexchange(&format!(
        "127.0.0.1:{},abortConnect=False,ssl=False",
        redis.port
    ))
    .unwrap();
    let options = RedisOptions::from_stackexchange(&read, false);
    let store = RedisStore::connect(&options, None).await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test]
async fn redis_outage_is_a_prompt_error_not_a_hang() {
    let mut redis = RedisServer::start();
    let store = RedisStore::connect(
        &RedisOptions::new(Endpoint::Standalone("127.0.0.1".into(), redis.port)),
        None,
    )
    .await
    .unwrap();
    let id = new_key();
    store.put(&id, &session("erin", None), LONG).await.unwrap();
    redis.kill();
    // Bounded by the command timeout (500 ms) and retries; the guard only catches a hang.
    let result = tokio::time::timeout(Duration::from_secs(10), store.get(&id))
        .await
        .expect("a Redis outage hung the caller");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn password_protected_redis_needs_the_password() {
    let redis = RedisServer::with_password("s3cret-pw");
    let endpoint = Endpoint::Standalone("127.0.0.1".into(), redis.port);
    let without = RedisStore::connect(&RedisOptions::new(endpoint.clone()), None).await;
    let refused = match without {
        Err(_) => true,
        Ok(store) => store.ping().await.is_err(),
    };
    assert!(refused, "Redis answered without the password");
    let with = RedisOptions {
        password: Some("s3cret-pw".into()),
        ..RedisOptions::new(endpoint)
    };
    let store = RedisStore::connect(&with, None).await.unwrap();
    conformance(&store).await;
}

async fn readiness(gw: &crate::harness::Gateway) -> (u16, serde_json::Value) {
    let r = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Every replica shares Redis: were it to make them unready, one Redis outage would take them
/// all out of the load balancer. It degrades readiness instead, and says so.
#[tokio::test]
async fn a_redis_outage_degrades_readiness_but_every_replica_stays_in_the_load_balancer() {
    let spa = Upstream::start("spa").await;
    let redis_port = free_port();
    let gw = GatewayConfig::new()
        .toml(&format!(
            "[session]\nstore = \"redis\"\nencryption_keys = [\"{KEY}\"]\n\
             [redis]\nurl = \"redis://127.0.0.1:{redis_port}\"\nconnect_timeout = \"300ms\""
        ))
        .cluster("spa", &[spa.url()], "")
        .route("/", "spa", "")
        .start()
        .await;
    let degraded_gauge = |v: &str| format!("portcullis_session_store_degraded {v}");

    // Redis is not there yet: ready (degraded), serving the SPA.
    let (status, body) = readiness(&gw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["session_store"], "degraded", "{body}");
    assert!(body["degraded"]["session_store"].is_string(), "{body}");
    assert!(gw.metrics().await.contains(&degraded_gauge("1")));
    assert_eq!(
        client().get(gw.url("/")).send().await.unwrap().status(),
        200
    );

    // Redis appears: the gateway connects by itself.
    let mut redis = RedisServer::start_on(redis_port);
    eventually("the store to be ok", Duration::from_secs(20), || async {
        let (status, body) = readiness(&gw).await;
        (status == 200 && body["checks"]["session_store"] == "ok").then_some(())
    })
    .await;
    assert!(gw.metrics().await.contains(&degraded_gauge("0")));

    // Redis goes away: degraded again, still ready, the SPA still serves.
    redis.kill();
    eventually(
        "degraded once Redis is gone",
        Duration::from_secs(20),
        || async {
            let (status, body) = readiness(&gw).await;
            (status == 200 && body["checks"]["session_store"] == "degraded").then_some(())
        },
    )
    .await;
    assert_eq!(
        client().get(gw.url("/")).send().await.unwrap().status(),
        200
    );
    // The password-free URL is the only secret here; readiness never prints configuration.
    assert!(!readiness(&gw).await.1.to_string().contains(KEY));
}

#[tokio::test]
async fn redis_over_tls_is_verified_against_the_configured_ca() {
    let ca = crate::harness::tls::PrivateCa::generate();
    let (_redis, tls_port) = RedisServer::with_tls(&ca);
    let url = format!("rediss://127.0.0.1:{tls_port}");
    // The system roots do not know this CA: no session goes to an unverified server.
    let untrusted = RedisStore::connect(
        &RedisOptions {
            connect_timeout: Duration::from_secs(1),
            ..RedisOptions::new(Endpoint::Url(url.clone()))
        },
        None,
    )
    .await;
    let refused = match untrusted {
        Err(_) => true,
        Ok(store) => store.ping().await.is_err(),
    };
    assert!(refused, "connected to Redis with an untrusted certificate");
    let trusted = RedisOptions {
        ca_file: Some(ca.ca.clone()),
        ..RedisOptions::new(Endpoint::Url(url))
    };
    let store = RedisStore::connect(&trusted, None).await.unwrap();
    conformance(&store).await;
}

/// The cache's side of the contract: a tracked read is reported when anyone changes, slides,
/// expires or deletes the session, and a lost connection flushes what it tracked.
mod tracking {
    use std::sync::Arc;

    use portcullis::metrics::Metrics;
    use portcullis::session::cache::{Entry, SessionCache};
    use portcullis::session::SessionData;

    use super::*;

    fn cache() -> Arc<SessionCache> {
        let metrics = Metrics::new().unwrap().sessions;
        Arc::new(SessionCache::new(
            1000,
            Duration::from_secs(600),
            true,
            metrics,
        ))
    }

    fn data() -> SessionData {
        SessionData {
            access_token: "at".into(),
            refresh_token: None,
            id_token: "it".into(),
            access_expires_at: None,
            access_lifetime: None,
            claims: Default::default(),
            userinfo: Default::default(),
            resource_tokens: Default::default(),
        }
    }

    /// Reads `key` through the tracking store into the cache, as the request path does.
    async fn cached(store: &RedisStore, cache: &SessionCache, key: &StoreKey) -> String {
        let ticket = cache.ticket(key);
        let fetched = store.fetch(key).await.unwrap().unwrap();
        let Origin::Node(node) = fetched.origin.clone() else {
            panic!("a read through the tracking client is tracked: {fetched:?}");
        };
        cache.fill(
            Arc::new(Entry::new(
                key.clone(),
                fetched.session,
                data(),
                fetched.origin,
                u64::MAX / 2,
            )),
            ticket,
        );
        assert!(cache.get(key).is_some(), "a tracked read is cached");
        node.to_string()
    }

    async fn gone(cache: &SessionCache, key: &StoreKey, what: &str) {
        eventually(what, Duration::from_secs(10), || async {
            cache.get(key).is_none().then_some(())
        })
        .await;
    }

    async fn tracking_on(cache: &SessionCache) {
        eventually("tracking to be on", Duration::from_secs(20), || async {
            (!cache.suspended()).then_some(())
        })
        .await;
    }

    /// `replica` reads with a cache; `other` is another replica writing to the same Redis.
    async fn every_change_reaches_the_cache(
        replica: &RedisStore,
        other: &RedisStore,
        cache: &SessionCache,
        kill_clients: impl Fn(&str),
    ) {
        tracking_on(cache).await;
        let key = new_key();
        other.put(&key, &session("zoe", None), LONG).await.unwrap();

        // Deleted elsewhere (logout, back-channel, admin revocation on another replica).
        cached(replica, cache, &key).await;
        other.delete(&key).await.unwrap();
        gone(cache, &key, "a delete elsewhere to invalidate").await;

        // Replaced elsewhere (a refresh on another replica), slid elsewhere.
        other.put(&key, &session("zoe", None), LONG).await.unwrap();
        cached(replica, cache, &key).await;
        let v2 = StoredSession {
            version: 2,
            ..session("zoe", None)
        };
        assert_eq!(other.replace(&key, &v2, 1).await.unwrap(), Replaced::Done);
        gone(cache, &key, "a replace elsewhere to invalidate").await;
        cached(replica, cache, &key).await;
        assert!(other.touch(&key, LONG).await.unwrap());
        gone(cache, &key, "a slide elsewhere to invalidate").await;

        // Expired in the store.
        let short = new_key();
        other
            .put(&short, &session("zoe", None), Duration::from_millis(300))
            .await
            .unwrap();
        cached(replica, cache, &short).await;
        gone(cache, &short, "an expiry to invalidate").await;

        // The tracking connection is killed: what it tracked is flushed (its invalidations
        // would be lost), and once it is back, changes are reported again.
        let node = cached(replica, cache, &key).await;
        kill_clients(&node);
        gone(cache, &key, "a lost tracking connection to flush").await;
        tracking_on(cache).await;
        let node = cached(replica, cache, &key).await;
        assert!(!node.is_empty());
        other.delete(&key).await.unwrap();
        gone(cache, &key, "a delete after the reconnect to invalidate").await;
    }

    #[tokio::test]
    async fn standalone_redis_reports_every_change() {
        let redis = RedisServer::start();
        let options = RedisOptions::new(Endpoint::Standalone("127.0.0.1".into(), redis.port));
        let cache = cache();
        let replica = RedisStore::connect(&options, Some(cache.clone()))
            .await
            .unwrap();
        let other = RedisStore::connect(&options, None).await.unwrap();
        every_change_reaches_the_cache(&replica, &other, &cache, |_| {
            redis.cli(&["client", "kill", "type", "normal"]);
        })
        .await;
    }

    #[tokio::test]
    async fn a_cluster_reports_every_change_and_a_lost_node_flushes_only_its_sessions() {
        let cluster = RedisCluster::start();
        let options = RedisOptions::new(Endpoint::Cluster(cluster.seeds()));
        let cache = cache();
        let replica = RedisStore::connect(&options, Some(cache.clone()))
            .await
            .unwrap();
        let other = RedisStore::connect(&options, None).await.unwrap();
        let kill_on = |node: &str| {
            let port: u16 = node.rsplit(':').next().unwrap().parse().unwrap();
            let server = cluster.nodes.iter().find(|n| n.port == port).unwrap();
            server.cli(&["client", "kill", "type", "normal"]);
        };
        every_change_reaches_the_cache(&replica, &other, &cache, kill_on).await;

        // Sessions on two different masters; one master's connection goes: the other
        // master's sessions stay cached.
        tracking_on(&cache).await;
        let mut by_node: std::collections::BTreeMap<String, StoreKey> = Default::default();
        while by_node.len() < 2 {
            let key = new_key();
            other.put(&key, &session("yan", None), LONG).await.unwrap();
            let node = cached(&replica, &cache, &key).await;
            by_node.entry(node).or_insert(key);
        }
        let mut nodes = by_node.into_iter();
        let (lost_node, lost_key) = nodes.next().unwrap();
        let (_, kept_key) = nodes.next().unwrap();
        kill_on(&lost_node);
        gone(&cache, &lost_key, "the lost node's sessions to be flushed").await;
        assert!(
            cache.get(&kept_key).is_some(),
            "a healthy node's sessions stay cached"
        );
    }
}
