//! Builds the Pingora server: the proxy service, the admin service and the background tasks
//! (cluster discovery and health checks, lifecycle), then runs it until shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::proxy::ProxyServiceBuilder;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::{Admin, Lifecycle, Readiness};
use crate::bff::Bff;
use crate::config::{Config, StoreKind};
use crate::metrics::Metrics;
use crate::oidc::{DiscoveryService, IdentityProvider};
use crate::proxy::Gateway;
use crate::session::cache::SessionCache;
use crate::session::service::{SessionStore, StoreService};
use crate::session::Sessions;
use crate::token::Tokens;
use crate::upstream::{Cluster, RouteTable};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start a runtime for initial discovery: {0}")]
    Runtime(std::io::Error),
    #[error("cannot listen with TLS on {addr}: {message}")]
    Tls { addr: String, message: String },
    #[error("invalid OIDC settings: {0}")]
    Oidc(String),
    #[error("invalid session settings: {0}")]
    Session(String),
    #[error("{key} {addr} cannot be bound: {source} (another process listens there, or the address is not local)")]
    Bind {
        key: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// How the process was asked to start, beyond the config file.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunOptions {
    /// Take over the listening sockets of a running instance (zero-downtime upgrade).
    pub upgrade: bool,
    /// Detach into the background.
    pub daemon: bool,
}

pub fn run(config: Config, options: RunOptions) -> Result<(), AppError> {
    // Pingora retries a busy port for 30 s and then panics in the listener's thread, leaving a
    // process whose admin port answers while nothing serves traffic. Fail fast instead. (An
    // upgrade takes the sockets over from the running process, so the ports are busy by design.)
    if !options.upgrade {
        for (key, addr) in [
            ("server.listen", config.server.listen),
            ("admin.listen", config.admin.listen),
        ] {
            std::net::TcpListener::bind(addr).map_err(|source| AppError::Bind {
                key,
                addr,
                source,
            })?;
        }
    }
    let metrics = Arc::new(Metrics::new()?);
    crate::audit::install(metrics.audit_events.clone());
    let trace_export = crate::telemetry::traces::install(&config.telemetry, metrics.traces.clone());
    let readiness = Arc::new(Readiness::default());
    let opt = Opt {
        upgrade: options.upgrade,
        daemon: options.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&config));
    server.bootstrap();

    let mut clusters = HashMap::new();
    for (name, cluster_config) in &config.clusters {
        let (cluster, service) = Cluster::build(name, cluster_config.clone(), metrics.clone());
        if let Some(service) = service {
            server.add_service(service);
        }
        clusters.insert(name.clone(), cluster);
    }
    resolve_now(clusters.values())?;
    let routes = RouteTable::new(&config.routes, |name| clusters.get(name).cloned(), &metrics);

    let store = Arc::new(SessionStore::new(metrics.sessions.store_degraded.clone()));
    readiness.register(store.clone());
    let cache = Arc::new(SessionCache::new(
        config.session.cache_size,
        config.session.cache_max_age,
        // Redis must report that it tracks reads before any is cached.
        config.session.store == StoreKind::Redis,
        metrics.sessions.clone(),
    ));
    let sessions = Arc::new(
        Sessions::new(&config.session, store.clone(), cache.clone()).map_err(AppError::Session)?,
    );
    let idp = IdentityProvider::from_config(&config)
        .map_err(AppError::Oidc)?
        .map(|idp| Arc::new(idp.with_metrics(metrics.idp.clone())));
    let tokens = Arc::new(Tokens::new(
        &config.tokens,
        sessions.clone(),
        idp.clone(),
        metrics.tokens.clone(),
    ));
    let bff = Arc::new(
        Bff::new(&config, sessions.clone(), idp.clone())
            .with_revocation_metric(metrics.tokens.sessions_revoked.clone()),
    );
    let gateway = Gateway::new(&config, routes, metrics.clone(), bff, tokens);
    let mut server_options = HttpServerOptions::default();
    server_options.keepalive_request_limit = Some(config.pingora.keepalive_request_limit);
    let mut proxy = ProxyServiceBuilder::new(&server.configuration, gateway)
        .name("portcullis proxy")
        .server_options(server_options)
        .build();
    let listen = config.server.listen.to_string();
    match &config.server.tls {
        None => proxy.add_tcp(&listen),
        Some(tls) => proxy
            .add_tls(
                &listen,
                &tls.cert_file.to_string_lossy(),
                &tls.key_file.to_string_lossy(),
            )
            .map_err(|e| AppError::Tls {
                addr: listen.clone(),
                message: e.to_string(),
            })?,
    }

    let mut admin = Service::new(
        "portcullis admin".to_string(),
        HttpServer::new_app(Admin {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            sessions_api: config.admin.sessions_api_token.as_ref().map(|token| {
                crate::admin::sessions::SessionsApi {
                    sessions: sessions.clone(),
                    token: token.expose().to_string(),
                    revoked: metrics.tokens.sessions_revoked.clone(),
                }
            }),
        }),
    );
    admin.add_tcp(&config.admin.listen.to_string());
    admin.threads = Some(1);

    server.add_service(proxy);
    server.add_service(admin);
    let store_service = StoreService::new(&config, store, cache);
    let mut store_service = background_service("session store", store_service);
    // fred runs every Redis connection's I/O on the runtime that connected it: this service's.
    // One thread would carry the Redis traffic of every proxy thread (the authenticated-path
    // profile in docs/benchmarks.md shows ~19 % of the gateway's CPU there at one proxy thread),
    // so the pool's connections get as many threads as there are cores, up to the pool size.
    store_service.threads = Some(
        config
            .redis
            .as_ref()
            .map_or(1, |r| r.pool_size)
            .min(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
    );
    server.add_service(store_service);
    if let (Some(oidc), Some(idp)) = (&config.oidc, idp) {
        readiness.register(idp.clone());
        let discovery = DiscoveryService::new(&oidc.issuer, oidc.discovery_refresh, idp)
            .map_err(AppError::Oidc)?;
        server.add_service(background_service("oidc discovery", discovery));
    }
    if config.session.dev_insecure_cookie {
        tracing::warn!(
            "session.dev_insecure_cookie = true: the session cookie is sent over plain http and \
             loses its __Host- protection. NEVER use this outside local development."
        );
    }
    if let Some(export) = trace_export {
        tracing::info!(
            endpoint = config.telemetry.export_url().map_or("-", |u| u.as_str()),
            "exporting traces"
        );
        server.add_service(background_service("trace export", export));
    }
    let shutdown_readiness = readiness.clone();
    server.add_service(background_service("lifecycle", Lifecycle(readiness)));

    if config.server.public_origin.is_none() {
        tracing::warn!("server.public_origin is not set; set it to the origin the browser sees before enabling login");
    }
    tracing::info!(
        listen = %config.server.listen,
        admin = %config.admin.listen,
        clusters = config.clusters.len(),
        routes = config.routes.len(),
        version = env!("CARGO_PKG_VERSION"),
        "portcullis starting"
    );
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    server.run(RunArgs {
        shutdown_signal: Box::new(GracefulOnInterrupt {
            delay: config.pingora.shutdown_delay,
            readiness: shutdown_readiness,
        }),
    });
    Ok(())
}

fn server_conf(config: &Config) -> ServerConf {
    let p = &config.pingora;
    ServerConf {
        threads: p.threads,
        work_stealing: p.work_stealing,
        grace_period_seconds: Some(p.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(p.graceful_shutdown_timeout.as_secs()),
        upstream_keepalive_pool_size: p.upstream_keepalive_pool_size,
        listener_tasks_per_fd: p.listener_tasks_per_fd,
        upgrade_sock: p.upgrade_sock.clone(),
        pid_file: p.pid_file.clone(),
        ..ServerConf::default()
    }
}

/// Resolves every cluster once before serving, on a short-lived runtime: Pingora owns the
/// long-lived ones, and they only exist once `run` starts.
fn resolve_now<'a>(clusters: impl Iterator<Item = &'a Arc<Cluster>>) -> Result<(), AppError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AppError::Runtime)?;
    #[allow(
        clippy::disallowed_methods,
        reason = "start-up, before Pingora's runtimes exist"
    )]
    rt.block_on(async {
        for cluster in clusters {
            cluster.discover_now().await;
        }
    });
    Ok(())
}

/// Pingora treats SIGINT as "exit now"; a gateway should drain on Ctrl-C too, like SIGTERM.
/// SIGQUIT keeps its meaning: hand the listeners to a new process (`run --upgrade`).
///
/// With `pingora.shutdown_delay`, a SIGTERM first only turns `/readyz` to 503 while the
/// listeners keep serving: Kubernetes and Azure Container Apps keep sending new connections
/// for a few seconds until their endpoints update, and a listener closed at once would refuse
/// them (the distroless image has no `sleep` for a preStop hook). A second signal ends the
/// delay early.
struct GracefulOnInterrupt {
    delay: std::time::Duration,
    readiness: Arc<Readiness>,
}

#[async_trait]
impl ShutdownSignalWatch for GracefulOnInterrupt {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; only SIGKILL will stop this process");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = quit.recv() => return ShutdownSignal::GracefulUpgrade,
        }
        if !self.delay.is_zero() {
            self.readiness.set_draining();
            tracing::info!(
                delay = ?self.delay,
                "shutdown requested: /readyz now answers 503; still serving until the delay ends"
            );
            tokio::select! {
                _ = tokio::time::sleep(self.delay) => {}
                _ = term.recv() => tracing::info!("second signal: ending the shutdown delay early"),
                _ = int.recv() => tracing::info!("second signal: ending the shutdown delay early"),
            }
        }
        ShutdownSignal::GracefulTerminate
    }
}
