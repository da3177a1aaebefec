//! Anonymous traffic cannot grow server state: a flood of `/bff/login` calls (each a login that
//! never comes back) writes nothing to Redis, barely moves the gateway's memory, and real users
//! keep logging in meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::login;
use crate::harness::redis::RedisServer;
use crate::harness::{client, UserAgent};

const CALLS: usize = 100_000;
const WORKERS: usize = 32;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn used_memory(redis: &RedisServer) -> u64 {
    redis
        .cli(&["info", "memory"])
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_flood_of_abandoned_logins_grows_neither_redis_nor_the_gateway() {
    let redis = RedisServer::start();
    // The worst case: no login rate limit (every call here comes from one address, which the
    // limit would otherwise answer with 429 after the first few dozen).
    let stack = login::start_with(
        &redis.session_toml(),
        &[("PORTCULLIS__RATE_LIMITS__LOGIN", "0")],
    )
    .await;
    let gw = &stack.gw;
    // Warm up the process (allocator, connection pools) before measuring.
    let mut ua = UserAgent::new();
    assert_eq!(login::login(&mut ua, gw, "/", "vera").await.status, 302);
    let keys_before = redis.cli(&["dbsize"]).trim().to_string();
    let (redis_before, rss_before) = (used_memory(&redis), rss_kib(gw.pid()));

    let sent = Arc::new(AtomicUsize::new(0));
    let url = gw.url("/bff/login?returnUrl=/flood");
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (sent, url, http) = (sent.clone(), url.clone(), client());
        workers.push(tokio::spawn(async move {
            let mut redirects = 0usize;
            while sent.fetch_add(1, Ordering::Relaxed) < CALLS && Instant::now() < deadline {
                let r = http.get(&url).send().await.unwrap();
                redirects += usize::from(r.status() == 302);
            }
            redirects
        }));
    }
    // A real user logs in while the flood runs.
    let mut real = UserAgent::new();
    let back = login::login(&mut real, gw, "/during", "wes").await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert_eq!(login::user(&mut real, gw).await.status, 200);
    let mut redirected = 0;
    for w in workers {
        redirected += w.await.unwrap();
    }
    assert_eq!(redirected, CALLS, "every flood call started a login");

    let keys_after = redis.cli(&["dbsize"]).trim().to_string();
    let redis_growth = used_memory(&redis).saturating_sub(redis_before);
    let rss_growth_kib = rss_kib(gw.pid()).saturating_sub(rss_before);
    eprintln!(
        "flood: {CALLS} logins; Redis keys {keys_before} -> {keys_after}, +{redis_growth} bytes; gateway RSS +{rss_growth_kib} KiB"
    );
    // The real user's session is the only thing the flood's time added to Redis.
    assert!(
        redis_growth < 10 * 1024 * 1024,
        "Redis grew {redis_growth} bytes"
    );
    assert!(
        rss_growth_kib < 50 * 1024,
        "the gateway grew {rss_growth_kib} KiB"
    );
    let before: u64 = keys_before.parse().unwrap();
    let after: u64 = keys_after.parse().unwrap();
    assert!(
        after <= before + 4,
        "anonymous logins wrote to Redis: {before} -> {after} keys"
    );
}
