//! `request_filter`'s work for routed requests, in pipeline order: the host check, then
//! `admit` (route, anti-forgery, declared body size), the session lookup, authorization and
//! the route's token. The first failure is the answer; `local_answer.rs` writes it.

use opentelemetry::trace::SpanBuilder;
use pingora::proxy::Session as HttpSession;

use crate::error::GatewayError;
use crate::telemetry::traces;

use super::context::RequestCtx;
use super::{antiforgery, authorize, body, forwarded, route, Gateway};

impl Gateway {
    /// The synchronous decisions of `request_filter`: route, then anti-forgery (before any
    /// session lookup, so a forged call costs no store round trip). `authorize` follows.
    pub(super) fn admit(
        &self,
        session: &HttpSession,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
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
    pub(super) async fn phases(
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
                super::session::lookup(
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
    pub(super) fn who<'s>(
        &self,
        session: &'s HttpSession,
        ctx: &'s RequestCtx,
    ) -> crate::audit::Who<'s> {
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

    pub(super) fn audit_session(
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

    pub(super) fn check_host(&self, session: &HttpSession) -> Result<(), GatewayError> {
        let Some(served) = &self.served_hosts else {
            return Ok(());
        };
        forwarded::addressed_hosts(session, &self.trusted_proxies)
            .try_for_each(|host| served.check(host))
    }

    pub(super) fn check_anti_forgery(&self, session: &HttpSession) -> Result<(), GatewayError> {
        antiforgery::check(
            &session.req_header().method,
            &session.req_header().headers,
            &self.anti_forgery,
            self.public_origin.as_ref(),
            || antiforgery::own_origin(self.scheme, route::request_host_with_port(session)),
        )
    }
}
