//! The login flow through the gateway against the real test OP: `/bff/login` -> OP login and
//! consent -> `/signin-oidc` -> session cookie -> `/bff/user`, and every way it must refuse.

use std::time::Duration;

use serde_json::Value;

use crate::harness::jwt;
use crate::harness::login::{self, claim, form_urlencoded_component};
use crate::harness::redis::{RedisCluster, RedisServer};
use crate::harness::user_agent::{absolute, query};
use crate::harness::{client, free_port, UserAgent};

const COOKIE: &str = "__Host-portcullis";

#[tokio::test]
async fn a_user_logs_in_and_the_spa_sees_their_claims_but_never_a_token() {
    let stack = login::start("").await;
    let (gw, spa) = (&stack.gw, &stack.spa);
    let mut ua = UserAgent::new();

    // Anonymous: the SPA learns it must log in (401, JSON, never a redirect).
    let anonymous = login::user(&mut ua, gw).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert_eq!(
        anonymous.headers["content-type"],
        "application/problem+json"
    );

    // The authorization request: code flow, PKCE S256, state, nonce, scopes, extra params.
    let start = ua
        .get(&gw.url("/bff/login?returnUrl=/orders/7%3Ftab%3Dopen"), &[])
        .await;
    assert_eq!(start.status, 302);
    let authorize = query(start.location().unwrap());
    assert_eq!(authorize["response_type"], "code");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["client_id"], "portcullis");
    assert_eq!(
        authorize["redirect_uri"],
        format!("http://127.0.0.1:{}/signin-oidc", gw.port)
    );
    assert_eq!(authorize["audience"], "urn:test:audience");
    for scope in ["openid", "profile", "email", "offline_access"] {
        assert!(
            authorize["scope"].split(' ').any(|s| s == scope),
            "{authorize:?}"
        );
    }
    assert!(authorize["state"].len() >= 22 && authorize["nonce"].len() >= 22);
    assert!(authorize["code_challenge"].len() >= 43);
    assert!(
        !start.location().unwrap().contains("code_verifier"),
        "the PKCE verifier must stay server-side"
    );

    // The full login lands back on the returnUrl with a fresh session cookie.
    let back = login::login(&mut ua, gw, "/orders/7?tab=open", "alice").await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(back.location(), Some("/orders/7?tab=open"));
    let set = back
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with(&format!("{COOKIE}=")))
        .expect("a session cookie");
    assert!(
        set.ends_with("; Path=/; HttpOnly; Secure; SameSite=Lax"),
        "{set}"
    );
    assert!(!set.contains("Domain"), "{set}");
    let session_id = ua.cookie(COOKIE).unwrap().to_string();
    assert_eq!(session_id.len(), 43, "256-bit opaque id");

    // /bff/user: the ID token's user claims, the logout URL with `sid`, the remaining time.
    let me = login::user(&mut ua, gw).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.headers["cache-control"], "no-store");
    let claims: Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(claim(&claims, "sub"), Some(&"alice".into()));
    assert_eq!(claim(&claims, "email"), Some(&"alice@example.test".into()));
    assert_eq!(claim(&claims, "name"), Some(&"Test alice".into()));
    let sid = claim(&claims, "sid").and_then(Value::as_str).expect("sid");
    let logout_url = claim(&claims, "bff:logout_url")
        .and_then(Value::as_str)
        .expect("bff:logout_url");
    assert!(logout_url.starts_with("/bff/logout?sid="), "{logout_url}");
    // Per session, not the IdP's `sid`, which other apps in the IdP session know.
    assert!(!logout_url.contains(sid), "{logout_url}");
    let expires_in = claim(&claims, "bff:session_expires_in")
        .and_then(Value::as_u64)
        .unwrap();
    assert!(
        (1..=20 * 60).contains(&expires_in),
        "idle timeout is 20m: {expires_in}"
    );
    for protocol_claim in ["nonce", "at_hash", "aud", "exp", "iat"] {
        assert_eq!(claim(&claims, protocol_claim), None, "{protocol_claim}");
    }
    assert!(
        !me.body.contains("eyJ"),
        "a token reached the browser: {}",
        me.body
    );
    // Without the anti-forgery header, /bff/user is refused like any API call.
    let forged = ua.get(&gw.url("/bff/user"), &[]).await;
    assert_eq!(forged.status, 401);

    // Upstreams never see the gateway's cookies; the SPA's own cookies pass.
    ua.jar.insert("theme".into(), "dark".into());
    let page = ua.get(&gw.url("/orders/7"), &[]).await;
    let echoed: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(echoed["name"], "spa");
    let cookie = echoed["headers"]["cookie"][0].as_str().unwrap();
    assert!(cookie.ends_with("theme=dark"), "upstream saw: {cookie}");
    assert!(!cookie.contains(COOKIE), "upstream saw: {cookie}");
    assert!(!cookie.contains(&session_id), "upstream saw: {cookie}");
    assert!(spa.hits() >= 1);

    // Nothing secret reached the log: no session id, no code, no client secret.
    let log = gw.log();
    assert!(!log.contains(&session_id), "the session id was logged");
    assert!(!log.contains("code="), "an authorization code was logged");
    assert!(!log.contains(crate::harness::idp::CLIENT_SECRET));
    assert!(
        log.lines()
            .any(|l| l.contains("audit") && l.contains("login") && l.contains("succeeded")),
        "no audit line for the login:\n{log}"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("route=\"bff:callback\""),
        "endpoint requests are counted under their own route label"
    );
}

#[tokio::test]
async fn login_refuses_open_redirects_and_bad_parameters() {
    let stack = login::start("").await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    for evil in [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
    ] {
        let url = gw.url(&format!(
            "/bff/login?returnUrl={}",
            form_urlencoded_component(evil)
        ));
        let page = ua.get(&url, &[("accept", "text/html")]).await;
        assert_eq!(page.status, 400, "{evil} was accepted");
        assert!(page.headers.get("location").is_none());
        assert!(
            page.body.contains("returnUrl"),
            "the page says what is wrong: {}",
            page.body
        );
    }
    let bad_prompt = ua.get(&gw.url("/bff/login?prompt=everything"), &[]).await;
    assert_eq!(bad_prompt.status, 400);
    assert!(bad_prompt.body.contains("prompt"), "{}", bad_prompt.body);

    let post = client().post(gw.url("/bff/login")).send().await.unwrap();
    assert_eq!(post.status(), 405);

    // prompt passes through to the IdP.
    let with_prompt = ua.get(&gw.url("/bff/login?prompt=login"), &[]).await;
    assert_eq!(query(with_prompt.location().unwrap())["prompt"], "login");
}

#[tokio::test]
async fn callbacks_are_single_use_and_bound_to_the_browser_that_started_them() {
    let stack = login::start("").await;
    let gw = &stack.gw;
    let origin = gw.url("");
    let at_callback = |next: &str| next.starts_with(&origin) && next.contains("/signin-oidc");

    // Stop at the callback: it carries a valid code and state for browser A.
    let mut a = UserAgent::new();
    let to_callback = a
        .navigate(&gw.url("/bff/login?returnUrl=/a"), "alice", at_callback)
        .await;
    let callback = absolute(&to_callback.url, to_callback.location().unwrap());

    // Browser B (the victim of a login CSRF, or an attacker with a stolen link) is refused:
    // the login waits in A's sealed cookie, which B does not have. A still finishes its own.
    let mut b = UserAgent::new();
    let stolen = b.get(&callback, &[("accept", "text/html")]).await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert!(stolen.body.contains("another browser"), "{}", stolen.body);
    assert!(
        stolen.body.contains("href=\"/bff/login\""),
        "offers a retry"
    );
    assert!(b.cookie(COOKIE).is_none());
    // Nor does a copy of A's cookie from another site's gateway (other keys) open.
    let mut forged = UserAgent::new();
    forged
        .jar
        .insert(format!("{COOKIE}-login"), "AAAA".repeat(40));
    assert_eq!(forged.get(&callback, &[]).await.status, 400);

    // A normal login works once; replaying its callback is refused.
    let done = a.get(&callback, &[]).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), Some("/a"));
    let replay = a.get(&callback, &[("accept", "text/html")]).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("expired or was already used"));

    // Forged and missing state.
    let forged = a
        .get(
            &gw.url("/signin-oidc?code=abc&state=AAAAAAAAAAAAAAAAAAAAAA"),
            &[],
        )
        .await;
    assert_eq!(forged.status, 400);
    assert_eq!(forged.headers["content-type"], "application/problem+json");
    let missing = a.get(&gw.url("/signin-oidc?code=abc"), &[]).await;
    assert_eq!(missing.status, 400);
    let junk = a
        .get(&gw.url("/signin-oidc?code=abc&state=%7B%7D%3As%3A*"), &[])
        .await;
    assert_eq!(junk.status, 400);

    // Two tabs logging in at once both succeed (state is per login, not per browser).
    let first = a
        .navigate(&gw.url("/bff/login?returnUrl=/tab1"), "alice", at_callback)
        .await;
    let second = a
        .navigate(&gw.url("/bff/login?returnUrl=/tab2"), "alice", at_callback)
        .await;
    for (page, expected) in [(second, "/tab2"), (first, "/tab1")] {
        let done = a
            .get(&absolute(&page.url, page.location().unwrap()), &[])
            .await;
        assert_eq!(done.location(), Some(expected), "{}", done.body);
    }
}

#[tokio::test]
async fn logins_and_sessions_expire() {
    let stack = login::start_with(
        "[session]\nidle_timeout = \"2s\"\nabsolute_timeout = \"5s\"\n",
        &[("PORTCULLIS__OIDC__LOGIN_TIMEOUT", "1s")],
    )
    .await;
    let gw = &stack.gw;
    let origin = gw.url("");
    let mut ua = UserAgent::new();

    // A login left at the IdP longer than login_timeout cannot be finished.
    let to_callback = ua
        .navigate(&gw.url("/bff/login"), "carol", |next| {
            next.starts_with(&origin) && next.contains("/signin-oidc")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = ua
        .get(
            &absolute(&to_callback.url, to_callback.location().unwrap()),
            &[],
        )
        .await;
    assert_eq!(late.status, 400, "{}", late.body);

    // Idle timeout: unused for longer than 2s, the session is gone. Polling with
    // `?slide=false` reports the time left without extending it.
    assert_eq!(login::login(&mut ua, gw, "/", "carol").await.status, 302);
    assert_eq!(login::user(&mut ua, gw).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let poll = ua
        .get(&gw.url("/bff/user?slide=false"), &[("x-csrf", "1")])
        .await;
    assert_eq!(poll.status, 200);
    let claims: Value = serde_json::from_str(&poll.body).unwrap();
    let left = claim(&claims, "bff:session_expires_in")
        .and_then(Value::as_u64)
        .unwrap();
    assert!(left <= 1, "2s idle timeout, 1.2s unused: {left}s left");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        login::user(&mut ua, gw).await.status,
        401,
        "a slide=false poll must not keep the session alive"
    );

    // Sliding keeps an active session alive, but never past the absolute timeout (5s).
    assert_eq!(login::login(&mut ua, gw, "/", "carol").await.status, 302);
    let mut alive_after_idle_window = false;
    for i in 0..14 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let status = login::user(&mut ua, gw).await.status;
        if status == 401 {
            break;
        }
        alive_after_idle_window |= i >= 3;
    }
    assert!(
        alive_after_idle_window,
        "sliding did not extend the idle timeout"
    );
    assert_eq!(
        login::user(&mut ua, gw).await.status,
        401,
        "the absolute timeout did not end the session"
    );
}

#[tokio::test]
async fn idp_errors_and_dead_sessions_get_clear_answers() {
    let stack = login::start("").await;
    let gw = &stack.gw;
    let origin = gw.url("");

    // prompt=none without a session at the OP: it answers error=login_required.
    let mut ua = UserAgent::new();
    let page = login::through_idp(
        &mut ua,
        &origin,
        &gw.url("/bff/login?prompt=none"),
        "nobody",
    )
    .await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("login_required"), "{}", page.body);
    assert!(ua.cookie(COOKIE).is_none());

    // A tampered cookie and an unknown (well-formed) one are anonymous, and get cleared.
    let back = login::login(&mut ua, gw, "/", "bob").await;
    assert_eq!(back.status, 302);
    let id = ua.cookie(COOKIE).unwrap().to_string();
    let mut tampered = id.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    for value in [
        String::from_utf8(tampered).unwrap(),
        "x".repeat(43),
        "short".into(),
    ] {
        let mut other = UserAgent::new();
        other.jar.insert(COOKIE.into(), value.clone());
        let me = login::user(&mut other, gw).await;
        assert_eq!(me.status, 401, "{value}");
    }
    // A new login in the same browser replaces the session: the old id stops working.
    let again = login::login(&mut ua, gw, "/", "bob").await;
    assert_eq!(again.status, 302);
    let new_id = ua.cookie(COOKIE).unwrap().to_string();
    assert_ne!(new_id, id, "a login must issue a new session id");
    let mut stale = UserAgent::new();
    stale.jar.insert(COOKIE.into(), id);
    let me = login::user(&mut stale, gw).await;
    assert_eq!(me.status, 401);
    assert!(
        me.set_cookies()
            .iter()
            .any(|c| c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0")),
        "the dead cookie is cleared: {:?}",
        me.set_cookies()
    );
    assert_eq!(login::user(&mut ua, gw).await.status, 200);
}

#[tokio::test]
async fn replicas_sharing_a_redis_cluster_finish_each_others_logins() {
    let cluster = RedisCluster::start();
    let redis = cluster.session_toml();
    let stack = login::start(&redis).await;
    let a = &stack.gw;
    // Replica B: same public origin, same OP registration, same Redis; another process.
    let b = login::second_replica(&stack, &redis, &[]).await;
    let b_port = b.port;

    // The login starts on A; the IdP's redirect back is delivered to B.
    let mut ua = UserAgent::new();
    let origin_a = a.url("");
    let to_callback = ua
        .navigate(&a.url("/bff/login?returnUrl=/from-a"), "dave", |next| {
            next.starts_with(&origin_a) && next.contains("/signin-oidc")
        })
        .await;
    let callback = absolute(&to_callback.url, to_callback.location().unwrap())
        .replace(&format!(":{}/", a.port), &format!(":{b_port}/"));
    assert!(callback.starts_with(&b.url("/signin-oidc")), "{callback}");
    let done = ua.get(&callback, &[]).await;
    assert_eq!(done.status, 302, "{}", done.body);
    assert_eq!(done.location(), Some("/from-a"));

    // Both replicas know the session.
    for gw in [a, &b] {
        let me = login::user(&mut ua, gw).await;
        assert_eq!(me.status, 200, "{}", me.body);
        let claims: Value = serde_json::from_str(&me.body).unwrap();
        assert_eq!(claim(&claims, "sub"), Some(&"dave".into()));
    }

    // At rest, Redis holds no usable token: every value is sealed.
    let mut dump = String::new();
    for node in &cluster.nodes {
        for key in node.cli(&["--scan", "--pattern", "portcullis:*"]).lines() {
            dump.push_str(&node.cli(&["-c", "get", key]));
            dump.push('\n');
        }
    }
    assert!(dump.contains("\"sub\":\"dave\""), "the session is in Redis");
    assert!(!dump.contains("eyJ"), "a JWT is readable in Redis: {dump}");
    assert!(
        !dump.contains("dave@example.test"),
        "claims are readable in Redis"
    );
}

#[tokio::test]
async fn with_redis_down_login_answers_503_and_the_spa_still_serves() {
    let mut redis = RedisServer::start();
    let stack = login::start(&format!(
        "{}command_timeout = \"300ms\"\n",
        redis.session_toml()
    ))
    .await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "erin").await.status, 302);
    assert_eq!(login::user(&mut ua, gw).await.status, 200);

    redis.kill();
    // A login starts without the store (it waits in the browser's cookie) and cannot finish
    // without it: a page that says why, not a new session nobody can find.
    let origin = gw.url("");
    let to_callback = ua
        .navigate(&gw.url("/bff/login"), "erin", |next| {
            next.starts_with(&origin) && next.contains("/signin-oidc")
        })
        .await;
    let login_page = ua
        .get(
            &absolute(&to_callback.url, to_callback.location().unwrap()),
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(login_page.status, 503, "{}", login_page.body);
    assert!(
        login_page.body.contains("session store"),
        "{}",
        login_page.body
    );
    let me = login::user(&mut ua, gw).await;
    assert_eq!(me.status, 503, "a store outage is not a logout");
    assert!(
        me.set_cookies().is_empty(),
        "the cookie must survive an outage"
    );
    assert_eq!(ua.get(&gw.url("/"), &[]).await.status, 200);
    assert_eq!(stack.api.hits(), 0);
}

#[tokio::test]
async fn logout_needs_the_sessions_sid_and_ends_the_session_here_and_at_the_idp() {
    let stack = login::start("").await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "grace").await.status, 302);
    let logout_url = login::logout_url(&mut ua, &gw.url("")).await;
    let old_cookie = ua.cookie(COOKIE).unwrap().to_string();

    // A cross-site link without (or with another) sid cannot log the user out; nor can another
    // application of the same IdP session, which knows the IdP's `sid`.
    let me: Value = serde_json::from_str(&login::user(&mut ua, gw).await.body).unwrap();
    let idp_sid = format!(
        "/bff/logout?sid={}",
        claim(&me, "sid").and_then(Value::as_str).unwrap()
    );
    for forged in [
        "/bff/logout",
        "/bff/logout?sid=someone-else",
        idp_sid.as_str(),
    ] {
        let page = ua.get(&gw.url(forged), &[("accept", "text/html")]).await;
        assert_eq!(page.status, 400, "{forged}: {}", page.body);
        assert!(page.body.contains("sid"), "{}", page.body);
    }
    assert_eq!(login::user(&mut ua, gw).await.status, 200);
    let open_redirect = ua
        .get(
            &gw.url(&format!("{logout_url}&returnUrl=//evil.example")),
            &[],
        )
        .await;
    assert_eq!(open_redirect.status, 400);

    // The real logout: session gone, cookie expired, off to the IdP's end-session endpoint
    // and back to the returnUrl.
    let first_hop = ua
        .get(&gw.url(&format!("{logout_url}&returnUrl=/bye")), &[])
        .await;
    assert_eq!(first_hop.status, 302);
    let end_session = first_hop.location().unwrap().to_string();
    assert!(end_session.starts_with(&stack.idp.issuer), "{end_session}");
    let params = query(&end_session);
    assert_eq!(
        params["post_logout_redirect_uri"],
        gw.url("/signout-callback-oidc")
    );
    assert!(params.contains_key("id_token_hint") && params.contains_key("state"));
    assert!(first_hop
        .set_cookies()
        .iter()
        .any(|c| c.starts_with(&format!("{COOKIE}=;")) && c.contains("Max-Age=0")));
    let origin = gw.url("");
    let back = login::through_idp(&mut ua, &origin, &end_session, "grace").await;
    assert_eq!(back.location(), Some("/bye"), "{}", back.body);

    // The old cookie is dead, and the IdP session too: prompt=none now fails.
    let mut replay = UserAgent::new();
    replay.jar.insert(COOKIE.into(), old_cookie);
    assert_eq!(login::user(&mut replay, gw).await.status, 401);
    let silent =
        login::through_idp(&mut ua, &origin, &gw.url("/bff/login?prompt=none"), "grace").await;
    assert_eq!(silent.status, 400, "{}", silent.body);
    assert!(silent.body.contains("login_required"), "{}", silent.body);

    // Anonymous logout just goes to the returnUrl.
    let anonymous = UserAgent::new()
        .get(&gw.url("/bff/logout?returnUrl=/again"), &[])
        .await;
    assert_eq!(anonymous.location(), Some("/again"));
}

#[tokio::test]
async fn private_key_jwt_logs_in_without_a_shared_secret() {
    use crate::harness::idp::{Idp, CLIENT_ID};
    let dir = crate::harness::gateway::scratch_dir();
    let (key, public) = (dir.join("client-key.pem"), dir.join("client-pub.pem"));
    jwt::rsa_key(&key);
    jwt::public_key(&key, &public);
    // The certificate Entra would hold for this key, and its SHA-256 thumbprint as openssl
    // prints it (hex with colons), in the base64url form of `x5t#S256`.
    let cert = dir.join("client-cert.pem");
    let run = crate::harness::tls::openssl;
    run(&[
        "req",
        "-x509",
        "-key",
        key.to_str().unwrap(),
        "-days",
        "1",
        "-subj",
        "/CN=portcullis",
        "-out",
        cert.to_str().unwrap(),
    ]);
    let fingerprint = run(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    let hex = fingerprint
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    use base64::Engine;
    let x5t_s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let port = free_port();
    let idp = Idp::start(
        &[format!("http://127.0.0.1:{port}/signin-oidc")],
        &[
            ("OP_CLIENT_AUTH", "private_key_jwt"),
            ("OP_CLIENT_PUBLIC_KEY_FILE", public.to_str().unwrap()),
        ],
    );
    let spa = crate::harness::Upstream::start("spa").await;
    let gw = crate::harness::GatewayConfig::new()
        .port(port)
        .server(&format!("public_origin = \"http://127.0.0.1:{port}\""))
        .toml(&format!(
            "[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_auth = \"private_key_jwt\"\n\
             private_key_file = \"{}\"\nprivate_key_id = \"portcullis-test\"\ncertificate_file = \"{}\"\n",
            idp.issuer,
            key.display(),
            cert.display()
        ))
        .cluster("spa", &[spa.url()], "")
        .route("/", "spa", "")
        .start()
        .await;
    login::wait_ready(&gw).await;
    let mut ua = UserAgent::new();
    let back = login::login(&mut ua, &gw, "/", "heidi").await;
    assert_eq!(back.status, 302, "{}", back.body);
    let me = login::user(&mut ua, &gw).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let header = &idp.grants().await["last_assertion_header"];
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "portcullis-test");
    assert_eq!(header["x5t#S256"], x5t_s256.as_str(), "{header}");
    assert!(header["x5t"].is_string(), "{header}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_even_when_the_idp_session_is_left_alone() {
    let stack = login::start_with("", &[("PORTCULLIS__OIDC__IDP_LOGOUT", "none")]).await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "ivan").await.status, 302);
    let logout_url = login::logout_url(&mut ua, &gw.url("")).await;
    assert_eq!(stack.idp.grants().await["refresh_tokens_destroyed"], 0);

    let out = ua
        .get(&gw.url(&format!("{logout_url}&returnUrl=/bye")), &[])
        .await;
    assert_eq!(out.status, 302);
    assert_eq!(
        out.location(),
        Some("/bye"),
        "idp_logout = none stays local"
    );
    assert_eq!(login::user(&mut ua, gw).await.status, 401);
    crate::harness::eventually(
        "the refresh token to be revoked at the IdP",
        Duration::from_secs(10),
        || async { (stack.idp.grants().await["refresh_tokens_destroyed"] == 1).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn client_secret_post_logs_in() {
    let stack = login::start_with_op(
        "",
        &[("PORTCULLIS__OIDC__CLIENT_AUTH", "client_secret_post")],
        &[("OP_CLIENT_AUTH", "client_secret_post")],
    )
    .await;
    let mut ua = UserAgent::new();
    let back = login::login(&mut ua, &stack.gw, "/", "olga").await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(login::user(&mut ua, &stack.gw).await.status, 200);
}

#[tokio::test]
async fn a_login_after_the_idp_rotated_its_signing_key_reloads_the_keys() {
    let dir = crate::harness::gateway::scratch_dir();
    let key = |name: &str| {
        let path = dir.join(name);
        jwt::rsa_key(&path);
        path.display().to_string()
    };
    let (old_key, new_key) = (key("old.pem"), key("new.pem"));
    let mut stack = login::start_with_op(
        "",
        &[],
        &[
            ("OP_SIGNING_KEY_FILE", &old_key),
            ("OP_SIGNING_KEY_ID", "2026-01"),
        ],
    )
    .await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "pia").await.status, 302);

    // The IdP rotates: same issuer, a new key with a new kid. The gateway's copy of the JWKS
    // (refreshed only every 10 minutes here) does not know it yet.
    let port: u16 = stack
        .idp
        .issuer
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    stack.idp.kill();
    let redirect = format!("http://127.0.0.1:{}/signin-oidc", gw.port);
    stack.idp = crate::harness::idp::Idp::start(
        &[redirect],
        &[
            ("OP_PORT", &port.to_string()),
            ("OP_SIGNING_KEY_FILE", &new_key),
            ("OP_SIGNING_KEY_ID", "2026-02"),
            (
                "OP_BACKCHANNEL_URI",
                &format!("http://127.0.0.1:{}/bff/backchannel", gw.port),
            ),
        ],
    );
    let mut fresh = UserAgent::new();
    let back = login::login(&mut fresh, gw, "/", "pia").await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(login::user(&mut fresh, gw).await.status, 200);
    assert!(
        gw.log().contains("reloaded the IdP's signing keys"),
        "the unknown kid should have reloaded the JWKS"
    );
    let _ = std::fs::remove_dir_all(dir);
}
