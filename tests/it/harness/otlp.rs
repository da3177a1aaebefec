//! A real OTLP trace receiver: OTLP/HTTP (`POST /v1/traces`, protobuf) and OTLP/gRPC
//! (`TraceService/Export` over HTTP/2 without TLS), decoding with the protocol's own
//! definitions (`opentelemetry-proto`). Keeps every span it got, with its resource.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::eventually;

/// One received span, ids in lowercase hex as they appear in `traceparent`.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    /// The OTLP enum: 1 internal, 2 server, 3 client.
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    /// The OTLP enum: 0 unset, 1 ok, 2 error.
    pub status: i32,
    pub resource: BTreeMap<String, String>,
}

pub const SERVER: i32 = 2;
pub const CLIENT: i32 = 3;

#[derive(Clone, Copy, PartialEq)]
pub enum Protocol {
    Http,
    Grpc,
}

pub struct Collector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Collector {
    pub async fn start(protocol: Protocol) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel();
        let kept = spans.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
                    _ = &mut stopped => return,
                };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| receive(kept.clone(), req, protocol));
                    let io = TokioIo::new(stream);
                    let _ = match protocol {
                        Protocol::Http => {
                            hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, svc)
                                .await
                        }
                        Protocol::Grpc => {
                            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(io, svc)
                                .await
                        }
                    };
                });
            }
        });
        Collector {
            addr,
            spans,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until a span matches `pred`, and returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Span) -> bool) -> Span {
        eventually(what, Duration::from_secs(10), || {
            let found = self.spans().into_iter().find(|s| pred(s));
            async move { found }
        })
        .await
    }

    /// Every span of `trace_id` received so far.
    pub fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn receive(
    kept: Arc<Mutex<Vec<Span>>>,
    req: Request<Incoming>,
    protocol: Protocol,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let expected = match protocol {
        Protocol::Http => "/v1/traces",
        Protocol::Grpc => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    };
    if path != expected {
        return Ok(Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap());
    }
    let message = match protocol {
        Protocol::Http => body,
        // gRPC framing: a compressed flag and a 4-byte length before the message.
        Protocol::Grpc => {
            let mut b = body;
            b.advance(5.min(b.len()));
            b
        }
    };
    let request = ExportTraceServiceRequest::decode(message).expect("an OTLP trace export");
    let mut spans = kept.lock().unwrap();
    for rs in request.resource_spans {
        let resource = rs
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                spans.push(Span {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    attributes: attributes(&s.attributes),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex(&l.trace_id), hex(&l.span_id)))
                        .collect(),
                    status: s.status.map_or(0, |st| st.code),
                    resource: resource.clone(),
                });
            }
        }
    }
    drop(spans);
    Ok(match protocol {
        Protocol::Http => Response::builder()
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
        Protocol::Grpc => {
            // An empty ExportTraceServiceResponse, framed, then grpc-status 0 as a trailer.
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", "0".parse().unwrap());
            let frames = futures_util::stream::iter([
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                Ok(Frame::trailers(trailers)),
            ]);
            Response::builder()
                .header("content-type", "application/grpc")
                .body(StreamBody::new(frames).boxed())
                .unwrap()
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), value)
        })
        .collect()
}
