//! `upstream_request_filter`: the request the upstream gets, built from the client's.
//!
//! In order: the route's path rewrite; `Authorization` replaced by the route's token (the
//! browser never chooses the upstream's credentials); `Host` set to the destination unless
//! `preserve_host`; the gateway's own cookies removed from `Cookie`; forwarding headers
//! (`forwarded.rs`: `X-Forwarded-*`, `X-Request-Id`, and every spelling of the headers only the
//! gateway sets removed); then what the upstream learns of the user, from the session only
//! (`claim_headers`, the signed identity assertion). Pingora runs this again on every retry,
//! on a fresh copy of the client's request, so it is idempotent.

use pingora::http::RequestHeader;
use pingora::proxy::Session as HttpSession;
use pingora::{Error, ErrorType, Result};

use crate::authz::assertion::Signer;
use crate::config::TokenPolicy;
use crate::error::GatewayError;
use crate::session::cookie;

use super::context::RequestCtx;
use super::forwarded::Forwarding;

pub struct UpstreamRequest<'a> {
    /// The session cookie and the pending-login cookie.
    pub cookie_names: [&'a str; 2],
    pub forwarding: Forwarding<'a>,
    pub assertions: Option<&'a Signer>,
}

impl UpstreamRequest<'_> {
    pub fn prepare(
        &self,
        session: &HttpSession,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(route) = &ctx.route {
            let original = session
                .req_header()
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str());
            if let Some(path) = route.rewrite(original) {
                match http::Uri::try_from(path) {
                    Ok(uri) => req.set_uri(uri),
                    Err(_) => {
                        ctx.error = Some(GatewayError::BadRewrite);
                        return Error::e_explain(
                            ErrorType::HTTPStatus(400),
                            "rewritten path is not a URI",
                        );
                    }
                }
            }
            // Token injection, second half (the first decided it in `request_filter`).
            if route.token != TokenPolicy::None {
                req.remove_header(&http::header::AUTHORIZATION);
                if let Some(value) = ctx.authorization.clone() {
                    req.insert_header(http::header::AUTHORIZATION, value)?;
                }
            }
            if !route.cluster.config.preserve_host {
                if let Some(d) = &ctx.destination {
                    req.insert_header("Host", d.authority.as_str())?;
                }
            }
        }
        // The session id and login binding are the gateway's; no upstream ever sees them.
        if cookie::mentions(&req.headers, &self.cookie_names) {
            let kept = cookie::without(&req.headers, &self.cookie_names);
            req.remove_header(&http::header::COOKIE);
            if let Some(v) = kept {
                req.insert_header(http::header::COOKIE, v)?;
            }
        }
        self.forwarding.apply(session, req, ctx)?;
        // What upstreams learn of the user comes from the session, never the request (whose
        // headers of these names, in every spelling, were just removed).
        if let (Some(route), Some(current)) = (&ctx.route, &ctx.session) {
            for (name, claim) in &route.claim_headers {
                if let Some(value) = crate::authz::claim_headers::value(&current.data.claims, claim)
                {
                    req.insert_header(name.clone(), value)?;
                }
            }
            if let (Some(audience), Some(signer)) = (&route.assertion_audience, self.assertions) {
                if let Some(assertion) = signer.assertion(current, audience) {
                    req.insert_header(crate::authz::assertion::HEADER, assertion)?;
                }
            }
        }
        Ok(())
    }
}
