//! A WebSocket opened with a session ends when the session does: logout on this replica or
//! another one, back-channel logout, admin revocation and expiry all close it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::login::{self, Stack};
use crate::harness::redis::RedisServer;
use crate::harness::{Gateway, UserAgent};

const COOKIE: &str = "__Host-portcullis";

/// How long a test waits for the gateway to close a tunnel. Not a timing target: without the
/// feature the tunnel stays open for the cluster's hour-long idle timeout.
const GUARD: Duration = Duration::from_secs(20);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the `/live/ws` feed on `gw` with the browser's session, and checks it works.
async fn open_feed(gw: &Gateway, ua: &UserAgent) -> Socket {
    let mut req = format!("ws://127.0.0.1:{}/live/ws", gw.port)
        .into_client_request()
        .unwrap();
    let cookie = format!("{COOKIE}={}", ua.cookie(COOKIE).unwrap());
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert(
        "origin",
        format!("http://127.0.0.1:{}", gw.port).parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("ping")).await.unwrap();
    let echo = tokio::time::timeout(GUARD, ws.next()).await.unwrap();
    assert!(matches!(echo, Some(Ok(Message::Text(t))) if t.as_str() == "ping"));
    ws
}

/// Waits for the feed to end (a close frame, EOF or a reset); `false` if it stayed open.
async fn ends(ws: &mut Socket) -> bool {
    tokio::time::timeout(GUARD, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn log_out_on(ua: &mut UserAgent, login_origin: &Gateway, at: &Gateway) {
    let logout = login::logout_url(ua, &login_origin.url("")).await;
    let out = ua.get(&at.url(&logout), &[]).await;
    assert_eq!(out.status, 302, "{}", out.body);
    assert_eq!(login::user(ua, at).await.status, 401);
}

#[tokio::test]
async fn logging_out_closes_the_sessions_websockets() {
    let stack: Stack = login::start("").await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "wendy").await.status, 302);
    let mut mine = open_feed(gw, &ua).await;
    // Another user's feed is not touched.
    let mut other_ua = UserAgent::new();
    assert_eq!(
        login::login(&mut other_ua, gw, "/", "xavier").await.status,
        302
    );
    let mut theirs = open_feed(gw, &other_ua).await;

    log_out_on(&mut ua, gw, gw).await;
    assert!(
        ends(&mut mine).await,
        "the logged-out session's WebSocket stayed open"
    );
    theirs.send(Message::text("still")).await.unwrap();
    let echo = tokio::time::timeout(GUARD, theirs.next()).await.unwrap();
    assert!(matches!(echo, Some(Ok(Message::Text(t))) if t.as_str() == "still"));
    assert_closed_count(gw, 1).await;
}

async fn assert_closed_count(gw: &Gateway, n: u32) {
    let metrics = gw.metrics().await;
    let line = format!("portcullis_session_tunnels_closed_total {n}");
    assert!(metrics.contains(&line), "{line}\n{metrics}");
}

#[tokio::test]
async fn a_logout_on_another_replica_closes_websockets_here() {
    let redis = RedisServer::start();
    let stack: Stack = login::start(&redis.session_toml()).await;
    let other = login::second_replica(&stack, &redis.session_toml(), &[]).await;
    let gw = &stack.gw;
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "yara").await.status, 302);
    let mut feed = open_feed(gw, &ua).await;
    // A refresh or a slide also changes the session: only its end closes the feed.
    assert_eq!(login::user(&mut ua, &other).await.status, 200);

    log_out_on(&mut ua, gw, &other).await;
    assert!(ends(&mut feed).await, "the feed outlived its session");
    assert_closed_count(gw, 1).await;
}
