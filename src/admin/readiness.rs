//! Readiness: the gateway is ready when its configuration is loaded, it is not draining, and
//! every registered dependency check passes (the session store and the IdP register theirs).
//!
//! A dependency every replica shares (the Redis session store) only *degrades* readiness: were
//! it to make replicas unready, one Redis outage would take every replica out of the load
//! balancer at once, and pages that need no session would go dark with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

pub use crate::dependency::DependencyCheck;

#[derive(Default)]
pub struct Readiness {
    draining: AtomicBool,
    checks: RwLock<Vec<Arc<dyn DependencyCheck>>>,
}

pub struct Report {
    pub ready: bool,
    entries: Vec<Entry>,
}

struct Entry {
    name: &'static str,
    result: Result<(), String>,
    degrades_only: bool,
}

impl Report {
    /// `{"ready": true, "checks": {"lifecycle": "ok", "session_store": "degraded"},
    /// "degraded": {"session_store": "<why>"}}`; a failing check that makes the gateway unready
    /// shows its reason under `checks`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut checks = serde_json::Map::new();
        let mut degraded = serde_json::Map::new();
        for e in &self.entries {
            let v = match (&e.result, e.degrades_only) {
                (Ok(()), _) => "ok".to_string(),
                (Err(reason), true) => {
                    degraded.insert(e.name.to_string(), reason.clone().into());
                    "degraded".to_string()
                }
                (Err(reason), false) => reason.clone(),
            };
            checks.insert(e.name.to_string(), v.into());
        }
        let mut body = serde_json::json!({ "ready": self.ready, "checks": checks });
        if !degraded.is_empty() {
            body["degraded"] = degraded.into();
        }
        let mut out = body.to_string();
        out.push('\n');
        out.into_bytes()
    }
}

impl Readiness {
    pub fn register(&self, check: Arc<dyn DependencyCheck>) {
        if let Ok(mut checks) = self.checks.write() {
            checks.push(check);
        }
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn report(&self) -> Report {
        let mut entries = vec![Entry {
            name: "lifecycle",
            result: if self.draining.load(Ordering::Acquire) {
                Err("draining for shutdown".to_string())
            } else {
                Ok(())
            },
            degrades_only: false,
        }];
        if let Ok(checks) = self.checks.read() {
            entries.extend(checks.iter().map(|c| Entry {
                name: c.name(),
                result: c.check(),
                degrades_only: c.degrades_only(),
            }));
        }
        Report {
            ready: entries.iter().all(|e| e.result.is_ok() || e.degrades_only),
            entries,
        }
    }
}

/// Marks the gateway as draining the moment Pingora starts a graceful shutdown, so load
/// balancers stop sending new traffic while in-flight requests finish.
pub struct Lifecycle(pub Arc<Readiness>);

#[async_trait]
impl BackgroundService for Lifecycle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while shutdown.changed().await.is_ok() {
            if *shutdown.borrow() {
                break;
            }
        }
        self.0.set_draining();
        tracing::info!("graceful shutdown started; draining in-flight requests");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Down;
    impl DependencyCheck for Down {
        fn name(&self) -> &'static str {
            "session_store"
        }
        fn check(&self) -> Result<(), String> {
            Err("redis unreachable".into())
        }
    }

    #[test]
    fn ready_until_draining_or_a_dependency_fails() {
        let r = Readiness::default();
        assert!(r.report().ready);
        r.register(Arc::new(Down));
        let report = r.report();
        assert!(!report.ready);
        assert!(String::from_utf8(report.to_json())
            .unwrap()
            .contains("redis unreachable"));
        let r = Readiness::default();
        r.set_draining();
        assert!(!r.report().ready);
    }

    struct Shared;
    impl DependencyCheck for Shared {
        fn name(&self) -> &'static str {
            "session_store"
        }
        fn check(&self) -> Result<(), String> {
            Err("redis unreachable".into())
        }
        fn degrades_only(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_shared_dependency_down_degrades_but_stays_ready() {
        let r = Readiness::default();
        r.register(Arc::new(Shared));
        let report = r.report();
        assert!(report.ready);
        let body: serde_json::Value = serde_json::from_slice(&report.to_json()).unwrap();
        assert_eq!(body["checks"]["session_store"], "degraded");
        assert_eq!(body["degraded"]["session_store"], "redis unreachable");
        r.register(Arc::new(Down));
        assert!(!r.report().ready);
    }
}
