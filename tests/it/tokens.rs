//! Token injection and refresh on the hot path: what the API upstream receives, per route
//! policy, and refresh under expiry, IdP outages and concurrency across replicas.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::harness::idp::{Idp, CLIENT_ID};
use crate::harness::jwt::{self, rsa_key, unix_now};
use crate::harness::login::{self, Stack};
use crate::harness::{Gateway, UserAgent};

const COOKIE: &str = "__Host-portcullis";

/// Checks an RS256 JWT's signature with the OP's key (the tests give the OP its signing key):
/// what the API behind the gateway would do before trusting the token.
fn verify_signature(jwt: &str, key: &rsa::RsaPrivateKey) {
    use sha2::Digest;
    let (input, signature) = jwt.rsplit_once('.').expect("a JWT");
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    rsa::RsaPublicKey::from(key)
        .verify(
            rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
            &sha2::Sha256::digest(input.as_bytes()),
            &signature,
        )
        .unwrap_or_else(|_| panic!("the upstream got a token the IdP did not sign"));
}

/// An RSA key for the OP to sign with, as (PEM file, key).
fn op_signing_key() -> (std::path::PathBuf, rsa::RsaPrivateKey) {
    let path = crate::harness::gateway::scratch_dir().join("op-key.pem");
    let key = rsa_key(&path);
    (path, key)
}

/// What the API upstream saw of a call: its `Authorization` (if any) and `Cookie` headers.
struct Seen {
    status: u16,
    authorization: Option<String>,
    cookie: Option<String>,
}

impl Seen {
    fn token(&self) -> &str {
        self.authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_else(|| panic!("no bearer token upstream: {:?}", self.authorization))
    }
}

async fn call(ua: &mut UserAgent, gw: &Gateway, path: &str, extra: &[(&str, &str)]) -> Seen {
    let mut headers = vec![("x-csrf", "1")];
    headers.extend_from_slice(extra);
    let page = ua.get(&gw.url(path), &headers).await;
    let echoed: Value = serde_json::from_str(&page.body).unwrap_or(Value::Null);
    let header = |name: &str| echoed["headers"][name][0].as_str().map(String::from);
    Seen {
        status: page.status,
        authorization: header("authorization"),
        cookie: header("cookie"),
    }
}

#[tokio::test]
async fn each_route_policy_gives_the_api_the_right_token_and_never_the_browsers() {
    let (key_file, op_key) = op_signing_key();
    let stack = login::start_with_op(
        "",
        &[],
        &[("OP_SIGNING_KEY_FILE", key_file.to_str().unwrap())],
    )
    .await;
    let (gw, api) = (&stack.gw, &stack.api);
    let mut ua = UserAgent::new();

    // Anonymous on a user route: 401 problem+json for the SPA to act on, not a redirect.
    let anonymous = ua.get(&gw.url("/api/orders"), &[("x-csrf", "1")]).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(
        anonymous.headers["content-type"],
        "application/problem+json"
    );
    assert!(anonymous.headers.get("location").is_none());
    // Token routes are anti-forgery protected by default.
    let forged = ua.get(&gw.url("/api/orders"), &[]).await;
    assert_eq!(forged.status, 401);
    assert_eq!(api.hits(), 0, "refused calls never reach the API");

    // user-or-none without a session: forwarded with no token, and not the browser's either.
    let seen = call(
        &mut ua,
        gw,
        "/public-api/x",
        &[("authorization", "Bearer forged")],
    )
    .await;
    assert_eq!((seen.status, seen.authorization), (200, None));

    // client: the gateway's own token, cached across calls.
    let first = call(
        &mut ua,
        gw,
        "/machine/x",
        &[("authorization", "Bearer forged")],
    )
    .await;
    let second = call(&mut ua, gw, "/machine/y", &[]).await;
    assert_eq!(first.status, 200);
    verify_signature(first.token(), &op_key);
    let machine = jwt::claims(first.token());
    assert_eq!(machine["client_id"], CLIENT_ID, "{machine}");
    assert_eq!(machine["aud"], "api");
    assert_eq!(first.token(), second.token(), "the client token is cached");
    // user-or-client without a session: the client token.
    let either = call(&mut ua, gw, "/either/x", &[]).await;
    assert_eq!(either.token(), first.token());

    // Signed in: the user's token on every user route; the browser's Authorization and the
    // session cookie never reach the API, the SPA's other cookies do.
    assert_eq!(login::login(&mut ua, gw, "/", "alice").await.status, 302);
    ua.jar.insert("theme".into(), "dark".into());
    for path in ["/api/orders", "/public-api/x", "/either/x"] {
        let seen = call(&mut ua, gw, path, &[("authorization", "Bearer forged")]).await;
        assert_eq!(seen.status, 200, "{path}");
        verify_signature(seen.token(), &op_key);
        let claims = jwt::claims(seen.token());
        assert_eq!(claims["sub"], "alice", "{path}: {claims}");
        assert_eq!(claims["aud"], "api", "{path}");
        assert!(claims["exp"].as_u64().unwrap() > unix_now());
        let cookie = seen.cookie.unwrap_or_default();
        assert!(!cookie.contains(COOKIE), "{path}: {cookie}");
        assert!(cookie.contains("theme=dark"), "{path}: {cookie}");
    }
    // The client route stays the gateway's, session or not.
    let machine = call(&mut ua, gw, "/machine/x", &[]).await;
    assert_eq!(jwt::claims(machine.token())["client_id"], CLIENT_ID);

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portcullis_client_token_fetches_total{outcome=\"fetched\"} 1"),
        "one client-credentials fetch for all those calls:\n{metrics}"
    );
    let log = gw.log();
    assert!(!log.contains(first.token()), "a token reached the log");
}

/// Logs in and returns the token the API got on the first call.
async fn first_token(ua: &mut UserAgent, gw: &Gateway, user: &str) -> String {
    assert_eq!(login::login(ua, gw, "/", user).await.status, 302);
    let seen = call(ua, gw, "/api/first", &[]).await;
    assert_eq!(seen.status, 200);
    seen.token().to_string()
}

const SHORT_TOKENS: &str = "[tokens]\nrefresh_skew = \"1s\"\nrefresh_lock_lease = \"2s\"\n";

/// Tokens that live less than `refresh_skew` (60 s by default) are not "about to expire" from
/// the start: calls reuse them for about half their life instead of refreshing every time.
#[tokio::test]
async fn tokens_shorter_lived_than_the_skew_are_not_refreshed_per_call() {
    let stack = login::start_with_op("", &[], &[("OP_ACCESS_TOKEN_TTL", "8")]).await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    let first = first_token(&mut ua, gw, "kai").await;
    let mut seen = std::collections::BTreeSet::from([first]);
    for i in 0..20 {
        let page = call(&mut ua, gw, &format!("/api/{i}"), &[]).await;
        assert_eq!(page.status, 200);
        seen.insert(page.token().to_string());
    }
    let refreshes = stack.idp.grants().await["issued"]["refresh_token"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        refreshes <= 1 && seen.len() <= 2,
        "{refreshes} refreshes and {} tokens for 21 quick calls with 8 s tokens",
        seen.len()
    );
}

#[tokio::test]
async fn tokens_near_expiry_are_refreshed_and_an_idp_outage_is_not_a_logout() {
    let mut stack: Stack =
        login::start_with_op(SHORT_TOKENS, &[], &[("OP_ACCESS_TOKEN_TTL", "3")]).await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    let t1 = first_token(&mut ua, gw, "bob").await;

    // After the token's lifetime, the next call carries a fresh one.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = call(&mut ua, gw, "/api/second", &[]).await;
    assert_eq!(seen.status, 200);
    let t2 = seen.token().to_string();
    assert_ne!(t1, t2, "the expired token was forwarded");
    let claims = jwt::claims(&t2);
    assert!(claims["exp"].as_u64().unwrap() > unix_now(), "{claims}");
    assert_eq!(claims["sub"], "bob");
    assert_eq!(stack.idp.grants().await["issued"]["refresh_token"], 1);
    // A fresh token is reused, not refreshed again.
    assert_eq!(call(&mut ua, gw, "/api/third", &[]).await.token(), t2);

    // The IdP goes away while the token expires: 503, and the session survives.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let op_port: u16 = stack
        .idp
        .issuer
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    stack.idp.kill();
    let outage = ua.get(&gw.url("/api/x"), &[("x-csrf", "1")]).await;
    assert_eq!(outage.status, 503, "{}", outage.body);
    assert_eq!(
        login::user(&mut ua, gw).await.status,
        200,
        "the session must survive"
    );

    // An OP that forgot the grant (restarted without storage) refuses the refresh token with
    // invalid_grant: that ends the session.
    stack.idp = Idp::start(
        &[format!("http://127.0.0.1:{}/signin-oidc", gw.port)],
        &[
            ("OP_PORT", &op_port.to_string()),
            ("OP_ACCESS_TOKEN_TTL", "3"),
        ],
    );
    let refused = ua.get(&gw.url("/api/x"), &[("x-csrf", "1")]).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(
        login::user(&mut ua, gw).await.status,
        401,
        "the session ended"
    );
    let metrics = gw.metrics().await;
    for outcome in ["refreshed", "unavailable", "fatal"] {
        assert!(
            metrics.contains(&format!(
                "portcullis_token_refreshes_total{{outcome=\"{outcome}\"}} 1"
            )),
            "{outcome}:\n{metrics}"
        );
    }
    // Every call to the IdP is timed by endpoint; the outage and the refused grant are errors.
    for series in [
        "portcullis_idp_request_duration_seconds_count{endpoint=\"discovery\"}",
        "portcullis_idp_request_duration_seconds_count{endpoint=\"token\"}",
        "portcullis_idp_errors_total{endpoint=\"token\"} 2",
    ] {
        assert!(metrics.contains(series), "{series}:\n{metrics}");
    }
}

#[tokio::test]
async fn fifty_concurrent_calls_on_two_replicas_at_expiry_refresh_exactly_once() {
    use crate::harness::redis::RedisCluster;
    let cluster = RedisCluster::start();
    let shared = format!("{SHORT_TOKENS}{}", cluster.session_toml());
    let stack = login::start_with_op(&shared, &[], &[("OP_ACCESS_TOKEN_TTL", "4")]).await;
    let a = &stack.gw;
    let b = login::second_replica(&stack, &shared, &[]).await;

    let mut ua = UserAgent::new();
    let t1 = first_token(&mut ua, a, "carol").await;
    let cookie = format!("{COOKIE}={}", ua.cookie(COOKIE).unwrap());
    // Wait until the token is inside the refresh skew: every call below needs a refresh.
    let expires = jwt::claims(&t1)["exp"].as_u64().unwrap();
    while unix_now() + 1 < expires {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let calls = (0..50).map(|i| {
        let url = if i % 2 == 0 {
            a.url("/api/burst")
        } else {
            b.url("/api/burst")
        };
        let cookie = cookie.clone();
        async move {
            let r = crate::harness::client()
                .get(url)
                .header("cookie", cookie)
                .header("x-csrf", "1")
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let token = body["headers"]["authorization"][0]
                .as_str()
                .and_then(|a| a.strip_prefix("Bearer "))
                .map(String::from);
            (status, token, unix_now())
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let mut distinct = std::collections::BTreeSet::new();
    for (_, token, seen_at) in &results {
        let token = token.as_deref().expect("every call carried a token");
        let claims = jwt::claims(token);
        assert_eq!(claims["sub"], "carol");
        assert_eq!(claims["aud"], "api");
        assert!(
            claims["exp"].as_u64().unwrap() > *seen_at,
            "an expired token was forwarded"
        );
        distinct.insert(token.to_string());
    }
    assert!(!distinct.contains(&t1), "the expiring token was forwarded");
    assert_eq!(distinct.len(), 1, "every call got the one refreshed token");

    let grants = stack.idp.grants().await;
    assert_eq!(grants["issued"]["refresh_token"], 1, "{grants}");
    assert_eq!(grants["refused"], serde_json::json!({}), "{grants}");
    // The session is intact on both replicas.
    for gw in [a, &b] {
        assert_eq!(login::user(&mut ua, gw).await.status, 200);
    }
}

#[tokio::test]
async fn a_route_for_another_api_gets_a_token_for_that_audience_kept_per_session() {
    let stack = login::start("").await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    let default_token = first_token(&mut ua, gw, "dora").await;
    assert_eq!(jwt::claims(&default_token)["aud"], "api");

    let partner = call(&mut ua, gw, "/partner/orders", &[]).await;
    assert_eq!(partner.status, 200);
    let claims = jwt::claims(partner.token());
    assert_eq!(claims["aud"], "partner", "{claims}");
    assert_eq!(claims["sub"], "dora");
    // Kept in the session: the second call reuses it, and the default token is unchanged.
    assert_eq!(
        call(&mut ua, gw, "/partner/again", &[]).await.token(),
        partner.token()
    );
    assert_eq!(
        call(&mut ua, gw, "/api/again", &[]).await.token(),
        default_token
    );
    assert_eq!(stack.idp.grants().await["issued"]["refresh_token"], 1);

    // A scope the IdP does not grant is this route's problem, not the session's: 403, and the
    // user stays signed in.
    let refused = ua.get(&gw.url("/ungranted/x"), &[("x-csrf", "1")]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("token-not-granted"),
        "{}",
        refused.body
    );
    assert_eq!(login::user(&mut ua, gw).await.status, 200);
    assert_eq!(call(&mut ua, gw, "/partner/after", &[]).await.status, 200);
}

#[tokio::test]
async fn websocket_handshakes_get_the_users_token_and_need_the_sites_origin() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let stack = login::start("").await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "wes").await.status, 302);
    let cookie = format!("{COOKIE}={}", ua.cookie(COOKIE).unwrap());
    let handshake = |origin: &str, cookie: Option<&str>| {
        let mut req = format!("ws://127.0.0.1:{}/live/ws", gw.port)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        if let Some(c) = cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        req
    };
    let own = format!("http://127.0.0.1:{}", gw.port);

    // A browser page of the site: Origin, cookie, no custom header (the WebSocket API cannot
    // set one). The upstream sees the user's token at upgrade time.
    let (mut ws, _) = tokio_tungstenite::connect_async(handshake(&own, Some(&cookie)))
        .await
        .unwrap();
    ws.send(Message::text("whoami")).await.unwrap();
    let answer = ws.next().await.unwrap().unwrap().into_text().unwrap();
    let token = answer
        .strip_prefix("Bearer ")
        .expect("a bearer token upstream");
    assert_eq!(jwt::claims(token)["sub"], "wes");
    ws.close(None).await.unwrap();

    // Another site's page (cross-site WebSocket hijacking) and an anonymous one are refused.
    let hijack =
        tokio_tungstenite::connect_async(handshake("https://evil.example", Some(&cookie))).await;
    assert!(
        matches!(&hijack, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 403),
        "{hijack:?}"
    );
    let anonymous = tokio_tungstenite::connect_async(handshake(&own, None)).await;
    assert!(
        matches!(&anonymous, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401),
        "{anonymous:?}"
    );
}

/// OIDC Core 12.2: the ID token a refresh returns (checked: signature, issuer, audience, same
/// subject) replaces the session's claims, so `/bff/user` follows profile changes.
#[tokio::test]
async fn an_id_token_from_a_refresh_updates_the_sessions_claims() {
    let stack: Stack =
        login::start_with_op(SHORT_TOKENS, &[], &[("OP_ACCESS_TOKEN_TTL", "3")]).await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    first_token(&mut ua, gw, "carol").await;
    let name = |page: &crate::harness::user_agent::Page| {
        let claims: Value = serde_json::from_str(&page.body).unwrap();
        login::claim(&claims, "name").cloned()
    };
    assert_eq!(
        name(&login::user(&mut ua, gw).await),
        Some("Test carol".into())
    );

    stack.idp.rename("carol", "Carol Renamed").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(call(&mut ua, gw, "/api/after", &[]).await.status, 200);
    assert_eq!(stack.idp.grants().await["issued"]["refresh_token"], 1);
    let me = login::user(&mut ua, gw).await;
    assert_eq!(name(&me), Some("Carol Renamed".into()), "{}", me.body);
    let claims: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(login::claim(&claims, "sub"), Some(&Value::from("carol")));
}
