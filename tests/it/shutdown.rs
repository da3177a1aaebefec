//! SIGTERM drains: in-flight requests finish, readiness turns off, the process exits cleanly.

use std::time::Duration;

use crate::harness::{client, GatewayConfig, Upstream};

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let api = Upstream::start("api").await;
    let mut gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .route("/", "api", "")
        .start()
        .await;
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
