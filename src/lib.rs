//! Portcullis: a Backend-for-Frontend security gateway on Pingora.
//!
//! The browser talks only to Portcullis. Every request runs the same phases
//! (`proxy/mod.rs`): pick a route (`upstream::RouteTable`), then a healthy destination of its
//! cluster (`upstream::Cluster`), forward with the right `X-Forwarded-*` headers, and answer
//! failures as problem+json or a readable page (`proxy/fail_to_proxy.rs` and `proxy/local_answer.rs`). Configuration is TOML with
//! `PORTCULLIS__*` overrides (`config`); `/healthz`, `/readyz` and `/metrics` live on a separate
//! admin listener (`admin`).

// `#[tokio::test]` expands to `Runtime::block_on`, which clippy.toml refuses elsewhere.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod admin;
pub mod app;
pub mod audit;
pub mod authz;
pub mod bff;
pub mod config;
pub mod dependency;
pub mod error;
pub mod metrics;
pub mod oidc;
pub mod proxy;
pub mod session;
pub mod telemetry;
pub mod token;
pub mod upstream;
