//! Configuration: the TOML file, overlaid by `PORTCULLIS__*` variables, checked into a typed
//! [`Config`] whose values cannot be invalid.
//!
//! `source` layers the file and the environment, `reader` reads keys with types and collects
//! problems, `validate` turns the tree into [`Config`]. Every key is documented in
//! `docs/configuration.md` and `conf/portcullis.example.toml`; a test keeps the three in step.

mod duration;
pub mod keys;
pub mod net;
mod otel_env;
#[cfg(test)]
mod props;
mod reader;
pub mod rules;
mod section;
mod size;
pub mod source;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use self::net::{Cidr, Destination, Origin};
pub use self::reader::Issue;
pub use self::section::*;
pub use self::source::{Environment, ProcessEnv};

/// Loads `path`, overlays the environment and validates everything.
pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
    #[allow(clippy::disallowed_methods, reason = "config is read before serving")]
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_str(&text, env).map_err(|e| match e {
        ConfigError::Syntax { message, .. } => ConfigError::Syntax {
            path: path.to_path_buf(),
            message,
        },
        other => other,
    })
}

/// Parses configuration text (the file's content) and validates it with `env` overlaid.
pub fn from_str(text: &str, env: &dyn Environment) -> Result<Config, ConfigError> {
    let mut root: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
    validate::validate(&mut root, env).map_err(ConfigError::Invalid)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path:?} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}", Issues(.0))]
    Invalid(Vec<Issue>),
}

struct Issues<'a>(&'a [Issue]);

impl fmt::Display for Issues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} problem(s) in the configuration:", self.0.len())?;
        for issue in self.0 {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

/// A secret value. Its `Debug`, `Display` and `Serialize` all print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&duration::format(*d))
}

/// A header that is off is written as `""`, which is how a user turns it off.
fn ser_or_off<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or(""))
}

fn ser_size<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}B", v.unwrap_or(0)))
}

fn ser_display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_display_list<T: fmt::Display, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

/// The whole, validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub pingora: PingoraConfig,
    pub anti_forgery: AntiForgeryConfig,
    pub rate_limits: RateLimitsConfig,
    pub response_headers: ResponseHeadersConfig,
    pub authorization: AuthorizationConfig,
    pub identity_assertion: IdentityAssertionConfig,
    pub telemetry: TelemetryConfig,
    pub session: SessionConfig,
    pub tokens: TokensConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcConfig>,
    pub clusters: BTreeMap<String, ClusterConfig>,
    pub routes: Vec<RouteConfig>,
}

impl Config {
    /// What is allowed but should not stay so: `check` prints these, `run` logs them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self
            .session
            .encryption_keys
            .iter()
            .any(|k| section::session::PUBLISHED_SESSION_KEYS.contains(&k.expose()))
        {
            out.push("session.encryption_keys: the demo key published in Portcullis' repository is in use; fine for a local demo, never for real users (openssl rand -base64 32)".to_string());
        }
        out
    }

    /// The effective configuration as TOML, secrets masked: what `portcullis check` prints.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

fn ser_pairs<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(v.len()))?;
    for (k, val) in v {
        map.serialize_entry(k, val)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    /// Every key path present in a TOML tree, in the validator's schema form.
    fn present_keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
        for (k, v) in table {
            let name = if prefix == "clusters" {
                "<name>"
            } else {
                k.as_str()
            };
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            out.insert(path.clone());
            match v {
                toml::Value::Table(t) => present_keys(t, &path, out),
                toml::Value::Array(items) => {
                    for item in items {
                        if let toml::Value::Table(t) = item {
                            present_keys(t, &format!("{path}[]"), out);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    #[allow(clippy::disallowed_methods, reason = "a test reading the repository")]
    fn repo_file(path: &str) -> String {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The example config sets every key, and docs/configuration.md names every key: a new key
    /// cannot land undocumented.
    #[test]
    fn example_config_and_reference_docs_cover_every_key() {
        let text = repo_file("conf/portcullis.example.toml");
        let mut root: toml::Table = text.parse().unwrap();
        let mut present = BTreeSet::new();
        present_keys(&root, "", &mut present);
        // The example ships no private key: the test gives it one, as a deployment would.
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &ring::rand::SystemRandom::new(),
        )
        .unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        let env: HashMap<String, String> = [
            (
                "PORTCULLIS__IDENTITY_ASSERTION__KEYS__0__PRIVATE_KEY".to_string(),
                pem,
            ),
            (
                "PORTCULLIS__SESSION__ENCRYPTION_KEYS".to_string(),
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_string(),
            ),
        ]
        .into();
        let (result, known) = super::validate::validate_and_list_keys(&mut root, &env);
        if let Err(issues) = result {
            panic!("example config is invalid: {issues:#?}");
        }
        // Alternatives that cannot be set together (url / connection_string, key / key_file)
        // are documented as commented-out lines.
        let commented = |key: &str| {
            let last = key.rsplit('.').next().unwrap_or(key);
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("# {last} = ")))
        };
        let missing: Vec<_> = known
            .difference(&present)
            .filter(|k| !commented(k))
            .collect();
        assert!(
            missing.is_empty(),
            "keys missing from conf/portcullis.example.toml: {missing:?}"
        );

        let docs = repo_file("docs/configuration.md");
        let undocumented: Vec<_> = known
            .iter()
            .filter(|k| !docs.contains(&format!("`{k}`")))
            .collect();
        assert!(
            undocumented.is_empty(),
            "keys missing from docs/configuration.md: {undocumented:?}"
        );
    }
}
