//! `response_filter`: what the client gets back besides the upstream's response.
//!
//! Pingora strips hop-by-hop headers on the way *to* the upstream, but passes the upstream's
//! own hop-by-hop headers (and headers its `Connection` nominates) through to the client;
//! RFC 9110 §7.6.1 says a proxy must remove them.
//!
//! An upstream never sets the gateway's own cookies (the session and the pending-login
//! cookie): a compromised or careless SPA or API could otherwise swap the user into another
//! session (the attacker's) or plant a pending login. Such `Set-Cookie` lines are dropped,
//! logged and counted.
//!
//! Every response the browser renders gets the security headers of `[response_headers]`
//! (HSTS, nosniff, referrer policy, framing, CSP): the gateway's value replaces the upstream's
//! unless `upstream_wins` names the header, so a careless upstream cannot weaken them.

use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::Result;

use crate::config::ResponseHeadersConfig;

use super::context::RequestCtx;
use super::names;

/// Always hop-by-hop, whatever `Connection` says (RFC 9110 §7.6.1, RFC 2616 §13.5.1).
const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
];

/// The `[response_headers]`, parsed once.
pub struct SecurityHeaders(Vec<(HeaderName, HeaderValue, bool)>);

impl SecurityHeaders {
    pub fn new(config: &ResponseHeadersConfig) -> Self {
        SecurityHeaders(
            config
                .headers()
                .into_iter()
                .filter_map(|(name, value)| {
                    let wins = config.upstream_wins.iter().any(|w| w == name);
                    Some((
                        HeaderName::from_static(name),
                        HeaderValue::from_str(value).ok()?,
                        wins,
                    ))
                })
                .collect(),
        )
    }

    pub fn apply(&self, resp: &mut ResponseHeader) -> Result<()> {
        for (name, value, upstream_wins) in &self.0 {
            if *upstream_wins && resp.headers.contains_key(name) {
                continue;
            }
            resp.insert_header(name.clone(), value.clone())?;
        }
        Ok(())
    }
}

pub fn filter(
    resp: &mut ResponseHeader,
    ctx: &RequestCtx,
    ours: &[String],
    refused: &prometheus::IntCounter,
    security: &SecurityHeaders,
) -> Result<()> {
    strip_hop_by_hop(resp);
    if resp.status != http::StatusCode::SWITCHING_PROTOCOLS {
        security.apply(resp)?;
    }
    let dropped = drop_cookies(resp, ours)?;
    if dropped > 0 {
        refused.inc_by(dropped);
        tracing::warn!(
            route = ctx.route_name(),
            cluster = ctx.cluster_name(),
            request_id = %ctx.request_id,
            dropped,
            "an upstream tried to set the gateway's own cookie; dropped"
        );
    }
    resp.insert_header("X-Request-Id", ctx.request_id.as_str())?;
    Ok(())
}

/// Removes every `Set-Cookie` for one of `ours`; how many there were.
fn drop_cookies(resp: &mut ResponseHeader, ours: &[String]) -> Result<u64> {
    let all = resp.headers.get_all(http::header::SET_COOKIE);
    // Cookie prefixes (`__Host-`) are matched without regard to case (RFC 6265bis §4.1.3), so
    // the names are too.
    let is_ours = |v: &http::HeaderValue| {
        let name = v.as_bytes().split(|b| *b == b'=').next().unwrap_or(&[]);
        let name = name.trim_ascii();
        ours.iter().any(|o| o.as_bytes().eq_ignore_ascii_case(name))
    };
    let dropped = all.iter().filter(|v| is_ours(v)).count();
    if dropped == 0 {
        return Ok(0);
    }
    let kept: Vec<http::HeaderValue> = all.iter().filter(|v| !is_ours(v)).cloned().collect();
    resp.remove_header(&http::header::SET_COOKIE);
    for v in kept {
        resp.append_header(http::header::SET_COOKIE, v)?;
    }
    Ok(u64::try_from(dropped).unwrap_or(u64::MAX))
}

fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    // One pass over the names decides how much work this response needs. The usual answer is
    // "only `Connection: keep-alive`", which Pingora rewrites for the client anyway.
    let (mut connection, mut others) = (false, false);
    for k in resp.headers.keys() {
        if *k == names::CONNECTION {
            connection = true;
        } else if HOP_BY_HOP.contains(&k.as_str()) {
            others = true;
        }
    }
    let switching = resp.status.as_u16() == 101;
    if !others && (!connection || switching) {
        return;
    }
    let plain = resp.headers.get_all(&names::CONNECTION).iter().all(|v| {
        v.as_bytes().eq_ignore_ascii_case(b"keep-alive")
            || v.as_bytes().eq_ignore_ascii_case(b"close")
    });
    if !others && plain {
        resp.remove_header(&names::CONNECTION);
        return;
    }
    let nominated: Vec<String> = resp
        .headers
        .get_all(&names::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !(t.is_empty() || (switching && t == "upgrade")))
        .collect();
    for name in nominated
        .iter()
        .map(String::as_str)
        .chain(HOP_BY_HOP.iter().copied())
    {
        if resp.headers.contains_key(name) {
            resp.remove_header(name);
        }
    }
    if !switching && resp.headers.contains_key(&names::CONNECTION) {
        // Pingora writes its own `Connection` for the downstream side.
        resp.remove_header(&names::CONNECTION);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_nominated_and_standard_hop_by_hop_headers() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Connection", "x-hop, close").unwrap();
        resp.insert_header("X-Hop", "1").unwrap();
        resp.insert_header("Keep-Alive", "timeout=5").unwrap();
        resp.insert_header("X-Kept", "1").unwrap();
        strip_hop_by_hop(&mut resp);
        assert!(resp.headers.get("x-hop").is_none());
        assert!(resp.headers.get("keep-alive").is_none());
        assert!(resp.headers.get("connection").is_none());
        assert_eq!(resp.headers.get("x-kept").unwrap(), "1");
    }

    #[test]
    fn upstreams_cannot_set_the_gateways_cookies() {
        let ours = [
            "__Host-portcullis".to_string(),
            "__Host-portcullis-login".to_string(),
        ];
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Set-Cookie", "__Host-portcullis=attacker; Path=/; Secure")
            .unwrap();
        resp.append_header("Set-Cookie", "theme=dark; Path=/")
            .unwrap();
        resp.append_header("Set-Cookie", " __HOST-PORTCULLIS-LOGIN=x; Path=/")
            .unwrap();
        resp.append_header("Set-Cookie", "__Host-portcullis-other=1")
            .unwrap();
        assert_eq!(drop_cookies(&mut resp, &ours).unwrap(), 2);
        let left: Vec<_> = resp
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(left, ["theme=dark; Path=/", "__Host-portcullis-other=1"]);
        let mut plain = ResponseHeader::build(200, None).unwrap();
        plain.append_header("Set-Cookie", "a=1").unwrap();
        assert_eq!(drop_cookies(&mut plain, &ours).unwrap(), 0);
    }

    #[test]
    fn keeps_the_upgrade_handshake() {
        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.insert_header("Connection", "Upgrade").unwrap();
        resp.insert_header("Upgrade", "websocket").unwrap();
        strip_hop_by_hop(&mut resp);
        assert_eq!(resp.headers.get("upgrade").unwrap(), "websocket");
        assert_eq!(resp.headers.get("connection").unwrap(), "Upgrade");
    }
}
