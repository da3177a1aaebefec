//! The OpenID Provider side: discovery and keys now; the code flow, refresh and logout-token
//! checks build on it.

pub mod discovery;

pub use self::discovery::{DiscoveryService, IdentityProvider};
