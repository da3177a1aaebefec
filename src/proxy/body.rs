//! Request bodies the gateway answers itself (errors, BFF endpoints), read within bounds.
//!
//! A client must not hold a connection by sending a body slowly or endlessly to a request the
//! gateway refuses anyway. Before a local answer, what is left of the body is read only if it
//! is small and arrives at once, so the connection can serve the next request; otherwise the
//! answer goes out unread and Pingora closes the connection after it
//! (`close_on_response_before_downstream_finish`, on by default). A body the gateway needs
//! (the back-channel logout token) has a size cap and an overall deadline, not just Pingora's
//! per-read timeout, which a client resets with every byte.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session as HttpSession;

use crate::error::GatewayError;

/// At most this much of an unwanted body is read to keep the connection.
pub const DRAIN_LIMIT: usize = 64 * 1024;
/// ... within this long.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(1);
/// The whole body of a request a gateway endpoint reads must arrive within this long.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Reads the rest of an unwanted body if it is small and quick; otherwise leaves it, so the
/// connection closes after the answer.
pub async fn settle(session: &mut HttpSession) {
    if session.is_body_done() || expects_continue(session) {
        // A client waiting for `100 Continue` has not sent its body and will not.
        return;
    }
    let _ = tokio::time::timeout(DRAIN_DEADLINE, async {
        let mut seen = 0usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            seen += chunk.len();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

/// The whole request body, refused when larger than `limit` (413) or slower than
/// [`READ_DEADLINE`] (408).
pub async fn read(session: &mut HttpSession, limit: usize) -> Result<Bytes, GatewayError> {
    let read = async {
        let mut body = BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return Err(GatewayError::PayloadTooLarge {
                            limit: limit as u64,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body.freeze()),
                Err(_) => return Err(GatewayError::BadRequest),
            }
        }
    };
    tokio::time::timeout(READ_DEADLINE, read)
        .await
        .unwrap_or(Err(GatewayError::RequestTimeout))
}

/// The declared body length, when the client declared one.
pub fn declared_length(session: &HttpSession) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn expects_continue(session: &HttpSession) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}
