//! Destination discovery: resolves each destination's host name to addresses.
//!
//! Names are re-resolved every `resolve_interval`, so a Kubernetes headless service or an Azure
//! Container Apps internal FQDN that moves is followed without a restart. A name that fails to
//! resolve keeps its last known addresses rather than emptying the cluster.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::config::{ClusterConfig, Destination};
use crate::metrics::Metrics;

use super::addresses::{Upstream, Upstreams};

pub struct Discovery {
    cluster: String,
    /// Published after each discovery: address -> destination and ready-made peer. Kept out of
    /// `Backend.ext`, which Pingora clones on every `select`.
    upstreams: Upstreams,
    destinations: Vec<Arc<Destination>>,
    template: ClusterConfig,
    metrics: Arc<Metrics>,
    last_known: Mutex<HashMap<String, Vec<std::net::SocketAddr>>>,
}

impl Discovery {
    pub fn new(
        cluster: &str,
        config: &ClusterConfig,
        metrics: Arc<Metrics>,
        upstreams: Upstreams,
    ) -> Self {
        Discovery {
            cluster: cluster.to_string(),
            upstreams,
            destinations: config.destinations.iter().cloned().map(Arc::new).collect(),
            template: config.clone(),
            metrics,
            last_known: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any destination is a name (not an IP literal) and so needs re-resolving.
    pub fn has_names(&self) -> bool {
        self.destinations
            .iter()
            .any(|d| d.bare_host().parse::<IpAddr>().is_err())
    }

    async fn resolve(&self, d: &Destination) -> Vec<std::net::SocketAddr> {
        if let Ok(ip) = d.bare_host().parse::<IpAddr>() {
            return vec![std::net::SocketAddr::new(ip, d.port)];
        }
        match tokio::net::lookup_host((d.bare_host(), d.port)).await {
            Ok(addrs) => {
                let addrs: Vec<_> = addrs.collect();
                if let Ok(mut known) = self.last_known.lock() {
                    known.insert(d.url.clone(), addrs.clone());
                }
                addrs
            }
            Err(e) => {
                tracing::warn!(cluster = %self.cluster, destination = %d.url, error = %e, "cannot resolve destination; keeping its last known addresses");
                self.last_known
                    .lock()
                    .ok()
                    .and_then(|k| k.get(&d.url).cloned())
                    .unwrap_or_default()
            }
        }
    }

    fn upstream(&self, d: &Arc<Destination>, addr: std::net::SocketAddr) -> Upstream {
        let c = &self.template;
        let mut peer = HttpPeer::new(addr, d.tls, d.bare_host().to_string());
        peer.options.connection_timeout = Some(c.connect_timeout);
        peer.options.total_connection_timeout = Some(c.connect_timeout * 2);
        peer.options.read_timeout = Some(c.read_timeout);
        peer.options.write_timeout = Some(c.write_timeout);
        peer.options.idle_timeout = Some(c.idle_timeout);
        peer.options.verify_cert = c.tls_verify;
        peer.options.verify_hostname = c.tls_verify;
        Upstream {
            destination: d.clone(),
            peer,
        }
    }
}

#[async_trait]
impl ServiceDiscovery for Discovery {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let mut backends = BTreeSet::new();
        let mut upstreams = HashMap::new();
        for d in &self.destinations {
            for addr in self.resolve(d).await {
                if upstreams.contains_key(&addr) {
                    continue;
                }
                if !self.upstreams.load().contains_key(&addr) {
                    self.metrics
                        .upstream_health(&self.cluster, &d.url, &addr.to_string(), true);
                }
                upstreams.insert(addr, Arc::new(self.upstream(d, addr)));
                backends.insert(Backend {
                    addr: SocketAddr::Inet(addr),
                    weight: 1,
                    ext: Default::default(),
                });
            }
        }
        if backends.is_empty() {
            // An error keeps the previous set instead of emptying the cluster.
            return Error::e_explain(
                ErrorType::ConnectNoRoute,
                format!("no destination of cluster {} resolved", self.cluster),
            );
        }
        for (addr, gone) in self.upstreams.load().iter() {
            if !upstreams.contains_key(addr) {
                self.metrics.forget_upstream(
                    &self.cluster,
                    &gone.destination.url,
                    &addr.to_string(),
                );
            }
        }
        self.upstreams.store(Arc::new(upstreams));
        Ok((backends, HashMap::new()))
    }
}
