//! Test harness: real upstream servers and a real gateway process, each stopped on drop.

pub mod gateway;
pub mod idp;
pub mod jwt;
pub mod login;
pub mod nginx;
pub mod otlp;
pub mod redis;
pub mod tls;
pub mod upstream;
pub mod user_agent;

pub use gateway::{Gateway, GatewayConfig};
pub use upstream::Upstream;
pub use user_agent::UserAgent;

use std::time::Duration;

/// Polls `probe` until it returns `Some`, failing the test with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain client: no redirects followed, no proxy from the environment, no connection reuse
/// surprises between tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends `request` as raw bytes (for requests a client library would refuse or normalise) and
/// returns everything the gateway answered until it closed the connection. The time bound only
/// turns a hang into a failed assertion; it asserts nothing about speed.
pub async fn raw_http(port: u16, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `portcullis check` on `text` with `env` set, as a user would.
pub fn portcullis_check(text: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = gateway::scratch_dir();
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config"])
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
    out
}

/// A free loopback port for a server the test starts later (so nothing holds it meanwhile).
///
/// Not a port-0 bind: the kernel hands a just-released ephemeral port straight out again — to
/// the next `free_port` call (a gateway got the same port for its proxy and admin listeners) or
/// to any outgoing connection — and tests run in parallel processes. Ports are drawn at random
/// below the ephemeral range (32768+ on Linux), which the kernel never assigns by itself, are
/// checked to be bindable, and are never handed out twice by one process.
pub fn free_port() -> u16 {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let mut rng = rand::thread_rng();
    for _ in 0..1000 {
        let port = rng.gen_range(20_000..32_000);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}
