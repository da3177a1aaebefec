//! The audit trail: one line per security event, under the `audit` log target (JSON objects in
//! JSON mode), counted in `portcullis_audit_events_total{event,outcome}`.
//!
//! | event | outcome | when |
//! |---|---|---|
//! | `login` | `succeeded`, `refused`, `failed` | the callback made a session; `[authorization] require` or a step-up refused it; the IdP or the code exchange failed it |
//! | `logout` | `succeeded` | the user ended the session (`/bff/logout`) |
//! | `backchannel_logout` | `succeeded` | the IdP ended sessions (`/bff/backchannel`) |
//! | `session_revoked` | `succeeded` | the admin API ended a session |
//! | `session_ended` | `refresh_refused` | the IdP refused the session's refresh token |
//! | `authorization` | `refused` | a route's `require` refused a signed-in user |
//!
//! Fields: `event`, `outcome`, `sub`, `session` (a fingerprint of the store key, as the admin
//! API lists it: never the id), `sid`, `client` (after `trusted_proxies`), `user_agent`
//! (visible ASCII, 200 characters at most), `route`, `request_id`, `trace_id` (when tracing is
//! on), `reason`. Never a token,
//! code, cookie or secret. Refusals a client can cause at will (authorization) are logged at
//! most [`REFUSALS_PER_SECOND`] a second; all are counted.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Where a request came from, as far as the audit trail tells it.
#[derive(Default)]
pub struct Who<'a> {
    pub client: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub route: &'a str,
    pub request_id: &'a str,
    /// The request's trace, when tracing is on.
    pub trace_id: Option<&'a str>,
}

pub struct Event<'a> {
    pub event: &'static str,
    pub outcome: &'static str,
    pub sub: Option<&'a str>,
    pub session: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub reason: Option<&'a str>,
}

impl<'a> Event<'a> {
    pub fn new(event: &'static str, outcome: &'static str) -> Self {
        Event {
            event,
            outcome,
            sub: None,
            session: None,
            sid: None,
            reason: None,
        }
    }

    pub fn subject(mut self, sub: &'a str) -> Self {
        self.sub = Some(sub);
        self
    }

    pub fn session(mut self, fingerprint: &'a str) -> Self {
        self.session = Some(fingerprint);
        self
    }

    pub fn sid(mut self, sid: Option<&'a str>) -> Self {
        self.sid = sid;
        self
    }

    pub fn reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }
}

pub const REFUSALS_PER_SECOND: u64 = 20;

static COUNTER: OnceLock<prometheus::IntCounterVec> = OnceLock::new();
/// `second << 16 | lines logged in it`.
static REFUSALS: AtomicU64 = AtomicU64::new(0);

/// Counts events in `counter` from now on (once, at startup).
pub fn install(counter: prometheus::IntCounterVec) {
    let _ = COUNTER.set(counter);
}

pub fn record(e: Event<'_>, who: &Who<'_>) {
    if let Some(c) = COUNTER.get() {
        c.with_label_values(&[e.event, e.outcome]).inc();
    }
    if e.event == "authorization" && !refusal_allowed() {
        return;
    }
    let agent = who.user_agent.map(printable);
    tracing::info!(
        target: "audit",
        event = e.event,
        outcome = e.outcome,
        sub = e.sub.unwrap_or("-"),
        session = e.session.unwrap_or("-"),
        sid = e.sid.unwrap_or("-"),
        client = %who.client.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
        user_agent = agent.as_deref().unwrap_or("-"),
        route = if who.route.is_empty() { "-" } else { who.route },
        request_id = if who.request_id.is_empty() { "-" } else { who.request_id },
        trace_id = who.trace_id,
        reason = e.reason.unwrap_or("-"),
        "audit"
    );
}

fn refusal_allowed() -> bool {
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut current = REFUSALS.load(Ordering::Relaxed);
    loop {
        let (window, count) = (current >> 16, current & 0xffff);
        let next = if window == second & 0xffff_ffff_ffff {
            if count >= REFUSALS_PER_SECOND {
                return false;
            }
            current + 1
        } else {
            ((second & 0xffff_ffff_ffff) << 16) | 1
        };
        match REFUSALS.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(seen) => current = seen,
        }
    }
}

/// Visible ASCII only, 200 characters at most: a user agent is the client's to write.
fn printable(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_cannot_forge_log_lines() {
        assert_eq!(printable("curl/8\r\nevent=login"), "curl/8??event=login");
        assert_eq!(printable(&"x".repeat(500)).len(), 200);
    }
}
