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
    /// `claim_headers` names (folded), which only the gateway sets.
    pub claim_headers: &'a [String],
}

impl Forwarding<'_> {
    pub fn apply(
        &self,
        session: &HttpSession,
        req: &mut RequestHeader,
        ctx: &RequestCtx,
    ) -> Result<()> {
        let client_ip = peer_ip(session);
        let trusted = peer_is_trusted(session, self.trusted_proxies);
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
        strip_client_claims(req, trusted, self.claim_headers);
        req.insert_header("X-Request-Id", ctx.request_id.as_str())?;
        Ok(())
    }
}

fn peer_ip(session: &HttpSession) -> Option<IpAddr> {
    session.client_addr()?.as_inet().map(|a| a.ip())
}

/// Whether the connection comes from one of `server.trusted_proxies`.
pub fn peer_is_trusted(session: &HttpSession, trusted_proxies: &[Cidr]) -> bool {
    !trusted_proxies.is_empty()
        && peer_ip(session).is_some_and(|ip| trusted_proxies.iter().any(|c| c.contains(ip)))
}

/// The hosts the client addressed, as the upstream will learn them in `X-Forwarded-Host`:
/// a trusted proxy's `X-Forwarded-Host` (every comma-separated entry), else `Host`.
pub fn addressed_hosts<'s>(
    session: &'s HttpSession,
    trusted_proxies: &[Cidr],
) -> impl Iterator<Item = Option<&'s str>> {
    let forwarded = session
        .req_header()
        .headers
        .get(&names::X_FORWARDED_HOST)
        .filter(|v| !v.is_empty() && peer_is_trusted(session, trusted_proxies));
    let (list, own) = match forwarded {
        Some(v) => (Some(v.to_str().unwrap_or("")), None),
        None => (None, Some(super::route::request_host_with_port(session))),
    };
    list.into_iter()
        .flat_map(|l| l.split(','))
        .map(|h| Some(h.trim()).filter(|h| !h.is_empty()))
        .chain(own)
}

/// The client's address as far as it can be trusted: the peer's, or — when the peer is a
/// trusted proxy — the nearest address in its `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(session: &HttpSession, trusted_proxies: &[Cidr]) -> Option<IpAddr> {
    let peer = session.client_addr()?.as_inet()?.ip();
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|c| c.contains(ip));
    if trusted_proxies.is_empty() || !trusted(peer) {
        return Some(peer);
    }
    let forwarded = session
        .req_header()
        .headers
        .get_all(&names::X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted(*ip))
            .unwrap_or(peer),
    )
}

/// Headers through which upstream frameworks learn another client address, host, port, path
/// or method than the request's own: only a trusted proxy may send them.
const PROXY_ONLY: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The forwarding headers the gateway writes itself.
const OURS: &[&str] = &["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"];

/// Removes what a client may not tell the upstream. CGI-style upstreams (PHP, WSGI, Rack) fold
/// `X_Forwarded_For` into the same variable as `X-Forwarded-For`, so an underscore spelling of
/// a forwarding header never passes, not even from a trusted proxy (none sends one).
fn strip_client_claims(req: &mut RequestHeader, trusted: bool, claim_headers: &[String]) {
    let mut doomed: Vec<http::HeaderName> = Vec::new();
    for name in req.headers.keys() {
        let n = name.as_str();
        let underscored = n.contains('_');
        // The name as upstreams that fold `_` into `-` read it; allocated only for those.
        let dashed = if underscored {
            std::borrow::Cow::Owned(n.replace('_', "-"))
        } else {
            std::borrow::Cow::Borrowed(n)
        };
        // Claim headers are the gateway's in every spelling, from every peer.
        if claim_headers.iter().any(|c| c == dashed.as_ref()) {
            doomed.push(name.clone());
            continue;
        }
        // Most headers are neither: one byte compare and one scan each.
        if !underscored && (trusted || !(n.starts_with("x-") || n == "forwarded")) {
            continue;
        }
        let proxy_only = PROXY_ONLY.contains(&dashed.as_ref());
        if (underscored && (proxy_only || OURS.contains(&dashed.as_ref())))
            || (!trusted && proxy_only)
        {
            doomed.push(name.clone());
        }
    }
    for name in &doomed {
        req.remove_header(name);
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

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    const CLAIMS: &[(&str, &str)] = &[
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Forwarded-Prefix", "/evil"),
        ("X-Forwarded-Port", "443"),
        ("Forwarded", "for=1.2.3.4"),
        ("X_Forwarded_For", "1.2.3.4"),
        ("x_real_ip", "1.2.3.4"),
        ("X-Csrf", "1"),
        ("Accept", "*/*"),
    ];

    #[test]
    fn clients_cannot_claim_another_address_path_or_method() {
        let mut req = request(CLAIMS);
        strip_client_claims(&mut req, false, &[]);
        let mut left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-csrf"]);
    }

    #[test]
    fn a_trusted_proxy_may_forward_but_never_in_underscores() {
        let mut req = request(CLAIMS);
        strip_client_claims(&mut req, true, &[]);
        for gone in ["x_forwarded_for", "x_real_ip"] {
            assert!(!req.headers.contains_key(gone), "{gone}");
        }
        for kept in [
            "x-original-url",
            "forwarded",
            "x-forwarded-prefix",
            "x-csrf",
        ] {
            assert!(req.headers.contains_key(kept), "{kept}");
        }
    }

    #[test]
    fn keeps_only_plain_request_ids() {
        assert!(is_plain_id("abc-123_x.y:z"));
        assert!(!is_plain_id(""));
        assert!(!is_plain_id("a b"));
        assert!(!is_plain_id("<script>"));
        assert!(!is_plain_id(&"a".repeat(129)));
    }
}
