//! Server-side sessions: where the browser's opaque cookie leads.
//!
//! `id` makes and checks session ids (and the keyed names the store knows them by), `seal`
//! encrypts token material at rest, `store` is the one trait every backend implements
//! (`memory` for a single replica, `redis` for replicas that share sessions), `cache` keeps
//! opened sessions per replica, `sessions` is the lifecycle on top and the only door to the
//! store (create at login, find and slide on requests, fenced updates on refresh, delete),
//! `cookie` reads and writes the browser's side. The same conformance suite
//! (`tests/it/session_store.rs`) runs against every store.

pub mod cache;
pub mod cookie;
pub mod id;
pub mod memory;
pub mod redis;
pub mod seal;
pub mod service;
pub mod sessions;
pub mod store;

pub use self::id::{SessionId, StoreKey};
pub use self::seal::{KeyRing, SealError};
pub use self::sessions::{Current, ResourceToken, SessionData, Sessions};
pub use self::store::{Fetched, Origin, Replaced, Store, StoreError, StoredSession};
