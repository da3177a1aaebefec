//! The admin listener: liveness, readiness, metrics; nothing of it on the public port.

use crate::harness::{client, GatewayConfig, Upstream};

#[tokio::test]
async fn health_ready_and_metrics_answer_on_the_admin_port_only() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .route("/api/", "api", "")
        .start()
        .await;
    let http = client();
    assert_eq!(
        http.get(gw.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = http.get(gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["ready"], true);

    http.get(gw.url("/api/a?code=SECRET-CODE"))
        .send()
        .await
        .unwrap();
    http.get(gw.url("/nope")).send().await.unwrap();
    // The logging phase runs after the response is sent: poll rather than race it.
    let metrics = crate::harness::eventually(
        "both requests in the metrics",
        std::time::Duration::from_secs(5),
        || async {
            let m = gw.metrics().await;
            m.contains(r#"status="404"} 1"#).then_some(m)
        },
    )
    .await;
    assert!(
        metrics
            .contains(r#"portcullis_requests_total{cluster="api",route="/api/",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"portcullis_requests_total{cluster="-",route="-",status="404"} 1"#),
        "{metrics}"
    );
    assert!(metrics
        .contains("portcullis_request_duration_seconds_bucket{cluster=\"api\",route=\"/api/\""));
    assert!(metrics.contains("portcullis_upstream_healthy{"));
    assert!(!metrics.contains("SECRET-CODE"));

    // The public listener does not serve admin paths; they go to routing like any path.
    assert_eq!(
        http.get(gw.url("/metrics")).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn access_log_has_one_line_per_request_without_query_strings() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::in_front_of(&api)
        .env("PORTCULLIS_LOG_FORMAT", "json")
        .start()
        .await;
    client()
        .get(gw.url("/signin?code=AUTH-CODE-123&state=s"))
        .header("x-request-id", "log-test-1")
        .send()
        .await
        .unwrap();
    let line = crate::harness::eventually(
        "the access log line",
        std::time::Duration::from_secs(5),
        || {
            let log = gw.log();
            async move {
                log.lines()
                    .find(|l| l.contains("log-test-1"))
                    .map(String::from)
            }
        },
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["path"], "/signin");
    assert_eq!(v["route"], "/");
    assert_eq!(v["cluster"], "api");
    assert!(v["latency_ms"].is_number());
    assert!(!gw.log().contains("AUTH-CODE-123"), "query string logged");
}
