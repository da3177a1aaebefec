//! The BFF endpoints, answered in `request_filter` and never routed: per-client limits,
//! the back-channel body, anti-forgery for the script-called ones, then `bff/` does the work
//! in a span of its own.

use opentelemetry::trace::SpanBuilder;
use pingora::proxy::Session as HttpSession;
use pingora::Result;

use crate::bff::Endpoint;
use crate::telemetry::traces;

use super::context::RequestCtx;
use super::{body, forwarded, limits, local_answer, Gateway};

impl Gateway {
    /// Answers a BFF endpoint; script-called ones pass the same anti-forgery checks as APIs.
    pub(super) async fn serve_endpoint(
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
