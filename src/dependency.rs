//! What readiness asks of a dependency (the session store, the identity provider). Neutral
//! ground: the dependencies implement it, the admin listener's `/readyz` consults it, and
//! neither has to know the other.

/// A dependency that can make the gateway not ready.
pub trait DependencyCheck: Send + Sync {
    fn name(&self) -> &'static str;
    /// `Err(reason)` when the dependency is not usable. Must be cheap: probes call it often.
    fn check(&self) -> Result<(), String>;
    /// Whether a failing check leaves the gateway ready (reported as `degraded`).
    fn degrades_only(&self) -> bool {
        false
    }
}
