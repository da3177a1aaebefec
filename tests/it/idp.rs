//! The test OP itself: proves the configuration later login tests rely on (PKCE, JWT access
//! tokens for the API, `sid` in ID tokens, rotating refresh tokens with reuse detection).

use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::harness::idp::{Idp, CLIENT_ID, CLIENT_SECRET};
use crate::harness::jwt;
use crate::harness::user_agent::query;
use crate::harness::{client, UserAgent};

const REDIRECT: &str = "http://127.0.0.1:9/signin-oidc";

fn s256(verifier: &str) -> String {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(verifier.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    URL_SAFE_NO_PAD.encode(out.stdout)
}

/// Logs `user` in through the dev interaction pages and returns the `code` and `state`.
async fn authorize(authorize_url: String, user: &str) -> (String, String) {
    let page = UserAgent::new()
        .navigate(&authorize_url, user, |l| l.starts_with(REDIRECT))
        .await;
    let params = query(page.location().expect("redirected back to the client"));
    assert!(!params.contains_key("error"), "OP refused: {params:?}");
    (params["code"].clone(), params["state"].clone())
}

async fn token(idp: &Idp, endpoint: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(endpoint)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(form)
        .send()
        .await
        .unwrap();
    let _ = idp;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_test_op_runs_pkce_logins_with_jwt_access_tokens_and_rotating_refresh_tokens() {
    // `sid` is only issued to clients registered for back-channel logout.
    let idp = Idp::start(
        &[REDIRECT.to_string()],
        &[("OP_BACKCHANNEL_URI", "http://127.0.0.1:9/bff/backchannel")],
    );
    let discovery: Value = client()
        .get(format!("{}/.well-known/openid-configuration", idp.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], idp.issuer);
    let token_endpoint = discovery["token_endpoint"].as_str().unwrap().to_string();

    let verifier = "a-verifier-that-is-long-enough-for-pkce-rules-0123456789";
    let authorize_url = format!(
        "{}?response_type=code&client_id={CLIENT_ID}&redirect_uri={REDIRECT}&scope=openid%20profile%20email%20offline_access\
         &state=s1&nonce=n1&code_challenge={}&code_challenge_method=S256",
        discovery["authorization_endpoint"].as_str().unwrap(),
        s256(verifier)
    );
    let (code, state) = authorize(authorize_url, "alice").await;
    assert_eq!(state, "s1");

    // Without the verifier the code is refused: PKCE is enforced for this confidential client.
    let (status, body) = token(
        &idp,
        &token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (code, _) = authorize(
        format!(
            "{}?response_type=code&client_id={CLIENT_ID}&redirect_uri={REDIRECT}&scope=openid%20profile%20email%20offline_access\
             &state=s2&nonce=n2&code_challenge={}&code_challenge_method=S256",
            discovery["authorization_endpoint"].as_str().unwrap(),
            s256(verifier)
        ),
        "alice",
    )
    .await;
    let (status, tokens) = token(
        &idp,
        &token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let id = jwt::claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["nonce"], "n2");
    assert!(id["sid"].is_string(), "no sid in the ID token: {id}");
    assert_eq!(id["email"], "alice@example.test");
    let access = jwt::claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], "api", "{access}");
    let first_refresh = tokens["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_string();

    let (status, refreshed) = token(
        &idp,
        &token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_ne!(
        refreshed["refresh_token"].as_str().unwrap(),
        first_refresh,
        "refresh tokens do not rotate"
    );
    // Reusing a rotated refresh token is the replay the gateway must never commit.
    let (status, replay) = token(
        &idp,
        &token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn gateway_is_not_ready_until_oidc_discovery_succeeds() {
    use crate::harness::{free_port, GatewayConfig, Upstream};
    let spa = Upstream::start("spa").await;
    let op_port = free_port();
    let gw = GatewayConfig::new()
        .server("public_origin = \"https://app.example.test\"")
        .toml(&format!(
            "[oidc]\nissuer = \"http://127.0.0.1:{op_port}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\""
        ))
        .cluster("spa", &[spa.url()], "")
        .route("/", "spa", "")
        .start()
        .await;
    let readiness = || async {
        let r = client().get(gw.admin_url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    // The IdP is down: the gateway runs and serves the SPA, but is not ready.
    let (status, body) = readiness().await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["checks"]["identity_provider"], "ok");
    assert_eq!(
        client()
            .get(gw.url("/"))
            .header("host", "app.example.test")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let _idp = Idp::start(
        &[REDIRECT.to_string()],
        &[("OP_PORT", &op_port.to_string())],
    );
    crate::harness::eventually(
        "ready after discovery",
        std::time::Duration::from_secs(30),
        || async {
            let (status, body) = readiness().await;
            (status == 200 && body["checks"]["identity_provider"] == "ok").then_some(())
        },
    )
    .await;
    assert!(
        !gw.log().contains(CLIENT_SECRET),
        "the client secret reached the log"
    );
}
