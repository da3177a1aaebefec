//! The OpenID Provider side: discovery and keys, the gateway's client (authorization requests,
//! code exchange, ID token checks) and `private_key_jwt` assertions.

pub mod assertion;
pub mod discovery;
pub mod logout_token;
pub mod provider;

pub use self::discovery::{DiscoveryService, IdentityProvider};
pub use self::provider::{
    same_authentication, GrantedToken, IdTokenError, LoginTokens, Provider, TokenError,
};
