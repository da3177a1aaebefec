//! Per-client request limits (`[rate_limits]`).

use std::time::Duration;

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::ser_duration;

/// Per-client request limits (by client address, after `server.trusted_proxies`), counted per
/// replica in windows of `window`. 0 turns a limit off.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimitsConfig {
    #[serde(serialize_with = "ser_duration")]
    pub window: Duration,
    /// `GET /bff/login` calls per window.
    pub login: u32,
    /// `/signin-oidc` calls per window.
    pub callback: u32,
    /// `POST /bff/backchannel` calls per window (per IdP address).
    pub backchannel: u32,
    /// Requests with a session cookie that matches no live session, per window.
    pub failed_session_lookups: u32,
}

pub(in crate::config) fn rate_limits(s: &Section<'_, '_>) -> Option<RateLimitsConfig> {
    let window = s.duration("window").unwrap_or(Duration::from_secs(60));
    if window < Duration::from_secs(1) || window > Duration::from_secs(3600) {
        s.issue("window", "must be between 1s and 1h", "use e.g. \"1m\"");
    }
    let limit = |key: &'static str, default: u32| {
        s.integer(key, 0, 1_000_000)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default)
    };
    Some(RateLimitsConfig {
        window,
        login: limit("login", 60),
        callback: limit("callback", 60),
        backchannel: limit("backchannel", 600),
        failed_session_lookups: limit("failed_session_lookups", 60),
    })
}
