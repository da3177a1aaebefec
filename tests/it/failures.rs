//! Upstream failures become 502/503/504 with a problem body (or a page for browsers).

use serde_json::Value;

use crate::harness::{client, free_port, GatewayConfig, Upstream};

async fn problem(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(r.headers()["cache-control"], "no-store");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_problem() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw = GatewayConfig::new()
        .cluster("api", &[dead], "")
        .route("/api/", "api", "")
        .start()
        .await;
    let (status, body) = problem(client().get(gw.url("/api/x")).send().await.unwrap()).await;
    assert_eq!(status, 502);
    assert_eq!(body["type"], "urn:portcullis:problem:upstream-unreachable");
    assert_eq!(body["status"], 502);
    assert!(body["detail"].as_str().unwrap().contains("'api'"));
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "address leaked: {body}"
    );
}

#[tokio::test]
async fn slow_upstream_is_a_504_problem() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "read_timeout = \"300ms\"")
        .route("/", "api", "")
        .start()
        .await;
    let (status, body) = problem(client().get(gw.url("/slow?ms=5000")).send().await.unwrap()).await;
    assert_eq!(status, 504);
    assert_eq!(body["type"], "urn:portcullis:problem:upstream-timeout");
}

#[tokio::test]
async fn no_healthy_destination_is_a_503_problem_and_a_page_for_browsers() {
    let api = Upstream::start("api").await;
    api.set_healthy(false);
    let gw = GatewayConfig::new()
        .cluster(
            "api",
            &[api.url()],
            "health_check = { path = \"/health\", interval = \"100ms\", unhealthy_threshold = 1 }",
        )
        .route("/", "api", "")
        .start()
        .await;
    crate::harness::eventually(
        "the destination to be marked down",
        std::time::Duration::from_secs(10),
        || async {
            let r = client().get(gw.url("/x")).send().await.unwrap();
            (r.status() == 503).then_some(r)
        },
    )
    .await;
    let (status, body) = problem(client().get(gw.url("/x")).send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(body["type"], "urn:portcullis:problem:no-healthy-upstream");

    let r = client()
        .get(gw.url("/x"))
        .header("accept", "text/html,application/xhtml+xml")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = r.text().await.unwrap();
    assert!(page.contains("Service unavailable"), "{page}");
}

#[tokio::test]
async fn malformed_requests_are_refused_and_the_gateway_keeps_serving() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::in_front_of(&api).start().await;
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    ] {
        let head = crate::harness::raw_http(gw.port, raw).await;
        assert!(
            head.is_empty() || head.starts_with("HTTP/1.1 400"),
            "{:?} got {head}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(api.hits(), 0, "a malformed request reached the upstream");

    // Control bytes in the target never reach the upstream raw: Pingora percent-encodes them.
    let out = crate::harness::raw_http(
        gw.port,
        b"GET /a\x01\x02 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.contains("\"uri\":\"/a%01%02\""), "{out}");

    let r = client().get(gw.url("/still-alive")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
