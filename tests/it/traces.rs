//! OpenTelemetry traces, received by a real OTLP collector (`harness/otlp.rs`): the shape of a
//! login's and an API call's traces, W3C trace context in and out, the trace id where a user's
//! error report leads, nothing secret in any attribute, and requests unaffected by a collector
//! that is down.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::login::{self, through_idp};
use crate::harness::otlp::{Collector, Protocol, Span, CLIENT, SERVER};
use crate::harness::{client, eventually, GatewayConfig, Upstream, UserAgent};

const INCOMING_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const INCOMING_SPAN: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{INCOMING_TRACE}-{INCOMING_SPAN}-01")
}

fn telemetry(collector: &Collector, extra: &str) -> String {
    format!(
        "[telemetry]\nendpoint = \"{}\"\nexport_interval = \"50ms\"\n{extra}\n",
        collector.url()
    )
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id)
        .collect()
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {:#?}", names(spans)))
}

fn names(spans: &[Span]) -> BTreeSet<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// `traceparent` as (trace id, parent id, flags).
fn parts(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    (p[1].into(), p[2].into(), p[3].into())
}

#[tokio::test]
async fn a_login_and_an_api_call_arrive_as_traces_of_their_phases_with_nothing_secret() {
    let collector = Collector::start(Protocol::Http).await;
    let stack = login::start(&telemetry(&collector, "")).await;
    let (gw, api) = (&stack.gw, &stack.api);
    let mut ua = UserAgent::new();

    // The login, stopped at the callback so the test knows the authorization code.
    let start = gw.url("/bff/login?returnUrl=/");
    let at_callback = ua
        .navigate(&start, "alice", |next| next.contains("/signin-oidc"))
        .await;
    let callback_url = at_callback.headers["location"]
        .to_str()
        .unwrap()
        .to_string();
    let code = url::Url::parse(&callback_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code in the callback");
    let landed = through_idp(&mut ua, &gw.url(""), &callback_url, "alice").await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let cookie = ua
        .cookie("__Host-portcullis")
        .expect("a session")
        .to_string();

    // The callback's trace: server span, the endpoint's span, the code exchange at the IdP and
    // the new session written to the store, all in one trace.
    let callback = collector
        .wait_for("the callback's server span", |s| {
            s.kind == SERVER && s.name == "GET bff:callback"
        })
        .await;
    assert_eq!(callback.attributes["http.route"], "bff:callback");
    assert_eq!(callback.attributes["http.response.status_code"], "302");
    assert_eq!(
        callback.attributes["url.path"], "/signin-oidc",
        "no query string"
    );
    assert_eq!(callback.resource["service.name"], "portcullis");
    let trace = eventually("the callback's children", Duration::from_secs(10), || {
        let spans = collector.trace(&callback.trace_id);
        async move { (spans.len() >= 4).then_some(spans) }
    })
    .await;
    let endpoint = named(&trace, "bff:callback");
    assert_eq!(endpoint.parent_span_id, callback.span_id);
    let exchange = named(&trace, "idp token");
    assert_eq!(exchange.kind, CLIENT);
    assert_eq!(exchange.parent_span_id, endpoint.span_id);
    assert_eq!(exchange.attributes["server.address"], "127.0.0.1");
    let stored = named(&trace, "session store create");
    assert_eq!(stored.parent_span_id, endpoint.span_id);

    // An API call continuing the SPA's trace: server span under the caller's span, session
    // lookup and the upstream call under it; the API gets a
    // traceparent naming the upstream call's span.
    let page = ua
        .get(
            &gw.url("/api/orders"),
            &[
                ("x-csrf", "1"),
                ("traceparent", &traceparent()),
                ("tracestate", "vendor=1"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let echoed: Value = serde_json::from_str(&page.body).unwrap();
    let upstream_tp = echoed["headers"]["traceparent"][0]
        .as_str()
        .expect("a traceparent upstream");
    let (tid, parent, flags) = parts(upstream_tp);
    assert_eq!(tid, INCOMING_TRACE, "the caller's trace continues");
    assert_eq!(flags, "01");
    assert_ne!(
        parent, INCOMING_SPAN,
        "the upstream's parent is the gateway's span"
    );
    assert_eq!(echoed["headers"]["tracestate"][0], "vendor=1");
    let token = echoed["headers"]["authorization"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();

    let server = collector
        .wait_for("the API call's server span", |s| {
            s.trace_id == INCOMING_TRACE && s.kind == SERVER
        })
        .await;
    assert_eq!(server.parent_span_id, INCOMING_SPAN);
    assert_eq!(server.name, "GET /api/", "named by the route");
    let trace = eventually("the API call's spans", Duration::from_secs(10), || {
        let spans = collector.trace(INCOMING_TRACE);
        async move { (spans.len() >= 4).then_some(spans) }
    })
    .await;
    let upstream = trace
        .iter()
        .find(|s| s.kind == CLIENT && s.name == "GET api")
        .unwrap_or_else(|| panic!("no upstream call span in {:#?}", names(&trace)));
    assert_eq!(upstream.parent_span_id, server.span_id);
    assert_eq!(
        upstream.span_id, parent,
        "the API's traceparent names the upstream call"
    );
    assert_eq!(upstream.attributes["http.response.status_code"], "200");
    let lookup = named(&trace, "session lookup");
    assert_eq!(lookup.parent_span_id, server.span_id);
    // The memory store has no replica cache in front of it: a store read, as a span of its own.
    assert_eq!(lookup.attributes["portcullis.session.source"], "store");
    assert_eq!(
        named(&trace, "session store read").parent_span_id,
        lookup.span_id
    );
    assert_eq!(children(&trace, &server).len(), 2, "{:#?}", names(&trace));

    // Nothing secret anywhere: not the cookie, the session id in it, the code or a token.
    let secrets = [cookie.as_str(), code.as_str(), token.as_str()];
    for span in collector.spans() {
        for value in span.attributes.values().chain([&span.name]) {
            for secret in secrets {
                assert!(
                    !value.contains(secret),
                    "span {:?} carries a secret in {value:?}",
                    span.name
                );
            }
        }
    }
    assert!(!callback.attributes.values().any(|v| v.contains("code=")));
    assert!(api.hits() > 0);
}

#[tokio::test]
async fn errors_and_log_lines_carry_the_trace_id_and_a_public_edge_links_instead_of_continuing() {
    let collector = Collector::start(Protocol::Http).await;
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .route("/api/", "api", "anti_forgery = true")
        .toml(&telemetry(&collector, "incoming = \"link\""))
        .env("PORTCULLIS_LOG_FORMAT", "json")
        .start()
        .await;
    let http = client();

    // A new trace, linked to the caller's: the caller chooses neither the id nor sampling.
    let r = http
        .get(gw.url("/api/a"))
        .header("x-csrf", "1")
        .header(
            "traceparent",
            format!("00-{INCOMING_TRACE}-{INCOMING_SPAN}-00"),
        )
        .header("tracestate", "vendor=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.unwrap();
    let (tid, _, flags) = parts(echoed["headers"]["traceparent"][0].as_str().unwrap());
    assert_ne!(tid, INCOMING_TRACE);
    assert_eq!(
        flags, "01",
        "sampled by the gateway, though the caller said not to"
    );
    assert!(
        echoed["headers"].get("tracestate").is_none(),
        "the caller's state is not passed on"
    );
    let server = collector
        .wait_for("the linked server span", |s| {
            s.kind == SERVER && s.trace_id == tid
        })
        .await;
    assert_eq!(server.parent_span_id, "", "a root span");
    assert_eq!(
        server.links,
        vec![(INCOMING_TRACE.to_string(), INCOMING_SPAN.to_string())]
    );
    let trace = collector.trace(&tid);
    assert_eq!(
        names(&trace),
        BTreeSet::from(["GET /api/", "GET api"]),
        "{trace:#?}"
    );

    // A refused call: its problem body and its access line name the trace it is in.
    let r = http.get(gw.url("/api/b")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let problem: Value = r.json().await.unwrap();
    let trace_id = problem["trace_id"]
        .as_str()
        .expect("a trace_id member")
        .to_string();
    assert_eq!(trace_id.len(), 32);
    let refused = collector
        .wait_for("the refused call's span", |s| s.trace_id == trace_id)
        .await;
    assert_eq!(refused.attributes["http.response.status_code"], "401");
    assert_eq!(
        refused.status, 0,
        "a client's error is not the server span's error"
    );
    let line = eventually("the access line", Duration::from_secs(5), || {
        let line = gw
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["target"] == "access" && l["path"] == "/api/b");
        async move { line }
    })
    .await;
    assert_eq!(line["trace_id"], trace_id.as_str());
}

#[tokio::test]
async fn grpc_export_and_unsampled_requests_still_propagate() {
    let collector = Collector::start(Protocol::Grpc).await;
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::in_front_of(&api)
        .toml(&format!(
            "[telemetry]\nprotocol = \"grpc\"\nendpoint = \"{}\"\nexport_interval = \"50ms\"\n",
            collector.url()
        ))
        .env("OTEL_SERVICE_NAME", "edge-gateway")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=test",
        )
        .start()
        .await;
    let http = client();
    let r = http
        .get(gw.url("/sampled"))
        .header("traceparent", traceparent())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let span = collector
        .wait_for("a span over gRPC", |s| {
            s.kind == SERVER && s.trace_id == INCOMING_TRACE
        })
        .await;
    assert_eq!(span.resource["service.name"], "edge-gateway");
    assert_eq!(span.resource["deployment.environment.name"], "test");

    // The caller decided not to sample: no span is exported, yet the API learns the trace.
    let unsampled = "5bf92f3577b34da6a3ce929d0e0e4736";
    let r = http
        .get(gw.url("/unsampled"))
        .header("traceparent", format!("00-{unsampled}-{INCOMING_SPAN}-00"))
        .send()
        .await
        .unwrap();
    let echoed: Value = r.json().await.unwrap();
    let (tid, parent, flags) = parts(echoed["headers"]["traceparent"][0].as_str().unwrap());
    assert_eq!((tid.as_str(), flags.as_str()), (unsampled, "00"));
    assert_ne!(parent, INCOMING_SPAN);
    // A sampled request after it is exported; the unsampled one never was.
    let r = http.get(gw.url("/after")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    collector
        .wait_for("the later request's span", |s| {
            s.attributes.get("url.path").is_some_and(|p| p == "/after")
        })
        .await;
    assert!(collector.trace(unsampled).is_empty());
}

#[tokio::test]
async fn requests_do_not_wait_for_a_collector_that_hangs_and_lost_spans_are_counted() {
    let api = Upstream::start("api").await;
    // A collector that takes connections and never answers: every export runs into its
    // timeout while requests keep coming.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gw = GatewayConfig::in_front_of(&api)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            &format!("http://{}", hole.local_addr().unwrap()),
        )
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "16")
        .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8")
        .start()
        .await;
    let http = client();
    for i in 0..200 {
        let r = http.get(gw.url(&format!("/n/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let metric = |text: &str, reason: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!(
                    "portcullis_trace_spans_dropped_total{{reason=\"{reason}\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Two spans a request (server, upstream call): every one is lost, and counted.
    let (failed, full) = eventually("lost spans counted", Duration::from_secs(15), || async {
        let text = gw.metrics().await;
        let (failed, full) = (metric(&text, "export_failed"), metric(&text, "queue_full"));
        (failed > 0.0 && failed + full >= 400.0).then_some((failed, full))
    })
    .await;
    assert!(
        full > 0.0,
        "a queue of 16 overflows while exports hang: {failed} {full}"
    );
    assert!(gw
        .metrics()
        .await
        .contains("portcullis_trace_spans_exported_total 0"));
    drop(hole);
}

#[tokio::test]
async fn a_refresh_is_a_span_of_the_call_that_needed_it_with_the_idp_call_and_store_write_under_it()
{
    let collector = Collector::start(Protocol::Http).await;
    let config = format!(
        "[tokens]\nrefresh_skew = \"1s\"\nrefresh_lock_lease = \"2s\"\n{}",
        telemetry(&collector, "")
    );
    let stack = login::start_with_op(&config, &[], &[("OP_ACCESS_TOKEN_TTL", "3")]).await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    login::login(&mut ua, gw, "/", "carol").await;
    assert!(ua.cookie("__Host-portcullis").is_some());

    // Past the token's life less the skew, the next call refreshes it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let page = ua
        .get(
            &gw.url("/api/after-expiry"),
            &[("x-csrf", "1"), ("traceparent", &traceparent())],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let refresh = collector
        .wait_for("the refresh span", |s| {
            s.trace_id == INCOMING_TRACE && s.name == "token refresh"
        })
        .await;
    let trace = eventually("the refresh's children", Duration::from_secs(10), || {
        let spans = collector.trace(INCOMING_TRACE);
        let done = spans.iter().any(|s| s.name == "idp token")
            && spans.iter().any(|s| s.name == "session store update");
        async move { done.then_some(spans) }
    })
    .await;
    let server = trace
        .iter()
        .find(|s| s.kind == SERVER)
        .expect("a server span");
    assert_eq!(refresh.parent_span_id, server.span_id);
    let exchange = named(&trace, "idp token");
    assert_eq!(exchange.kind, CLIENT);
    assert_eq!(exchange.parent_span_id, refresh.span_id);
    assert_eq!(
        named(&trace, "session store update").parent_span_id,
        refresh.span_id
    );
    assert_eq!(refresh.status, 0, "a refresh that worked is no error");
}
