//! A real HTTP/1.1 upstream (hyper) on 127.0.0.1, with a few behaviours tests ask for by path:
//!
//! - `/health`        200, or 503 after `set_healthy(false)`
//! - `/slow?ms=N`     answers after N ms
//! - `/stream`        sends `first\n`, waits for `release()`, then sends `rest\n`
//! - `/upload`        counts the request body; `upload_started()` fires at the first chunk
//! - `/big?bytes=N`   streams N bytes
//! - `/hop`           answers with hop-by-hop headers that must not reach the client
//! - `/own-headers`   a page with its own (weak) framing, CSP and referrer headers
//! - `/ws`            WebSocket echo; `whoami` is answered with the handshake's Authorization
//! - anything else    JSON echo: `{name, method, uri, headers}`

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

type Body = BoxBody<Bytes, std::io::Error>;

struct State {
    name: String,
    healthy: AtomicBool,
    hits: AtomicUsize,
    release: Notify,
    upload_started: Notify,
}

pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        Self::start_on(name, 0).await
    }

    /// Binds a specific port (to bring a stopped destination back where it was).
    pub async fn start_on(name: &str, port: u16) -> Upstream {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            name: name.to_string(),
            healthy: AtomicBool::new(true),
            hits: AtomicUsize::new(0),
            release: Notify::new(),
            upload_started: Notify::new(),
        });
        let (stop, mut stopped) = oneshot::channel();
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream {
            addr,
            state,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.state.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests served, health checks excluded.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Lets a `/stream` response send its second part.
    pub fn release(&self) {
        self.state.release.notify_one();
    }

    pub async fn upload_started(&self) {
        self.state.upload_started.notified().await;
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(
            Full::new(body.into())
                .map_err(|e: Infallible| match e {})
                .boxed(),
        )
        .unwrap()
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    BodyExt::boxed(StreamBody::new(stream))
}

async fn handle(st: Arc<State>, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if path != "/health" {
        st.hits.fetch_add(1, Ordering::SeqCst);
    }
    let resp = match path.as_str() {
        "/health" => {
            if st.healthy.load(Ordering::SeqCst) {
                full(200, "text/plain", "ok")
            } else {
                full(503, "text/plain", "down")
            }
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query(&req, "ms").unwrap_or(1000))).await;
            echo(&st, &req)
        }
        "/stream" => {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let st2 = st.clone();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first\n")).await;
                st2.release.notified().await;
                let _ = tx.send(Bytes::from_static(b"rest\n")).await;
            });
            Response::builder()
                .header("content-type", "text/plain")
                .body(channel_body(rx))
                .unwrap()
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            let mut first = true;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    n += data.len() as u64;
                    if first && !data.is_empty() {
                        first = false;
                        st.upload_started.notify_one();
                    }
                }
            }
            full(200, "application/json", format!("{{\"bytes\":{n}}}"))
        }
        "/big" => {
            let total = query(&req, "bytes").unwrap_or(1 << 20);
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(async move {
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let mut left = total;
                while left > 0 {
                    let n = left.min(chunk.len() as u64);
                    if tx.send(chunk.slice(..n as usize)).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
            Response::builder()
                .header("content-type", "application/octet-stream")
                .body(channel_body(rx))
                .unwrap()
        }
        "/hop" => Response::builder()
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "secret")
            .header("keep-alive", "timeout=5")
            .header("x-end-to-end", "kept")
            .body(
                Full::new(Bytes::from_static(b"hop"))
                    .map_err(|e: Infallible| match e {})
                    .boxed(),
            )
            .unwrap(),
        // A compromised or careless upstream setting the gateway's own cookies (and one of its
        // own, which must pass).
        "/set-cookies" => Response::builder()
            .header(
                "set-cookie",
                "__Host-portcullis=planted-by-upstream; Path=/; Secure",
            )
            .header(
                "set-cookie",
                "__Host-portcullis-login=planted; Path=/; Secure",
            )
            .header("set-cookie", "app-theme=dark; Path=/")
            .body(
                Full::new(Bytes::from_static(b"cookies"))
                    .map_err(|e: Infallible| match e {})
                    .boxed(),
            )
            .unwrap(),
        "/own-headers" => Response::builder()
            .header("content-type", "text/html")
            .header("x-frame-options", "ALLOWALL")
            .header("content-security-policy", "script-src 'self' 'nonce-abc'")
            .header("referrer-policy", "unsafe-url")
            .body(
                Full::new(Bytes::from_static(b"<p>page</p>"))
                    .map_err(|e: Infallible| match e {})
                    .boxed(),
            )
            .unwrap(),
        "/ws" => websocket(&mut req),
        _ => echo(&st, &req),
    };
    Ok(resp)
}

fn echo(st: &State, req: &Request<Incoming>) -> Response<Body> {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let body = serde_json::json!({
        "name": st.name,
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
    });
    full(200, "application/json", body.to_string())
}

fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return full(400, "text/plain", "not a websocket request");
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    // "whoami" is answered with the handshake's Authorization header: what the gateway injected.
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.to_text().is_ok_and(|t| t == "whoami") {
                if ws.send(authorization.clone().into()).await.is_err() {
                    return;
                }
            } else if msg.is_text() || msg.is_binary() {
                if ws.send(msg).await.is_err() {
                    return;
                }
            } else if msg.is_close() {
                return;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(
            Full::new(Bytes::new())
                .map_err(|e: Infallible| match e {})
                .boxed(),
        )
        .unwrap()
}
