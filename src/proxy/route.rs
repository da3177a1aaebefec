//! Phase 1 of `request_filter`: reject ambiguous paths, then pick the route.
//!
//! Later phases (session, anti-forgery, token policy) decide per route, so the path the route
//! was chosen by must be the path the upstream will serve. Dot-segments and encoded slashes
//! are refused rather than normalised: `/public/../api/x` must not reach `/api/x` under the
//! public route's rules.

use std::sync::Arc;

use pingora::proxy::Session as HttpSession;

use crate::error::GatewayError;
use crate::upstream::{Route, RouteTable};

pub fn select(session: &HttpSession, routes: &RouteTable) -> Result<Arc<Route>, GatewayError> {
    let req = session.req_header();
    let path = req.uri.path();
    if is_ambiguous(path) {
        return Err(GatewayError::AmbiguousPath);
    }
    routes
        .find(request_host(session), path)
        .cloned()
        .ok_or(GatewayError::NoRoute)
}

/// The request's host without port: the `Host` header, or the URI authority (HTTP/2).
pub fn request_host(session: &HttpSession) -> Option<&str> {
    request_host_with_port(session).map(strip_port)
}

/// The request's `host[:port]` as the client wrote it.
pub fn request_host_with_port(session: &HttpSession) -> Option<&str> {
    let req = session.req_header();
    req.headers
        .get(&super::names::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Whether the path has a `.`/`..` segment (raw or percent-encoded), an encoded `/` or `\`, a
/// raw backslash, an encoded NUL, or any byte outside visible ASCII (RFC 9112 §3.2 allows none,
/// and upstreams disagree on what they mean).
pub fn is_ambiguous(path: &str) -> bool {
    if path.bytes().any(|b| !b.is_ascii_graphic()) || path.contains('\\') {
        return true;
    }
    if path.contains('%') {
        let lower = path.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
            return true;
        }
    }
    path.split('/').any(|seg| {
        if seg.len() > 6 || seg.is_empty() {
            return false;
        }
        let decoded = seg.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_dot_segments_in_every_spelling() {
        for p in [
            "/a/../b",
            "/a/./b",
            "/..",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/a/.%2e",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
            "/x%00",
            "/a\u{1}",
            "/a b",
            "/\u{7f}",
        ] {
            assert!(is_ambiguous(p), "{p}");
        }
        for p in [
            "/",
            "/a/b",
            "/a/..b/c",
            "/a/b.c",
            "/.well-known/x",
            "/a/...",
            "/%41",
        ] {
            assert!(!is_ambiguous(p), "{p}");
        }
    }

    #[test]
    fn strips_ports_from_hosts() {
        assert_eq!(strip_port("app.example.com:8443"), "app.example.com");
        assert_eq!(strip_port("app.example.com"), "app.example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
    }
}
