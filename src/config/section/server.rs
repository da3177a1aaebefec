//! The public listener (`[server]`): address, TLS, the public origin and trusted proxies.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::config::reader::Section;
use crate::config::{ser_display, ser_display_list, Cidr, Origin};

#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    #[serde(serialize_with = "ser_display")]
    pub listen: SocketAddr,
    #[serde(
        serialize_with = "ser_opt_display",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_origin: Option<Origin>,
    #[serde(serialize_with = "ser_display_list")]
    pub trusted_proxies: Vec<Cidr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

fn ser_opt_display<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub(in crate::config) fn socket_addr(
    s: &Section<'_, '_>,
    key: &'static str,
    default: &str,
) -> Option<SocketAddr> {
    s.parsed(
        key,
        "write an address and port such as \"0.0.0.0:8080\" or \"[::]:8080\"",
        |v| {
            v.parse::<SocketAddr>()
                .map_err(|_| format!("{v:?} is not an address:port"))
        },
    )
    .or_else(|| (!s.has(key)).then(|| default.parse().ok()).flatten())
}

pub(in crate::config) fn server(s: &Section<'_, '_>) -> Option<ServerConfig> {
    let listen = socket_addr(s, "listen", "0.0.0.0:8080");
    let public_origin = s.parsed(
        "public_origin",
        "write the origin the browser sees, e.g. \"https://app.example.com\"",
        Origin::parse,
    );
    let trusted_proxies = s.parsed_list(
        "trusted_proxies",
        "write an address or network such as \"10.0.0.0/8\"",
        Cidr::parse,
    );
    let tls_section = s.section("tls");
    let tls = if tls_section.is_present() {
        let cert = tls_section.string("cert_file");
        let key = tls_section.string("key_file");
        if cert.is_none() {
            tls_section.issue(
                "cert_file",
                "missing",
                "set the path of the PEM certificate chain",
            );
        }
        if key.is_none() {
            tls_section.issue("key_file", "missing", "set the path of the PEM private key");
        }
        cert.zip(key).map(|(c, k)| TlsConfig {
            cert_file: c.into(),
            key_file: k.into(),
        })
    } else {
        None
    };
    Some(ServerConfig {
        listen: listen?,
        public_origin,
        trusted_proxies,
        tls,
    })
}
