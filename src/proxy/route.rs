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

/// The hosts the gateway answers for when `server.public_origin` is set: its host and every
/// route's `host`. Anything else was meant for another server (a `Host` the client made up,
/// or DNS pointing a foreign name here), and the upstream must not learn that name as
/// `X-Forwarded-Host`, nor build links or redirects from it.
pub struct ServedHosts(Vec<String>);

impl ServedHosts {
    pub fn new(public_origin: Option<&crate::config::Origin>, routes: &RouteTable) -> Option<Self> {
        let origin = public_origin?;
        let mut hosts = vec![origin.host().to_ascii_lowercase()];
        hosts.extend(routes.hosts().map(str::to_ascii_lowercase));
        hosts.sort();
        hosts.dedup();
        Some(ServedHosts(hosts))
    }

    /// 421 unless `host` (with or without port) is one of ours; 400 when there is none.
    pub fn check(&self, host: Option<&str>) -> Result<(), GatewayError> {
        let host = host.map(strip_port).ok_or(GatewayError::BadRequest)?;
        if self.0.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(GatewayError::MisdirectedRequest)
        }
    }
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

/// Whether the path has a segment that some upstream could read as `.` or `..` or as two
/// segments, or bytes outside visible ASCII (RFC 9112 §3.2 allows none, and upstreams disagree
/// on what they mean). Servlet containers (Tomcat, Jetty, Spring) drop `;` path parameters and
/// decode before resolving dots, so `..;`, `%2e%2e;`, `..%3b` and `%252e%252e` are `..` there.
pub fn is_ambiguous(path: &str) -> bool {
    if path.bytes().any(|b| !b.is_ascii_graphic()) || path.contains('\\') {
        return true;
    }
    path.split('/').any(|seg| ambiguous_segment(seg.as_bytes()))
}

/// How many times a segment is decoded before giving up on it (and refusing it).
const MAX_DECODES: usize = 4;

fn ambiguous_segment(seg: &[u8]) -> bool {
    // Almost every segment takes this exit: nothing in it can become a dot or a separator.
    if !seg.iter().any(|b| matches!(b, b'%' | b';' | b'.')) {
        return false;
    }
    let mut current = seg.to_vec();
    for _ in 0..MAX_DECODES {
        // Path parameters go first: `..;jsessionid=x` is `..` to the upstream.
        let base = current.split(|b| *b == b';').next().unwrap_or(&[]);
        if base == b"." || base == b".." {
            return true;
        }
        // Decoded separators split the segment in two for some upstream; a NUL ends it early.
        if current.iter().any(|b| matches!(b, b'/' | b'\\' | 0)) {
            return true;
        }
        if !current.contains(&b'%') {
            return false;
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode(&current).collect();
        if decoded == current {
            return false;
        }
        current = decoded;
    }
    // Still changing after this many decodes: nobody sends that in good faith.
    true
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
            // Path parameters and double encoding (servlet containers resolve these as `..`).
            "/api/..;/x",
            "/api/.;/x",
            "/api/%2e%2e;/x",
            "/a/..%3b/b",
            "/a/..;jsessionid=1/b",
            "/api/%252e%252e/x",
            "/api/%25252e%25252e/x",
            "/a%252fb",
            "/a%255cb",
            "/a%2500",
            "/a/%2e%2e%3bx/b",
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
            "/a;v=1/b",
            "/a/b;c/d",
            "/a/..x;y/b",
            "/%2541",
            "/.hidden",
            "/files/my%20report.pdf",
            "/caf%C3%A9.txt",
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

/// Property tests: the path decides the route, so any path the check lets through must mean
/// the same resource to a URL parser that resolves dot-segments.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    fn segment() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just(".".to_string()),
                Just("..".to_string()),
                Just("%2e".to_string()),
                Just("%2E".to_string()),
                Just("%25".to_string()),
                Just("%2f".to_string()),
                Just(";".to_string()),
                Just(";x=1".to_string()),
                Just("%3b".to_string()),
                "[a-z0-9%.;_~-]{0,4}",
            ],
            0..4,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn accepted_paths_are_not_resolved_away(segments in prop::collection::vec(segment(), 1..6)) {
            let path = format!("/{}", segments.join("/"));
            if !is_ambiguous(&path) {
                // As a request target: the path after the authority (`//x` is a path here).
                let parsed = url::Url::parse(&format!("http://gateway.test{path}"))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                // No dot-segment was resolved: as many segments as were sent.
                prop_assert_eq!(
                    parsed.path_segments().map_or(0, Iterator::count),
                    segments.len(),
                    "{} became {}", path, parsed.path()
                );
            }
        }

        #[test]
        fn any_path_is_judged_without_panicking(path in "[ -~]{0,80}") {
            let _ = is_ambiguous(&path);
        }
    }
}
