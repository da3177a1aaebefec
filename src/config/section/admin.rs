//! The admin listener (`[admin]`): health, readiness, metrics and the session admin API.

use std::net::SocketAddr;

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::{ser_display, socket_addr, Secret};

#[derive(Debug, Clone, Serialize)]
pub struct AdminConfig {
    #[serde(serialize_with = "ser_display")]
    pub listen: SocketAddr,
    /// Bearer token of the session admin API; the API is off without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_api_token: Option<Secret>,
}

pub(in crate::config) fn admin(s: &Section<'_, '_>) -> Option<AdminConfig> {
    let sessions_api_token = s.secret("sessions_api_token", "sessions_api_token_file");
    if sessions_api_token
        .as_ref()
        .is_some_and(|t| t.expose().len() < 32)
    {
        s.issue(
            "sessions_api_token",
            "is shorter than 32 characters",
            "generate one with: openssl rand -base64 32",
        );
    }
    Some(AdminConfig {
        listen: socket_addr(s, "listen", "127.0.0.1:9090")?,
        sessions_api_token,
    })
}
