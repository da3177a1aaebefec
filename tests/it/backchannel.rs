//! OIDC back-channel logout: the IdP ends sessions server to server, and forged, replayed or
//! stale logout tokens change nothing.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::idp::CLIENT_ID;
use crate::harness::jwt::{rsa_key, unix_now};
use crate::harness::login;
use crate::harness::redis::{RedisCluster, RedisServer};
use crate::harness::{client, eventually, Gateway, UserAgent};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn header() -> Value {
    json!({ "alg": "RS256", "kid": "op-key", "typ": "logout+jwt" })
}

/// A valid logout token's claims, as `issuer` would send them for `sub`'s IdP session `sid`.
fn logout_claims(issuer: &str, jti: &str, sub: &str, sid: &str) -> Value {
    json!({
        "iss": issuer, "aud": CLIENT_ID, "iat": unix_now(), "exp": unix_now() + 120,
        "jti": jti, "sub": sub, "sid": sid, "events": { EVENT: {} },
    })
}

fn sign(header: &Value, claims: &Value, key: &RsaPrivateKey) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key
        .sign(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(input.as_bytes()),
        )
        .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

async fn post_logout_token(gw: &Gateway, token: &str) -> (u16, String, Option<String>) {
    let r = client()
        .post(gw.url("/bff/backchannel"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let cache = r
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), r.text().await.unwrap(), cache)
}

/// A login stack whose OP signs with a key the test holds too (to sign logout tokens as the OP
/// would, or forge others), and `user` signed in there; `sid` is their IdP session.
struct SignedIn {
    stack: login::Stack,
    ua: UserAgent,
    sid: String,
    op_key: RsaPrivateKey,
    dir: std::path::PathBuf,
}

async fn signed_in_at_an_op_we_hold_the_key_of(extra: &str, user: &str) -> SignedIn {
    let dir = crate::harness::gateway::scratch_dir();
    let op_key_path = dir.join("op-key.pem");
    let op_key = rsa_key(&op_key_path);
    let stack = login::start_with_op(
        extra,
        &[],
        &[("OP_SIGNING_KEY_FILE", op_key_path.to_str().unwrap())],
    )
    .await;
    let mut ua = UserAgent::new();
    assert_eq!(
        login::login(&mut ua, &stack.gw, "/", user).await.status,
        302
    );
    let me: Value = serde_json::from_str(&login::user(&mut ua, &stack.gw).await.body).unwrap();
    let sid = login::claim(&me, "sid")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    SignedIn {
        stack,
        ua,
        sid,
        op_key,
        dir,
    }
}

#[tokio::test]
async fn forged_replayed_or_stale_logout_tokens_change_nothing() {
    let SignedIn {
        stack,
        mut ua,
        sid,
        op_key,
        dir,
    } = signed_in_at_an_op_we_hold_the_key_of("", "kim").await;
    let gw = &stack.gw;
    let other_key = rsa_key(&dir.join("other-key.pem"));

    let header = header();
    let valid = |jti: &str| logout_claims(&stack.idp.issuer, jti, "kim", &sid);
    let with = |jti: &str, key: &str, value: Value| {
        let mut c = valid(jti);
        c[key] = value;
        c
    };
    let without = |jti: &str, key: &str| {
        let mut c = valid(jti);
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let none_alg = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "none" }).to_string()),
        URL_SAFE_NO_PAD.encode(valid("j-none").to_string())
    );
    let forged = [
        ("wrong signature", sign(&header, &valid("j1"), &other_key)),
        ("alg none", none_alg),
        (
            "HS256 with the public key",
            sign(
                &json!({ "alg": "HS256", "kid": "op-key" }),
                &valid("j2"),
                &op_key,
            ),
        ),
        (
            "wrong aud",
            sign(&header, &with("j3", "aud", json!("someone-else")), &op_key),
        ),
        (
            "wrong iss",
            sign(
                &header,
                &with("j4", "iss", json!("https://evil.example")),
                &op_key,
            ),
        ),
        (
            "no events",
            sign(&header, &without("j5", "events"), &op_key),
        ),
        (
            "with nonce",
            sign(&header, &with("j6", "nonce", json!("n")), &op_key),
        ),
        (
            "stale iat",
            sign(
                &header,
                &with("j7", "iat", json!(unix_now() - 3600)),
                &op_key,
            ),
        ),
        ("no jti", sign(&header, &without("j8", "jti"), &op_key)),
        // Back-Channel Logout 1.0 (final) requires `exp`.
        ("no exp", sign(&header, &without("j10", "exp"), &op_key)),
        (
            "expired",
            sign(
                &header,
                &with("j11", "exp", json!(unix_now() - 600)),
                &op_key,
            ),
        ),
        ("neither sub nor sid", {
            let mut c = without("j9", "sub");
            c.as_object_mut().unwrap().remove("sid");
            sign(&header, &c, &op_key)
        }),
        ("not a JWT", "garbage".to_string()),
    ];
    for (what, token) in forged {
        let (status, body, cache) = post_logout_token(gw, &token).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(cache.as_deref(), Some("no-store"), "{what}");
        assert_eq!(
            login::user(&mut ua, gw).await.status,
            200,
            "{what} ended the session"
        );
    }
    // Not a form post, and not a POST.
    let json_post = client()
        .post(gw.url("/bff/backchannel"))
        .json(&json!({ "logout_token": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_post.status(), 400);
    let get = client()
        .get(gw.url("/bff/backchannel"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);

    // The real thing ends the session; the same token again is a replay.
    let token = sign(&header, &valid("j-good"), &op_key);
    let (status, body, _) = post_logout_token(gw, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(login::user(&mut ua, gw).await.status, 401);
    let (status, body, _) = post_logout_token(gw, &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("replayed"), "{body}");

    // A token naming only `sub` ends every session of that user.
    let mut second = UserAgent::new();
    let mut third = UserAgent::new();
    for ua in [&mut second, &mut third] {
        assert_eq!(login::login(ua, gw, "/", "kim").await.status, 302);
    }
    let mut by_sub = valid("j-sub");
    by_sub.as_object_mut().unwrap().remove("sid");
    assert_eq!(
        post_logout_token(gw, &sign(&header, &by_sub, &op_key))
            .await
            .0,
        200
    );
    for ua in [&mut second, &mut third] {
        assert_eq!(login::user(ua, gw).await.status, 401);
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portcullis_sessions_revoked_total{by=\"backchannel\"} 3"),
        "{metrics}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_logout_at_the_idp_ends_the_session_on_every_replica() {
    let cluster = RedisCluster::start();
    let redis = cluster.session_toml();
    let stack = login::start(&redis).await;
    let a = &stack.gw;
    let b = login::second_replica(&stack, &redis, &[]).await;

    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, a, "/", "lena").await.status, 302);
    for gw in [a, &b] {
        assert_eq!(login::user(&mut ua, gw).await.status, 200);
    }
    // The user signs out at the IdP itself (another app, the IdP's account page): the IdP
    // calls the gateway's back channel.
    let end = format!("{}/session/end?client_id={CLIENT_ID}", stack.idp.issuer);
    ua.navigate(&end, "lena", |_| false).await;
    for gw in [a, &b] {
        eventually("the session to end", Duration::from_secs(10), || async {
            let mut probe = UserAgent::new();
            probe.jar = ua.jar.clone();
            (login::user(&mut probe, gw).await.status == 401).then_some(())
        })
        .await;
    }
    let api = ua.get(&b.url("/api/x"), &[("x-csrf", "1")]).await;
    assert_eq!(
        api.status, 401,
        "revoked sessions get no token on any replica"
    );
}

/// The IdP retries a delivery that failed: when the store could not end the sessions, the retry
/// must end them, not be refused as a replay of the first attempt.
#[tokio::test]
async fn a_logout_that_failed_in_the_store_works_when_the_idp_retries() {
    let redis = RedisServer::start();
    let SignedIn {
        stack,
        mut ua,
        sid,
        op_key,
        dir,
    } = signed_in_at_an_op_we_hold_the_key_of(&redis.session_toml(), "ines").await;
    let gw = &stack.gw;
    let token = sign(
        &header(),
        &logout_claims(&stack.idp.issuer, "retried-1", "ines", &sid),
        &op_key,
    );

    // Redis refuses the delete (here: an ACL; in life: a failover, a timeout).
    redis.cli(&["acl", "setuser", "default", "-getdel"]);
    let (status, body, _) = post_logout_token(gw, &token).await;
    assert_eq!(status, 503, "{body}");
    redis.cli(&["acl", "setuser", "default", "+getdel"]);

    // The IdP's retry of the same token ends the session; a third delivery is a replay.
    let (status, body, _) = post_logout_token(gw, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(login::user(&mut ua, gw).await.status, 401);
    let (status, body, _) = post_logout_token(gw, &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("replayed"), "{body}");
    let _ = std::fs::remove_dir_all(dir);
}
