//! The request's spans: the server span from `early_request_filter` to `logging`, and a
//! client span for the upstream call from `upstream_peer` to `logging`. The phases in between
//! run under the server span's context, so their own spans (`telemetry::traces::in_span`)
//! become its children.
//!
//! Attributes follow the HTTP semantic conventions; the path is sent without its query (which
//! can carry authorization codes), and nothing of the session, cookie or token is.

use opentelemetry::trace::{Link, SpanBuilder, SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use pingora::http::RequestHeader;
use pingora::proxy::Session as HttpSession;

use crate::config::IncomingTrace;
use crate::telemetry::{propagation, traces};

use super::context::RequestCtx;

pub struct RequestTrace {
    /// Holds the server span.
    pub cx: Context,
    /// 32 lowercase hex digits, for log lines and problem bodies.
    pub trace_id: String,
    /// Holds the upstream call's span, once one started.
    upstream: Option<Context>,
}

/// Starts the server span, continuing or linking the caller's trace.
pub fn start(
    session: &HttpSession,
    incoming: IncomingTrace,
    client: Option<std::net::IpAddr>,
) -> Option<RequestTrace> {
    let tracer = traces::tracer()?;
    let req = session.req_header();
    let mut attributes = vec![
        KeyValue::new("http.request.method", req.method.as_str().to_string()),
        KeyValue::new("url.path", req.uri.path().to_string()),
        KeyValue::new(
            "network.protocol.version",
            if session.is_http2() { "2" } else { "1.1" },
        ),
    ];
    if let Some(ip) = client {
        attributes.push(KeyValue::new("client.address", ip.to_string()));
    }
    if let Some(host) = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new("server.address", host.to_string()));
    }
    if let Some(ua) = req
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        // Visible ASCII (`to_str`), so a byte cut is a character cut; bounded like the audit's.
        let ua = &ua[..ua.len().min(200)];
        attributes.push(KeyValue::new("user_agent.original", ua.to_string()));
    }
    let mut builder = SpanBuilder::from_name(req.method.as_str().to_string())
        .with_kind(SpanKind::Server)
        .with_attributes(attributes);
    let parent = match (propagation::extract(&req.headers), incoming) {
        (Some(remote), IncomingTrace::Continue) => Context::new().with_remote_span_context(remote),
        (Some(remote), IncomingTrace::Link) => {
            builder = builder.with_links(vec![Link::with_context(remote)]);
            Context::new()
        }
        (None, _) => Context::new(),
    };
    let span = builder.start_with_context(tracer, &parent);
    let cx = parent.with_span(span);
    let trace_id = cx.span().span_context().trace_id().to_string();
    Some(RequestTrace {
        cx,
        trace_id,
        upstream: None,
    })
}

impl RequestTrace {
    /// Starts the upstream call's span (once: retries to another destination are inside it).
    pub fn upstream_call(&mut self, method: &str, cluster: &str, address: &str) {
        if self.upstream.is_some() || !self.cx.span().span_context().is_sampled() {
            return;
        }
        let Some(tracer) = traces::tracer() else {
            return;
        };
        let span = SpanBuilder::from_name(format!("{method} {cluster}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("server.address", address.to_string()),
                KeyValue::new("portcullis.cluster", cluster.to_string()),
            ])
            .start_with_context(tracer, &self.cx);
        self.upstream = Some(self.cx.with_span(span));
    }

    /// The upstream's answer status, on the upstream call's span.
    pub fn upstream_status(&self, status: u16) {
        if let Some(cx) = &self.upstream {
            cx.span().set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                cx.span().set_status(Status::error(""));
            }
        }
    }

    /// Gives the upstream the gateway's `traceparent` (the upstream call's span, else the
    /// server span), replacing the caller's.
    pub fn inject(&self, req: &mut RequestHeader) {
        propagation::inject(self.upstream.as_ref().unwrap_or(&self.cx), req);
    }

    /// Ends both spans with what the request came to.
    pub fn finish(self, ctx: &RequestCtx, method: &str, status: u16, error: Option<&str>) {
        let span = self.cx.span();
        if span.is_recording() {
            let route = ctx.route_name();
            span.update_name(format!("{method} {route}"));
            span.set_attributes([
                KeyValue::new("http.route", route.to_string()),
                KeyValue::new("http.response.status_code", i64::from(status)),
            ]);
            if let Some(attempts) = (ctx.connect_attempts > 0).then_some(ctx.connect_attempts) {
                span.set_attribute(KeyValue::new(
                    "portcullis.connect_failures",
                    i64::from(attempts),
                ));
            }
            // Server spans: only the gateway's own failures (5xx) are errors.
            if status >= 500 || status == 0 {
                let kind = error.unwrap_or("_OTHER").to_string();
                span.set_attribute(KeyValue::new("error.type", kind.clone()));
                span.set_status(Status::error(kind));
            }
        }
        if let Some(upstream) = &self.upstream {
            if let (Some(e), true) = (error, upstream.span().is_recording()) {
                upstream
                    .span()
                    .set_attribute(KeyValue::new("error.type", e.to_string()));
                upstream.span().set_status(Status::error(e.to_string()));
            }
            upstream.span().end();
        }
        span.end();
    }
}
