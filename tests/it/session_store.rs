//! One conformance suite for every session store: memory, standalone Redis, a 6-node cluster.

use std::time::Duration;

use portcullis::session::memory::MemoryStore;
use portcullis::session::redis::{Endpoint, RedisOptions, RedisStore};
use portcullis::session::{Replaced, SessionId, Store, StoreError, StoredSession};

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

async fn conformance(store: &dyn Store) {
    store.ping().await.unwrap();

    // Round trip, and nothing for an id never stored.
    let id = SessionId::generate();
    let s = session("alice", Some("idp-session-1"));
    store.put(&id, &s, LONG).await.unwrap();
    assert_eq!(store.get(&id).await.unwrap(), Some(s.clone()));
    assert_eq!(store.get(&SessionId::generate()).await.unwrap(), None);

    // Indexes find every session of a user and of an IdP session, across cluster slots.
    let other = SessionId::generate();
    store
        .put(&other, &session("alice", Some("idp-session-2")), LONG)
        .await
        .unwrap();
    let bob = SessionId::generate();
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
    let short = SessionId::generate();
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
    let sliding = SessionId::generate();
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
    assert_eq!(store.ttl(&SessionId::generate()).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        store.get(&sliding).await.unwrap().is_some(),
        "touch did not extend the session"
    );

    // Reading with a slide (the request path) extends the session too, in the same call.
    let read_slides = SessionId::generate();
    let record = session("erin", None);
    store
        .put(&read_slides, &record, Duration::from_millis(1500))
        .await
        .unwrap();
    assert_eq!(
        store.get_and_touch(&read_slides, LONG).await.unwrap(),
        Some(record)
    );
    assert_eq!(
        store
            .get_and_touch(&SessionId::generate(), LONG)
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        store.get(&read_slides).await.unwrap().is_some(),
        "get_and_touch did not extend the session"
    );

    // Conditional replace (fencing): only over the expected version, keeping the TTL.
    let fenced = SessionId::generate();
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
        store.replace(&SessionId::generate(), &v2, 1).await.unwrap(),
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
    let store = RedisStore::connect(&RedisOptions::new(Endpoint::Url(format!(
        "redis://127.0.0.1:{}",
        redis.port
    ))))
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
    let store = RedisStore::connect(&RedisOptions::new(Endpoint::Cluster(cluster.seeds())))
        .await
        .unwrap();
    conformance(&store).await;
}

#[tokio::test]
async fn stackexchange_connection_string_connects() {
    let redis = RedisServer::start();
    let options = RedisOptions::from_stackexchange(
        &format!("127.0.0.1:{},abortConnect=False,ssl=False", redis.port),
        false,
    )
    .unwrap();
    let store = RedisStore::connect(&options).await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test]
async fn redis_outage_is_a_prompt_error_not_a_hang() {
    let mut redis = RedisServer::start();
    let store = RedisStore::connect(&RedisOptions::new(Endpoint::Standalone(
        "127.0.0.1".into(),
        redis.port,
    )))
    .await
    .unwrap();
    let id = SessionId::generate();
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
    let without = RedisStore::connect(&RedisOptions::new(endpoint.clone())).await;
    let refused = match without {
        Err(_) => true,
        Ok(store) => store.ping().await.is_err(),
    };
    assert!(refused, "Redis answered without the password");
    let with = RedisOptions {
        password: Some("s3cret-pw".into()),
        ..RedisOptions::new(endpoint)
    };
    let store = RedisStore::connect(&with).await.unwrap();
    conformance(&store).await;
}

async fn readiness(gw: &crate::harness::Gateway) -> (u16, serde_json::Value) {
    let r = client().get(gw.admin_url("/readyz")).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn readiness_follows_redis_and_routes_without_sessions_keep_serving() {
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

    // Redis is not there yet: alive, serving the SPA, but not ready.
    let (status, body) = readiness(&gw).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["checks"]["session_store"].as_str().unwrap() != "ok");
    assert_eq!(
        client().get(gw.url("/")).send().await.unwrap().status(),
        200
    );

    // Redis appears: the gateway connects by itself.
    let mut redis = RedisServer::start_on(redis_port);
    eventually(
        "ready once Redis answers",
        Duration::from_secs(20),
        || async {
            let (status, body) = readiness(&gw).await;
            (status == 200 && body["checks"]["session_store"] == "ok").then_some(())
        },
    )
    .await;

    // Redis goes away: not ready again, the SPA still serves.
    redis.kill();
    eventually(
        "not ready once Redis is gone",
        Duration::from_secs(20),
        || async { (readiness(&gw).await.0 == 503).then_some(()) },
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
    let untrusted = RedisStore::connect(&RedisOptions {
        connect_timeout: Duration::from_secs(1),
        ..RedisOptions::new(Endpoint::Url(url.clone()))
    })
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
    let store = RedisStore::connect(&trusted).await.unwrap();
    conformance(&store).await;
}
