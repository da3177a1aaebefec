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

#[tokio::test]
async fn a_browser_logs_in_and_the_page_reads_the_user_but_not_the_cookie() {
    let stack = crate::harness::login::start("").await;
    let gw = &stack.gw;
    let foreign = Upstream::start("attacker").await;
    let results = run_browser_script(
        "login.mjs",
        vec![
            format!("http://127.0.0.1:{}", gw.port),
            "frank".into(),
            // `localhost` and `127.0.0.1` are different sites to the browser.
            format!("http://localhost:{}", foreign.addr.port()),
        ],
    )
    .await;
    assert_eq!(results["landedOn"], "/app/home", "{results}");
    assert_eq!(results["user"]["status"], 200, "{results}");
    let claims = results["user"]["claims"].as_array().unwrap();
    assert!(
        claims
            .iter()
            .any(|c| c["type"] == "sub" && c["value"] == "frank"),
        "{results}"
    );
    // The browser keeps the session cookie, as __Host-: HttpOnly, Secure, Lax, Path=/...
    let session = results["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "__Host-portcullis")
        .unwrap_or_else(|| panic!("the browser did not store the session cookie: {results}"));
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["secure"], true);
    assert_eq!(session["sameSite"], "Lax");
    assert_eq!(session["path"], "/");
    // ...so the page's script cannot read it.
    assert!(
        !results["scriptCookies"]
            .as_str()
            .unwrap()
            .contains("__Host-portcullis"),
        "{results}"
    );
    // Another site's page cannot use the signed-in user's session on the API: the call with the
    // header dies at the preflight, the simple one is refused by the gateway.
    assert_eq!(results["crossOrigin"]["withHeader"], "blocked", "{results}");
    assert_eq!(results["crossOrigin"]["simple"], "opaque", "{results}");
    assert_eq!(
        stack.api.hits(),
        0,
        "a cross-site call reached the API with the user's token"
    );
}
