//! The shared session store (`[redis]`): standalone, cluster, TLS, Azure connection strings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::{ser_duration, Secret, StoreKind};

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
    ConnectionString(ConnectionString),
    /// Seed nodes of a Redis Cluster, written `host:port`.
    #[serde(serialize_with = "ser_nodes")]
    ClusterNodes(Vec<(String, u16)>),
}

/// A StackExchange.Redis connection string (printed as `***`: it holds the password), read.
#[derive(Debug, Clone)]
pub struct ConnectionString {
    text: Secret,
    pub parsed: StackExchange,
}

impl Serialize for ConnectionString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.text.serialize(s)
    }
}

/// What a StackExchange.Redis connection string says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackExchange {
    /// `host:port` entries, the port defaulting to 6380 with `ssl=True`, else 6379.
    pub nodes: Vec<(String, u16)>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ssl: bool,
}

/// The StackExchange.Redis form used by .NET apps and Azure Cache for Redis:
/// `host:6380,password=...,ssl=True,abortConnect=False[,user=...]`. Problems name options,
/// never their values, so no password is echoed.
pub fn parse_stackexchange(s: &str) -> Result<StackExchange, String> {
    let mut hosts = Vec::new();
    let (mut username, mut password, mut ssl) = (None, None, false);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((k, v)) => match k.trim().to_ascii_lowercase().as_str() {
                "password" => password = Some(v.to_string()),
                "user" => username = Some(v.to_string()),
                "ssl" => {
                    ssl = match v.trim().to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        other => return Err(format!("ssl={other} is neither True nor False")),
                    }
                }
                // Client-side behaviour of StackExchange.Redis with no meaning here.
                "abortconnect" | "connecttimeout" | "synctimeout" | "asynctimeout"
                | "allowadmin" | "connectretry" | "keepalive" | "name" | "sslprotocols"
                | "defaultdatabase" => {}
                other => return Err(format!("unknown option {other:?}")),
            },
            None => hosts.push(part),
        }
    }
    // Options may follow the hosts, and `ssl` decides the default port (Azure: 6380).
    let default_port = if ssl { 6380 } else { 6379 };
    let nodes = hosts
        .into_iter()
        .map(|h| match h.rsplit_once(':') {
            Some((host, port)) => port
                .parse()
                .map(|p| (host.to_string(), p))
                .map_err(|_| format!("{h:?} has an invalid port")),
            None => Ok((h.to_string(), default_port)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if nodes.is_empty() {
        return Err("no host:port in the connection string".into());
    }
    Ok(StackExchange {
        nodes,
        username,
        password,
        ssl,
    })
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
        #[allow(clippy::disallowed_methods, reason = "config is read before serving")]
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
        match parse_stackexchange(cs.expose()) {
            Ok(parsed) => RedisEndpoint::ConnectionString(ConnectionString { text: cs, parsed }),
            Err(problem) => {
                r.issue(
                    "connection_string",
                    problem,
                    "use the form host:6380,password=...,ssl=True",
                );
                return None;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_azure_style_connection_strings() {
        let o = parse_stackexchange(
            "contoso.redis.cache.windows.net:6380,password=s3cret,ssl=True,abortConnect=False",
        )
        .unwrap();
        assert_eq!(
            o.nodes,
            vec![("contoso.redis.cache.windows.net".into(), 6380)]
        );
        assert_eq!(o.password.as_deref(), Some("s3cret"));
        assert!(o.ssl);
        let o = parse_stackexchange("a:7000,b:7001,user=app,password=p").unwrap();
        assert_eq!(o.nodes, vec![("a".into(), 7000), ("b".into(), 7001)]);
        assert_eq!(o.username.as_deref(), Some("app"));
        assert!(!o.ssl);
        let o = parse_stackexchange("one.example,ssl=true").unwrap();
        assert_eq!(o.nodes, vec![("one.example".into(), 6380)]);
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        assert!(parse_stackexchange("").is_err());
        assert!(parse_stackexchange("h:x").is_err());
        assert!(parse_stackexchange("h:1,ssl=maybe").is_err());
        assert!(parse_stackexchange("h:1,proxy=twemproxy").is_err());
    }
}

/// Property tests: connection strings are pasted from portals; bad ones are errors, not panics,
/// and good ones mean what they say.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_connection_string_is_read_or_refused(s in "[ -~]{0,80}") {
            let _ = parse_stackexchange(&s);
        }

        #[test]
        fn hosts_ports_and_options_round_trip(
            hosts in prop::collection::vec(("[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5})?", prop::option::of(1u16..)), 1..4),
            password in prop::option::of("[!-+\\--~]{1,20}"),
            ssl in any::<bool>(),
        ) {
            let mut parts: Vec<String> = hosts
                .iter()
                .map(|(h, p)| p.map_or(h.clone(), |p| format!("{h}:{p}")))
                .collect();
            if let Some(pw) = &password {
                parts.push(format!("password={pw}"));
            }
            parts.push(format!("ssl={}", if ssl { "True" } else { "False" }));
            parts.push("abortConnect=False".into());
            let o = parse_stackexchange(&parts.join(",")).map_err(TestCaseError::fail)?;
            let default = if ssl { 6380 } else { 6379 };
            let expected: Vec<(String, u16)> = hosts
                .iter()
                .map(|(h, p)| (h.clone(), p.unwrap_or(default)))
                .collect();
            prop_assert_eq!(o.nodes, expected);
            prop_assert_eq!(o.password, password);
            prop_assert_eq!(o.ssl, ssl);
        }
    }
}
