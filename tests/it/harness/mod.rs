//! Test harness: real upstream servers and a real gateway process, each stopped on drop.

pub mod gateway;
pub mod idp;
pub mod redis;
pub mod tls;
pub mod upstream;

pub use gateway::{Gateway, GatewayConfig};
pub use upstream::Upstream;

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

/// Reserves a free loopback port (released immediately, so the gateway can bind it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
