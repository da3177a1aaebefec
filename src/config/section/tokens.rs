//! Token refresh settings (`[tokens]`).

use std::time::Duration;

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::ser_duration;

/// How user tokens are kept fresh (`[tokens]`).
#[derive(Debug, Clone, Serialize)]
pub struct TokensConfig {
    /// Refresh when the access token expires within this.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_skew: Duration,
    /// Lease of the per-session refresh lock; renewed while the IdP call runs.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_lock_lease: Duration,
    /// How long a request waits for a refresh another request (or replica) is doing.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_wait: Duration,
}

pub(in crate::config) fn tokens(t: &Section<'_, '_>) -> Option<TokensConfig> {
    let refresh_skew = t
        .duration("refresh_skew")
        .unwrap_or(Duration::from_secs(60));
    let refresh_lock_lease = t
        .duration("refresh_lock_lease")
        .unwrap_or(Duration::from_secs(5));
    let refresh_wait = t
        .duration("refresh_wait")
        .unwrap_or(Duration::from_secs(10));
    if refresh_lock_lease < Duration::from_millis(500) {
        t.issue(
            "refresh_lock_lease",
            "is shorter than 500ms",
            "use a few seconds: the lease is renewed while the IdP call runs",
        );
    }
    if refresh_wait < refresh_lock_lease {
        t.issue(
            "refresh_wait",
            "is shorter than refresh_lock_lease",
            "wait at least one lease, so a crashed refresher's lock can expire and be taken over",
        );
    }
    Some(TokensConfig {
        refresh_skew,
        refresh_lock_lease,
        refresh_wait,
    })
}
