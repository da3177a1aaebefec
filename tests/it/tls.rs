//! TLS on both sides: https destinations (verified by default) and a TLS listener.

use std::process::Command;

use serde_json::Value;

use crate::harness::tls::{SelfSigned, TlsUpstream};
use crate::harness::{client, GatewayConfig, Upstream};

#[tokio::test]
async fn https_destination_is_verified_by_default_and_usable_when_trust_is_waived() {
    let tls = SelfSigned::generate();
    let upstream = TlsUpstream::start(&tls);
    let gw = GatewayConfig::new()
        .cluster("strict", &[upstream.url()], "")
        .cluster("lenient", &[upstream.url()], "tls_verify = false")
        .route("/strict/", "strict", "")
        .route("/lenient/", "lenient", "")
        .start()
        .await;

    // A self-signed certificate is not trusted: the gateway refuses to talk to it.
    let r = client().get(gw.url("/strict/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "urn:portcullis:problem:upstream-unreachable");

    let r = client().get(gw.url("/lenient/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "tls-upstream");
    assert_eq!(body["path"], "/lenient/x");
    assert_eq!(
        body["headers"]["host"],
        format!("127.0.0.1:{}", upstream.port)
    );
}

#[tokio::test]
async fn tls_listener_serves_https_and_says_so_upstream() {
    let tls = SelfSigned::generate();
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .server(&format!(
            "tls = {{ cert_file = {:?}, key_file = {:?} }}",
            tls.cert.display().to_string(),
            tls.key.display().to_string()
        ))
        .cluster("api", &[api.url()], "")
        .route("/", "api", "")
        .start()
        .await;
    // curl blocks; the upstream runs on this test's runtime, so wait off-thread.
    let (cert, port) = (tls.cert.clone(), gw.port);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(cert)
            .arg(format!("https://localhost:{port}/secure"))
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let echo: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(echo["uri"], "/secure");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
}
