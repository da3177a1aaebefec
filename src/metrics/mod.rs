//! Prometheus metrics, served on the admin listener.
//!
//! Labels are only ever configured names (route, cluster, destination) and status codes, never
//! anything from a request, so cardinality stays bounded and nothing secret can leak into them.
//!
//! One file on purpose (~470 lines): every metric's name, help and buckets side by side, so a
//! new one is checked against the others' naming at a glance.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets sized for a gateway: sub-millisecond local answers up to slow upstreams.
/// Store round trips on loopback take tens of microseconds; in a cloud region, a millisecond.
const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    connect_errors: IntCounterVec,
    upstream_healthy: IntGaugeVec,
    ready: IntGauge,
    /// `Set-Cookie` lines for the gateway's own cookies that an upstream sent (and that were
    /// dropped).
    pub upstream_cookies_dropped: IntCounter,
    /// Requests refused by `rate_limits`, by `limit`.
    pub rate_limited: IntCounterVec,
    /// Upgraded connections (WebSockets) closed because their session ended.
    pub tunnels_closed: IntCounter,
    /// Audit events, by event and outcome (`audit.rs`).
    pub audit_events: IntCounterVec,
    /// Requests being handled now (see [`InFlight`]).
    pub in_flight: IntGauge,
    pub idp: IdpMetrics,
    pub tokens: TokenMetrics,
    pub sessions: SessionMetrics,
    pub traces: TraceMetrics,
}

/// Trace export (`[telemetry]`): spans sent, and spans lost with why (`reason`: queue_full
/// when the collector cannot keep up, export_failed when it refused or could not be reached).
#[derive(Clone)]
pub struct TraceMetrics {
    pub exported: IntCounter,
    pub dropped: IntCounterVec,
}

/// The session tier: the per-replica cache and the store behind it.
#[derive(Clone)]
pub struct SessionMetrics {
    /// Requests whose session came from this replica's cache (no store round trip).
    pub cache_hits: IntCounter,
    /// Lookups that had to read the store.
    pub cache_misses: IntCounter,
    /// Cached sessions dropped because they changed or ended, here or on another replica
    /// (`reason`: changed, flushed).
    pub cache_invalidations: IntCounterVec,
    /// Cached sessions dropped to stay within `session.cache_size`.
    pub cache_evictions: IntCounter,
    pub cache_entries: IntGauge,
    /// 1 while the session store cannot be reached (readiness stays up; calls that need the
    /// store answer 503).
    pub store_degraded: IntGauge,
    /// Session store operations by `op` (read, slide, create, update, delete, check): how long
    /// they took, and how many failed.
    pub store_duration: HistogramVec,
    pub store_errors: IntCounterVec,
}

/// Calls to the identity provider, by `endpoint` (discovery, jwks, token, userinfo,
/// revocation): how long they took, and how many failed (unreachable, refused, unreadable).
#[derive(Clone)]
pub struct IdpMetrics {
    pub duration: HistogramVec,
    pub errors: IntCounterVec,
}

/// Token refresh and client-credentials metrics (`outcome` is a fixed set of words).
#[derive(Clone)]
pub struct TokenMetrics {
    /// `outcome`: refreshed, fatal (session ended), refused (scope/resource refused, session
    /// kept), unavailable (IdP unreachable, session kept), stale (a newer token set was stored).
    pub refreshes: IntCounterVec,
    pub refresh_duration: Histogram,
    /// Times a request found the session's refresh lock held and waited for the holder.
    pub lock_waits: IntCounter,
    /// `outcome`: fetched, failed.
    pub client_fetches: IntCounterVec,
    /// Sessions ended by something else than their timeouts, `by`: user (logout),
    /// backchannel, admin, refresh (invalid_grant).
    pub sessions_revoked: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("portcullis".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "Requests answered, by route, cluster and status code.",
            ),
            &["route", "cluster", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from request start to the end of the response, by route and cluster.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "cluster"],
        )?;
        let connect_errors = IntCounterVec::new(
            Opts::new(
                "upstream_connect_errors_total",
                "Failed connection attempts to a cluster's destinations.",
            ),
            &["cluster"],
        )?;
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "upstream_healthy",
                "1 when the active health check passes for a destination address, else 0.",
            ),
            &["cluster", "destination", "address"],
        )?;
        let ready = IntGauge::new("ready", "1 when the gateway reports ready on /readyz.")?;
        let upstream_cookies_dropped = IntCounter::new(
            "upstream_cookies_dropped_total",
            "Set-Cookie lines for the gateway's own cookies sent by an upstream, and dropped.",
        )?;
        registry.register(Box::new(upstream_cookies_dropped.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests refused with 429 by rate_limits, by limit (login, callback, backchannel, failed_session_lookups).",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        let tunnels_closed = IntCounter::new(
            "session_tunnels_closed_total",
            "WebSockets (upgraded connections) closed because the session they were opened with ended.",
        )?;
        registry.register(Box::new(tunnels_closed.clone()))?;
        let audit_events = IntCounterVec::new(
            Opts::new(
                "audit_events_total",
                "Security events of the audit trail, by event (login, logout, backchannel_logout, session_revoked, session_ended, authorization) and outcome.",
            ),
            &["event", "outcome"],
        )?;
        registry.register(Box::new(audit_events.clone()))?;
        let build = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1; the version label tells which build runs.",
            ),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let tokens = TokenMetrics {
            refreshes: IntCounterVec::new(
                Opts::new(
                    "token_refreshes_total",
                    "Refresh-token grants sent to the IdP, by outcome.",
                ),
                &["outcome"],
            )?,
            refresh_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "token_refresh_duration_seconds",
                    "Time of each refresh-token grant at the IdP.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            lock_waits: IntCounter::new(
                "token_refresh_lock_waits_total",
                "Requests that waited for another request's (or replica's) refresh of the same session.",
            )?,
            client_fetches: IntCounterVec::new(
                Opts::new(
                    "client_token_fetches_total",
                    "Client-credentials tokens fetched from the IdP, by outcome.",
                ),
                &["outcome"],
            )?,
            sessions_revoked: IntCounterVec::new(
                Opts::new(
                    "sessions_revoked_total",
                    "Sessions ended before their timeouts, by what ended them.",
                ),
                &["by"],
            )?,
        };
        let sessions = SessionMetrics {
            cache_hits: IntCounter::new(
                "session_cache_hits_total",
                "Session lookups answered from this replica's cache.",
            )?,
            cache_misses: IntCounter::new(
                "session_cache_misses_total",
                "Session lookups that read the session store.",
            )?,
            cache_invalidations: IntCounterVec::new(
                Opts::new(
                    "session_cache_invalidations_total",
                    "Cached sessions dropped because they changed or ended (changed), or because \
                     the store connection that reported changes was lost (flushed).",
                ),
                &["reason"],
            )?,
            cache_evictions: IntCounter::new(
                "session_cache_evictions_total",
                "Cached sessions dropped to stay within session.cache_size.",
            )?,
            cache_entries: IntGauge::new(
                "session_cache_entries",
                "Sessions held in this replica's cache.",
            )?,
            store_degraded: IntGauge::new(
                "session_store_degraded",
                "1 while the session store cannot be reached.",
            )?,
            store_duration: HistogramVec::new(
                HistogramOpts::new(
                    "session_store_duration_seconds",
                    "Session store operations on the request path, by op (read, slide, create, update, delete, check).",
                )
                .buckets(STORE_BUCKETS.to_vec()),
                &["op"],
            )?,
            store_errors: IntCounterVec::new(
                Opts::new(
                    "session_store_errors_total",
                    "Session store operations that failed (unreachable, timed out), by op.",
                ),
                &["op"],
            )?,
        };
        registry.register(Box::new(sessions.store_duration.clone()))?;
        registry.register(Box::new(sessions.store_errors.clone()))?;
        let in_flight = IntGauge::new(
            "requests_in_flight",
            "Requests on the public listener being handled now.",
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        let idp = IdpMetrics {
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "idp_request_duration_seconds",
                    "Calls to the identity provider, by endpoint (discovery, jwks, token, userinfo, revocation).",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["endpoint"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "idp_errors_total",
                    "Calls to the identity provider that failed or were refused, by endpoint.",
                ),
                &["endpoint"],
            )?,
        };
        registry.register(Box::new(idp.duration.clone()))?;
        registry.register(Box::new(idp.errors.clone()))?;
        let traces = TraceMetrics {
            exported: IntCounter::new(
                "trace_spans_exported_total",
                "Spans the OTLP collector accepted.",
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "trace_spans_dropped_total",
                    "Spans lost, by reason (queue_full, export_failed).",
                ),
                &["reason"],
            )?,
        };
        // Both reasons exist from the start, so an alert on their rate has a series to read.
        for reason in ["queue_full", "export_failed"] {
            traces.dropped.with_label_values(&[reason]);
        }
        registry.register(Box::new(traces.exported.clone()))?;
        registry.register(Box::new(traces.dropped.clone()))?;
        // CPU, resident memory, open file descriptors and their limit, threads, start time.
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        registry.register(Box::new(sessions.cache_hits.clone()))?;
        registry.register(Box::new(sessions.cache_misses.clone()))?;
        registry.register(Box::new(sessions.cache_invalidations.clone()))?;
        registry.register(Box::new(sessions.cache_evictions.clone()))?;
        registry.register(Box::new(sessions.cache_entries.clone()))?;
        registry.register(Box::new(sessions.store_degraded.clone()))?;
        registry.register(Box::new(tokens.sessions_revoked.clone()))?;
        registry.register(Box::new(tokens.refreshes.clone()))?;
        registry.register(Box::new(tokens.refresh_duration.clone()))?;
        registry.register(Box::new(tokens.lock_waits.clone()))?;
        registry.register(Box::new(tokens.client_fetches.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(connect_errors.clone()))?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(build))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            connect_errors,
            upstream_healthy,
            ready,
            upstream_cookies_dropped,
            rate_limited,
            tunnels_closed,
            audit_events,
            in_flight,
            idp,
            tokens,
            sessions,
            traces,
        })
    }

    /// The request metrics of one route, resolved once so that counting a request is a
    /// couple of atomic adds. `route`/`cluster` are `"-"` for requests that matched no route.
    pub fn route(&self, route: &str, cluster: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.to_string(),
            cluster: cluster.to_string(),
            requests: self.requests.clone(),
            by_status: (0..600).map(|_| OnceLock::new()).collect(),
            latency: self.latency.with_label_values(&[route, cluster]),
        }
    }

    pub fn connect_error(&self, cluster: &str) {
        self.connect_errors.with_label_values(&[cluster]).inc();
    }

    /// Drops the series of an address discovery no longer returns, so `/metrics` does not keep
    /// reporting destinations that are gone.
    pub fn forget_upstream(&self, cluster: &str, destination: &str, address: &str) {
        let _ = self
            .upstream_healthy
            .remove_label_values(&[cluster, destination, address]);
    }

    pub fn upstream_health(&self, cluster: &str, destination: &str, address: &str, healthy: bool) {
        self.upstream_healthy
            .with_label_values(&[cluster, destination, address])
            .set(i64::from(healthy));
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// One request being handled: counted in `requests_in_flight` from creation to drop (the
/// request context owns it, so every way a request ends is counted).
pub struct InFlight(IntGauge);

impl InFlight {
    pub fn start(gauge: &IntGauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub struct RouteMetrics {
    route: String,
    cluster: String,
    requests: IntCounterVec,
    /// Indexed by status code; each filled on its first use.
    by_status: Box<[OnceLock<IntCounter>]>,
    latency: Histogram,
}

impl RouteMetrics {
    /// One finished request.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let label = || {
            self.requests
                .with_label_values(&[&self.route, &self.cluster, status_label(status)])
        };
        match self.by_status.get(usize::from(status)) {
            Some(slot) => slot.get_or_init(label).inc(),
            None => label().inc(),
        }
        self.latency.observe(elapsed.as_secs_f64());
    }
}

/// Status codes as label strings, built once, so counting a request allocates nothing.
fn status_label(status: u16) -> &'static str {
    static LABELS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let labels = LABELS.get_or_init(|| (0..600).map(|n| n.to_string()).collect());
    labels
        .get(usize::from(status))
        .map_or("other", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_with_configured_labels_only() {
        let m = Metrics::new().unwrap();
        let route = m.route("/api/", "api");
        route.observe(502, Duration::from_millis(3));
        route.observe(502, Duration::from_millis(4));
        m.upstream_health("api", "http://api-1", "10.0.0.1:80", false);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(
                r#"portcullis_requests_total{cluster="api",route="/api/",status="502"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"portcullis_upstream_healthy{address="10.0.0.1:80",cluster="api",destination="http://api-1"} 0"#));
        assert!(text.contains("portcullis_request_duration_seconds_bucket"));
    }

    #[test]
    fn gone_destinations_leave_metrics_and_requests_are_counted_while_in_flight() {
        let m = Metrics::new().unwrap();
        m.upstream_health("api", "http://api-1", "10.0.0.1:80", true);
        m.forget_upstream("api", "http://api-1", "10.0.0.1:80");
        let text = String::from_utf8(m.render()).unwrap();
        assert!(!text.contains("10.0.0.1:80"), "{text}");
        let (a, b) = (InFlight::start(&m.in_flight), InFlight::start(&m.in_flight));
        assert_eq!(m.in_flight.get(), 2);
        drop(a);
        drop(b);
        assert_eq!(m.in_flight.get(), 0);
        // The process's own figures, for alerts on memory and file descriptors.
        assert!(
            text.contains("portcullis_process_resident_memory_bytes"),
            "{text}"
        );
        assert!(text.contains("portcullis_process_open_fds"), "{text}");
    }
}
