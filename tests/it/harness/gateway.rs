//! Starts the `portcullis` binary with a generated config and waits until it serves.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::{client, eventually, free_port};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Builds the config text: fixed test-friendly `[server]`/`[admin]`/`[pingora]`, plus the
/// clusters and routes a test asks for.
#[derive(Default)]
pub struct GatewayConfig {
    body: String,
    server_extra: String,
    env: BTreeMap<String, String>,
    port: Option<u16>,
}

impl GatewayConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// The common setup: every path to one upstream (cluster `api`, route `/`).
    pub fn in_front_of(upstream: &super::Upstream) -> Self {
        Self::new()
            .cluster("api", &[upstream.url()], "")
            .route("/", "api", "")
    }

    /// Raw TOML appended after the generated sections (clusters, routes, ...).
    pub fn toml(mut self, text: &str) -> Self {
        self.body.push_str(text);
        self.body.push('\n');
        self
    }

    /// A cluster with the given destinations and extra keys (TOML lines).
    pub fn cluster(self, name: &str, destinations: &[String], extra: &str) -> Self {
        let list = destinations
            .iter()
            .map(|d| format!("{d:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.toml(&format!(
            "[clusters.{name}]\ndestinations = [{list}]\n{extra}"
        ))
    }

    pub fn route(self, path: &str, cluster: &str, extra: &str) -> Self {
        self.toml(&format!(
            "[[routes]]\npath = {path:?}\ncluster = {cluster:?}\n{extra}"
        ))
    }

    /// Extra keys for `[server]`.
    pub fn server(mut self, lines: &str) -> Self {
        self.server_extra.push_str(lines);
        self.server_extra.push('\n');
        self
    }

    /// Listen on this port (e.g. one already registered as a redirect URI at the test OP).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub async fn start(self) -> Gateway {
        Gateway::start(self).await
    }
}

pub struct Gateway {
    child: Child,
    pub port: u16,
    pub admin_port: u16,
    dir: PathBuf,
}

impl Gateway {
    async fn start(cfg: GatewayConfig) -> Gateway {
        let port = cfg.port.unwrap_or_else(free_port);
        let admin_port = free_port();
        let dir = scratch_dir();
        let config_path = dir.join("portcullis.toml");
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{}\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n\
             [pingora]\nthreads = 1\ngrace_period = \"1s\"\ngraceful_shutdown_timeout = \"1s\"\n\
             upgrade_sock = \"{}\"\npid_file = \"{}\"\n\n{}",
            cfg.server_extra,
            dir.join("upgrade.sock").display(),
            dir.join("portcullis.pid").display(),
            cfg.body
        );
        std::fs::write(&config_path, text).unwrap();
        let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&config_path)
            .envs(&cfg.env)
            .env(
                "RUST_LOG",
                std::env::var("PORTCULLIS_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start portcullis");
        let mut gw = Gateway {
            child,
            port,
            admin_port,
            dir,
        };
        gw.wait_ready().await;
        gw
    }

    async fn wait_ready(&mut self) {
        // Liveness, not readiness: tests of readiness (a session store that is down) need a
        // running gateway that is not ready.
        let url = self.admin_url("/healthz");
        let http = client();
        let start = tokio::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "portcullis exited during start with {status}:\n{}",
                    self.log()
                );
            }
            if let Ok(r) = http.get(&url).send().await {
                if r.status() == 200 {
                    // The proxy listener starts alongside the admin one; make sure it accepts too.
                    if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                        return;
                    }
                }
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("portcullis did not become ready:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Sends SIGTERM to this gateway's PID.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Kills the process now (SIGKILL): a crash, not a shutdown.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit on its own and returns whether it exited cleanly.
    pub async fn wait_exit(&mut self, deadline: Duration) -> bool {
        let child = &mut self.child;
        eventually("the gateway to exit", deadline, || {
            let r = child.try_wait().unwrap().map(|s| s.success());
            async move { r }
        })
        .await
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- gateway log ----\n{}", self.log());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-it-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
