//! Upstream clusters (`[clusters.<name>]`): destinations, timeouts, health checks.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::{ser_display_list, ser_duration, Destination};

#[derive(Debug, Clone, Serialize)]
pub struct ClusterConfig {
    #[serde(serialize_with = "ser_display_list")]
    pub destinations: Vec<Destination>,
    pub preserve_host: bool,
    #[serde(serialize_with = "ser_duration")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub read_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub write_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub upgrade_idle_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub resolve_interval: Duration,
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthCheckConfig {
    #[serde(rename = "type")]
    pub kind: HealthCheckKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    pub healthy_threshold: usize,
    pub unhealthy_threshold: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    Http,
    Tcp,
}

pub(in crate::config) fn clusters(
    top: &Section<'_, '_>,
) -> (BTreeMap<String, ClusterConfig>, Vec<String>) {
    let named = top.named_sections("clusters");
    if named.is_empty() {
        top.issue(
            "clusters",
            "no cluster is defined",
            "add at least one, e.g. [clusters.spa] destinations = [\"http://127.0.0.1:3000\"]",
        );
    }
    let declared = named.iter().map(|(name, _)| name.clone()).collect();
    let mut out = BTreeMap::new();
    for (name, c) in named {
        if let Some(cluster) = cluster(&c) {
            out.insert(name, cluster);
        }
    }
    (out, declared)
}

pub(in crate::config) fn cluster(c: &Section<'_, '_>) -> Option<ClusterConfig> {
    let mut destinations = Vec::new();
    match c.strings("destinations") {
        None if !c.has("destinations") => c.issue(
            "destinations",
            "missing",
            "list the upstream servers, e.g. destinations = [\"http://api:8080\"]",
        ),
        None => {}
        Some(list) if list.is_empty() => c.issue(
            "destinations",
            "is empty",
            "list at least one upstream server, e.g. \"http://api:8080\"",
        ),
        Some(list) => {
            for (i, d) in list.iter().enumerate() {
                match Destination::parse(d) {
                    Ok(d) if destinations.contains(&d) => c.issue(
                        &format!("destinations[{i}]"),
                        format!("{d} is listed twice"),
                        "remove the duplicate",
                    ),
                    Ok(d) => destinations.push(d),
                    Err(problem) => c.issue(
                        &format!("destinations[{i}]"),
                        problem,
                        "write it as http://host:port or https://host:port",
                    ),
                }
            }
        }
    }
    let timeout = |key, default| c.duration(key).unwrap_or(Duration::from_secs(default));
    let health = c.section("health_check");
    let health_check = health.is_present().then(|| health_check(&health)).flatten();
    let cluster = ClusterConfig {
        preserve_host: c.bool("preserve_host").unwrap_or(false),
        connect_timeout: timeout("connect_timeout", 5),
        read_timeout: timeout("read_timeout", 60),
        write_timeout: timeout("write_timeout", 60),
        idle_timeout: timeout("idle_timeout", 55),
        upgrade_idle_timeout: timeout("upgrade_idle_timeout", 3600),
        resolve_interval: timeout("resolve_interval", 30),
        tls_verify: c.bool("tls_verify").unwrap_or(true),
        health_check,
        destinations,
    };
    (!cluster.destinations.is_empty()).then_some(cluster)
}

pub(in crate::config) fn health_check(h: &Section<'_, '_>) -> Option<HealthCheckConfig> {
    let path = h.parsed("path", "write an absolute path such as \"/health\"", |p| {
        if p.starts_with('/') {
            Ok(p.to_string())
        } else {
            Err(format!("{p:?} does not start with /"))
        }
    });
    let kind = h.parsed("type", "use \"http\" or \"tcp\"", |v| match v {
        "http" => Ok(HealthCheckKind::Http),
        "tcp" => Ok(HealthCheckKind::Tcp),
        _ => Err(format!("{v:?} is not a health check type")),
    });
    let kind = match (kind, &path) {
        (Some(HealthCheckKind::Tcp), Some(_)) => {
            h.issue(
                "path",
                "a tcp health check has no path",
                "remove path, or set type = \"http\"",
            );
            return None;
        }
        (Some(k), _) => k,
        (None, _) => HealthCheckKind::Http,
    };
    let interval = h.duration("interval").unwrap_or(Duration::from_secs(5));
    let timeout = h.duration("timeout").unwrap_or(Duration::from_secs(2));
    if interval.is_zero() {
        h.issue("interval", "must be longer than zero", "use e.g. \"5s\"");
    }
    let threshold = |key| {
        h.integer(key, 1, 100)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(if key == "healthy_threshold" { 1 } else { 2 })
    };
    Some(HealthCheckConfig {
        path: match kind {
            HealthCheckKind::Http => Some(path.unwrap_or_else(|| "/".into())),
            HealthCheckKind::Tcp => None,
        },
        kind,
        interval,
        timeout,
        healthy_threshold: threshold("healthy_threshold"),
        unhealthy_threshold: threshold("unhealthy_threshold"),
    })
}
