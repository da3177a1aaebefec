//! Integration tests: the real `portcullis` binary in front of real HTTP servers on 127.0.0.1.
//!
//! One binary, one file per feature; `harness/` starts every process and stops it by its PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The harness writes config files and polls processes; it is not a request path.
#![allow(clippy::disallowed_methods)]

mod harness;

mod admin;
mod admin_sessions;
mod antiforgery;
mod authorization;
mod azure;
mod backchannel;
mod bodies;
mod browser;
mod compose;
mod config_cli;
mod dashboard;
mod demo;
mod failures;
mod flood;
mod forwarding;
mod helm;
mod idp;
mod login;
mod rate_limits;
mod replicas;
mod routing;
mod session_store;
mod session_tier;
mod shutdown;
mod streaming;
mod tls;
mod tokens;
mod traces;
mod websockets;
