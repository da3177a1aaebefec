//! Bodies stream through in both directions (nothing is buffered whole), and WebSockets work.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::timeout;

use crate::harness::{client, GatewayConfig, Upstream};

/// Generous bound for "this part must arrive before the rest is even produced". Not a timing
/// assertion: a buffering gateway would wait forever, so only the failure path ever waits.
const DEADLOCK_GUARD: Duration = Duration::from_secs(15);

async fn gateway(api: &Upstream) -> crate::harness::Gateway {
    GatewayConfig::in_front_of(api).start().await
}

#[tokio::test]
async fn response_parts_arrive_before_the_upstream_finishes() {
    let api = Upstream::start("api").await;
    let gw = gateway(&api).await;
    let mut r = client().get(gw.url("/stream")).send().await.unwrap();
    let first = timeout(DEADLOCK_GUARD, r.chunk())
        .await
        .expect("first part was held back until the response ended")
        .unwrap()
        .unwrap();
    assert_eq!(first, "first\n");
    api.release();
    assert_eq!(r.chunk().await.unwrap().unwrap(), "rest\n");
}

#[tokio::test]
async fn request_body_reaches_the_upstream_while_the_client_still_sends() {
    let api = Upstream::start("api").await;
    let gw = gateway(&api).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (b, rx))
    }));
    let call = tokio::spawn(client().post(gw.url("/upload")).body(body).send());
    tx.send(Ok(Bytes::from(vec![b'a'; 1024]))).await.unwrap();
    timeout(DEADLOCK_GUARD, api.upload_started())
        .await
        .expect("upstream saw nothing until the whole body was sent");
    tx.send(Ok(Bytes::from(vec![b'b'; 1024]))).await.unwrap();
    drop(tx);
    let r = call.await.unwrap().unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["bytes"], 2048);
}

#[tokio::test]
async fn large_bodies_pass_intact_in_both_directions() {
    let api = Upstream::start("api").await;
    let gw = gateway(&api).await;
    let size: u64 = 64 * 1024 * 1024;
    let r = client()
        .post(gw.url("/upload"))
        .body(vec![b'z'; size as usize])
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["bytes"], size);

    let mut r = client()
        .get(gw.url(&format!("/big?bytes={size}")))
        .send()
        .await
        .unwrap();
    let mut got: u64 = 0;
    while let Some(chunk) = r.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, size);
}

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    use tokio_tungstenite::tungstenite::Message;
    let api = Upstream::start("api").await;
    let gw = gateway(&api).await;
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gw.port))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through", "portcullis"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = timeout(DEADLOCK_GUARD, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    ws.close(None).await.unwrap();
}
