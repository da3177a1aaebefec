//! Three gateways behind nginx round robin, sharing a Redis cluster: users log in, call the API
//! through refreshes and log out while requests spread across replicas, and one replica is
//! killed mid-run. Nobody sees a re-login or a 401 they should not see.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::login;
use crate::harness::nginx::Nginx;
use crate::harness::redis::RedisCluster;
use crate::harness::user_agent::UserAgent;
use crate::harness::{free_port, Upstream};

const USERS: usize = 4;

#[tokio::test]
async fn three_replicas_behind_a_load_balancer_survive_losing_one() {
    let cluster = RedisCluster::start();
    let shared = format!(
        "[tokens]\nrefresh_skew = \"1s\"\nrefresh_lock_lease = \"2s\"\n{}",
        cluster.session_toml()
    );
    let ports = [free_port(), free_port(), free_port()];
    let lb = Nginx::start(&ports);
    let idp = login::start_idp_with(&[lb.port], &[("OP_ACCESS_TOKEN_TTL", "3")]);
    let spa = Upstream::start("spa").await;
    let api = Upstream::start("api").await;
    let mut replicas = Vec::new();
    for port in ports {
        let gw = login::gateway_config(port, lb.port, &idp.issuer, &spa, &api)
            .server("trusted_proxies = [\"127.0.0.1/32\"]")
            .toml(&shared)
            .start()
            .await;
        login::wait_ready(&gw).await;
        replicas.push(gw);
    }

    // Everyone logs in through the load balancer: /bff/login, the callback and /bff/user land
    // on different replicas.
    let mut users: Vec<UserAgent> = (0..USERS).map(|_| UserAgent::new()).collect();
    let origin = lb.url("");
    for (i, ua) in users.iter_mut().enumerate() {
        let back = login::through_idp(
            ua,
            &origin,
            &lb.url("/bff/login?returnUrl=/home"),
            &format!("user{i}"),
        )
        .await;
        assert_eq!(back.location(), Some("/home"), "{}", back.body);
    }

    // API calls for ~9 s (three token lifetimes); replica 2 is killed after 3 s.
    let started = Instant::now();
    let mut calls = 0;
    let mut killed = false;
    while started.elapsed() < Duration::from_secs(9) {
        if !killed && started.elapsed() > Duration::from_secs(3) {
            replicas[1].kill();
            killed = true;
        }
        for (i, ua) in users.iter_mut().enumerate() {
            let page = ua.get(&lb.url("/api/orders"), &[("x-csrf", "1")]).await;
            assert_eq!(page.status, 200, "user{i}, call {calls}: {}", page.body);
            let seen: Value = serde_json::from_str(&page.body).unwrap();
            let auth = seen["headers"]["authorization"][0].as_str().unwrap();
            assert!(auth.starts_with("Bearer ey"), "{auth}");
            calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(calls >= USERS * 20, "only {calls} calls");
    // The calls really were spread: the surviving replicas both served the API.
    for gw in [&replicas[0], &replicas[2]] {
        let metrics = gw.metrics().await;
        assert!(
            metrics.contains("route=\"/api/\",status=\"200\"}"),
            "a replica served no API call:\n{metrics}"
        );
    }
    let grants = idp.grants().await;
    assert_eq!(grants["refused"], serde_json::json!({}), "{grants}");
    let refreshes = grants["issued"]["refresh_token"].as_u64().unwrap_or(0);
    assert!(
        refreshes >= USERS as u64 && refreshes <= (USERS * 5) as u64,
        "each session refreshes about once per lifetime, not per call: {refreshes}"
    );

    // Logout through the load balancer ends each session on every surviving replica.
    for ua in users.iter_mut() {
        let logout = login::logout_url(ua, &origin).await;
        let out = ua
            .get(&lb.url(&format!("{logout}&returnUrl=/bye")), &[])
            .await;
        assert_eq!(out.status, 302);
        assert!(
            out.location().unwrap().starts_with(&idp.issuer),
            "to the IdP's logout"
        );
        // The replica that served the logout forgets the session at once; the others hear of
        // it from Redis (client tracking) within milliseconds.
        for gw in [&replicas[0], &replicas[2]] {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while ua
                .get(&gw.url("/api/orders"), &[("x-csrf", "1")])
                .await
                .status
                != 401
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "a logged-out session still works on a replica"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
