//! WebSockets (any upgraded connection) opened with a session end when the session does.
//!
//! A tunnel outlives the request that opened it by hours, and nothing passes through the
//! request phases again; without this a logged-out, back-channel-revoked or expired session
//! would keep its live feed. Every tunnel is registered under its session's store key, and the
//! upstream socket is duplicated as it is created (Pingora's socket hook), so the gateway can
//! shut it down: Pingora then ends the tunnel on both sides.
//!
//! The signal is the session cache's change notices, which cover this replica's own deletes
//! and — through Redis client tracking — other replicas' deletes and the store's expiries. A
//! notice only says "changed" (a refresh or a slide also changes a session), so the store is
//! asked whether the session still lives; a store that cannot answer keeps the tunnel. A sweep
//! every [`SWEEP`] re-checks every tunneled session, for what no notice reports (a cache turned
//! off, a lost tracking connection, the memory store's lazy expiry).

use std::collections::HashMap;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;
use tokio::sync::mpsc;

use crate::session::cache::Change;
use crate::session::{Sessions, StoreKey};

/// How often every tunneled session is checked even without a change notice.
pub const SWEEP: Duration = Duration::from_secs(30);

/// One upgraded connection: a duplicate of its upstream socket, to shut it down with.
#[derive(Default)]
pub struct Tunnel {
    upstream: Mutex<Option<std::net::TcpStream>>,
    closed: AtomicBool,
}

impl Tunnel {
    /// Keeps a duplicate of the upstream socket (the same socket: shutting it down ends
    /// Pingora's copy too). A tunnel closed before it connected is shut at once.
    fn attach(&self, socket: &tokio::net::TcpSocket) -> std::io::Result<()> {
        let dup = std::net::TcpStream::from(socket.as_fd().try_clone_to_owned()?);
        if self.closed.load(Ordering::SeqCst) {
            let _ = dup.shutdown(Shutdown::Both);
            return Ok(());
        }
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = Some(dup);
        Ok(())
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Some(socket) = self
            .upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

enum Check {
    Key(StoreKey),
    All,
}

pub struct Tunnels {
    sessions: Arc<Sessions>,
    open: Mutex<HashMap<StoreKey, Vec<Weak<Tunnel>>>>,
    /// Sessions in `open`: change notices skip the lock while there are none.
    tunneled: AtomicUsize,
    next_group: AtomicU64,
    checks: mpsc::UnboundedSender<Check>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Check>>>,
    closed: prometheus::IntCounter,
}

impl Tunnels {
    /// Listens to `sessions`' change notices from now on.
    pub fn new(sessions: Arc<Sessions>, closed: prometheus::IntCounter) -> Arc<Tunnels> {
        let (checks, receiver) = mpsc::unbounded_channel();
        let tunnels = Arc::new(Tunnels {
            sessions: sessions.clone(),
            open: Mutex::new(HashMap::new()),
            tunneled: AtomicUsize::new(0),
            next_group: AtomicU64::new(1),
            checks,
            receiver: Mutex::new(Some(receiver)),
            closed,
        });
        let weak = Arc::downgrade(&tunnels);
        sessions.on_change(Box::new(move |change| {
            if let Some(t) = weak.upgrade() {
                t.changed(change);
            }
        }));
        tunnels
    }

    /// Registers an upgrade request of the session under `key` and prepares `peer` so that
    /// its connection can be shut: a connection of its own (never a pooled one, whose socket
    /// was made before), whose socket is duplicated as it is made. The tunnel stays
    /// registered while the returned handle (kept in the request's context) lives.
    pub fn open(self: &Arc<Self>, key: &StoreKey, peer: &mut HttpPeer) -> Arc<Tunnel> {
        self.start_checking();
        let tunnel = Arc::new(Tunnel::default());
        {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let list = open.entry(key.clone()).or_default();
            list.retain(|t| t.strong_count() > 0);
            list.push(Arc::downgrade(&tunnel));
            self.tunneled.store(open.len(), Ordering::SeqCst);
        }
        peer.group_key = self.next_group.fetch_add(1, Ordering::Relaxed);
        let hook = Arc::downgrade(&tunnel);
        peer.options.upstream_tcp_sock_tweak_hook = Some(Arc::new(move |socket| {
            if let Some(t) = hook.upgrade() {
                if let Err(e) = t.attach(socket) {
                    tracing::warn!(error = %e, "cannot keep a handle on a WebSocket's upstream socket; it will not be closed when its session ends");
                }
            }
            Ok(())
        }));
        tunnel
    }

    fn changed(&self, change: Change<'_>) {
        if self.tunneled.load(Ordering::SeqCst) == 0 {
            return;
        }
        let check = match change {
            Change::Key(key) => {
                let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                if !open.contains_key(key) {
                    return;
                }
                Check::Key(key.clone())
            }
            Change::Unknown => Check::All,
        };
        let _ = self.checks.send(check);
    }

    /// Starts the task that checks sessions, once (it needs the runtime of a request).
    fn start_checking(self: &Arc<Self>) {
        let Some(mut receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut sweep = tokio::time::interval(SWEEP);
            loop {
                let check = tokio::select! {
                    c = receiver.recv() => match c {
                        Some(c) => c,
                        None => return,
                    },
                    _ = sweep.tick() => Check::All,
                };
                let Some(tunnels) = weak.upgrade() else {
                    return;
                };
                tunnels.check(check).await;
            }
        });
    }

    async fn check(&self, check: Check) {
        let keys: Vec<StoreKey> = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.retain(|_, list| {
                list.retain(|t| t.strong_count() > 0);
                !list.is_empty()
            });
            self.tunneled.store(open.len(), Ordering::SeqCst);
            match check {
                Check::Key(key) if open.contains_key(&key) => vec![key],
                Check::Key(_) => Vec::new(),
                Check::All => open.keys().cloned().collect(),
            }
        };
        for key in keys {
            match self.sessions.is_live(&key).await {
                Ok(true) => {}
                Ok(false) => self.close(&key),
                // An outage is not a logout: the next notice or sweep decides.
                Err(e) => tracing::debug!(error = %e, "cannot check a tunneled session"),
            }
        }
    }

    fn close(&self, key: &StoreKey) {
        let list = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let list = open.remove(key).unwrap_or_default();
            self.tunneled.store(open.len(), Ordering::SeqCst);
            list
        };
        for tunnel in list.iter().filter_map(Weak::upgrade) {
            tunnel.close();
            self.closed.inc();
            tracing::info!("closed a WebSocket whose session ended");
        }
    }
}
