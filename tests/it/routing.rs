//! Routes: longest prefix wins, host-specific routes, prefix rewrite, round robin, health checks.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{client, eventually, GatewayConfig, Upstream};

async fn echo(url: &str) -> Value {
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn longest_prefix_wins_and_host_routes_take_precedence() {
    let spa = Upstream::start("spa").await;
    let api = Upstream::start("api").await;
    let admin_api = Upstream::start("admin-api").await;
    let partner = Upstream::start("partner").await;
    let gw = GatewayConfig::new()
        .cluster("spa", &[spa.url()], "")
        .cluster("api", &[api.url()], "")
        .cluster("admin", &[admin_api.url()], "")
        .cluster("partner", &[partner.url()], "")
        .route("/", "spa", "")
        .route("/api/", "api", "")
        .route("/api/admin", "admin", "")
        .route("/api/", "partner", "host = \"partner.localhost\"")
        .start()
        .await;

    assert_eq!(echo(&gw.url("/index.html")).await["name"], "spa");
    assert_eq!(echo(&gw.url("/api/orders?id=7")).await["name"], "api");
    assert_eq!(
        echo(&gw.url("/api/orders?id=7")).await["uri"],
        "/api/orders?id=7"
    );
    assert_eq!(echo(&gw.url("/api/admin/users")).await["name"], "admin-api");
    assert_eq!(echo(&gw.url("/api/admin")).await["name"], "admin-api");
    // `/api/administrator` is not under the `/api/admin` segment.
    assert_eq!(echo(&gw.url("/api/administrator")).await["name"], "api");
    // `/apix` is not under `/api/`: it falls through to the SPA.
    assert_eq!(echo(&gw.url("/apix")).await["name"], "spa");

    let r = client()
        .get(gw.url("/api/orders"))
        .header("host", "partner.localhost:8080")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "partner");
}

#[tokio::test]
async fn strips_or_rewrites_the_prefix() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .route("/api/", "api", "strip_prefix = true")
        .route("/legacy/", "api", "rewrite_prefix = \"/v2/\"")
        .start()
        .await;
    assert_eq!(
        echo(&gw.url("/api/orders/1?x=y")).await["uri"],
        "/orders/1?x=y"
    );
    assert_eq!(echo(&gw.url("/legacy/items")).await["uri"], "/v2/items");
}

#[tokio::test]
async fn no_route_is_a_404_problem() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .route("/api/", "api", "")
        .start()
        .await;
    let r = client().get(gw.url("/elsewhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:portcullis:problem:no-route");
    assert_eq!(api.hits(), 0);
}

#[tokio::test]
async fn dot_segments_cannot_cross_routes() {
    let public = Upstream::start("public").await;
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("public", &[public.url()], "")
        .cluster("api", &[api.url()], "")
        .route("/public/", "public", "")
        .route("/api/", "api", "")
        .start()
        .await;
    for path in [
        "/public/../api/secret",
        "/public/%2e%2e/api/secret",
        "/public/..%2fapi/secret",
        // What servlet containers resolve as `..` after dropping `;` parameters or decoding.
        "/public/..;/api/secret",
        "/public/%2e%2e;/api/secret",
        "/public/..%3b/api/secret",
        "/public/%252e%252e/api/secret",
        "/public/..%252fapi/secret",
    ] {
        // Sent raw: a client library would normalise the dots away before they reach us.
        let resp = raw_get(gw.port, path).await;
        assert!(resp.starts_with("HTTP/1.1 400"), "{path}: {resp}");
        assert!(resp.contains("ambiguous-path"), "{resp}");
    }
    assert_eq!(public.hits() + api.hits(), 0);
}

async fn raw_get(port: u16, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    crate::harness::raw_http(port, request.as_bytes()).await
}

#[tokio::test]
async fn round_robins_across_destinations() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[a.url(), b.url()], "")
        .route("/", "api", "")
        .start()
        .await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(
            echo(&gw.url("/x")).await["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen.iter().filter(|n| *n == "a").count(), 5, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "not alternating: {seen:?}"
    );
}

#[tokio::test]
async fn unhealthy_destination_leaves_rotation_and_comes_back() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = GatewayConfig::new()
        .cluster(
            "api",
            &[a.url(), b.url()],
            "health_check = { path = \"/health\", interval = \"200ms\", unhealthy_threshold = 1 }",
        )
        .route("/", "api", "")
        .start()
        .await;
    let a_label = format!("destination=\"{}\"", a.url());

    b.set_healthy(false);
    eventually(
        "b to be marked down in metrics",
        Duration::from_secs(10),
        || async {
            let m = gw.metrics().await;
            m.lines()
                .any(|l| {
                    l.starts_with("portcullis_upstream_healthy")
                        && l.contains(&format!("destination=\"{}\"", b.url()))
                        && l.ends_with(" 0")
                })
                .then_some(())
        },
    )
    .await;
    let before = b.hits();
    for _ in 0..6 {
        assert_eq!(echo(&gw.url("/x")).await["name"], "a");
    }
    assert_eq!(b.hits(), before, "a down destination still got traffic");

    b.set_healthy(true);
    eventually(
        "b to take traffic again",
        Duration::from_secs(10),
        || async { (echo(&gw.url("/x")).await["name"] == "b").then_some(()) },
    )
    .await;
    let m = gw.metrics().await;
    assert!(
        m.lines().any(|l| l.contains(&a_label) && l.ends_with(" 1")),
        "{m}"
    );
}

#[tokio::test]
async fn tcp_health_check_takes_a_closed_port_out() {
    let a = Upstream::start("a").await;
    let dead = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let gw = GatewayConfig::new()
        .cluster(
            "api",
            &[a.url(), dead.clone()],
            "health_check = { type = \"tcp\", interval = \"200ms\", unhealthy_threshold = 1 }",
        )
        .route("/", "api", "")
        .start()
        .await;
    let down = format!("destination=\"{dead}\"");
    let up = format!("destination=\"{}\"", a.url());
    eventually(
        "the closed port to be marked down",
        Duration::from_secs(10),
        || async {
            let m = gw.metrics().await;
            let healthy = |label: &str, v: &str| {
                m.lines().any(|l| {
                    l.starts_with("portcullis_upstream_healthy")
                        && l.contains(label)
                        && l.ends_with(v)
                })
            };
            (healthy(&down, " 0") && healthy(&up, " 1")).then_some(())
        },
    )
    .await;
    let before = gw.metrics().await;
    for _ in 0..4 {
        assert_eq!(echo(&gw.url("/x")).await["name"], "a");
    }
    // Out of rotation means not even tried: no new connect errors.
    let errors = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("portcullis_upstream_connect_errors_total"))
            .map(String::from)
    };
    assert_eq!(errors(&before), errors(&gw.metrics().await));
}

#[tokio::test]
async fn a_dead_destination_is_retried_elsewhere_without_errors() {
    let a = Upstream::start("a").await;
    let dead = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let gw = GatewayConfig::new()
        .cluster("api", &[a.url(), dead], "connect_timeout = \"1s\"")
        .route("/", "api", "")
        .start()
        .await;
    for _ in 0..6 {
        assert_eq!(echo(&gw.url("/x")).await["name"], "a");
    }
    assert!(gw
        .metrics()
        .await
        .contains("portcullis_upstream_connect_errors_total{cluster=\"api\"}"));
}
