//! What the upstream sees: forwarded headers, hop-by-hop stripping, request ids, Host.

use serde_json::Value;

use crate::harness::{client, GatewayConfig, Upstream};

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

async fn via(gw: &crate::harness::Gateway, path: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = client().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

const SPOOFED: &[(&str, &str)] = &[
    ("x-forwarded-for", "203.0.113.9"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "evil.example"),
    ("forwarded", "for=203.0.113.9"),
];

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_client_are_replaced() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::in_front_of(&api).start().await;
    let echo = via(&gw, "/x", SPOOFED).await;
    assert_eq!(header(&echo, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&echo, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&echo, "x-forwarded-host"),
        Some(format!("127.0.0.1:{}", gw.port).as_str())
    );
    assert_eq!(header(&echo, "forwarded"), None);

    // What frameworks read as another client, host, path or method never reaches the upstream,
    // nor an underscore spelling that CGI-style upstreams fold into the real header.
    let claims = [
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-http-method-override", "DELETE"),
        ("x-forwarded-prefix", "/evil"),
        ("x-forwarded-uri", "/evil"),
        ("x-forwarded-server", "evil"),
        ("x-forwarded-port", "1"),
        ("x-real-ip", "203.0.113.9"),
        ("x_forwarded_for", "203.0.113.9"),
        ("x_forwarded_host", "evil.example"),
    ];
    let echo = via(&gw, "/x", &claims).await;
    for (name, _) in claims {
        assert_eq!(header(&echo, name), None, "{name} reached the upstream");
    }
    assert_eq!(header(&echo, "x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_are_extended() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .server("trusted_proxies = [\"127.0.0.0/8\"]")
        .cluster("api", &[api.url()], "")
        .route("/", "api", "")
        .start()
        .await;
    let echo = via(&gw, "/x", SPOOFED).await;
    assert_eq!(
        header(&echo, "x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(header(&echo, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&echo, "x-forwarded-host"), Some("evil.example"));
}

#[tokio::test]
async fn host_is_the_destination_unless_preserved() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .cluster("kept", &[api.url()], "preserve_host = true")
        .route("/", "api", "")
        .route("/kept/", "kept", "")
        .start()
        .await;
    let echo = via(&gw, "/x", &[]).await;
    assert_eq!(header(&echo, "host"), Some(api.addr.to_string().as_str()));
    let echo = via(&gw, "/kept/x", &[("host", "app.example.com")]).await;
    assert_eq!(header(&echo, "host"), Some("app.example.com"));
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::in_front_of(&api).start().await;
    // reqwest would refuse to send some of these; write the request by hand.
    let raw = crate::harness::raw_http(
        gw.port,
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close, x-client-hop\r\n\
          X-Client-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
          TE: trailers\r\nX-End-To-End: kept\r\n\r\n",
    )
    .await;
    let body = raw.split("\r\n\r\n").nth(1).unwrap();
    let echo: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{raw}"));
    for gone in ["x-client-hop", "keep-alive", "proxy-authorization", "te"] {
        assert_eq!(
            header(&echo, gone),
            None,
            "{gone} reached the upstream: {echo}"
        );
    }
    assert_eq!(header(&echo, "x-end-to-end"), Some("kept"));

    let r = client().get(gw.url("/hop")).send().await.unwrap();
    assert_eq!(r.headers().get("x-end-to-end").unwrap(), "kept");
    assert!(
        r.headers().get("x-upstream-hop").is_none(),
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("keep-alive").is_none(), "{:?}", r.headers());
}

#[tokio::test]
async fn request_ids_are_propagated_or_generated() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::in_front_of(&api).start().await;
    let r = client()
        .get(gw.url("/x"))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    let echo: Value = r.json().await.unwrap();
    assert_eq!(header(&echo, "x-request-id"), Some("trace-123"));

    let r = client()
        .get(gw.url("/x"))
        .header("x-request-id", "bad id <x>")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let echo: Value = r.json().await.unwrap();
    assert_eq!(header(&echo, "x-request-id"), Some(id.as_str()));
}

#[tokio::test]
async fn upstreams_cannot_set_the_gateways_cookies() {
    let spa = Upstream::start("spa").await;
    let gw = GatewayConfig::new()
        .cluster("spa", &[spa.url()], "")
        .route("/", "spa", "")
        .start()
        .await;
    let r = client().get(gw.url("/set-cookies")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        cookies,
        ["app-theme=dark; Path=/"],
        "only the app's own cookie passes"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portcullis_upstream_cookies_dropped_total 2"),
        "{metrics}"
    );
    assert!(gw.log().contains("tried to set the gateway's own cookie"));
}

#[tokio::test]
async fn requests_for_hosts_the_gateway_does_not_serve_are_misdirected() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .server("public_origin = \"https://app.example.test\"")
        .cluster("api", &[api.url()], "")
        .route("/", "api", "")
        .route("/partner/", "api", "host = \"partner.example.test\"")
        .start()
        .await;
    let get = |path: &str, host: &str| client().get(gw.url(path)).header("host", host).send();
    for host in [
        "app.example.test",
        "APP.Example.Test:443",
        "partner.example.test",
    ] {
        let r = get("/x", host).await.unwrap();
        assert_eq!(r.status(), 200, "{host}");
        let echo: Value = r.json().await.unwrap();
        assert_eq!(header(&echo, "x-forwarded-host"), Some(host));
    }
    let served = api.hits();
    for host in ["evil.example", "app.example.test.evil.example", "127.0.0.1"] {
        let r = get("/x", host).await.unwrap();
        assert_eq!(r.status(), 421, "{host}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(
            problem["type"],
            "urn:portcullis:problem:misdirected-request"
        );
    }
    // Gateway endpoints too: a login started under a foreign name would mint links for it.
    assert_eq!(
        get("/bff/user", "evil.example").await.unwrap().status(),
        421
    );
    assert_eq!(
        api.hits(),
        served,
        "a misdirected request reached the upstream"
    );
    let no_host =
        crate::harness::raw_http(gw.port, b"GET /x HTTP/1.0\r\nConnection: close\r\n\r\n").await;
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");

    // Behind a trusted proxy the host the client addressed is its X-Forwarded-Host.
    let behind = GatewayConfig::new()
        .server("public_origin = \"https://app.example.test\"\ntrusted_proxies = [\"127.0.0.0/8\"]")
        .cluster("api", &[api.url()], "")
        .route("/", "api", "")
        .start()
        .await;
    let via_proxy = |xfh: &'static str| {
        client()
            .get(behind.url("/x"))
            .header("x-forwarded-host", xfh)
            .send()
    };
    assert_eq!(via_proxy("app.example.test").await.unwrap().status(), 200);
    assert_eq!(via_proxy("evil.example").await.unwrap().status(), 421);
    assert_eq!(
        via_proxy("app.example.test, evil.example")
            .await
            .unwrap()
            .status(),
        421
    );
}

#[tokio::test]
async fn security_headers_reach_the_browser_and_upstreams_cannot_weaken_them() {
    let spa = Upstream::start("spa").await;
    let gw = GatewayConfig::new()
        .server("public_origin = \"https://app.example.test\"")
        .cluster("spa", &[spa.url()], "")
        .route("/", "spa", "")
        .start()
        .await;
    let get = |path: &'static str| {
        client()
            .get(gw.url(path))
            .header("host", "app.example.test")
            .send()
    };
    let defaults = [
        ("strict-transport-security", "max-age=31536000"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "strict-origin-when-cross-origin"),
        ("x-frame-options", "DENY"),
        ("content-security-policy", "frame-ancestors 'none'"),
    ];
    // On a proxied page (replacing the upstream's own weaker values) and on the gateway's own
    // answers.
    for (path, status) in [
        ("/index.html", 200),
        ("/own-headers", 200),
        ("/a/..;/b", 400),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        for (name, value) in defaults {
            assert_eq!(r.headers()[name], value, "{path}: {name}");
        }
    }

    // Configured: the SPA's own CSP wins where it sends one; the rest is the gateway's.
    let tuned = GatewayConfig::new()
        .server("public_origin = \"https://app.example.test\"")
        .toml(
            "[response_headers]\nstrict_transport_security = \"max-age=63072000; includeSubDomains; preload\"\n\
             frame_options = \"SAMEORIGIN\"\nreferrer_policy = \"no-referrer\"\n\
             upstream_wins = [\"Content-Security-Policy\"]",
        )
        .cluster("spa", &[spa.url()], "")
        .route("/", "spa", "")
        .start()
        .await;
    let get = |path: &'static str| {
        client()
            .get(tuned.url(path))
            .header("host", "app.example.test")
            .send()
    };
    let own = get("/own-headers").await.unwrap();
    let h = own.headers();
    assert_eq!(
        h["content-security-policy"],
        "script-src 'self' 'nonce-abc'"
    );
    assert_eq!(h["x-frame-options"], "SAMEORIGIN");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(
        h["strict-transport-security"],
        "max-age=63072000; includeSubDomains; preload"
    );
    let plain = get("/index.html").await.unwrap();
    assert_eq!(
        plain.headers()["content-security-policy"],
        "frame-ancestors 'self'"
    );
}
