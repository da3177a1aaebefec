//! `upstream_request_filter`: what the upstream learns about the original request.
//!
//! `X-Forwarded-*` from the client are believed only when the connection comes from one of
//! `server.trusted_proxies` (the ingress); from anyone else they are replaced, so a client
//! cannot spoof its address or scheme to the API. Hop-by-hop headers are already removed by
//! Pingora's upstream request policy before this runs.
//!
//! This runs on every proxied request: header values are reused (`HeaderValue` clones share
//! their bytes) rather than re-parsed, and names are static.

use std::net::IpAddr;

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::proxy::Session as HttpSession;
use pingora::Result;

use crate::config::Cidr;

use super::context::RequestCtx;
use super::names;

pub struct Forwarding<'a> {
    pub trusted_proxies: &'a [Cidr],
    /// Scheme of our own listener.
    pub scheme: &'static str,
}

impl Forwarding<'_> {
    pub fn apply(
        &self,
        session: &HttpSession,
        req: &mut RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let trusted =
            !self.trusted_proxies.is_empty() && client_ip.is_some_and(|ip| self.is_trusted(ip));
        let incoming = session.req_header();
        let header = |name: &http::HeaderName| incoming.headers.get(name).filter(|v| !v.is_empty());

        let prior = header(&names::X_FORWARDED_FOR).filter(|_| trusted);
        let xff = match (prior, client_ip) {
            (Some(prior), Some(ip)) => {
                let mut v = Vec::with_capacity(prior.len() + 42);
                v.extend_from_slice(prior.as_bytes());
                v.extend_from_slice(b", ");
                v.extend_from_slice(ip.to_string().as_bytes());
                HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).ok()
            }
            (None, Some(ip)) => HeaderValue::from_str(&ip.to_string()).ok(),
            (_, None) => Some(HeaderValue::from_static("unknown")),
        };
        match xff {
            Some(v) => req.insert_header("X-Forwarded-For", v)?,
            None => {
                req.remove_header(&names::X_FORWARDED_FOR);
            }
        }

        let proto = match header(&names::X_FORWARDED_PROTO)
            .filter(|_| trusted)
            .map(HeaderValue::as_bytes)
        {
            Some(b"https") => "https",
            Some(b"http") => "http",
            _ => self.scheme,
        };
        req.insert_header("X-Forwarded-Proto", HeaderValue::from_static(proto))?;

        let host = header(&names::X_FORWARDED_HOST)
            .filter(|_| trusted)
            .or_else(|| header(&names::HOST))
            .cloned()
            .or_else(|| {
                incoming
                    .uri
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });
        match host {
            Some(h) => req.insert_header("X-Forwarded-Host", h)?,
            None => {
                req.remove_header(&names::X_FORWARDED_HOST);
            }
        }
        if !trusted {
            for name in [&names::FORWARDED, &names::X_REAL_IP] {
                if req.headers.contains_key(name) {
                    req.remove_header(name);
                }
            }
        }
        req.insert_header("X-Request-Id", ctx.request_id.as_str())?;
        Ok(())
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }
}

/// A request id from the client is kept when it is short and plain, so traces join up across
/// services; anything else is replaced by 128 random bits.
pub fn request_id(session: &HttpSession) -> String {
    if let Some(id) = session
        .req_header()
        .headers
        .get(&names::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_plain_id(v))
    {
        return id.to_string();
    }
    let n: u128 = rand::random();
    format!("{n:032x}")
}

fn is_plain_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_plain_request_ids() {
        assert!(is_plain_id("abc-123_x.y:z"));
        assert!(!is_plain_id(""));
        assert!(!is_plain_id("a b"));
        assert!(!is_plain_id("<script>"));
        assert!(!is_plain_id(&"a".repeat(129)));
    }
}
