//! Request bodies: per-route limits, and clients that send slowly, endlessly or not at all
//! cannot hold a connection the gateway has already answered or could not use.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::idp::{CLIENT_ID, CLIENT_SECRET};
use crate::harness::{client, free_port, GatewayConfig, Upstream};

/// How long a test waits for the gateway to answer or hang up. Not a timing target: the
/// behaviour under test either happens within seconds or (before the fix) not for a minute
/// or an hour.
const GUARD: Duration = Duration::from_secs(20);

/// Reads until the gateway closes the connection: what it sent, or `None` when it was still
/// open after [`GUARD`].
async fn until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    tokio::time::timeout(GUARD, stream.read_to_end(&mut out))
        .await
        .ok()
        .map(|_| String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn route_body_limit_refuses_larger_bodies_with_413() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .route("/", "api", "max_body = \"2KiB\"")
        .start()
        .await;

    let small = client()
        .post(gw.url("/upload"))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    assert_eq!(small.json::<Value>().await.unwrap()["bytes"], 2048);
    let forwarded = api.hits();

    // A declared length is refused before anything reaches the upstream.
    let declared = client()
        .post(gw.url("/upload"))
        .body(vec![b'a'; 2049])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    assert_eq!(
        declared.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = declared.json().await.unwrap();
    assert_eq!(problem["type"], "urn:portcullis:problem:payload-too-large");
    assert_eq!(
        api.hits(),
        forwarded,
        "the refused body reached the upstream"
    );

    // A chunked body is counted as it streams.
    let chunks = futures_util::stream::iter(
        (0..3).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'b'; 1024]))),
    );
    let chunked = client()
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status(), 413);
}

#[tokio::test]
async fn a_refused_request_is_answered_without_reading_its_endless_body() {
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .cluster("api", &[api.url()], "")
        .route("/api/", "api", "anti_forgery = true")
        .start()
        .await;
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    // Declares 100 MB, sends 1 KiB and then nothing: the call lacks the anti-forgery header,
    // so the answer is known; waiting for the rest would hold the connection for minutes.
    s.write_all(
        b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
          Content-Length: 100000000\r\n\r\n",
    )
    .await
    .unwrap();
    s.write_all(&[b'x'; 1024]).await.unwrap();
    let answer = until_closed(&mut s)
        .await
        .expect("the gateway waited for a body it did not need");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(api.hits(), 0);

    // A small body is read so the connection serves the next request.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    s.write_all(b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let first = one_response(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    s.write_all(b"GET /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let second = until_closed(&mut s).await.unwrap();
    assert!(second.starts_with("HTTP/1.1 401"), "{second}");
}

/// One response with a `Content-Length` body, leaving the connection open.
async fn one_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(GUARD, stream.read(&mut buf))
            .await
            .expect("no complete response")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_back_channel_body_must_arrive_within_its_deadline() {
    let spa = Upstream::start("spa").await;
    // Discovery need not succeed: the body is read before the token is looked at.
    let gw = GatewayConfig::new()
        .server("public_origin = \"http://127.0.0.1\"")
        .toml(&format!(
            "[oidc]\nissuer = \"http://127.0.0.1:{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"",
            free_port()
        ))
        .cluster("spa", &[spa.url()], "")
        .route("/", "spa", "")
        .start()
        .await;
    let s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    let (mut reader, mut writer) = s.into_split();
    writer
        .write_all(
            b"POST /bff/backchannel HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\n\
              logout_token=",
        )
        .await
        .unwrap();
    // One byte a second: every read arrives well within the per-read timeout, so only an
    // overall deadline ends this.
    let trickle = tokio::spawn(async move {
        for _ in 0..GUARD.as_secs() + 5 {
            if writer.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(GUARD, reader.read_to_end(&mut out)).await;
    trickle.abort();
    let answer = String::from_utf8_lossy(&out);
    assert!(
        read.is_ok(),
        "still reading the body after {GUARD:?}: {answer}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
}

#[tokio::test]
async fn only_an_upgrade_the_upstream_accepted_gets_the_long_idle_timeout() {
    use tokio_tungstenite::tungstenite::Message;
    let api = Upstream::start("api").await;
    let gw = GatewayConfig::new()
        .env("PORTCULLIS__PINGORA__CLIENT_BODY_TIMEOUT", "2s")
        .cluster("api", &[api.url()], "")
        .route("/", "api", "")
        .start()
        .await;

    // Claims an upgrade, then stalls its body: the upstream never agreed to an upgrade, so
    // the ordinary body timeout applies, not the cluster's hour-long upgrade_idle_timeout.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Content-Length: 10\r\n\r\nab",
    )
    .await
    .unwrap();
    assert!(
        until_closed(&mut s).await.is_some(),
        "a stalled request claiming an upgrade kept its connection"
    );

    // A real WebSocket outlives the body timeout once the upstream answered 101.
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gw.port))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    tokio::time::sleep(Duration::from_secs(4)).await;
    ws.send(Message::text("still here")).await.unwrap();
    let echoed = tokio::time::timeout(GUARD, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("still here"));
    ws.close(None).await.unwrap();
}
