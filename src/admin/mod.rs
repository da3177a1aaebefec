//! The admin listener: `/healthz` (liveness), `/readyz` (readiness), `/metrics`, and the
//! session admin API when it is enabled (`sessions.rs`).
//!
//! It listens on its own address so probes and scrapes never share the public port, and
//! nothing here is reachable from the browser-facing listener.

mod readiness;
pub mod sessions;

use std::sync::Arc;

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::metrics::Metrics;

pub use self::readiness::{DependencyCheck, Lifecycle, Readiness};

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub sessions_api: Option<sessions::SessionsApi>,
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if sessions::SessionsApi::handles(req.uri.path()) {
            return match &self.sessions_api {
                Some(api) => {
                    let r = api.handle(&req.method, req.uri.path(), &req.headers).await;
                    reply(r.status, "application/json", r.body)
                }
                None => reply(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    b"the session admin API is off (admin.sessions_api_token)\n".to_vec(),
                ),
            };
        }
        if req.method != Method::GET && req.method != Method::HEAD {
            return reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                b"use GET\n".to_vec(),
            );
        }
        match req.uri.path() {
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let report = self.readiness.report();
                self.metrics.set_ready(report.ready);
                let status = if report.ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                reply(status, "application/json", report.to_json())
            }
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                self.metrics.render(),
            ),
            _ => reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        }
    }
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    if let Ok(v) = content_type.parse() {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, len.into());
    resp
}
