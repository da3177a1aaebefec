//! Where Redis is and how to talk to it: the endpoint (server or cluster), credentials, TLS
//! (with an optional private CA), timeouts, and the client builder every connection uses.

use std::time::Duration;

use fred::prelude::{Builder, Config as FredConfig, ReconnectPolicy, ServerConfig};
use fred::types::config::TlsConnector;

use super::super::store::StoreError;

/// Where Redis is and how to talk to it.
#[derive(Clone)]
pub struct RedisOptions {
    pub endpoint: Endpoint,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to Redis (`rediss://` implies it).
    pub tls: bool,
    /// PEM CA certificates to trust instead of the system's (a private CA, self-signed Redis).
    pub ca_file: Option<std::path::PathBuf>,
    pub key_prefix: String,
    pub command_timeout: Duration,
    pub connect_timeout: Duration,
    pub pool_size: usize,
    /// How long the by-user and by-IdP-session indexes live after their last write; set it to
    /// the absolute session lifetime.
    pub index_ttl: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `redis://[user:pass@]host:port[/db]` or `rediss://...`.
    Url(String),
    /// One or more seed nodes of a Redis Cluster.
    Cluster(Vec<(String, u16)>),
    /// One standalone server.
    Standalone(String, u16),
}

impl RedisOptions {
    pub fn new(endpoint: Endpoint) -> Self {
        RedisOptions {
            endpoint,
            username: None,
            password: None,
            tls: false,
            ca_file: None,
            key_prefix: "portcullis".into(),
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            pool_size: 4,
            index_ttl: Duration::from_secs(24 * 3600),
        }
    }

    /// From a StackExchange.Redis connection string the configuration already read: one node
    /// is a standalone server unless `cluster`, several make a cluster.
    pub fn from_stackexchange(cs: &crate::config::StackExchange, cluster: bool) -> RedisOptions {
        let endpoint = match cs.nodes.as_slice() {
            [(host, port)] if !cluster => Endpoint::Standalone(host.clone(), *port),
            nodes => Endpoint::Cluster(nodes.to_vec()),
        };
        RedisOptions {
            username: cs.username.clone(),
            password: cs.password.clone(),
            tls: cs.ssl,
            ..RedisOptions::new(endpoint)
        }
    }

    pub(super) fn fred_config(&self) -> Result<FredConfig, StoreError> {
        let mut config = match &self.endpoint {
            Endpoint::Url(url) => FredConfig::from_url(url)
                .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?,
            Endpoint::Cluster(nodes) => FredConfig {
                server: ServerConfig::new_clustered(nodes.clone()),
                ..FredConfig::default()
            },
            Endpoint::Standalone(host, port) => FredConfig {
                server: ServerConfig::new_centralized(host.clone(), *port),
                ..FredConfig::default()
            },
        };
        if self.username.is_some() {
            config.username = self.username.clone();
        }
        if self.password.is_some() {
            config.password = self.password.clone();
        }
        let url_tls = matches!(&self.endpoint, Endpoint::Url(u) if u.starts_with("rediss"));
        // `rediss://` URLs come with fred's default connector (system roots); a configured CA
        // replaces it.
        if (self.tls || url_tls) && (config.tls.is_none() || self.ca_file.is_some()) {
            let connector = match &self.ca_file {
                Some(path) => private_ca(path)?,
                None => TlsConnector::default_rustls().map_err(|e| {
                    StoreError::Unavailable(format!("cannot set up TLS to Redis: {e}"))
                })?,
            };
            config.tls = Some(connector.into());
        }
        Ok(config)
    }
}

/// A TLS connector that trusts exactly the CA certificates in `path`.
fn private_ca(path: &std::path::Path) -> Result<TlsConnector, StoreError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let problem =
        |e: String| StoreError::Unavailable(format!("redis.ca_file {}: {e}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| problem(e.to_string()))? {
        roots
            .add(cert.map_err(|e| problem(e.to_string()))?)
            .map_err(|e| problem(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(problem("no certificate in the file".into()));
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(config))
}

/// A client builder with the gateway's timeouts and reconnect policy.
pub(super) fn builder(config: FredConfig, options: &RedisOptions) -> Builder {
    let (command_timeout, connect_timeout) = (options.command_timeout, options.connect_timeout);
    let mut builder = Builder::from_config(config);
    builder
        .with_performance_config(|p| p.default_command_timeout = command_timeout)
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            c.internal_command_timeout = connect_timeout;
            c.max_command_attempts = 2;
        })
        // Reconnect forever, from 100 ms up to 5 s between attempts.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_string_makes_a_server_or_a_cluster() {
        let read = |s: &str| crate::config::parse_stackexchange(s).unwrap();
        let o =
            RedisOptions::from_stackexchange(&read("contoso:6380,password=s3cret,ssl=True"), false);
        assert_eq!(o.endpoint, Endpoint::Standalone("contoso".into(), 6380));
        assert_eq!(o.password.as_deref(), Some("s3cret"));
        assert!(o.tls);
        let o = RedisOptions::from_stackexchange(&read("a:7000,b:7001,user=app"), false);
        assert_eq!(
            o.endpoint,
            Endpoint::Cluster(vec![("a".into(), 7000), ("b".into(), 7001)])
        );
        assert_eq!(o.username.as_deref(), Some("app"));
        let o = RedisOptions::from_stackexchange(&read("one.example,ssl=true"), true);
        assert_eq!(
            o.endpoint,
            Endpoint::Cluster(vec![("one.example".into(), 6380)])
        );
    }
}
