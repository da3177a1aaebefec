//! The request pipeline: `impl ProxyHttp`, one short delegation per phase, in phase order.
//!
//! ```text
//! early_request_filter   keepalive, body timeout, request id; spans.rs: the request's
//!                        server span (with [telemetry])
//! request_filter         route.rs host check (421); the JWKS of identity assertions;
//!                        endpoints.rs: BFF endpoints (/bff/login, /signin-oidc, /bff/user,
//!                        /bff/logout, /signout-callback-oidc, /bff/backchannel) answer here;
//!                        otherwise phases.rs: route.rs (reject ambiguous paths, 404 when nothing matches),
//!                        antiforgery.rs on protected routes (401/403), session.rs (cache, then
//!                        store; 503 when it cannot answer), authorize.rs (require rules 403,
//!                        step-up 401), then the route's token (token/: refresh when near
//!                        expiry; 401/503)
//! upstream_peer          healthy destination of the route's cluster (503 when none)
//! fail_to_connect        try another destination
//! request_body_filter    routes[].max_body on chunked bodies (413)
//! upstream_request_filter  upstream_request.rs: path rewrite, Authorization, Host, gateway
//!                        cookies removed, forwarded.rs headers, claim headers and assertion
//! response_filter        upstream_response.rs: hop-by-hop headers, upstream Set-Cookie for our
//!                        cookies, security headers, X-Request-Id; on 101 the long idle timeout
//! fail_to_proxy          fail_to_proxy.rs: classify, then local_answer.rs writes it
//! logging                access log and metrics; spans.rs ends the request's spans
//! ```

mod access_log;
mod antiforgery;
mod authorize;
mod body;
mod context;
mod endpoints;
mod fail_to_proxy;
mod forwarded;
mod limits;
mod local_answer;
mod names;
mod phases;
mod route;
mod session;
mod spans;
mod tunnels;
mod upstream;
mod upstream_request;
mod upstream_response;

use std::sync::Arc;

use async_trait::async_trait;
use opentelemetry::trace::FutureExt;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::proxy::{FailToProxy, ProxyHttp, Session as HttpSession};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::bff::{Bff, Endpoint};
use crate::config::{AntiForgeryConfig, Cidr, Config, IncomingTrace, Origin};
use crate::error::GatewayError;
use crate::metrics::{Metrics, RouteMetrics};
use crate::session::Sessions;
use crate::telemetry::traces;
use crate::token::Tokens;
use crate::upstream::RouteTable;

pub use self::context::RequestCtx;

/// Shared state of the proxy service.
pub struct Gateway {
    routes: RouteTable,
    anti_forgery: AntiForgeryConfig,
    public_origin: Option<Origin>,
    trusted_proxies: Vec<Cidr>,
    scheme: &'static str,
    keepalive_secs: u64,
    client_body_timeout: std::time::Duration,
    access_log: bool,
    access_log_user: bool,
    metrics: Arc<Metrics>,
    /// Counts requests that matched no route.
    unrouted: RouteMetrics,
    bff: Arc<Bff>,
    sessions: Arc<Sessions>,
    limits: limits::Limits,
    /// Set with `server.public_origin`: requests for other hosts get 421.
    served_hosts: Option<route::ServedHosts>,
    security_headers: upstream_response::SecurityHeaders,
    tunnels: Arc<tunnels::Tunnels>,
    /// Every route's `claim_headers` names and the assertion header, folded: removed from
    /// every incoming request.
    claim_header_names: Vec<String>,
    /// Signs identity assertions for routes that send them; `None` without keys.
    assertions: Option<crate::authz::assertion::Signer>,
    tokens: Arc<Tokens>,
    /// One per [`Endpoint`], in `Endpoint::ALL` order.
    endpoint_metrics: Vec<RouteMetrics>,
    /// What a caller's `traceparent` means (`telemetry.incoming`).
    incoming_trace: IncomingTrace,
}

impl Gateway {
    pub fn new(
        config: &Config,
        routes: RouteTable,
        metrics: Arc<Metrics>,
        bff: Arc<Bff>,
        tokens: Arc<Tokens>,
    ) -> Self {
        Gateway {
            tokens,
            endpoint_metrics: Endpoint::ALL
                .iter()
                .map(|e| metrics.route(e.name(), "-"))
                .collect(),
            sessions: bff.sessions.clone(),
            tunnels: tunnels::Tunnels::new(bff.sessions.clone(), metrics.tunnels_closed.clone()),
            limits: limits::Limits::new(&config.rate_limits, metrics.rate_limited.clone()),
            bff,
            security_headers: upstream_response::SecurityHeaders::new(&config.response_headers),

            claim_header_names: routes.claim_header_names(),
            assertions: crate::authz::assertion::Signer::from_config(config),
            served_hosts: route::ServedHosts::new(config.server.public_origin.as_ref(), &routes),
            routes,
            anti_forgery: config.anti_forgery.clone(),
            public_origin: config.server.public_origin.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            scheme: if config.server.tls.is_some() {
                "https"
            } else {
                "http"
            },
            keepalive_secs: config.pingora.keepalive_timeout.as_secs().max(1),
            client_body_timeout: config.pingora.client_body_timeout,
            access_log: config.log.access_log,
            incoming_trace: config.telemetry.incoming,
            access_log_user: config.log.access_log_user == crate::config::AccessLogUser::Sub,
            unrouted: metrics.route("-", "-"),
            metrics,
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            in_flight: Some(crate::metrics::InFlight::start(&self.metrics.in_flight)),
            ..RequestCtx::default()
        }
    }

    /// No downstream modules: Pingora's default adds a (disabled) compression module that
    /// still costs work on every request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn early_request_filter(
        &self,
        session: &mut HttpSession,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // `Some(0)` would mean "forever" to Pingora; `keepalive_secs` is at least 1.
        session.set_keepalive(Some(self.keepalive_secs));
        session.set_read_timeout(Some(self.client_body_timeout));
        ctx.request_id = forwarded::request_id(session);
        if traces::tracer().is_some() {
            let client = forwarded::client_ip(session, &self.trusted_proxies);
            ctx.trace = spans::start(session, self.incoming_trace, client);
        }
        Ok(())
    }

    async fn request_filter(
        &self,
        session: &mut HttpSession,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        if let Err(err) = self.check_host(session) {
            local_answer::error(session, ctx, &self.security_headers, &err).await?;
            ctx.error = Some(err);
            return Ok(true);
        }
        if let Some(signer) = &self.assertions {
            if session.req_header().uri.path() == crate::authz::assertion::JWKS_PATH {
                let reply = crate::bff::Reply::Json {
                    body: signer.jwks(),
                };
                local_answer::reply(session, ctx, &self.security_headers, reply).await?;
                return Ok(true);
            }
        }
        // The phases' own spans become children of the request's.
        let cx = ctx.trace.as_ref().map(|t| t.cx.clone());
        if let Some(endpoint) = self.bff.endpoint(session.req_header().uri.path()) {
            match cx {
                Some(cx) => {
                    self.serve_endpoint(endpoint, session, ctx)
                        .with_context(cx)
                        .await?
                }
                None => self.serve_endpoint(endpoint, session, ctx).await?,
            }
            return Ok(true);
        }
        let outcome = match cx {
            Some(cx) => self.phases(session, ctx).with_context(cx).await,
            None => self.phases(session, ctx).await,
        };
        match outcome {
            Ok(()) => Ok(false),
            Err(err) => {
                local_answer::error(session, ctx, &self.security_headers, &err).await?;
                ctx.error = Some(err);
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut HttpSession,
        chunk: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(limit) = ctx.route.as_ref().and_then(|r| r.max_body) else {
            return Ok(());
        };
        ctx.body_bytes += chunk.as_ref().map_or(0, |c| c.len() as u64);
        if ctx.body_bytes > limit {
            ctx.error = Some(GatewayError::PayloadTooLarge { limit });
            return Error::e_explain(ErrorType::HTTPStatus(413), "request body over max_body");
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        session: &mut HttpSession,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let peer = upstream::peer(session, ctx, &self.tunnels)?;
        if let (Some(trace), Some(route), Some(d)) = (&mut ctx.trace, &ctx.route, &ctx.destination)
        {
            trace.upstream_call(
                session.req_header().method.as_str(),
                &route.cluster.name,
                &d.authority,
            );
        }
        Ok(peer)
    }

    fn fail_to_connect(
        &self,
        _session: &mut HttpSession,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        upstream::connect_failed(ctx, &self.metrics, e)
    }

    async fn upstream_request_filter(
        &self,
        session: &mut HttpSession,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_request::UpstreamRequest {
            cookie_names: [&self.bff.cookie_names[0], &self.bff.cookie_names[1]],
            forwarding: forwarded::Forwarding {
                trusted_proxies: &self.trusted_proxies,
                scheme: self.scheme,
                claim_headers: &self.claim_header_names,
            },
            assertions: self.assertions.as_ref(),
        }
        .prepare(session, req, ctx)?;
        if let Some(trace) = &ctx.trace {
            trace.inject(req);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut HttpSession,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(trace) = &ctx.trace {
            trace.upstream_status(resp.status.as_u16());
        }
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            if let Some(route) = &ctx.route {
                session.set_read_timeout(Some(route.cluster.config.upgrade_idle_timeout));
            }
        }
        upstream_response::filter(
            resp,
            ctx,
            &self.bff.cookie_names,
            &self.metrics.upstream_cookies_dropped,
            &self.security_headers,
        )
    }

    async fn fail_to_proxy(
        &self,
        session: &mut HttpSession,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        fail_to_proxy::fail_to_proxy(session, e, ctx, &self.security_headers).await
    }

    fn suppress_error_log(&self, _session: &HttpSession, ctx: &RequestCtx, e: &Error) -> bool {
        // Expected failures are in the access log already; Pingora's error line would repeat
        // them. A client that hangs up mid-request is not an error of ours either.
        ctx.error
            .as_ref()
            .is_some_and(|g| g.status() < 500 || g.status() == 503)
            || fail_to_proxy::client_went_away(e)
    }

    async fn logging(&self, session: &mut HttpSession, e: Option<&Error>, ctx: &mut RequestCtx) {
        let metrics = match (ctx.endpoint, &ctx.route) {
            (Some(e), _) => &self.endpoint_metrics[e.index()],
            (None, Some(r)) => &r.metrics,
            (None, None) => &self.unrouted,
        };
        let line = self.access_log.then(|| access_log::Line {
            client: forwarded::client_ip(session, &self.trusted_proxies),
            user: ctx
                .session
                .as_ref()
                .filter(|_| self.access_log_user)
                .map(|s| s.record.sub.as_str()),
        });
        let status = access_log::record(session, e, ctx, metrics, line);
        if let Some(trace) = ctx.trace.take() {
            let error = ctx
                .error
                .as_ref()
                .map(|g| g.slug())
                .or_else(|| e.map(|e| e.etype().as_str()));
            trace.finish(ctx, session.req_header().method.as_str(), status, error);
        }
    }

    /// Used in Pingora's own error lines: never the query string, which can carry codes.
    fn request_summary(&self, session: &HttpSession, ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!(
            "{} {} request_id={}",
            req.method,
            req.uri.path(),
            ctx.request_id
        )
    }
}
