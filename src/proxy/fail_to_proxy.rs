//! `fail_to_proxy`: the one place a failed request becomes a response.
//!
//! A phase that already knows what went wrong leaves a [`GatewayError`] in the context;
//! otherwise Pingora's error is classified here. Client disconnects get no response at all.

use pingora::proxy::{FailToProxy, Session as HttpSession};
use pingora::{Error, ErrorSource, ErrorType};

use crate::error::GatewayError;

use super::context::RequestCtx;
use super::local_answer;

pub async fn fail_to_proxy(
    session: &mut HttpSession,
    e: &Error,
    ctx: &mut RequestCtx,
    security: &super::upstream_response::SecurityHeaders,
) -> FailToProxy {
    let err = match ctx.error.take() {
        Some(err) => Some(err),
        None => classify(e, ctx.cluster_name()),
    };
    let Some(err) = err else {
        // The client went away; there is nobody to answer.
        return FailToProxy {
            error_code: 0,
            can_reuse_downstream: false,
        };
    };
    let status = err.status();
    // Once the response header went out, the only honest signal left is closing the stream.
    let can_write = session.response_written().is_none();
    if can_write {
        if let Err(write_err) = local_answer::error(session, ctx, security, &err).await {
            tracing::debug!(error = %write_err, "could not send the error response");
        }
    }
    // Reuse is only safe when nothing was proxied and the request body was fully read.
    let reusable = can_write && ctx.destination.is_none() && session.is_body_done();
    ctx.error = Some(err);
    FailToProxy {
        error_code: status,
        can_reuse_downstream: reusable,
    }
}

/// The client closed or stalled its own connection.
pub fn client_went_away(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ConnectionClosed
                | ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ReadTimedout
                | ErrorType::WriteTimedout
        )
}

fn classify(e: &Error, cluster: &str) -> Option<GatewayError> {
    let cluster = cluster.to_string();
    use ErrorType::*;
    match (e.esource(), e.etype()) {
        (_, HTTPStatus(503)) => Some(GatewayError::NoHealthyUpstream { cluster }),
        (
            ErrorSource::Upstream,
            ConnectTimedout | TLSHandshakeTimedout | ReadTimedout | WriteTimedout,
        ) => Some(GatewayError::UpstreamTimeout { cluster }),
        (
            ErrorSource::Upstream,
            ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure | InvalidCert
            | HandshakeError | SocketError | BindError | ConnectProxyFailure,
        ) => Some(GatewayError::UpstreamUnreachable { cluster }),
        (ErrorSource::Upstream, _) => Some(GatewayError::UpstreamBroken { cluster }),
        _ if client_went_away(e) => None,
        (ErrorSource::Downstream, _) => Some(GatewayError::BadRequest),
        (_, HTTPStatus(code)) if (400..500).contains(code) => Some(GatewayError::BadRequest),
        _ => Some(GatewayError::Internal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(t: ErrorType) -> Box<Error> {
        Error::new_up(t)
    }

    #[test]
    fn maps_upstream_failures_to_502_503_504() {
        let status = |e: &Error| classify(e, "api").map(|g| g.status());
        assert_eq!(status(&upstream(ErrorType::ConnectRefused)), Some(502));
        assert_eq!(status(&upstream(ErrorType::ConnectTimedout)), Some(504));
        assert_eq!(status(&upstream(ErrorType::ReadTimedout)), Some(504));
        assert_eq!(status(&upstream(ErrorType::InvalidHTTPHeader)), Some(502));
        assert_eq!(status(&Error::new(ErrorType::HTTPStatus(503))), Some(503));
        assert_eq!(status(&Error::new_down(ErrorType::ConnectionClosed)), None);
    }
}
