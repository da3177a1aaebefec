//! Readiness: the gateway is ready when its configuration is loaded, it is not draining, and
//! every registered dependency check passes (the session store and the IdP register theirs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// A dependency that can make the gateway not ready.
pub trait DependencyCheck: Send + Sync {
    fn name(&self) -> &'static str;
    /// `Err(reason)` when the dependency is not usable. Must be cheap: probes call it often.
    fn check(&self) -> Result<(), String>;
}

#[derive(Default)]
pub struct Readiness {
    draining: AtomicBool,
    checks: RwLock<Vec<Arc<dyn DependencyCheck>>>,
}

pub struct Report {
    pub ready: bool,
    entries: Vec<(&'static str, Result<(), String>)>,
}

impl Report {
    pub fn to_json(&self) -> Vec<u8> {
        let checks: serde_json::Map<String, serde_json::Value> = self
            .entries
            .iter()
            .map(|(name, r)| {
                let v = match r {
                    Ok(()) => "ok".to_string(),
                    Err(reason) => reason.clone(),
                };
                (name.to_string(), serde_json::Value::String(v))
            })
            .collect();
        let mut out = serde_json::json!({ "ready": self.ready, "checks": checks }).to_string();
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
        let mut entries = vec![(
            "lifecycle",
            if self.draining.load(Ordering::Acquire) {
                Err("draining for shutdown".to_string())
            } else {
                Ok(())
            },
        )];
        if let Ok(checks) = self.checks.read() {
            entries.extend(checks.iter().map(|c| (c.name(), c.check())));
        }
        Report {
            ready: entries.iter().all(|(_, r)| r.is_ok()),
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
}
