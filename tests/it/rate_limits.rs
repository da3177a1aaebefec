//! Per-client rate limits: what an anonymous client can make the gateway work for is bounded,
//! and the answer says when to come back.

use crate::harness::login;
use crate::harness::{client, Gateway, UserAgent};

async fn api(ua: &mut UserAgent, gw: &Gateway) -> u16 {
    ua.get(&gw.url("/api/orders"), &[("x-csrf", "1")])
        .await
        .status
}

#[tokio::test]
async fn logins_and_dead_cookies_are_limited_per_client() {
    let stack = login::start_with(
        "",
        &[
            ("PORTCULLIS__RATE_LIMITS__LOGIN", "3"),
            ("PORTCULLIS__RATE_LIMITS__FAILED_SESSION_LOOKUPS", "2"),
        ],
    )
    .await;
    let gw = &stack.gw;
    // A user signed in before anything else happens (its session is then cached).
    let mut user = UserAgent::new();
    assert_eq!(login::login(&mut user, gw, "/", "lou").await.status, 302);
    assert_eq!(api(&mut user, gw).await, 200);

    for _ in 0..2 {
        let r = client().get(gw.url("/bff/login")).send().await.unwrap();
        assert_eq!(r.status(), 302);
    }
    let r = client().get(gw.url("/bff/login")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:portcullis:problem:rate-limited");
    let page = client()
        .get(gw.url("/bff/login"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert!(page.text().await.unwrap().contains("Too many requests"));

    // Cookies that match no session: each one a store read, two allowed per window.
    let dead = "__Host-portcullis=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let call = || {
        client()
            .get(gw.url("/api/orders"))
            .header("x-csrf", "1")
            .header("cookie", dead)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 401);
    assert_eq!(call().await.unwrap().status(), 401);
    assert_eq!(call().await.unwrap().status(), 429);
    assert_eq!(call().await.unwrap().status(), 429);
    // Without a session cookie, the API's other callers are not held up by that limit.
    let anonymous = client()
        .get(gw.url("/api/orders"))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // The signed-in user on the same address is served from the cache and never refused.
    assert_eq!(api(&mut user, gw).await, 200);
    assert_eq!(
        stack.api.hits(),
        2,
        "only the signed-in user's calls reached the API"
    );

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portcullis_rate_limited_total{limit=\"login\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_rate_limited_total{limit=\"failed_session_lookups\"} 2"),
        "{metrics}"
    );
    // The limit is the address's for the whole window: a fresh browser from it is refused too.
    let mut ua = UserAgent::new();
    let start = ua.get(&gw.url("/bff/login"), &[]).await;
    assert_eq!(start.status, 429);
}
