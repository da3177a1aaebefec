//! Per-client rate limits on what an anonymous client can make the gateway work for: starting
//! logins, finishing them, back-channel logout deliveries, and session cookies that match no
//! session (each one a store read). Clients are told apart by address, after
//! `server.trusted_proxies` (`forwarded::client_ip`).
//!
//! Counting uses Pingora's own estimator (`pingora-limits`, a count-min sketch per fixed
//! window): memory is fixed whatever the number of clients, and an estimate can only be too
//! high, never too low — sized so that collisions stay far below the limits even with hundreds
//! of thousands of clients per window. Limits are per replica (documented): behind a load
//! balancer with N replicas a client gets up to N times the limit.

use std::net::IpAddr;

use pingora_limits::rate::Rate;

use crate::config::RateLimitsConfig;
use crate::error::GatewayError;

/// Columns of each estimator row: 4 rows × 16,384 counters × 2 windows, ~1 MiB per limit.
const SLOTS: usize = 16_384;
const HASHES: usize = 4;

/// What is limited.
#[derive(Debug, Clone, Copy)]
pub enum Limited {
    Login,
    Callback,
    Backchannel,
    FailedSessionLookup,
}

impl Limited {
    fn name(self) -> &'static str {
        match self {
            Limited::Login => "login",
            Limited::Callback => "callback",
            Limited::Backchannel => "backchannel",
            Limited::FailedSessionLookup => "failed_session_lookups",
        }
    }
}

struct Limit {
    rate: Rate,
    max: u32,
}

pub struct Limits {
    retry_after: u32,
    login: Option<Limit>,
    callback: Option<Limit>,
    backchannel: Option<Limit>,
    failed_lookups: Option<Limit>,
    /// `portcullis_rate_limited_total{limit}`.
    refused: prometheus::IntCounterVec,
}

impl Limits {
    pub fn new(config: &RateLimitsConfig, refused: prometheus::IntCounterVec) -> Limits {
        let limit = |max: u32| {
            (max > 0).then(|| Limit {
                rate: Rate::new_with_estimator_config(config.window, HASHES, SLOTS),
                max,
            })
        };
        Limits {
            retry_after: u32::try_from(config.window.as_secs()).unwrap_or(u32::MAX),
            login: limit(config.login),
            callback: limit(config.callback),
            backchannel: limit(config.backchannel),
            failed_lookups: limit(config.failed_session_lookups),
            refused,
        }
    }

    fn limit(&self, what: Limited) -> Option<&Limit> {
        match what {
            Limited::Login => self.login.as_ref(),
            Limited::Callback => self.callback.as_ref(),
            Limited::Backchannel => self.backchannel.as_ref(),
            Limited::FailedSessionLookup => self.failed_lookups.as_ref(),
        }
    }

    /// Counts one `what` from `client`; refused once the client is over its limit.
    pub fn admit(&self, what: Limited, client: IpAddr) -> Result<(), GatewayError> {
        self.count(what, client, 1)
    }

    /// Whether `client` may still try (nothing is counted): checked before work whose failure
    /// is what [`admit`](Self::admit) counts.
    pub fn check(&self, what: Limited, client: IpAddr) -> Result<(), GatewayError> {
        self.count(what, client, 0)
    }

    fn count(&self, what: Limited, client: IpAddr, events: isize) -> Result<(), GatewayError> {
        let Some(limit) = self.limit(what) else {
            return Ok(());
        };
        let seen = limit.rate.observe(&client, events);
        if seen > isize::try_from(limit.max).unwrap_or(isize::MAX) {
            self.refused.with_label_values(&[what.name()]).inc();
            return Err(GatewayError::RateLimited {
                retry_after: self.retry_after,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(login: u32, failed: u32) -> Limits {
        let metrics = prometheus::IntCounterVec::new(
            prometheus::Opts::new("rate_limited_total", "test"),
            &["limit"],
        )
        .unwrap();
        Limits::new(
            &RateLimitsConfig {
                window: Duration::from_secs(60),
                login,
                callback: 0,
                backchannel: 0,
                failed_session_lookups: failed,
            },
            metrics,
        )
    }

    #[test]
    fn each_client_gets_its_own_allowance() {
        let l = limits(3, 0);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(l.admit(Limited::Login, a).is_ok());
        }
        assert_eq!(
            l.admit(Limited::Login, a),
            Err(GatewayError::RateLimited { retry_after: 60 })
        );
        assert!(
            l.admit(Limited::Login, b).is_ok(),
            "another client is not held up"
        );
        // Off (0): never limited.
        for _ in 0..100 {
            assert!(l.admit(Limited::Callback, a).is_ok());
        }
        assert_eq!(l.refused.with_label_values(&["login"]).get(), 1);
    }

    #[test]
    fn checking_counts_nothing() {
        let l = limits(0, 2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..10 {
            assert!(l.check(Limited::FailedSessionLookup, a).is_ok());
        }
        for _ in 0..2 {
            assert!(l.admit(Limited::FailedSessionLookup, a).is_ok());
        }
        assert!(l.check(Limited::FailedSessionLookup, a).is_ok());
        assert!(l.admit(Limited::FailedSessionLookup, a).is_err());
        assert!(l.check(Limited::FailedSessionLookup, a).is_err());
    }
}
