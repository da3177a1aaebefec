//! Pingora's own server settings (`[pingora]`), with production defaults.

use std::time::Duration;

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::ser_duration;

/// Pingora's own server settings, with production defaults.
#[derive(Debug, Clone, Serialize)]
pub struct PingoraConfig {
    pub threads: usize,
    pub work_stealing: bool,
    /// After SIGTERM: `/readyz` answers 503 at once, but the listeners keep accepting and
    /// serving for this long (load balancers and Kubernetes endpoints take a few seconds to
    /// stop sending), then the graceful shutdown starts.
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_delay: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub grace_period: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub graceful_shutdown_timeout: Duration,
    pub upstream_keepalive_pool_size: usize,
    #[serde(serialize_with = "ser_duration")]
    pub keepalive_timeout: Duration,
    /// Longest wait for the next part of a client's request body (each read, not the whole).
    #[serde(serialize_with = "ser_duration")]
    pub client_body_timeout: Duration,
    pub keepalive_request_limit: u32,
    pub listener_tasks_per_fd: usize,
    pub upgrade_sock: String,
    pub pid_file: String,
}

pub(in crate::config) fn pingora(s: &Section<'_, '_>) -> Option<PingoraConfig> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let count = |key, min, max, default: usize| {
        s.integer(key, min, max)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default)
    };
    Some(PingoraConfig {
        threads: count("threads", 1, 1024, cores),
        work_stealing: s.bool("work_stealing").unwrap_or(true),
        shutdown_delay: match s.duration("shutdown_delay") {
            Some(d) if d > Duration::from_secs(300) => {
                s.issue(
                    "shutdown_delay",
                    "is longer than 5m",
                    "use a few seconds: long enough for endpoints to update, e.g. \"5s\"",
                );
                d
            }
            d => d.unwrap_or(Duration::ZERO),
        },
        grace_period: s
            .duration("grace_period")
            .unwrap_or(Duration::from_secs(10)),
        graceful_shutdown_timeout: s
            .duration("graceful_shutdown_timeout")
            .unwrap_or(Duration::from_secs(5)),
        upstream_keepalive_pool_size: count("upstream_keepalive_pool_size", 1, 1_000_000, 1024),
        keepalive_timeout: s
            .duration("keepalive_timeout")
            .unwrap_or(Duration::from_secs(60)),
        client_body_timeout: match s.duration("client_body_timeout") {
            Some(d) if d.is_zero() => {
                s.issue(
                    "client_body_timeout",
                    "is zero, which would let a client stall forever",
                    "use a few seconds to a minute, e.g. \"60s\"",
                );
                Duration::from_secs(60)
            }
            d => d.unwrap_or(Duration::from_secs(60)),
        },
        keepalive_request_limit: s
            .integer("keepalive_request_limit", 1, i64::from(u32::MAX))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(10_000),
        listener_tasks_per_fd: count("listener_tasks_per_fd", 1, 64, 1),
        upgrade_sock: s
            .string("upgrade_sock")
            .unwrap_or_else(|| "/tmp/portcullis_upgrade.sock".into()),
        pid_file: s
            .string("pid_file")
            .unwrap_or_else(|| "/tmp/portcullis.pid".into()),
    })
}
