//! A cluster: its destinations behind a round-robin load balancer, and how to reach them.

use std::sync::Arc;

use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::services::background::{background_service, GenBackgroundService};

use crate::config::ClusterConfig;
use crate::metrics::Metrics;

use super::addresses::{Upstream, Upstreams};
use super::discovery::Discovery;
use super::health::ClusterHealthCheck;

pub struct Cluster {
    pub name: String,
    pub config: ClusterConfig,
    lb: Arc<LoadBalancer<RoundRobin>>,
    upstreams: Upstreams,
}

/// Pingora's iteration bound for `select`; round robin needs at most one pass.
const MAX_SELECT_ITERATIONS: usize = 256;

impl Cluster {
    /// Builds the cluster and, when it has work to do, the background service that refreshes
    /// its destinations (DNS) and runs its health checks. That service must be added to the
    /// server, or neither happens. A cluster of IP literals without health checks needs none
    /// (Pingora would start it only to log that it exited).
    pub fn build(
        name: &str,
        config: ClusterConfig,
        metrics: Arc<Metrics>,
    ) -> (
        Arc<Cluster>,
        Option<GenBackgroundService<LoadBalancer<RoundRobin>>>,
    ) {
        let upstreams: Upstreams = Arc::default();
        let discovery = Discovery::new(name, &config, metrics.clone(), upstreams.clone());
        let needs_refresh = discovery.has_names();
        let mut lb = LoadBalancer::from_backends(Backends::new(Box::new(discovery)));
        lb.update_frequency = needs_refresh.then_some(config.resolve_interval);
        if let Some(hc) = &config.health_check {
            lb.health_check_frequency = Some(hc.interval);
            lb.parallel_health_check = true;
            lb.set_health_check(Box::new(ClusterHealthCheck::new(
                name,
                &config,
                hc,
                metrics,
                upstreams.clone(),
            )));
        }
        let busy = needs_refresh || config.health_check.is_some();
        let service = background_service(&format!("cluster {name}"), lb);
        let cluster = Arc::new(Cluster {
            name: name.to_string(),
            config,
            lb: service.task(),
            upstreams,
        });
        (cluster, busy.then_some(service))
    }

    /// Resolves destinations once, so the first requests after start do not race the
    /// background service's first discovery.
    pub async fn discover_now(&self) {
        if let Err(e) = self.lb.update().await {
            tracing::warn!(cluster = %self.name, error = %e, "initial destination discovery failed; retrying in the background");
        }
    }

    /// The next healthy destination in round-robin order, avoiding `avoid` (the one that just
    /// failed) when another is available.
    pub fn select(&self, avoid: Option<&Backend>) -> Option<Backend> {
        match avoid {
            None => self.lb.select(b"", MAX_SELECT_ITERATIONS),
            Some(bad) => self
                .lb
                .select_with(b"", MAX_SELECT_ITERATIONS, |b, healthy| healthy && b != bad)
                .or_else(|| self.lb.select(b"", MAX_SELECT_ITERATIONS)),
        }
    }

    /// The destination and peer behind a selected backend.
    pub fn upstream(&self, backend: &Backend) -> Option<Arc<Upstream>> {
        let addr = backend.addr.as_inet()?;
        self.upstreams.load().get(addr).cloned()
    }

    /// How many addresses the cluster currently has, healthy or not.
    pub fn size(&self) -> usize {
        self.lb.backends().get_backend().len()
    }

    #[cfg(test)]
    pub fn for_tests(name: &str, config: ClusterConfig) -> Arc<Cluster> {
        let metrics = Arc::new(crate::metrics::Metrics::new().unwrap());
        Cluster::build(name, config, metrics).0
    }
}
