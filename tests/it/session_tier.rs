//! The session tier as users and operators meet it: replicas that cache sessions yet refuse a
//! revoked one at once, a Redis dump that holds no cookie, and Redis trouble that costs at most
//! the sessions it really holds up — never a 401, never a cleared cookie.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::login::{self, Stack};
use crate::harness::redis::{RedisCluster, RedisServer};
use crate::harness::{eventually, Gateway, UserAgent};

const COOKIE: &str = "__Host-portcullis";
const ADMIN_TOKEN: &str = "admin-token-0123456789-abcdefghijklmnop";

async fn api(ua: &mut UserAgent, gw: &Gateway) -> u16 {
    ua.get(&gw.url("/api/orders"), &[("x-csrf", "1")])
        .await
        .status
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls (bounded) until `ua`'s session is refused on `gw`.
async fn refused(ua: &UserAgent, gw: &Gateway, what: &str) {
    eventually(what, Duration::from_secs(5), || async {
        let mut probe = UserAgent::new();
        probe.jar = ua.jar.clone();
        (api(&mut probe, gw).await == 401).then_some(())
    })
    .await;
}

/// Calls until every one of `users` is served from `gw`'s cache (tracking is turned on in the
/// background after the store connects: a call before that reads Redis and caches nothing).
async fn cached_on(gw: &Gateway, users: &mut [UserAgent]) {
    let hits = || async { counter(&gw.metrics().await, "portcullis_session_cache_hits_total") };
    let mut tries = 0;
    loop {
        let before = hits().await;
        for ua in users.iter_mut() {
            assert_eq!(api(ua, gw).await, 200);
        }
        if hits().await >= before + users.len() as u64 {
            return;
        }
        tries += 1;
        assert!(tries < 100, "the sessions never came from the cache");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn logged_in(stack: &Stack, user: &str) -> UserAgent {
    let mut ua = UserAgent::new();
    assert_eq!(
        login::login(&mut ua, &stack.gw, "/", user).await.status,
        302
    );
    ua
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_refused_on_the_other_at_once_even_with_both_caches_warm() {
    let cluster = RedisCluster::start();
    let redis = cluster.session_toml();
    let env = [("PORTCULLIS__ADMIN__SESSIONS_API_TOKEN", ADMIN_TOKEN)];
    let stack = login::start_with(&redis, &env).await;
    let a = &stack.gw;
    let b = login::second_replica(&stack, &redis, &env).await;

    // Warm both caches: the calls are served from them.
    let mut ua = logged_in(&stack, "olga").await;
    for gw in [a, &b] {
        cached_on(gw, std::slice::from_mut(&mut ua)).await;
    }

    // Logout on A: B refuses the cookie.
    let logout = login::logout_url(&mut ua, &a.url("")).await;
    let mut user_agent = UserAgent::new();
    user_agent.jar = ua.jar.clone();
    assert_eq!(ua.get(&a.url(&logout), &[]).await.status, 302);
    refused(&user_agent, &b, "a logout on A to be seen by B").await;

    // An admin revocation on A.
    let mut ua = logged_in(&stack, "olga").await;
    for gw in [a, &b] {
        assert_eq!(api(&mut ua, gw).await, 200);
    }
    let revoke = crate::harness::client()
        .delete(a.admin_url("/admin/users/olga/sessions"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    refused(&ua, &b, "an admin revocation on A to be seen by B").await;

    // B's tracking connections are killed, then the session is deleted behind everyone's back
    // (a raw DEL in Redis): B does not keep serving what it can no longer hear about.
    let mut ua = logged_in(&stack, "pia").await;
    assert_eq!(api(&mut ua, &b).await, 200);
    let node = &cluster.nodes[cluster.master_of_session("pia").unwrap()];
    node.cli(&["client", "kill", "type", "normal"]);
    let key = node
        .cli(&["--scan", "--pattern", "portcullis:{*}:s"])
        .lines()
        .find(|k| node.cli(&["get", k]).contains("\"sub\":\"pia\""))
        .unwrap()
        .to_string();
    assert_eq!(node.cli(&["del", &key]).trim(), "1");
    refused(&ua, &b, "a DEL during a reconnect to be seen by B").await;
    // The other replica still serves everyone else.
    let mut other = logged_in(&stack, "quinn").await;
    assert_eq!(api(&mut other, &b).await, 200);
}

#[tokio::test]
async fn a_redis_dump_holds_no_working_cookie() {
    let redis = RedisServer::start();
    let stack = login::start(&redis.session_toml()).await;
    let mut users = Vec::new();
    for name in ["rita", "sam"] {
        let mut ua = logged_in(&stack, name).await;
        assert_eq!(api(&mut ua, &stack.gw).await, 200);
        users.push(ua);
    }
    let dump = redis.dump("*");
    assert!(
        dump.contains("\"sub\":\"rita\""),
        "the sessions are there: {dump}"
    );
    for ua in &users {
        let id = ua.cookie(COOKIE).unwrap();
        assert!(!dump.contains(id), "a session id is in Redis: {dump}");
    }
    // Whatever a dump holds, presented as a cookie, is nobody's session.
    let names: Vec<&str> = dump
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| w.len() == 43)
        .collect();
    assert!(!names.is_empty(), "store keys are 43-character hashes");
    for name in names {
        let mut thief = UserAgent::new();
        thief.jar.insert(COOKIE.into(), name.to_string());
        assert_eq!(api(&mut thief, &stack.gw).await, 401);
    }
    assert_eq!(
        stack.api.hits(),
        2,
        "only the two real calls reached the API"
    );
}

/// Calls each user's API once; `(status, cookie cleared)` per user.
async fn round(users: &mut [UserAgent], gw: &Gateway) -> Vec<(u16, bool)> {
    let mut out = Vec::with_capacity(users.len());
    for ua in users.iter_mut() {
        let page = ua.get(&gw.url("/api/orders"), &[("x-csrf", "1")]).await;
        let cleared = page
            .set_cookies()
            .iter()
            .any(|c| c.starts_with(&format!("{COOKIE}=")));
        if page.status == 503 {
            assert!(
                page.headers.contains_key("retry-after"),
                "503 without Retry-After"
            );
        }
        out.push((page.status, cleared));
    }
    out
}

#[tokio::test]
async fn a_cluster_master_failover_holds_up_only_that_masters_sessions() {
    let mut cluster = RedisCluster::start();
    let redis = format!("{}command_timeout = \"300ms\"\n", cluster.session_toml());
    let stack = login::start(&redis).await;
    let gw = &stack.gw;

    // Enough users that every master holds some sessions; all caches warm.
    let mut users = Vec::new();
    for i in 0..18 {
        let mut ua = logged_in(&stack, &format!("user{i}")).await;
        assert_eq!(api(&mut ua, gw).await, 200);
        users.push(ua);
    }
    cached_on(gw, &mut users).await;
    let home: Vec<usize> = (0..users.len())
        .map(|i| cluster.master_of_session(&format!("user{i}")).unwrap())
        .collect();
    let mut per_master: BTreeMap<usize, usize> = BTreeMap::new();
    for m in &home {
        *per_master.entry(*m).or_default() += 1;
    }
    let (&victim, _) = per_master.iter().max_by_key(|(_, n)| **n).unwrap();
    assert!(
        per_master.len() >= 2,
        "sessions on one master only: {per_master:?}"
    );

    cluster.nodes[victim].kill();
    let started = Instant::now();
    let mut healthy_calls = 0;
    let mut held_up = 0;
    let mut recovered = false;
    // Bounded: the replica is promoted after the 5 s node timeout; 40 s at most.
    while started.elapsed() < Duration::from_secs(40) {
        let results = round(&mut users, gw).await;
        for (i, (status, cleared)) in results.iter().enumerate() {
            assert!(!cleared, "user{i}'s cookie was cleared");
            assert_ne!(*status, 401, "user{i} was logged out by a failover");
            if home[i] == victim {
                assert!(matches!(status, 200 | 503), "user{i}: {status}");
                held_up += usize::from(*status == 503);
            } else {
                assert_eq!(*status, 200, "user{i} lives on a healthy master");
                healthy_calls += 1;
            }
        }
        if started.elapsed() > Duration::from_secs(2) && results.iter().all(|(s, _)| *s == 200) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the failed master's sessions did not come back");
    assert!(healthy_calls > 0);
    // No session was lost: every user is still signed in.
    for (i, ua) in users.iter_mut().enumerate() {
        assert_eq!(login::user(ua, gw).await.status, 200, "user{i}");
    }
    eprintln!("failover: {held_up} calls held up (503) for the failed master's sessions");
}

#[tokio::test]
async fn a_frozen_redis_costs_only_uncached_sessions_and_readiness_stays_up() {
    let redis = RedisServer::start();
    let stack = login::start(&format!(
        "{}command_timeout = \"300ms\"\n",
        redis.session_toml()
    ))
    .await;
    let gw = &stack.gw;
    let mut warm = logged_in(&stack, "tara").await;
    cached_on(gw, std::slice::from_mut(&mut warm)).await;
    let mut cold = logged_in(&stack, "uma").await;

    redis.pause();
    let (ready, body) = {
        let r = crate::harness::client()
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(ready, 200, "{body}");
    assert_eq!(
        api(&mut warm, gw).await,
        200,
        "a cached session needs no Redis"
    );
    let page = cold.get(&gw.url("/api/orders"), &[("x-csrf", "1")]).await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert_eq!(page.headers["retry-after"], "2");
    assert_eq!(
        page.headers["content-type"], "application/problem+json",
        "{}",
        page.body
    );
    assert!(page.set_cookies().is_empty(), "the cookie survives");
    assert_eq!(cold.get(&gw.url("/"), &[]).await.status, 200, "pages flow");
    // What an on-call engineer alerts on: failed reads, timed like every store operation.
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portcullis_session_store_errors_total{op=\"read\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_session_store_duration_seconds_bucket{op=\"read\""));
    eventually(
        "readiness to report the store degraded",
        Duration::from_secs(10),
        || async {
            let r = crate::harness::client()
                .get(gw.admin_url("/readyz"))
                .send()
                .await
                .ok()?;
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.ok()?;
            assert_eq!(status, 200, "{body}");
            (body["checks"]["session_store"] == "degraded").then_some(())
        },
    )
    .await;

    redis.resume();
    eventually(
        "the uncached session to work again",
        Duration::from_secs(20),
        || async {
            let mut probe = UserAgent::new();
            probe.jar = cold.jar.clone();
            (api(&mut probe, gw).await == 200).then_some(())
        },
    )
    .await;
    assert_eq!(api(&mut warm, gw).await, 200);
}

/// Some managed Redis tiers refuse `CLIENT TRACKING`: the gateway then works as it would without
/// a cache (every call reads Redis), says so once, and never serves a copy it cannot keep honest.
#[tokio::test]
async fn where_redis_refuses_tracking_sessions_work_without_the_cache() {
    let redis = RedisServer::with_args(&[
        "--user",
        "default",
        "on",
        "nopass",
        "~*",
        "&*",
        "+@all",
        "-client|tracking",
    ]);
    let stack = login::start(&redis.session_toml()).await;
    let gw = &stack.gw;
    let mut ua = logged_in(&stack, "vic").await;
    for _ in 0..3 {
        assert_eq!(api(&mut ua, gw).await, 200);
    }
    let metrics = gw.metrics().await;
    assert_eq!(
        counter(&metrics, "portcullis_session_cache_hits_total"),
        0,
        "{metrics}"
    );
    assert!(counter(&metrics, "portcullis_session_cache_misses_total") >= 3);
    assert!(gw.log().contains("refused client tracking"), "{}", gw.log());
    // A revocation is seen at once: nothing was cached.
    let key = redis
        .cli(&["--scan", "--pattern", "portcullis:{*}:s"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(redis.cli(&["del", &key]).trim(), "1");
    assert_eq!(api(&mut ua, gw).await, 401);
}
