//! Anti-forgery: a protected route only serves calls that provably come from the SPA's pages.
//!
//! Three checks, cheapest first, each closing a different door:
//! 1. **Fetch Metadata** — a browser that sends `Sec-Fetch-Site: cross-site` says itself that
//!    another site's page made the call; refused (403).
//! 2. **Origin** — when the browser names the calling page's origin, it must be the gateway's
//!    own (`server.public_origin`, or the request's own scheme and host) or one listed in
//!    `anti_forgery.allowed_origins`; `Origin: null` (sandboxed frames, some redirects) is
//!    refused (403).
//! 3. **The header** — `X-CSRF: 1` (configurable). A page on another origin cannot add a custom
//!    header without a CORS preflight, and Portcullis never approves one (the preflight itself
//!    lacks the header and gets 401), so a forged form post or cross-site `fetch` cannot carry
//!    it. Missing or wrong → 401, never a redirect, so the SPA can react.
//!
//! Checks 1 and 2 protect browsers that send those headers even against same-site attackers
//! (a sibling subdomain); check 3 protects every browser.
//!
//! WebSocket handshakes are the exception to check 3: the browser's `WebSocket` API cannot set
//! headers, but it always sends `Origin`, which a page cannot choose. So a handshake passes with
//! an allowed `Origin` instead of the header (cross-site WebSocket hijacking is an `Origin`
//! problem); without `Origin` it needs the header like any call.

use http::{HeaderMap, Method};

use crate::config::{AntiForgeryConfig, Origin};
use crate::error::GatewayError;

/// The request's own origin as the browser would write it, for when no public origin is set.
pub fn own_origin(scheme: &str, host: Option<&str>) -> Option<String> {
    host.map(|h| {
        let default = if scheme == "https" { ":443" } else { ":80" };
        let h = h.strip_suffix(default).unwrap_or(h).to_ascii_lowercase();
        format!("{scheme}://{h}")
    })
}

pub fn check(
    method: &Method,
    headers: &HeaderMap,
    policy: &AntiForgeryConfig,
    public_origin: Option<&Origin>,
    own_origin: impl FnOnce() -> Option<String>,
) -> Result<(), GatewayError> {
    if headers
        .get(&super::names::SEC_FETCH_SITE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(GatewayError::CrossSiteRequest);
    }
    let origin_allowed = match headers.get(&super::names::ORIGIN) {
        Some(origin) => {
            let origin = origin.to_str().unwrap_or("null").to_ascii_lowercase();
            let allowed = policy.allowed_origins.iter().any(|o| o.as_str() == origin)
                || match public_origin {
                    Some(p) => p.as_str() == origin,
                    None => own_origin().is_some_and(|own| own == origin),
                };
            if !allowed {
                return Err(GatewayError::ForeignOrigin);
            }
            true
        }
        None => false,
    };
    match headers.get(policy.header.as_str()) {
        Some(v) if v.as_bytes() == policy.value.as_bytes() => Ok(()),
        _ if origin_allowed && is_websocket_handshake(method, headers) => Ok(()),
        _ => Err(GatewayError::AntiForgeryMissing {
            header: policy.header.clone(),
        }),
    }
}

/// A browser's WebSocket opening handshake, exactly (RFC 6455 §4.1): `GET` with
/// `Connection: upgrade`, `Upgrade: websocket`, a `Sec-WebSocket-Key` and version 13. Anything
/// else that merely carries `Upgrade` is an ordinary request and needs the header.
fn is_websocket_handshake(method: &Method, headers: &HeaderMap) -> bool {
    let is = |name: http::header::HeaderName, value: &[u8]| {
        headers
            .get(name)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value))
    };
    *method == Method::GET
        && is(http::header::UPGRADE, b"websocket")
        && is(http::header::SEC_WEBSOCKET_VERSION, b"13")
        && headers
            .get(http::header::SEC_WEBSOCKET_KEY)
            .is_some_and(|k| !k.is_empty())
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AntiForgeryConfig {
        AntiForgeryConfig {
            header: "X-CSRF".into(),
            value: "1".into(),
            allowed_origins: vec![Origin::parse("https://admin.example.com").unwrap()],
        }
    }

    fn run(pairs: &[(&'static str, &str)], public: Option<&str>) -> Result<(), GatewayError> {
        run_as(&Method::GET, pairs, public)
    }

    fn run_as(
        method: &Method,
        pairs: &[(&'static str, &str)],
        public: Option<&str>,
    ) -> Result<(), GatewayError> {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, v.parse().unwrap());
        }
        let public = public.map(|p| Origin::parse(p).unwrap());
        check(method, &headers, &policy(), public.as_ref(), || {
            Some("http://localhost:8080".into())
        })
    }

    #[test]
    fn same_origin_call_with_the_header_passes() {
        assert_eq!(run(&[("x-csrf", "1")], None), Ok(()));
        assert_eq!(
            run(
                &[
                    ("x-csrf", "1"),
                    ("origin", "http://localhost:8080"),
                    ("sec-fetch-site", "same-origin")
                ],
                None
            ),
            Ok(())
        );
        assert_eq!(
            run(
                &[("x-csrf", "1"), ("origin", "https://app.example.com")],
                Some("https://app.example.com")
            ),
            Ok(())
        );
        assert_eq!(
            run(
                &[("x-csrf", "1"), ("origin", "https://admin.example.com")],
                Some("https://app.example.com")
            ),
            Ok(())
        );
    }

    #[test]
    fn missing_or_wrong_header_is_401() {
        let missing = Err(GatewayError::AntiForgeryMissing {
            header: "X-CSRF".into(),
        });
        assert_eq!(run(&[], None), missing);
        assert_eq!(run(&[("x-csrf", "0")], None), missing);
        assert_eq!(run(&[("x-csrf", "11")], None), missing);
    }

    #[test]
    fn cross_site_metadata_and_foreign_origins_are_403() {
        assert_eq!(
            run(&[("x-csrf", "1"), ("sec-fetch-site", "cross-site")], None),
            Err(GatewayError::CrossSiteRequest)
        );
        assert_eq!(
            run(&[("x-csrf", "1"), ("origin", "https://evil.example")], None),
            Err(GatewayError::ForeignOrigin)
        );
        assert_eq!(
            run(&[("x-csrf", "1"), ("origin", "null")], None),
            Err(GatewayError::ForeignOrigin)
        );
        // A same-site sibling is still another origin.
        assert_eq!(
            run(
                &[
                    ("x-csrf", "1"),
                    ("origin", "https://evil.example.com"),
                    ("sec-fetch-site", "same-site")
                ],
                Some("https://app.example.com")
            ),
            Err(GatewayError::ForeignOrigin)
        );
    }

    #[test]
    fn own_origin_omits_default_ports() {
        assert_eq!(
            own_origin("https", Some("App.example.com:443")).as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            own_origin("http", Some("localhost:8080")).as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(own_origin("http", None), None);
    }

    #[test]
    fn websocket_handshakes_pass_on_an_allowed_origin_instead_of_the_header() {
        let ws = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ];
        let with = |origin: &'static str| {
            let mut h = ws.to_vec();
            h.push(("origin", origin));
            h
        };
        assert_eq!(run(&with("http://localhost:8080"), None), Ok(()));
        assert_eq!(
            run(&with("https://evil.example"), None),
            Err(GatewayError::ForeignOrigin)
        );
        // No Origin: not a browser, so it needs the header like any call.
        assert!(run(&ws, None).is_err());
        // And a plain call with an allowed Origin still needs the header.
        assert!(run(&[("origin", "http://localhost:8080")], None).is_err());
        // Only a complete handshake is exempt: not a POST, nor one missing a part.
        let origin = ("origin", "http://localhost:8080");
        assert!(run_as(&Method::POST, &with("http://localhost:8080"), None).is_err());
        for missing in 0..ws.len() {
            let mut partial: Vec<_> = ws
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != missing)
                .map(|(_, h)| *h)
                .collect();
            partial.push(origin);
            assert!(run(&partial, None).is_err(), "without {:?}", ws[missing]);
        }
        let mut h2c = with("http://localhost:8080");
        h2c[0] = ("upgrade", "h2c");
        assert!(run(&h2c, None).is_err());
    }
}
