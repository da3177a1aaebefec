//! The Grafana dashboard (`helm/portcullis/dashboards/portcullis.json`, shipped by the Helm chart
//! and the Compose demo) only plots what the gateway exports: every metric its queries name is
//! on a real gateway's `/metrics` after a login and an API call.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

use crate::harness::login;
use crate::harness::UserAgent;

/// Series that exist only once something happened that this test does not provoke (a refused
/// refresh, a rate limit, a store or IdP failure); they are checked by other tests.
const EVENT_ONLY: &[&str] = &[
    "portcullis_token_refreshes_total",
    "portcullis_rate_limited_total",
    "portcullis_session_store_errors_total",
    "portcullis_idp_errors_total",
];

#[tokio::test]
async fn the_dashboard_plots_only_metrics_the_gateway_exports() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("helm/portcullis/dashboards/portcullis.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(dashboard["uid"], "portcullis");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut names = BTreeSet::new();
    for panel in panels {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("portcullis_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                names.insert(base.to_string());
                rest = &tail[end..];
            }
        }
    }

    let stack = login::start("").await;
    let mut ua = UserAgent::new();
    assert_eq!(
        login::login(&mut ua, &stack.gw, "/", "dana").await.status,
        302
    );
    let api = ua.get(&stack.gw.url("/api/x"), &[("x-csrf", "1")]).await;
    assert_eq!(api.status, 200);
    let metrics = stack.gw.metrics().await;
    for name in &names {
        if EVENT_ONLY.contains(&name.as_str()) {
            continue;
        }
        assert!(
            metrics.contains(&format!("\n{name}")) || metrics.contains(&format!("\n{name}{{")),
            "the dashboard plots {name}, which /metrics does not have:\n{metrics}"
        );
    }
    // The event-only ones are still names the gateway registers.
    let source = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/metrics/mod.rs"),
    )
    .unwrap();
    for name in EVENT_ONLY {
        let short = name.trim_start_matches("portcullis_");
        assert!(
            source.contains(&format!("\"{short}\"")),
            "{name} is not registered"
        );
    }
}
