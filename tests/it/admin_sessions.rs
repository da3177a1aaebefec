//! The session admin API: list and revoke a user's sessions, on every replica, only with the
//! admin token.

use std::time::Duration;

use serde_json::Value;

use crate::harness::login;
use crate::harness::redis::RedisServer;
use crate::harness::{client, Gateway, UserAgent};

const TOKEN: &str = "admin-token-0123456789-abcdefghijklmnop";

async fn admin(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut req = client().request(method, gw.admin_url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admins_list_and_revoke_a_users_sessions_on_every_replica() {
    let redis = RedisServer::start();
    let shared = redis.session_toml();
    let env = [("PORTCULLIS__ADMIN__SESSIONS_API_TOKEN", TOKEN)];
    let stack = login::start_with(&shared, &env).await;
    let a = &stack.gw;
    let b = login::second_replica(&stack, &shared, &env).await;

    // Max has three sessions (three browsers); Nina one.
    let mut max: Vec<UserAgent> = (0..3).map(|_| UserAgent::new()).collect();
    for ua in max.iter_mut() {
        assert_eq!(login::login(ua, a, "/", "max|1").await.status, 302);
    }
    let mut nina = UserAgent::new();
    assert_eq!(login::login(&mut nina, a, "/", "nina").await.status, 302);

    // Without the token (or with a wrong one) nothing is shown.
    let path = "/admin/users/max%7C1/sessions";
    assert_eq!(admin(a, reqwest::Method::GET, path, None).await.0, 401);
    assert_eq!(
        admin(a, reqwest::Method::GET, path, Some("wrong")).await.0,
        401
    );
    assert_eq!(
        admin(
            a,
            reqwest::Method::DELETE,
            path,
            Some(&TOKEN[..TOKEN.len() - 1])
        )
        .await
        .0,
        401
    );

    let (status, listed) = admin(&b, reqwest::Method::GET, path, Some(TOKEN)).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["sub"], "max|1");
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "{listed}");
    let text = listed.to_string();
    assert!(!text.contains("eyJ"), "a token in the listing");
    for ua in &max {
        assert!(
            !text.contains(ua.cookie("__Host-portcullis").unwrap()),
            "a session id in the listing"
        );
    }
    assert!(sessions
        .iter()
        .all(|s| s["sid"].is_string() && s["expires_at"].as_u64().unwrap() > 0));

    // Revoke one: that browser is signed out on both replicas, the others are not.
    let victim = sessions[0]["id"].as_str().unwrap();
    let (status, body) = admin(
        a,
        reqwest::Method::DELETE,
        &format!("{path}/{victim}"),
        Some(TOKEN),
    )
    .await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(1)), "{body}");
    // The replica that revoked drops its cached copy at once; the other hears of it from
    // Redis (client tracking) within milliseconds, so it is given a moment.
    let mut alive = 0;
    for ua in max.iter_mut() {
        let on_a = login::user(ua, a).await.status;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while login::user(ua, &b).await.status != on_a {
            assert!(tokio::time::Instant::now() < deadline, "replicas disagree");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        alive += usize::from(on_a == 200);
    }
    assert_eq!(alive, 2);

    // Revoke all of Max's: every one of them is gone everywhere; Nina is untouched.
    let (status, body) = admin(&b, reqwest::Method::DELETE, path, Some(TOKEN)).await;
    assert_eq!((status, body["revoked"].as_u64()), (200, Some(2)), "{body}");
    for ua in max.iter_mut() {
        assert_eq!(login::user(ua, &b).await.status, 401);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while login::user(ua, a).await.status != 401 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a revoked session still works on the other replica"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(login::user(&mut nina, &b).await.status, 200);
    assert!(
        a.log().contains("session_revoked"),
        "revocations are audit-logged"
    );
    assert!(a
        .metrics()
        .await
        .contains("portcullis_sessions_revoked_total{by=\"admin\"} 1"));
    assert!(b
        .metrics()
        .await
        .contains("portcullis_sessions_revoked_total{by=\"admin\"} 2"));
}

#[tokio::test]
async fn the_session_admin_api_is_off_unless_configured() {
    let stack = login::start("").await;
    let (status, _) = admin(
        &stack.gw,
        reqwest::Method::GET,
        "/admin/users/x/sessions",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 404);
    // And it never exists on the public listener: there the path is just routed (to the SPA).
    let public: Value = client()
        .get(stack.gw.url("/admin/users/x/sessions"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public["name"], "spa", "{public}");
}
