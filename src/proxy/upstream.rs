//! `upstream_peer` and `fail_to_connect`: choose a destination, retry another on connect failure.

use pingora::proxy::Session as HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};

use std::sync::Arc;

use crate::error::GatewayError;
use crate::metrics::Metrics;

use super::context::RequestCtx;
use super::tunnels::Tunnels;

/// At most this many connect attempts per request, each to a different destination when the
/// cluster has more than one.
const MAX_CONNECT_ATTEMPTS: u8 = 3;

pub fn peer(
    session: &mut HttpSession,
    ctx: &mut RequestCtx,
    tunnels: &Arc<Tunnels>,
) -> pingora::Result<Box<HttpPeer>> {
    let Some(route) = ctx.route.clone() else {
        ctx.error = Some(GatewayError::Internal);
        return Error::e_explain(ErrorType::InternalError, "upstream_peer without a route");
    };
    let cluster = &route.cluster;
    let Some(backend) = cluster.select(ctx.backend.as_ref()) else {
        ctx.error = Some(GatewayError::NoHealthyUpstream {
            cluster: cluster.name.clone(),
        });
        return Error::e_explain(ErrorType::HTTPStatus(503), "no healthy destination");
    };
    let Some(upstream) = cluster.upstream(&backend) else {
        ctx.error = Some(GatewayError::Internal);
        return Error::e_explain(ErrorType::InternalError, "backend without upstream data");
    };
    let mut peer = Box::new(upstream.peer.clone());
    ctx.destination = Some(upstream.destination.clone());
    if session.is_upgrade_req() {
        // WebSockets idle for long stretches. The upstream connection's read timeout is fixed
        // when the request is sent, so it is raised here; the client's only once the upstream
        // agreed (`response_filter`, on 101), so that a client merely claiming an upgrade
        // cannot stall a request for an hour.
        peer.options.read_timeout = Some(cluster.config.upgrade_idle_timeout);
        // A tunnel opened with a session is closed when the session ends.
        if let Some(current) = &ctx.session {
            ctx.tunnel = Some(tunnels.open(&current.key, &mut peer));
        }
    }
    ctx.backend = Some(backend);
    Ok(peer)
}

pub fn connect_failed(ctx: &mut RequestCtx, metrics: &Metrics, mut e: Box<Error>) -> Box<Error> {
    ctx.connect_attempts += 1;
    let Some(route) = &ctx.route else { return e };
    metrics.connect_error(&route.cluster.name);
    let attempts = usize::from(ctx.connect_attempts);
    if ctx.connect_attempts < MAX_CONNECT_ATTEMPTS && attempts < route.cluster.size().max(1) {
        // Nothing was sent yet, so trying another destination is always safe.
        e.set_retry(true);
    }
    e
}
