//! One module per configuration section: the user-facing type with its field docs, its
//! defaults and its checks (`read`), in the order the file is usually written.

pub mod admin;
pub mod anti_forgery;
pub mod authorization;
pub mod clusters;
pub mod identity_assertion;
pub mod log;
pub mod oidc;
pub mod pingora;
pub mod rate_limits;
pub mod redis;
pub mod response_headers;
pub mod routes;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod tokens;

pub use self::admin::*;
pub use self::anti_forgery::*;
pub use self::authorization::*;
pub use self::clusters::*;
pub use self::identity_assertion::*;
pub use self::log::*;
pub use self::oidc::*;
pub use self::pingora::*;
pub use self::rate_limits::*;
pub use self::redis::*;
pub use self::response_headers::*;
pub use self::routes::*;
pub use self::server::*;
pub use self::session::*;
pub use self::telemetry::*;
pub use self::tokens::*;
