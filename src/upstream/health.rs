//! Active health checks: an HTTP `GET path` (2xx passes) or a TCP connect per destination
//! address, run by the cluster's background service.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora::{Error, ErrorType, Result};

use crate::config::{ClusterConfig, HealthCheckConfig, HealthCheckKind};
use crate::metrics::Metrics;

use super::addresses::Upstreams;

enum Probe {
    Http(Box<HttpHealthCheck>),
    Tcp(Box<TcpHealthCheck>),
}

pub struct ClusterHealthCheck {
    cluster: String,
    /// One probe per destination URL: each needs its own `Host` header and TLS SNI.
    probes: HashMap<String, Probe>,
    healthy_threshold: usize,
    unhealthy_threshold: usize,
    metrics: Arc<Metrics>,
    upstreams: Upstreams,
}

impl ClusterHealthCheck {
    pub fn new(
        cluster: &str,
        config: &ClusterConfig,
        hc: &HealthCheckConfig,
        metrics: Arc<Metrics>,
        upstreams: Upstreams,
    ) -> Self {
        let probes = config
            .destinations
            .iter()
            .filter_map(|d| {
                let probe = match hc.kind {
                    HealthCheckKind::Tcp => {
                        let mut tcp = if d.tls {
                            TcpHealthCheck::new_tls(d.bare_host())
                        } else {
                            TcpHealthCheck::new()
                        };
                        tcp.peer_template.options.connection_timeout = Some(hc.timeout);
                        Probe::Tcp(tcp)
                    }
                    HealthCheckKind::Http => {
                        let mut http = HttpHealthCheck::new(d.bare_host(), d.tls);
                        let path = hc.path.as_deref().unwrap_or("/");
                        let mut req = RequestHeader::build("GET", path.as_bytes(), None).ok()?;
                        req.insert_header("Host", d.authority.as_str()).ok()?;
                        req.insert_header("User-Agent", "portcullis-health-check")
                            .ok()?;
                        http.req = req;
                        let o = &mut http.peer_template.options;
                        o.connection_timeout = Some(hc.timeout);
                        o.read_timeout = Some(hc.timeout);
                        o.write_timeout = Some(hc.timeout);
                        o.verify_cert = config.tls_verify;
                        o.verify_hostname = config.tls_verify;
                        http.validator = Some(Box::new(|resp| {
                            if resp.status.is_success() {
                                Ok(())
                            } else {
                                Error::e_explain(
                                    ErrorType::CustomCode("unhealthy status", resp.status.as_u16()),
                                    "health check answered a non-2xx status",
                                )
                            }
                        }));
                        Probe::Http(Box::new(http))
                    }
                };
                Some((d.url.clone(), probe))
            })
            .collect();
        ClusterHealthCheck {
            cluster: cluster.to_string(),
            probes,
            healthy_threshold: hc.healthy_threshold,
            unhealthy_threshold: hc.unhealthy_threshold,
            metrics,
            upstreams,
        }
    }
}

impl ClusterHealthCheck {
    fn destination_url(&self, target: &Backend) -> String {
        target
            .addr
            .as_inet()
            .and_then(|a| {
                self.upstreams
                    .load()
                    .get(a)
                    .map(|u| u.destination.url.clone())
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl HealthCheck for ClusterHealthCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        match self.probes.get(&self.destination_url(target)) {
            Some(Probe::Http(p)) => p.check(target).await,
            Some(Probe::Tcp(p)) => p.check(target).await,
            None => Error::e_explain(ErrorType::InternalError, "no probe for this destination"),
        }
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        let destination = self.destination_url(target);
        let destination = destination.as_str();
        let address = target.addr.to_string();
        if healthy {
            tracing::info!(cluster = %self.cluster, destination, address, "destination is healthy again");
        } else {
            tracing::warn!(cluster = %self.cluster, destination, address, "destination failed its health check; taken out of rotation");
        }
        self.metrics
            .upstream_health(&self.cluster, destination, &address, healthy);
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.healthy_threshold
        } else {
            self.unhealthy_threshold
        }
    }
}
