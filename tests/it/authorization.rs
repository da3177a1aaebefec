//! Authorization against the real OP: who may sign in (`[authorization] require`), which
//! route needs which claims (`routes[].require`), step-up (`acr_values`), and the claims an
//! upstream gets as headers (`claim_headers`), which a client can never forge.

use serde_json::{json, Value};

use crate::harness::idp::Idp;
use crate::harness::login::{self, Stack};
use crate::harness::{free_port, Gateway, GatewayConfig, Upstream, UserAgent};

/// A gateway for the OP with the standard test routes plus `extra` routes and TOML.
async fn stack(extra_routes: &[(&str, &str)], toml: &str, op_env: &[(&str, &str)]) -> Stack {
    let port = free_port();
    let idp: Idp = login::start_idp_with(&[port], op_env);
    let spa = Upstream::start("spa").await;
    let api = Upstream::start("api").await;
    let mut cfg: GatewayConfig = login::gateway_config(port, port, &idp.issuer, &spa, &api);
    for (path, keys) in extra_routes {
        cfg = cfg.route(path, "api", keys);
    }
    let gw = cfg.toml(toml).start().await;
    login::wait_ready(&gw).await;
    Stack { idp, gw, spa, api }
}

async fn call(
    ua: &mut UserAgent,
    gw: &Gateway,
    path: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut headers = vec![("x-csrf", "1")];
    headers.extend_from_slice(extra);
    let page = ua.get(&gw.url(path), &headers).await;
    (
        page.status,
        serde_json::from_str(&page.body).unwrap_or(Value::Null),
    )
}

fn header<'v>(echo: &'v Value, name: &str) -> Vec<&'v str> {
    echo["headers"][name]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn routes_admit_only_users_whose_claims_satisfy_their_rules() {
    let s = stack(
        &[
            (
                "/admin/",
                "token = \"user\"\nrequire = [{ claim = \"groups\", any_of = [\"admins\", \"ops\"] }]\n\
                 claim_headers = { \"X-User-Sub\" = \"sub\", \"X-User-Groups\" = \"groups\" }",
            ),
            (
                "/nested/",
                "token = \"user\"\nrequire = [{ claim = \"realm_access.roles\", all_of = [\"reader\", \"writer\"] }, \
                 { claim = \"email_verified\", equals = true }, { claim = \"level\", present = true }]",
            ),
        ],
        "",
        &[],
    )
    .await;
    let gw = &s.gw;
    s.idp
        .set_claims("ann", json!({ "groups": ["admins"], "realm_access": { "roles": ["reader", "writer"] }, "level": 3 }))
        .await;
    s.idp
        .set_claims(
            "bob",
            json!({ "groups": ["staff"], "realm_access": { "roles": ["reader"] } }),
        )
        .await;

    let mut ann = UserAgent::new();
    assert_eq!(login::login(&mut ann, gw, "/", "ann").await.status, 302);
    // Forged identity headers, in every spelling an upstream might fold together.
    let forged = [
        ("x-user-sub", "mallory"),
        ("X_User_Sub", "mallory"),
        ("x-user-groups", "root"),
    ];
    let (status, echo) = call(&mut ann, gw, "/admin/reports", &forged).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(header(&echo, "x-user-sub"), ["ann"]);
    assert_eq!(header(&echo, "x-user-groups"), ["admins"]);
    assert!(header(&echo, "x_user_sub").is_empty(), "{echo}");
    assert_eq!(call(&mut ann, gw, "/nested/x", &[]).await.0, 200);
    // On a route without claim headers the forged ones are removed too.
    let (status, echo) = call(&mut ann, gw, "/api/x", &forged).await;
    assert_eq!(status, 200);
    assert!(
        header(&echo, "x-user-sub").is_empty() && header(&echo, "x_user_sub").is_empty(),
        "{echo}"
    );

    let mut bob = UserAgent::new();
    assert_eq!(login::login(&mut bob, gw, "/", "bob").await.status, 302);
    let (status, problem) = call(&mut bob, gw, "/admin/reports", &[]).await;
    assert_eq!(status, 403);
    assert_eq!(
        problem["type"],
        "urn:portcullis:problem:insufficient-claims"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("groups (any_of)"), "{detail}");
    assert!(
        !detail.contains("staff"),
        "the user's claim values leaked: {detail}"
    );
    let (status, problem) = call(&mut bob, gw, "/nested/x", &[]).await;
    assert_eq!(status, 403);
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("realm_access.roles (all_of)"));
    // Still signed in: a refusal is not a logout.
    assert_eq!(call(&mut bob, gw, "/api/x", &[]).await.0, 200);

    let mut anonymous = UserAgent::new();
    assert_eq!(call(&mut anonymous, gw, "/admin/reports", &[]).await.0, 401);
    let audit = gw.log();
    assert!(
        audit.contains("event=\"authorization\"") || audit.contains("event=authorization"),
        "no audit line for the refusal:\n{audit}"
    );
}

#[tokio::test]
async fn a_login_the_authorization_rules_exclude_gets_no_session() {
    let s = stack(
        &[],
        "[authorization]\nrequire = [{ claim = \"groups\", any_of = [\"staff\"] }]",
        &[],
    )
    .await;
    let gw = &s.gw;
    s.idp
        .set_claims("sue", json!({ "groups": ["staff"] }))
        .await;

    let mut carl = UserAgent::new();
    let refused = login::login(&mut carl, gw, "/", "carl").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("Sign-in not allowed"),
        "{}",
        refused.body
    );
    assert!(
        carl.cookie("__Host-portcullis").is_none(),
        "a refused login got a session"
    );
    assert_eq!(login::user(&mut carl, gw).await.status, 401);
    // The refresh token the IdP issued dies with the refusal.
    crate::harness::eventually(
        "the refused login's refresh token to be revoked",
        std::time::Duration::from_secs(10),
        || async { (s.idp.grants().await["refresh_tokens_destroyed"] == 1).then_some(()) },
    )
    .await;

    let mut sue = UserAgent::new();
    assert_eq!(login::login(&mut sue, gw, "/", "sue").await.status, 302);
    assert_eq!(login::user(&mut sue, gw).await.status, 200);
}

#[tokio::test]
async fn a_route_that_needs_a_stronger_sign_in_sends_the_user_through_step_up() {
    let s = stack(
        &[("/payments/", "token = \"user\"\nacr_values = [\"urn:mfa\"]")],
        "",
        &[],
    )
    .await;
    let gw = &s.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "dora").await.status, 302);

    let (status, problem) = call(&mut ua, gw, "/payments/send?amount=5", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(problem["type"], "urn:portcullis:problem:step-up-required");
    let login_url = problem["login_url"].as_str().unwrap().to_string();
    assert_eq!(
        login_url,
        "/bff/login?acr_values=urn%3Amfa&returnUrl=%2Fpayments%2Fsend%3Famount%3D5"
    );
    // Nothing else can be asked for through the login endpoint.
    let bogus = ua.get(&gw.url("/bff/login?acr_values=urn:root"), &[]).await;
    assert_eq!(bogus.status, 400);

    let back = login::through_idp(&mut ua, &gw.url(""), &gw.url(&login_url), "dora").await;
    assert_eq!(
        back.location(),
        Some("/payments/send?amount=5"),
        "{}",
        back.body
    );
    let (status, echo) = call(&mut ua, gw, "/payments/send?amount=5", &[]).await;
    assert_eq!(status, 200, "{echo}");
}

#[tokio::test]
async fn a_step_up_the_idp_did_not_confirm_is_refused() {
    let s = stack(
        &[("/payments/", "token = \"user\"\nacr_values = [\"urn:mfa\"]")],
        "",
        &[("OP_IGNORE_ACR", "1")],
    )
    .await;
    let gw = &s.gw;
    let mut ua = UserAgent::new();
    let back = login::through_idp(
        &mut ua,
        &gw.url(""),
        &gw.url("/bff/login?acr_values=urn:mfa&returnUrl=/payments/"),
        "eve",
    )
    .await;
    assert_eq!(back.status, 400, "{}", back.body);
    assert!(back.body.contains("stronger sign-in"), "{}", back.body);
    assert!(ua.cookie("__Host-portcullis").is_none());
}

/// Every security event is one `audit` line with who, what and where, and no line of the log
/// carries a token, code or cookie.
#[tokio::test]
async fn audit_lines_tell_who_did_what_and_never_a_secret() {
    let s = stack(
        &[(
            "/admin/",
            "token = \"user\"\nrequire = [{ claim = \"groups\", any_of = [\"admins\"] }]",
        )],
        "[log]\nformat = \"json\"\naccess_log_user = \"sub\"",
        &[],
    )
    .await;
    let gw = &s.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "gus").await.status, 302);
    let cookie = ua.cookie("__Host-portcullis").unwrap().to_string();
    let (status, echo) = call(&mut ua, gw, "/api/x", &[("user-agent", "audit-test/1.0")]).await;
    assert_eq!(status, 200);
    let token = header(&echo, "authorization")[0]
        .strip_prefix("Bearer ")
        .unwrap()
        .to_string();
    assert_eq!(
        call(&mut ua, gw, "/admin/x", &[("user-agent", "audit-test/1.0")])
            .await
            .0,
        403
    );
    let logout = login::logout_url(&mut ua, &gw.url("")).await;
    assert_eq!(ua.get(&gw.url(&logout), &[]).await.status, 302);

    let log = gw.log();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let audit: Vec<&Value> = lines.iter().filter(|l| l["target"] == "audit").collect();
    let find = |event: &str, outcome: &str| {
        *audit
            .iter()
            .find(|f| f["event"] == event && f["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {event}/{outcome} audit line in:\n{log}"))
    };
    let login_line = find("login", "succeeded");
    let refusal = find("authorization", "refused");
    let logout_line = find("logout", "succeeded");
    let session = login_line["session"].as_str().unwrap();
    assert!(session.len() >= 16 && session != "-", "{login_line}");
    for line in [login_line, refusal, logout_line] {
        assert_eq!(line["sub"], "gus", "{line}");
        assert_eq!(line["session"], session, "one session, one name: {line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
        assert_ne!(line["request_id"], "-", "{line}");
        assert_ne!(line["sid"], "-", "{line}");
    }
    assert_eq!(login_line["route"], "bff:callback");
    assert_eq!(logout_line["route"], "bff:logout");
    assert_eq!(refusal["route"], "/admin/");
    assert_eq!(refusal["user_agent"], "audit-test/1.0");
    assert_eq!(refusal["reason"], "groups (any_of)");
    // Access lines name the client and, as configured, the user.
    assert!(
        lines
            .iter()
            .any(|l| l["target"] == "access" && l["user"] == "gus" && l["client"] == "127.0.0.1"),
        "{log}"
    );
    for secret in [cookie.as_str(), token.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    assert!(
        !log.contains("code="),
        "an authorization code reached the log"
    );
    let metrics = gw.metrics().await;
    for series in [
        "portcullis_audit_events_total{event=\"login\",outcome=\"succeeded\"} 1",
        "portcullis_audit_events_total{event=\"authorization\",outcome=\"refused\"} 1",
        "portcullis_audit_events_total{event=\"logout\",outcome=\"succeeded\"} 1",
    ] {
        assert!(metrics.contains(series), "{series}\n{metrics}");
    }
}

/// An upstream that gets no token learns who the user is from a short-lived JWT it can verify
/// with the gateway's published keys; a client cannot forge it.
#[tokio::test]
async fn identity_assertions_are_signed_published_and_unforgeable() {
    let dir = crate::harness::gateway::scratch_dir();
    let (ec, rsa) = (dir.join("assert-ec.pem"), dir.join("assert-rsa.pem"));
    for (path, algorithm) in [
        (&ec, ["EC", "ec_paramgen_curve:P-256"]),
        (&rsa, ["RSA", "rsa_keygen_bits:2048"]),
    ] {
        crate::harness::tls::openssl(&[
            "genpkey",
            "-algorithm",
            algorithm[0],
            "-pkeyopt",
            algorithm[1],
            "-out",
            path.to_str().unwrap(),
        ]);
    }
    let s = stack(
        &[("/legacy/", "token = \"user\"\nidentity_assertion = true")],
        &format!(
            "[identity_assertion]\nclaims = [\"email\"]\n\
             [[identity_assertion.keys]]\nid = \"ec-1\"\nprivate_key_file = \"{}\"\n\
             [[identity_assertion.keys]]\nid = \"rsa-0\"\nprivate_key_file = \"{}\"",
            ec.display(),
            rsa.display()
        ),
        &[],
    )
    .await;
    let gw = &s.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "hana").await.status, 302);
    let forged = [
        ("x-portcullis-assertion", "forged"),
        ("X_Portcullis_Assertion", "forged"),
    ];
    let (status, echo) = call(&mut ua, gw, "/legacy/page", &forged).await;
    assert_eq!(status, 200, "{echo}");
    let assertions = header(&echo, "x-portcullis-assertion");
    assert_eq!(assertions.len(), 1, "{echo}");
    assert!(header(&echo, "x_portcullis_assertion").is_empty(), "{echo}");
    let jwt = assertions[0].to_string();

    // Verified the way an upstream would: the key by `kid` from the published set.
    let jwks: Value = crate::harness::client()
        .get(gw.url("/.well-known/portcullis/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, ["ec-1", "rsa-0"]);
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.kid.as_deref(), Some("ec-1"), "the first key signs");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["api"]);
    validation.set_issuer(&[gw.url("")]);
    let claims = jsonwebtoken::decode::<Value>(
        &jwt,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .unwrap_or_else(|e| panic!("the assertion does not verify: {e}"))
    .claims;
    assert_eq!(claims["sub"], "hana");
    assert_eq!(claims["email"], "hana@example.test");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    // Reused while fresh: the hot path does not sign per request.
    let (_, again) = call(&mut ua, gw, "/legacy/other", &[]).await;
    assert_eq!(header_of(&again), Some(jwt.as_str()));
    let _ = std::fs::remove_dir_all(dir);
}

fn header_of(echo: &Value) -> Option<&str> {
    echo["headers"]["x-portcullis-assertion"][0].as_str()
}

/// IdPs that keep profile claims out of the ID token give them at the userinfo endpoint: with
/// `oidc.userinfo` they join the session's claims (and rules can use them).
#[tokio::test]
async fn userinfo_claims_join_the_session_when_configured() {
    use crate::harness::idp::{CLIENT_ID, CLIENT_SECRET};
    let (with, without) = (free_port(), free_port());
    let idp = login::start_idp_with(&[with, without], &[("OP_USERINFO_ONLY", "1")]);
    let spa = Upstream::start("spa").await;
    let gateway = |port: u16, userinfo: bool| {
        GatewayConfig::new()
            .port(port)
            .server(&format!("public_origin = \"http://127.0.0.1:{port}\""))
            .toml(&format!(
                "[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nuserinfo = {userinfo}\n\
                 [authorization]\nrequire = [{{ claim = \"email_verified\", equals = true }}]",
                idp.issuer
            ))
            .cluster("spa", &[spa.url()], "")
            .route("/", "spa", "")
    };
    let gw = gateway(with, true).start().await;
    login::wait_ready(&gw).await;
    let mut ua = UserAgent::new();
    let back = login::login(&mut ua, &gw, "/", "ivy").await;
    assert_eq!(back.status, 302, "{}", back.body);
    let me: Value = serde_json::from_str(&login::user(&mut ua, &gw).await.body).unwrap();
    assert_eq!(
        login::claim(&me, "email"),
        Some(&json!("ivy@example.test")),
        "{me}"
    );
    assert_eq!(login::claim(&me, "sub"), Some(&json!("ivy")));

    // The same OP without oidc.userinfo: the claim the rule needs is not in the ID token.
    let plain = gateway(without, false).start().await;
    login::wait_ready(&plain).await;
    let mut other = UserAgent::new();
    assert_eq!(
        login::login(&mut other, &plain, "/", "ivy").await.status,
        403
    );
}
