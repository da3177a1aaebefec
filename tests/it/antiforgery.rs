//! Anti-forgery on protected routes: only calls made by the SPA's own pages get through.

use serde_json::Value;

use crate::harness::{client, Gateway, GatewayConfig, Upstream};

async fn gateway(api: &Upstream, spa: &Upstream) -> Gateway {
    GatewayConfig::new()
        .toml("[anti_forgery]\nallowed_origins = [\"https://admin.example.com\"]")
        .cluster("api", &[api.url()], "")
        .cluster("spa", &[spa.url()], "")
        .route("/api/", "api", "anti_forgery = true")
        .route("/", "spa", "")
        .start()
        .await
}

async fn call(
    gw: &Gateway,
    method: reqwest::Method,
    headers: &[(&str, &str)],
) -> (u16, Option<Value>) {
    let mut req = client().request(method, gw.url("/api/orders"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let problem = r
        .headers()
        .get("content-type")
        .is_some_and(|c| c == "application/problem+json");
    (status, if problem { r.json().await.ok() } else { None })
}

#[tokio::test]
async fn forged_calls_are_refused_before_reaching_the_api() {
    let (api, spa) = (Upstream::start("api").await, Upstream::start("spa").await);
    let gw = gateway(&api, &spa).await;
    let own = format!("http://127.0.0.1:{}", gw.port);

    // (request headers, expected status, expected problem type)
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case<'_>] = &[
        (&[], 401, "anti-forgery-header-missing"),
        (&[("x-csrf", "0")], 401, "anti-forgery-header-missing"),
        (
            &[("x-csrf", "1"), ("sec-fetch-site", "cross-site")],
            403,
            "cross-site-request",
        ),
        (
            &[("x-csrf", "1"), ("origin", "https://evil.example")],
            403,
            "origin-not-allowed",
        ),
        (
            &[("x-csrf", "1"), ("origin", "null")],
            403,
            "origin-not-allowed",
        ),
    ];
    for (headers, status, slug) in cases {
        let (got, body) = call(&gw, reqwest::Method::POST, headers).await;
        assert_eq!(got, *status, "{headers:?}");
        let body = body.unwrap_or_else(|| panic!("no problem body for {headers:?}"));
        assert_eq!(
            body["type"],
            format!("urn:portcullis:problem:{slug}"),
            "{headers:?}"
        );
    }
    assert_eq!(api.hits(), 0, "a refused call reached the API");

    // A CORS preflight cannot be approved: it never carries the header.
    let (status, _) = call(
        &gw,
        reqwest::Method::OPTIONS,
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-headers", "x-csrf"),
        ],
    )
    .await;
    assert!(
        status == 401 || status == 403,
        "preflight answered {status}"
    );

    // The SPA's own calls pass, with or without Fetch Metadata and Origin.
    for headers in [
        vec![("x-csrf", "1")],
        vec![
            ("x-csrf", "1"),
            ("sec-fetch-site", "same-origin"),
            ("origin", own.as_str()),
        ],
        vec![("x-csrf", "1"), ("origin", "https://admin.example.com")],
    ] {
        assert_eq!(
            call(&gw, reqwest::Method::POST, &headers).await.0,
            200,
            "{headers:?}"
        );
    }
    // Unprotected routes (the SPA's pages) need nothing.
    assert_eq!(
        client()
            .get(gw.url("/index.html"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn header_name_and_value_are_configurable() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .route("/api/", "api", "anti_forgery = true")
        .env("PORTCULLIS__ANTI_FORGERY__HEADER", "X-Requested-With")
        .env("PORTCULLIS__ANTI_FORGERY__VALUE", "XMLHttpRequest")
        .start()
        .await;
    assert_eq!(
        call(&gw, reqwest::Method::GET, &[("x-csrf", "1")]).await.0,
        401
    );
    assert_eq!(
        call(
            &gw,
            reqwest::Method::GET,
            &[("x-requested-with", "XMLHttpRequest")]
        )
        .await
        .0,
        200
    );
}
