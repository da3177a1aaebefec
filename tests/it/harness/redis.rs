//! Real Redis from Debian's `redis-server`: a standalone server or a 6-node cluster
//! (3 masters, 3 replicas) made with `redis-cli --cluster create`. Stopped by PID on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::gateway::scratch_dir;

/// The session encryption key every replica of a test shares.
pub const SESSION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// `[session]` and `[redis]` for sessions in Redis at `redis_line` (`url = ...`, ...).
fn session_toml(redis_line: &str) -> String {
    format!(
        "[session]\nstore = \"redis\"\nencryption_keys = [\"{SESSION_KEY}\"]\n[redis]\n{redis_line}\n"
    )
}

pub struct RedisServer {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    password: Option<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::spawn(&[], None)
    }

    /// On a given port (to bring Redis up where a gateway already looks for it).
    pub fn start_on(port: u16) -> RedisServer {
        Self::spawn_on(port, &[], None)
    }

    /// A server that also listens with TLS on the returned port, with `ca`'s server certificate.
    pub fn with_tls(ca: &super::tls::PrivateCa) -> (RedisServer, u16) {
        let tls_port = free_port();
        let (port, cert, key, ca) = (
            tls_port.to_string(),
            ca.cert.display().to_string(),
            ca.key.display().to_string(),
            ca.ca.display().to_string(),
        );
        let server = Self::spawn(
            &[
                "--tls-port",
                &port,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                "no",
            ],
            None,
        );
        (server, tls_port)
    }

    /// A server started with extra `redis-server` arguments.
    pub fn with_args(extra: &[&str]) -> RedisServer {
        Self::spawn(extra, None)
    }

    /// A server that only answers clients that authenticate with `password`.
    pub fn with_password(password: &str) -> RedisServer {
        Self::spawn(&["--requirepass", password], Some(password))
    }

    fn spawn(extra: &[&str], password: Option<&str>) -> RedisServer {
        Self::spawn_on(free_port(), extra, password)
    }

    fn spawn_on(port: u16, extra: &[&str], password: Option<&str>) -> RedisServer {
        let dir = scratch_dir();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt install redis-server)");
        let server = RedisServer {
            child,
            port,
            dir,
            password: password.map(String::from),
        };
        server.wait_for(|out| out.trim() == "PONG", &["ping"]);
        server
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--no-auth-warning", "-a", p.as_str()]),
            )
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, ok: impl Fn(&str) -> bool, args: &[&str]) {
        let start = Instant::now();
        while !ok(&self.cli(args)) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "redis on {} not ready for {args:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Gateway config keeping sessions in this server.
    pub fn session_toml(&self) -> String {
        session_toml(&format!("url = \"redis://127.0.0.1:{}\"", self.port))
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} redis {}", self.port);
    }

    /// Whether this node is a master (of a cluster) right now.
    pub fn is_master(&self) -> bool {
        self.cli(&["role"]).lines().next() == Some("master")
    }

    /// Every key and value this server holds under `pattern`, as `key value` lines.
    pub fn dump(&self, pattern: &str) -> String {
        let mut out = String::new();
        for key in self.cli(&["--scan", "--pattern", pattern]).lines() {
            out.push_str(key);
            out.push(' ');
            out.push_str(&self.cli(&["get", key]));
            out.push_str(&self.cli(&["smembers", key]));
            out.push('\n');
        }
        out
    }

    /// Stops the server now (an outage), keeping the handle for its port.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|_| {
                // The bus port defaults to port + 10000, which may be taken (or past 65535).
                let bus = free_port().to_string();
                RedisServer::spawn(
                    &[
                        "--cluster-port",
                        &bus,
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                        // Replicas sync at once (the default waits 5 s for more replicas).
                        "--repl-diskless-sync-delay",
                        "0",
                    ],
                    None,
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for node in &nodes {
            node.wait_for(|out| out.contains("cluster_state:ok"), &["cluster", "info"]);
        }
        // Every replica holds its master's data before any test relies on a failover.
        for node in &nodes {
            node.wait_for(
                |out| out.contains("role:master") || out.contains("master_link_status:up"),
                &["info", "replication"],
            );
        }
        RedisCluster { nodes }
    }

    /// Gateway config keeping sessions in this cluster.
    pub fn session_toml(&self) -> String {
        let nodes = self
            .seeds()
            .iter()
            .map(|(h, p)| format!("\"{h}:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        session_toml(&format!("cluster_nodes = [{nodes}]"))
    }

    /// The master that holds the session of the user `sub` (found by its stored record).
    pub fn master_of_session(&self, sub: &str) -> Option<usize> {
        let needle = format!("\"sub\":\"{sub}\"");
        self.nodes.iter().position(|n| {
            n.is_master()
                && n.dump("portcullis:{*}:s")
                    .lines()
                    .any(|l| l.contains(&needle))
        })
    }

    pub fn seeds(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .take(3)
            .map(|n| ("127.0.0.1".to_string(), n.port))
            .collect()
    }
}
