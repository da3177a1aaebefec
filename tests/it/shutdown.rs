//! SIGTERM drains: in-flight requests finish, readiness turns off, the process exits cleanly.

use std::time::Duration;

use crate::harness::{client, GatewayConfig, Upstream};

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let api = Upstream::start("api").await;
    let mut gw = GatewayConfig::in_front_of(&api).start().await;
    let slow = tokio::spawn(client().get(gw.url("/slow?ms=700")).send());
    crate::harness::eventually(
        "the slow request to reach the upstream",
        Duration::from_secs(5),
        || async { (api.hits() == 1).then_some(()) },
    )
    .await;
    gw.terminate();
    let r = slow.await.unwrap().expect("in-flight request was cut");
    assert_eq!(r.status(), 200);
    assert!(
        gw.wait_exit(Duration::from_secs(15)).await,
        "did not exit cleanly:\n{}",
        gw.log()
    );
}

/// Load balancers and Kubernetes endpoints keep sending new connections for a few seconds after
/// SIGTERM: with `pingora.shutdown_delay` the gateway reports not ready at once but keeps
/// accepting and serving until the delay ends, then drains and exits.
#[tokio::test]
async fn after_sigterm_readiness_fails_at_once_but_new_connections_are_served_for_the_delay() {
    let api = Upstream::start("api").await;
    let mut gw = GatewayConfig::new()
        .env("PORTCULLIS__PINGORA__SHUTDOWN_DELAY", "3s")
        .cluster("api", &[api.url()], "")
        .route("/", "api", "")
        .start()
        .await;
    assert_eq!(
        client()
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    gw.terminate();
    crate::harness::eventually(
        "readiness to fail after SIGTERM",
        Duration::from_secs(5),
        || async {
            let r = client().get(gw.admin_url("/readyz")).send().await.ok()?;
            (r.status() == 503).then_some(())
        },
    )
    .await;
    // A fresh client, so a new connection: still accepted and served during the delay.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..3 {
        let r = fresh
            .get(gw.url("/during-delay"))
            .send()
            .await
            .expect("a new connection was refused during the shutdown delay");
        assert_eq!(r.status(), 200);
    }
    assert!(
        gw.wait_exit(Duration::from_secs(20)).await,
        "did not exit cleanly after the delay:\n{}",
        gw.log()
    );
    assert!(gw.log().contains("still serving until the delay ends"));
}
