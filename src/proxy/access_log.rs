//! The `logging` phase: one access-log line and the request metrics, for every request.
//!
//! The query string is never logged: from the login issue on it carries authorization codes.

use pingora::proxy::Session as HttpSession;
use pingora::Error;

use crate::metrics::RouteMetrics;

/// What an access line says beyond the request itself.
pub struct Line<'a> {
    pub client: Option<std::net::IpAddr>,
    /// The signed-in user's `sub`, when `log.access_log_user = "sub"`.
    pub user: Option<&'a str>,
}

use super::context::RequestCtx;

/// The status the client got (0: none was sent).
fn status(session: &HttpSession, ctx: &RequestCtx) -> u16 {
    session
        .response_written()
        .map(|r| r.status.as_u16())
        .or_else(|| ctx.error.as_ref().map(|g| g.status()))
        .unwrap_or(0)
}

/// Counts the request, writes its access line when `log` is given, and returns the status the
/// client got (for the request's span).
pub fn record(
    session: &HttpSession,
    e: Option<&Error>,
    ctx: &RequestCtx,
    metrics: &RouteMetrics,
    log: Option<Line<'_>>,
) -> u16 {
    let elapsed = ctx.started.elapsed();
    let status = status(session, ctx);
    metrics.observe(status, elapsed);
    let Some(line) = log else {
        return status;
    };
    let client = line
        .client
        .map_or_else(|| "-".to_string(), |ip| ip.to_string());
    let user = line.user.unwrap_or("-");
    let req = session.req_header();
    let destination = ctx.destination.as_ref().map_or("-", |d| d.url.as_str());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    match e {
        None => tracing::info!(
            target: "access",
            request_id = %ctx.request_id,
            trace_id = ctx.trace_id(),
            client = %client,
            user,
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
            trace_id = ctx.trace_id(),
            client = %client,
            user,
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
    status
}
