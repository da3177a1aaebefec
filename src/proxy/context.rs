//! Per-request state carried from phase to phase.

use std::sync::Arc;
use std::time::Instant;

use pingora::lb::Backend;

use crate::bff::Endpoint;
use crate::config::Destination;
use crate::error::GatewayError;
use crate::session::Current;
use crate::upstream::Route;

pub struct RequestCtx {
    pub started: Instant,
    /// Propagated from a valid incoming `X-Request-Id`, else generated.
    pub request_id: String,
    pub route: Option<Arc<Route>>,
    /// Set when a BFF endpoint answered instead of a route.
    pub endpoint: Option<Endpoint>,
    /// The destination chosen by `upstream_peer`, for the `Host` header and the access log.
    pub destination: Option<Arc<Destination>>,
    /// The address last tried, so a retry after a failed connect goes elsewhere.
    pub backend: Option<Backend>,
    pub connect_attempts: u8,
    /// The signed-in user's session, found by the session phase on routes that want one.
    pub session: Option<Current>,
    /// What the upstream gets as `Authorization` on a token route (decided in
    /// `request_filter`, set in `upstream_request_filter`).
    pub authorization: Option<http::HeaderValue>,
    /// Set for an upgrade request with a session: the handle that closes it when the session
    /// ends (registered while this lives).
    pub tunnel: Option<Arc<super::tunnels::Tunnel>>,
    /// Request body bytes forwarded so far (counted only on routes with `max_body`).
    pub body_bytes: u64,
    /// Set when a phase decided the answer; `fail_to_proxy` renders it.
    pub error: Option<GatewayError>,
    /// Counts this request in `requests_in_flight` while it lives.
    pub in_flight: Option<crate::metrics::InFlight>,
    /// The request's spans, when tracing is on (`[telemetry]`).
    pub trace: Option<super::spans::RequestTrace>,
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id: String::new(),
            route: None,
            endpoint: None,
            destination: None,
            backend: None,
            connect_attempts: 0,
            session: None,
            authorization: None,
            tunnel: None,
            body_bytes: 0,
            error: None,
            in_flight: None,
            trace: None,
        }
    }
}

impl RequestCtx {
    pub fn route_name(&self) -> &str {
        match (&self.route, self.endpoint) {
            (_, Some(e)) => e.name(),
            (Some(r), None) => r.name.as_str(),
            (None, None) => "-",
        }
    }

    /// The trace id for log lines and problem bodies, when tracing is on.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace.as_ref().map(|t| t.trace_id.as_str())
    }

    pub fn cluster_name(&self) -> &str {
        self.route.as_ref().map_or("-", |r| r.cluster.name.as_str())
    }
}
