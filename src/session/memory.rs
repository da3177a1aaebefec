//! The in-process store: the default for one replica and for the quickstart.
//!
//! Everything lives in one mutex-guarded map set; entries expire lazily on access and in a
//! sweep every few hundred writes of any kind, so memory is bounded by the live entries.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::store::{Fetched, Origin, Replaced, Store, StoreError, StoredSession};
use super::StoreKey;

const SWEEP_EVERY: u32 = 256;

#[derive(Default)]
struct Inner {
    sessions: HashMap<StoreKey, (StoredSession, Instant)>,
    by_sub: HashMap<String, HashSet<StoreKey>>,
    by_sid: HashMap<String, HashSet<StoreKey>>,
    login_states: HashMap<String, (Vec<u8>, Instant)>,
    /// Keys seen once (logout token ids), until they expire.
    seen: HashMap<String, Instant>,
    /// Refresh locks: session -> (owner, lease end).
    locks: HashMap<StoreKey, (String, Instant)>,
    writes: u32,
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        // A poisoned lock means a panic elsewhere mid-update; the maps are still usable.
        Ok(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Inner {
    /// Counts a write and, every [`SWEEP_EVERY`] of them, drops whatever has expired.
    fn wrote(&mut self, now: Instant) {
        self.writes = self.writes.wrapping_add(1);
        if self.writes % SWEEP_EVERY == 0 {
            self.sweep(now);
        }
    }

    fn unindex(&mut self, id: &StoreKey, session: &StoredSession) {
        if let Some(ids) = self.by_sub.get_mut(&session.sub) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_sub.remove(&session.sub);
            }
        }
        if let Some(sid) = &session.sid {
            if let Some(ids) = self.by_sid.get_mut(sid) {
                ids.remove(id);
                if ids.is_empty() {
                    self.by_sid.remove(sid);
                }
            }
        }
    }

    fn live(&mut self, id: &StoreKey, now: Instant) -> Option<&mut (StoredSession, Instant)> {
        let expired = self.sessions.get(id).is_some_and(|(_, exp)| *exp <= now);
        if expired {
            if let Some((s, _)) = self.sessions.remove(id) {
                self.unindex(id, &s);
            }
        }
        self.sessions.get_mut(id)
    }

    fn sweep(&mut self, now: Instant) {
        let expired: Vec<StoreKey> = self
            .sessions
            .iter()
            .filter(|(_, (_, exp))| *exp <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some((s, _)) = self.sessions.remove(&id) {
                self.unindex(&id, &s);
            }
        }
        self.login_states.retain(|_, (_, exp)| *exp > now);
        self.locks.retain(|_, (_, exp)| *exp > now);
        self.seen.retain(|_, exp| *exp > now);
    }

    fn live_ids(&mut self, ids: Option<HashSet<StoreKey>>, now: Instant) -> Vec<StoreKey> {
        ids.unwrap_or_default()
            .into_iter()
            .filter(|id| self.live(id, now).is_some())
            .collect()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put(
        &self,
        id: &StoreKey,
        session: &StoredSession,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        inner.wrote(now);
        if let Some((old, _)) = inner.sessions.remove(id) {
            inner.unindex(id, &old);
        }
        inner
            .by_sub
            .entry(session.sub.clone())
            .or_default()
            .insert(id.clone());
        if let Some(sid) = &session.sid {
            inner
                .by_sid
                .entry(sid.clone())
                .or_default()
                .insert(id.clone());
        }
        inner
            .sessions
            .insert(id.clone(), (session.clone(), now + ttl));
        Ok(())
    }

    async fn get(&self, id: &StoreKey) -> Result<Option<StoredSession>, StoreError> {
        let mut inner = self.lock()?;
        Ok(inner.live(id, Instant::now()).map(|(s, _)| s.clone()))
    }

    async fn fetch(&self, id: &StoreKey) -> Result<Option<Fetched>, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        Ok(inner.live(id, now).map(|(s, exp)| Fetched {
            session: s.clone(),
            ttl: exp.saturating_duration_since(now),
            origin: Origin::Local,
        }))
    }

    async fn ttl(&self, id: &StoreKey) -> Result<Option<Duration>, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        Ok(inner
            .live(id, now)
            .map(|(_, exp)| exp.saturating_duration_since(now)))
    }

    async fn touch(&self, id: &StoreKey, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        Ok(match inner.live(id, now) {
            Some((_, exp)) => {
                *exp = now + ttl;
                true
            }
            None => false,
        })
    }

    async fn replace(
        &self,
        id: &StoreKey,
        session: &StoredSession,
        expected: u64,
    ) -> Result<Replaced, StoreError> {
        let mut inner = self.lock()?;
        Ok(match inner.live(id, Instant::now()) {
            None => Replaced::Gone,
            Some((current, _)) if current.version != expected => Replaced::Stale,
            Some((current, _)) => {
                // `sub` and `sid` never change for a session, so the indexes stay right.
                *current = session.clone();
                Replaced::Done
            }
        })
    }

    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        inner.wrote(now);
        match inner.seen.get(key) {
            Some(until) if *until > now => Ok(false),
            _ => {
                inner.seen.insert(key.to_string(), now + ttl);
                Ok(true)
            }
        }
    }

    async fn forget(&self, key: &str) -> Result<(), StoreError> {
        self.lock()?.seen.remove(key);
        Ok(())
    }

    async fn try_lock(
        &self,
        id: &StoreKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        inner.wrote(now);
        match inner.locks.get(id) {
            Some((_, until)) if *until > now => Ok(false),
            _ => {
                inner
                    .locks
                    .insert(id.clone(), (owner.to_string(), now + lease));
                Ok(true)
            }
        }
    }

    async fn renew_lock(
        &self,
        id: &StoreKey,
        owner: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        Ok(match inner.locks.get_mut(id) {
            Some((held_by, until)) if held_by == owner && *until > now => {
                *until = now + lease;
                true
            }
            _ => false,
        })
    }

    async fn unlock(&self, id: &StoreKey, owner: &str) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner
            .locks
            .get(id)
            .is_some_and(|(held_by, _)| held_by == owner)
        {
            inner.locks.remove(id);
        }
        Ok(())
    }

    async fn delete(&self, id: &StoreKey) -> Result<bool, StoreError> {
        let mut inner = self.lock()?;
        let removed = inner.sessions.remove(id);
        Ok(match removed {
            Some((s, exp)) => {
                inner.unindex(id, &s);
                exp > Instant::now()
            }
            None => false,
        })
    }

    async fn sessions_of_sub(&self, sub: &str) -> Result<Vec<StoreKey>, StoreError> {
        let mut inner = self.lock()?;
        let ids = inner.by_sub.get(sub).cloned();
        Ok(inner.live_ids(ids, Instant::now()))
    }

    async fn sessions_of_sid(&self, sid: &str) -> Result<Vec<StoreKey>, StoreError> {
        let mut inner = self.lock()?;
        let ids = inner.by_sid.get(sid).cloned();
        Ok(inner.live_ids(ids, Instant::now()))
    }

    async fn put_login_state(
        &self,
        state: &str,
        data: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        inner.wrote(now);
        inner
            .login_states
            .insert(state.to_string(), (data.to_vec(), now + ttl));
        Ok(())
    }

    async fn take_login_state(&self, state: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut inner = self.lock()?;
        Ok(inner
            .login_states
            .remove(state)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(data, _)| data))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logins that never come back must not pile up: any write sweeps now and then.
    #[tokio::test]
    async fn abandoned_states_are_swept_without_a_completed_login() {
        let store = MemoryStore::new();
        for i in 0..SWEEP_EVERY {
            store
                .put_login_state(&format!("s{i}"), b"x", Duration::from_millis(1))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        for i in 0..SWEEP_EVERY {
            store
                .put_login_state(&format!("t{i}"), b"x", Duration::from_secs(60))
                .await
                .unwrap();
        }
        let held = store.lock().unwrap().login_states.len();
        assert!(held <= SWEEP_EVERY as usize, "{held} states held");
    }
}
