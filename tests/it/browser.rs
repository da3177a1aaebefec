//! Real-browser checks: Debian chromium driven by playwright-core (`tests/e2e`).

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{GatewayConfig, Upstream};

/// Runs `node tests/e2e/<script> args...` off the test's runtime and returns its JSON output.
async fn run_browser_script(script: &str, args: Vec<String>) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/e2e");
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "browser tests need chromium and playwright-core: run `bash .ci/install-deps test`"
    );
    let script = dir.join(script);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "browser script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("no result: {stdout}"))
}

#[tokio::test]
async fn a_page_on_another_site_cannot_call_protected_routes() {
    let api = Upstream::start("api").await;
    let spa = Upstream::start("spa").await;
    let foreign = Upstream::start("attacker").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .cluster("spa", &[spa.url()], "")
        .route("/api/", "api", "anti_forgery = true")
        .route("/", "spa", "")
        .start()
        .await;
    // `localhost` and `127.0.0.1` are different sites to the browser.
    let results = run_browser_script(
        "antiforgery.mjs",
        vec![
            format!("http://127.0.0.1:{}", gw.port),
            format!("http://localhost:{}", foreign.addr.port()),
        ],
    )
    .await;
    assert_eq!(results["sameOrigin"]["withHeader"], 200, "{results}");
    assert_eq!(results["sameOrigin"]["withoutHeader"], 401, "{results}");
    // The preflight for X-CSRF is refused, so the browser never sends the call.
    assert_eq!(results["crossOrigin"]["withHeader"], "blocked", "{results}");
    // The simple request is sent (opaque to the page) and refused by the gateway.
    assert_eq!(results["crossOrigin"]["simple"], "opaque", "{results}");
    assert_eq!(api.hits(), 1, "only the SPA's own call may reach the API");
}
