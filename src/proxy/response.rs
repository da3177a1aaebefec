//! `response_filter`: what the client gets back besides the upstream's response.
//!
//! Pingora strips hop-by-hop headers on the way *to* the upstream, but passes the upstream's
//! own hop-by-hop headers (and headers its `Connection` nominates) through to the client;
//! RFC 9110 §7.6.1 says a proxy must remove them.

use pingora::http::ResponseHeader;
use pingora::Result;

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

pub fn filter(resp: &mut ResponseHeader, ctx: &RequestCtx) -> Result<()> {
    strip_hop_by_hop(resp);
    resp.insert_header("X-Request-Id", ctx.request_id.as_str())?;
    Ok(())
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
    fn keeps_the_upgrade_handshake() {
        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.insert_header("Connection", "Upgrade").unwrap();
        resp.insert_header("Upgrade", "websocket").unwrap();
        strip_hop_by_hop(&mut resp);
        assert_eq!(resp.headers.get("upgrade").unwrap(), "websocket");
        assert_eq!(resp.headers.get("connection").unwrap(), "Upgrade");
    }
}
