//! The shared session store (`[redis]`): standalone, cluster, TLS, Azure connection strings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::*;

/// How to reach Redis when `session.store = "redis"`.
#[derive(Debug, Clone, Serialize)]
pub struct RedisConfig {
    #[serde(flatten)]
    pub endpoint: RedisEndpoint,
    pub cluster: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    pub tls: bool,
    /// PEM CA bundle trusted for `rediss://` instead of the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub key_prefix: String,
    #[serde(serialize_with = "ser_duration")]
    pub command_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub connect_timeout: Duration,
    pub pool_size: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisEndpoint {
    /// `redis://` or `rediss://` URL (may carry credentials, so it is a secret).
    Url(Secret),
    /// StackExchange.Redis form (`host:6380,password=...,ssl=True`), as Azure shows it.
    ConnectionString(Secret),
    /// Seed nodes of a Redis Cluster, written `host:port`.
    #[serde(serialize_with = "ser_nodes")]
    ClusterNodes(Vec<(String, u16)>),
}

fn ser_nodes<S: serde::Serializer>(nodes: &[(String, u16)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(nodes.iter().map(|(h, p)| format!("{h}:{p}")))
}

pub(in crate::config) fn redis(
    r: &Section<'_, '_>,
    store: Option<StoreKind>,
) -> Option<RedisConfig> {
    let url = r.secret("url", "url_file");
    let connection_string = r.secret("connection_string", "connection_string_file");
    let cluster_nodes = r.strings("cluster_nodes");
    let cluster = r.bool("cluster").unwrap_or(false);
    let username = r.string("username");
    let password = r.secret("password", "password_file");
    let tls = r.bool("tls").unwrap_or(false);
    let ca_file = r.string("ca_file").map(PathBuf::from);
    if let Some(path) = &ca_file {
        match std::fs::read_to_string(path) {
            Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {}
            Ok(_) => r.issue(
                "ca_file",
                format!("{} holds no PEM certificate", path.display()),
                "point it at the CA certificate(s) that signed Redis' certificate, in PEM",
            ),
            Err(e) => r.issue(
                "ca_file",
                format!("cannot read {}: {e}", path.display()),
                "point it at a readable PEM file",
            ),
        }
    }
    let key_prefix = r
        .string("key_prefix")
        .unwrap_or_else(|| "portcullis".into());
    let command_timeout = r
        .duration("command_timeout")
        .unwrap_or(Duration::from_millis(500));
    let connect_timeout = r
        .duration("connect_timeout")
        .unwrap_or(Duration::from_secs(2));
    let pool_size = r
        .integer("pool_size", 1, 64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(4);
    if !r.is_present() {
        if store == Some(StoreKind::Redis) {
            r.issue(
                "url",
                "session.store is \"redis\" but [redis] is missing",
                "add [redis] url = \"redis://host:6379\" (or connection_string, or cluster_nodes)",
            );
        }
        return None;
    }
    if store == Some(StoreKind::Memory) {
        r.issue(
            "url",
            "[redis] is configured but session.store is \"memory\"",
            "set session.store = \"redis\", or remove [redis]",
        );
    }
    let given = usize::from(url.is_some())
        + usize::from(connection_string.is_some())
        + usize::from(cluster_nodes.is_some());
    if given != 1 {
        r.issue(
            "url",
            "give exactly one of url, connection_string, cluster_nodes",
            "e.g. url = \"rediss://:password@host:6380\" or cluster_nodes = [\"10.0.0.1:6379\"]",
        );
        return None;
    }
    let endpoint = if let Some(url) = url {
        let u = url.expose();
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            r.issue(
                "url",
                "must start with redis:// or rediss://",
                "e.g. rediss://:password@host:6380",
            );
        } else if let Err(e) = fred::prelude::Config::from_url(u) {
            // The client's own parser, so that `check` accepts exactly what `run` connects
            // with. Its message names the part, never the password.
            r.issue(
                "url",
                format!("is not a Redis URL the client accepts: {}", e.details()),
                "e.g. rediss://:password@host:6380 or redis://host:6379/0",
            );
        }
        RedisEndpoint::Url(url)
    } else if let Some(cs) = connection_string {
        // The problem text names options, never their values, so no password is echoed.
        if let Err(problem) =
            crate::session::redis::RedisOptions::from_stackexchange(cs.expose(), cluster)
        {
            r.issue(
                "connection_string",
                problem,
                "use the form host:6380,password=...,ssl=True",
            );
        }
        RedisEndpoint::ConnectionString(cs)
    } else {
        let mut nodes = Vec::new();
        for (i, n) in cluster_nodes.unwrap_or_default().iter().enumerate() {
            match n
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
                .filter(|(h, p)| !h.is_empty() && *p != 0)
            {
                Some((h, p)) => nodes.push((h.to_string(), p)),
                None => r.issue(
                    &format!("cluster_nodes[{i}]"),
                    format!("{n:?} is not host:port"),
                    "e.g. \"10.0.0.1:6379\"",
                ),
            }
        }
        if nodes.is_empty() {
            r.issue(
                "cluster_nodes",
                "is empty",
                "list at least one node as host:port",
            );
        }
        RedisEndpoint::ClusterNodes(nodes)
    };
    Some(RedisConfig {
        endpoint,
        cluster,
        username,
        password,
        tls,
        ca_file,
        key_prefix,
        command_timeout,
        connect_timeout,
        pool_size,
    })
}
