//! W3C Trace Context: the `traceparent`/`tracestate` a request came with, and the ones the
//! upstream gets. The SDK's propagator validates (version, lengths, non-zero ids).

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use pingora::http::RequestHeader;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

struct Incoming<'a>(&'a HeaderMap);

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The caller's span, when it sent a valid `traceparent`.
pub fn extract(headers: &HeaderMap) -> Option<SpanContext> {
    let traceparent = headers.get(TRACEPARENT)?.to_str().ok()?;
    if !well_formed(traceparent) {
        return None;
    }
    let cx =
        TraceContextPropagator::new().extract_with_context(&Context::new(), &Incoming(headers));
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The W3C field widths, which the SDK's parser does not insist on (it takes 30 hex digits for
/// a trace id): `vv-<32 hex>-<16 hex>-ff`, lower case, version `ff` invalid; a later version
/// may append `-...`.
fn well_formed(value: &str) -> bool {
    let b = value.as_bytes();
    let hex = |r: std::ops::Range<usize>| {
        b.get(r)
            .is_some_and(|s| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
    };
    b.len() >= 55
        && hex(0..2)
        && &b[0..2] != b"ff"
        && (b.len() == 55 || (&b[0..2] != b"00" && b[55] == b'-'))
        && b[2] == b'-'
        && hex(3..35)
        && b[35] == b'-'
        && hex(36..52)
        && b[52] == b'-'
        && hex(53..55)
}

struct Outgoing(Vec<(&'static str, String)>);

impl Injector for Outgoing {
    fn set(&mut self, key: &str, value: String) {
        // The SDK sets an empty `tracestate` when there is none; send none instead.
        if value.is_empty() {
            return;
        }
        let name = match key {
            TRACEPARENT => TRACEPARENT,
            TRACESTATE => TRACESTATE,
            _ => return,
        };
        self.0.push((name, value));
    }
}

/// Replaces the request's trace headers with `cx`'s span.
pub fn inject(cx: &Context, req: &mut RequestHeader) {
    req.remove_header(TRACEPARENT);
    req.remove_header(TRACESTATE);
    let mut out = Outgoing(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(cx, &mut out);
    for (name, value) in out.0 {
        if let Err(e) = req.insert_header(name, value) {
            tracing::debug!(error = %e, "cannot set {name}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(traceparent: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, traceparent.parse().unwrap());
        h
    }

    #[test]
    fn continues_only_valid_traceparents() {
        let sc = extract(&headers(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ))
        .unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(sc.is_sampled() && sc.is_remote());
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(extract(&headers(bad)).is_none(), "{bad}");
        }
    }
}
