//! The `logging` phase: one access-log line and the request metrics, for every request.
//!
//! The query string is never logged: from the login issue on it carries authorization codes.

use pingora::proxy::Session as HttpSession;
use pingora::Error;

use crate::metrics::RouteMetrics;

use super::context::RequestCtx;

pub fn record(
    session: &HttpSession,
    e: Option<&Error>,
    ctx: &RequestCtx,
    metrics: &RouteMetrics,
    log: bool,
) {
    let elapsed = ctx.started.elapsed();
    let status = session
        .response_written()
        .map(|r| r.status.as_u16())
        .or_else(|| ctx.error.as_ref().map(|g| g.status()))
        .unwrap_or(0);
    metrics.observe(status, elapsed);
    if !log {
        return;
    }
    let req = session.req_header();
    let destination = ctx.destination.as_ref().map_or("-", |d| d.url.as_str());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    match e {
        None => tracing::info!(
            target: "access",
            request_id = %ctx.request_id,
            method = %req.method,
            path = req.uri.path(),
            route = ctx.route_name(),
            cluster = ctx.cluster_name(),
            destination,
            status,
            latency_ms,
            "request"
        ),
        Some(e) => tracing::info!(
            target: "access",
            request_id = %ctx.request_id,
            method = %req.method,
            path = req.uri.path(),
            route = ctx.route_name(),
            cluster = ctx.cluster_name(),
            destination,
            status,
            latency_ms,
            error = e.etype().as_str(),
            "request failed"
        ),
    }
}
