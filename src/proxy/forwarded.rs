//! `upstream_request_filter`: what the upstream learns about the original request.
//!
//! `X-Forwarded-*` from the client are believed only when the connection comes from one of
//! `server.trusted_proxies` (the ingress); from anyone else they are replaced, so a client
//! cannot spoof its address or scheme to the API. Hop-by-hop headers are already removed by
//! Pingora's upstream request policy before this runs.

use std::net::IpAddr;

use pingora::http::RequestHeader;
use pingora::proxy::Session as HttpSession;
use pingora::Result;

use crate::config::Cidr;

use super::context::RequestCtx;

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
        let trusted = client_ip.is_some_and(|ip| self.is_trusted(ip));
        let incoming = |name: &str| {
            session
                .req_header()
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };

        let mut xff = String::with_capacity(48);
        if trusted {
            if let Some(prior) = incoming("x-forwarded-for") {
                xff.push_str(prior);
                xff.push_str(", ");
            }
        }
        match client_ip {
            Some(ip) => {
                use std::fmt::Write;
                let _ = write!(xff, "{ip}");
            }
            None => xff.push_str("unknown"),
        }
        req.insert_header("X-Forwarded-For", xff)?;

        let proto = incoming("x-forwarded-proto")
            .filter(|p| trusted && (*p == "https" || *p == "http"))
            .unwrap_or(self.scheme);
        req.insert_header("X-Forwarded-Proto", proto)?;

        let host = incoming("x-forwarded-host")
            .filter(|_| trusted)
            .or_else(|| incoming("host"))
            .or_else(|| session.req_header().uri.authority().map(|a| a.as_str()));
        match host {
            Some(h) => req.insert_header("X-Forwarded-Host", h)?,
            None => {
                req.remove_header("X-Forwarded-Host");
            }
        }
        if !trusted {
            req.remove_header("Forwarded");
            req.remove_header("X-Real-IP");
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
        .get("x-request-id")
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
