//! The request pipeline: `impl ProxyHttp`, one short delegation per phase, in phase order.
//!
//! ```text
//! early_request_filter   keepalive, body timeout, request id
//! request_filter         route.rs host check (421); the JWKS of identity assertions;
//!                        BFF endpoints (/bff/login, /signin-oidc, /bff/user, /bff/logout,
//!                        /signout-callback-oidc, /bff/backchannel) answer here;
//!                        otherwise route.rs (reject ambiguous paths, 404 when nothing matches),
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
//! logging                access log and metrics
//! ```

mod access_log;
mod antiforgery;
mod authorize;
mod body;
mod context;
mod fail_to_proxy;
mod forwarded;
mod limits;
mod local_answer;
mod names;
mod route;
mod session;
mod spans;
mod tunnels;
mod upstream;
mod upstream_request;
mod upstream_response;

use std::sync::Arc;

use async_trait::async_trait;
use opentelemetry::trace::{FutureExt, SpanBuilder};
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
            assertions: assertion_signer(config),
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

    /// The synchronous decisions of `request_filter`: route, then anti-forgery (before any
    /// session lookup, so a forged call costs no store round trip). `authorize` follows.
    fn admit(&self, session: &HttpSession, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        let route = route::select(session, &self.routes)?;
        let protected = route.anti_forgery;
        let max_body = route.max_body;
        ctx.route = Some(route);
        if protected {
            self.check_anti_forgery(session)?;
        }
        // A declared length is refused before anything is read; a chunked body is counted as
        // it streams (`request_body_filter`).
        if let (Some(limit), Some(declared)) = (max_body, body::declared_length(session)) {
            if declared > limit {
                return Err(GatewayError::PayloadTooLarge { limit });
            }
        }
        Ok(())
    }

    /// The request phases before the upstream, in order; the first failure is the answer.
    async fn phases(
        &self,
        session: &HttpSession,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        self.admit(session, ctx)?;
        let Some(route) = ctx.route.clone() else {
            return Ok(());
        };
        if route.token.wants_user() {
            ctx.session = traces::in_span(
                || SpanBuilder::from_name("session lookup"),
                self::session::lookup(
                    &self.sessions,
                    &self.limits,
                    &route,
                    &session.req_header().headers,
                    || forwarded::client_ip(session, &self.trusted_proxies),
                ),
            )
            .await?;
        }
        let target = session
            .req_header()
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str());
        if let Err(e) = authorize::check(&route, ctx.session.as_ref(), target) {
            if let (GatewayError::InsufficientClaims { rule }, Some(current)) = (&e, &ctx.session) {
                self.audit_session(session, ctx, current, "authorization", "refused", rule);
            }
            return Err(e);
        }
        // Token injection, first half: decide the `Authorization` (refreshing here, where a
        // failure can still be answered with 401/503); `upstream_request_filter` sets it.
        match self
            .tokens
            .authorization(&route, ctx.session.as_ref())
            .await
        {
            Ok(authorization) => ctx.authorization = authorization,
            // A session that was there a moment ago ended in its refresh: the IdP refused it.
            Err(GatewayError::Unauthenticated) if ctx.session.is_some() => {
                if let Some(current) = &ctx.session {
                    self.audit_session(
                        session,
                        ctx,
                        current,
                        "session_ended",
                        "refresh_refused",
                        "refresh",
                    );
                }
                return Err(GatewayError::Unauthenticated);
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Where this request came from, for the audit trail.
    fn who<'s>(&self, session: &'s HttpSession, ctx: &'s RequestCtx) -> crate::audit::Who<'s> {
        crate::audit::Who {
            client: forwarded::client_ip(session, &self.trusted_proxies),
            user_agent: session
                .req_header()
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            route: ctx.route_name(),
            request_id: &ctx.request_id,
            trace_id: ctx.trace_id(),
        }
    }

    fn audit_session(
        &self,
        session: &HttpSession,
        ctx: &RequestCtx,
        current: &crate::session::Current,
        event: &'static str,
        outcome: &'static str,
        reason: &str,
    ) {
        crate::audit::record(
            crate::audit::Event::new(event, outcome)
                .subject(&current.record.sub)
                .sid(current.record.sid.as_deref())
                .session(&current.key.fingerprint("admin"))
                .reason(reason),
            &self.who(session, ctx),
        );
    }

    fn check_host(&self, session: &HttpSession) -> Result<(), GatewayError> {
        let Some(served) = &self.served_hosts else {
            return Ok(());
        };
        forwarded::addressed_hosts(session, &self.trusted_proxies)
            .try_for_each(|host| served.check(host))
    }

    fn check_anti_forgery(&self, session: &HttpSession) -> Result<(), GatewayError> {
        antiforgery::check(
            &session.req_header().method,
            &session.req_header().headers,
            &self.anti_forgery,
            self.public_origin.as_ref(),
            || antiforgery::own_origin(self.scheme, route::request_host_with_port(session)),
        )
    }

    /// Answers a BFF endpoint; script-called ones pass the same anti-forgery checks as APIs.
    async fn serve_endpoint(
        &self,
        endpoint: Endpoint,
        session: &mut HttpSession,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.endpoint = Some(endpoint);
        let limited = match endpoint {
            Endpoint::Login => Some(limits::Limited::Login),
            Endpoint::Callback => Some(limits::Limited::Callback),
            Endpoint::Backchannel => Some(limits::Limited::Backchannel),
            _ => None,
        };
        if let (Some(what), Some(ip)) = (
            limited,
            forwarded::client_ip(session, &self.trusted_proxies),
        ) {
            if let Err(e) = self.limits.admit(what, ip) {
                ctx.error = Some(e.clone());
                return local_answer::error(session, ctx, &self.security_headers, &e).await;
            }
        }
        let body = if endpoint == Endpoint::Backchannel {
            match body::read(session, crate::bff::backchannel::MAX_BODY).await {
                Ok(body) => body,
                Err(e) => {
                    ctx.error = Some(e.clone());
                    return local_answer::error(session, ctx, &self.security_headers, &e).await;
                }
            }
        } else {
            bytes::Bytes::new()
        };
        let reply = match endpoint
            .needs_anti_forgery()
            .then(|| self.check_anti_forgery(session))
        {
            Some(Err(e)) => e.into(),
            _ => {
                let who = self.who(session, ctx);
                traces::in_span_judged(
                    || SpanBuilder::from_name(endpoint.name()),
                    self.bff.handle(endpoint, session.req_header(), &body, &who),
                    |reply| match reply {
                        crate::bff::Reply::Error { error, .. } => Some(error.slug().to_string()),
                        _ => None,
                    },
                )
                .await
            }
        };
        if let crate::bff::Reply::Error { error, .. } = &reply {
            ctx.error = Some(error.clone());
        }
        local_answer::reply(session, ctx, &self.security_headers, reply).await
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
        access_log::record(session, e, ctx, metrics, line);
        if let Some(trace) = ctx.trace.take() {
            let error = ctx
                .error
                .as_ref()
                .map(|g| g.slug())
                .or_else(|| e.map(|e| e.etype().as_str()));
            let status = access_log::status(session, ctx);
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

/// The identity assertion signer of `[identity_assertion]`, when keys are configured (their
/// PEM was checked by the config validation; a key that fails here is logged and skipped).
fn assertion_signer(config: &Config) -> Option<crate::authz::assertion::Signer> {
    let c = &config.identity_assertion;
    let keys = c
        .keys
        .iter()
        .filter_map(|k| {
            crate::authz::assertion::parse_key(&k.id, k.private_key.expose())
                .map_err(
                    |e| tracing::error!(key = %k.id, error = %e, "identity assertion key unusable"),
                )
                .ok()
        })
        .collect();
    let issuer = config
        .server
        .public_origin
        .as_ref()
        .map_or_else(String::new, |o| o.as_str().to_string());
    crate::authz::assertion::Signer::new(
        keys,
        issuer,
        c.lifetime,
        c.claims.clone(),
        config.session.cache_size,
    )
}
