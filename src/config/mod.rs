//! Configuration: the TOML file, overlaid by `PORTCULLIS__*` variables, checked into a typed
//! [`Config`] whose values cannot be invalid.
//!
//! `source` layers the file and the environment, `reader` reads keys with types and collects
//! problems, `validate` turns the tree into [`Config`]. Every key is documented in
//! `docs/configuration.md` and `conf/portcullis.example.toml`; a test keeps the three in step.

mod duration;
pub mod net;
#[cfg(test)]
mod props;
mod reader;
pub mod rules;
mod size;
pub mod source;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use self::net::{Cidr, Destination, Origin};
pub use self::reader::Issue;
pub use self::source::{Environment, ProcessEnv};

/// Loads `path`, overlays the environment and validates everything.
pub fn load(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
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
            .any(|k| validate::PUBLISHED_SESSION_KEYS.contains(&k.expose()))
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

#[derive(Debug, Clone, Serialize)]
pub struct AdminConfig {
    #[serde(serialize_with = "ser_display")]
    pub listen: SocketAddr,
    /// Bearer token of the session admin API; the API is off without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_api_token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
    /// Whether access lines name the signed-in user (`"sub"`) or not (`"none"`).
    pub access_log_user: AccessLogUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogUser {
    None,
    Sub,
}

/// Pingora's own server settings, with production defaults.
#[derive(Debug, Clone, Serialize)]
pub struct PingoraConfig {
    pub threads: usize,
    pub work_stealing: bool,
    /// After SIGTERM: `/readyz` answers 503 at once, but the listeners keep accepting and
    /// serving for this long (load balancers and Kubernetes endpoints take a few seconds to
    /// stop sending), then the graceful shutdown starts.
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_delay: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub grace_period: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub graceful_shutdown_timeout: Duration,
    pub upstream_keepalive_pool_size: usize,
    #[serde(serialize_with = "ser_duration")]
    pub keepalive_timeout: Duration,
    /// Longest wait for the next part of a client's request body (each read, not the whole).
    #[serde(serialize_with = "ser_duration")]
    pub client_body_timeout: Duration,
    pub keepalive_request_limit: u32,
    pub listener_tasks_per_fd: usize,
    pub upgrade_sock: String,
    pub pid_file: String,
}

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

#[derive(Debug, Clone, Serialize)]
pub struct RouteConfig {
    pub name: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub cluster: String,
    /// What replaces the matched prefix before forwarding; `None` forwards the path unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite_prefix: Option<String>,
    /// Require the anti-forgery header (and refuse cross-site callers) on this route.
    pub anti_forgery: bool,
    /// Which access token the upstream gets.
    pub token: TokenPolicy,
    /// RFC 8707 resource the token must be for (an API other than the login's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Scopes asked for when a token is obtained for this route (client or resource tokens).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Rules on the session's claims; a signed-in user who fails one gets 403.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<ClaimRule>,
    /// Headers set from the session's claims (header name, claim path), never from the
    /// request; these names are removed from every incoming request.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "ser_pairs")]
    pub claim_headers: Vec<(String, String)>,
    /// Step-up: the session's `acr` must be one of these; otherwise 401 with a login URL that
    /// asks the IdP for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
    /// Send a signed identity assertion (`X-Portcullis-Assertion`) to the upstream.
    pub identity_assertion: bool,
    /// The assertion's `aud`; the cluster's name when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_assertion_audience: Option<String>,
    /// Largest request body (bytes) the route forwards; larger ones get 413. `None`: no limit.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_size")]
    pub max_body: Option<u64>,
}

/// Which access token a route forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenPolicy {
    /// No token: static assets, public APIs.
    None,
    /// The signed-in user's token; 401 without a session.
    User,
    /// The gateway's own client-credentials token.
    Client,
    /// The user's token when signed in, else the gateway's.
    UserOrClient,
    /// The user's token when signed in, else none.
    UserOrNone,
}

impl TokenPolicy {
    pub fn parse(v: &str) -> Result<TokenPolicy, String> {
        Ok(match v {
            "none" => TokenPolicy::None,
            "user" => TokenPolicy::User,
            "client" => TokenPolicy::Client,
            "user-or-client" => TokenPolicy::UserOrClient,
            "user-or-none" => TokenPolicy::UserOrNone,
            _ => return Err(format!("{v:?} is not a token policy")),
        })
    }

    /// Whether a signed-in user's token is used when there is a session.
    pub fn wants_user(self) -> bool {
        matches!(
            self,
            TokenPolicy::User | TokenPolicy::UserOrClient | TokenPolicy::UserOrNone
        )
    }
}

/// How user tokens are kept fresh (`[tokens]`).
#[derive(Debug, Clone, Serialize)]
pub struct TokensConfig {
    /// Refresh when the access token expires within this.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_skew: Duration,
    /// Lease of the per-session refresh lock; renewed while the IdP call runs.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_lock_lease: Duration,
    /// How long a request waits for a refresh another request (or replica) is doing.
    #[serde(serialize_with = "ser_duration")]
    pub refresh_wait: Duration,
}

/// The OpenID Provider and the gateway's client registration there.
#[derive(Debug, Clone, Serialize)]
pub struct OidcConfig {
    /// Issuer URL; discovery reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// How the gateway authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// Required for the `client_secret_*` methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// PEM private key for `private_key_jwt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<Secret>,
    /// `kid` of the registered public key, sent in the assertion's header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_id: Option<String>,
    /// PEM certificate of `private_key`, as registered at the IdP: the assertion's header names
    /// it by thumbprint (`x5t`, `x5t#S256`), which is how Microsoft Entra ID finds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Secret>,
    /// Scopes asked for at login (`openid` is always asked for).
    pub scopes: Vec<String>,
    /// `acr_values` a login may ask for besides those some route requires (step-up).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_acr_values: Vec<String>,
    /// Extra authorization request parameters (`audience`, `domain_hint`, ...).
    #[serde(serialize_with = "ser_pairs")]
    pub authorize_params: Vec<(String, String)>,
    /// Where the IdP sends the browser back; registered at the IdP as
    /// `{server.public_origin}{callback_path}`.
    pub callback_path: String,
    /// Where the IdP sends the browser back after logout; registered at the IdP as
    /// `{server.public_origin}{post_logout_path}`.
    pub post_logout_path: String,
    /// What `/bff/logout` does at the IdP after ending the local session.
    pub idp_logout: IdpLogout,
    /// Read the userinfo endpoint at login and add its claims to the session's.
    pub userinfo: bool,
    /// How long a started login may take before its state is forgotten.
    #[serde(serialize_with = "ser_duration")]
    pub login_timeout: Duration,
    /// How often discovery and the JWKS are read again.
    #[serde(serialize_with = "ser_duration")]
    pub discovery_refresh: Duration,
    /// Timeout of each request to the IdP.
    #[serde(serialize_with = "ser_duration")]
    pub http_timeout: Duration,
}

/// How the IdP session is ended at logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdpLogout {
    /// RP-Initiated Logout 1.0 at the discovered `end_session_endpoint` (none: local only).
    EndSession,
    /// Auth0's `/v2/logout?client_id=..&returnTo=..` (tenants without OIDC logout discovery).
    Auth0,
    /// The IdP session is left alone; only the gateway's session ends.
    None,
}

/// Token endpoint client authentication (OIDC Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

fn ser_pairs<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(v.len()))?;
    for (k, val) in v {
        map.serialize_entry(k, val)?;
    }
    map.end()
}

/// Server-side sessions: where they live and how long.
#[derive(Debug, Clone, Serialize)]
pub struct SessionConfig {
    pub store: StoreKind,
    pub cookie_name: String,
    /// Plain-http development only: drops `Secure` (and so the `__Host-` prefix).
    pub dev_insecure_cookie: bool,
    /// Sliding: a session unused this long ends.
    #[serde(serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    /// Hard limit from login, however active the session is.
    #[serde(serialize_with = "ser_duration")]
    pub absolute_timeout: Duration,
    /// Base64 AES-256 keys; the first seals, all open.
    pub encryption_keys: Vec<Secret>,
    /// Opened sessions kept per replica (0: no cache, every call reads the store).
    pub cache_size: usize,
    /// How long a cached session is trusted before the store is read again, even without an
    /// invalidation (a safety net; invalidations normally arrive within milliseconds).
    #[serde(serialize_with = "ser_duration")]
    pub cache_max_age: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Memory,
    Redis,
}

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
    /// Seed nodes of a Redis Cluster, `host:port`.
    ClusterNodes(Vec<String>),
}

/// Per-client request limits (by client address, after `server.trusted_proxies`), counted per
/// replica in windows of `window`. 0 turns a limit off.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimitsConfig {
    #[serde(serialize_with = "ser_duration")]
    pub window: Duration,
    /// `GET /bff/login` calls per window.
    pub login: u32,
    /// `/signin-oidc` calls per window.
    pub callback: u32,
    /// `POST /bff/backchannel` calls per window (per IdP address).
    pub backchannel: u32,
    /// Requests with a session cookie that matches no live session, per window.
    pub failed_session_lookups: u32,
}

/// Security headers on every response the browser gets, proxied or the gateway's own. `None`
/// (an empty string in the file) leaves a header out.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseHeadersConfig {
    /// `Strict-Transport-Security`; by default `max-age=31536000` when the public origin is
    /// https, else none.
    #[serde(serialize_with = "ser_or_off")]
    pub strict_transport_security: Option<String>,
    /// `X-Content-Type-Options`: `nosniff`.
    #[serde(serialize_with = "ser_or_off")]
    pub content_type_options: Option<String>,
    /// `Referrer-Policy`.
    #[serde(serialize_with = "ser_or_off")]
    pub referrer_policy: Option<String>,
    /// `X-Frame-Options`: `DENY` or `SAMEORIGIN`.
    #[serde(serialize_with = "ser_or_off")]
    pub frame_options: Option<String>,
    /// `Content-Security-Policy`; by default only `frame-ancestors` matching `frame_options`.
    #[serde(serialize_with = "ser_or_off")]
    pub content_security_policy: Option<String>,
    /// Headers (by name, lower-case) whose value from the upstream, when it sends one, is kept
    /// instead of the gateway's.
    pub upstream_wins: Vec<String>,
}

impl ResponseHeadersConfig {
    /// The headers that are on, as `(name, value)`.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        [
            ("strict-transport-security", &self.strict_transport_security),
            ("x-content-type-options", &self.content_type_options),
            ("referrer-policy", &self.referrer_policy),
            ("x-frame-options", &self.frame_options),
            ("content-security-policy", &self.content_security_policy),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
        .collect()
    }
}

/// A condition on one claim of the signed-in user (a `require` entry). All of a list's rules
/// must hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimRule {
    /// The claim's name (`groups`, `https://example.com/roles`), or a dot path into nested
    /// claims (`realm_access.roles`).
    pub claim: String,
    #[serde(flatten)]
    pub condition: ClaimCondition,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimCondition {
    /// The claim (a string, or an array of strings) has at least one of these values.
    AnyOf(Vec<String>),
    /// The claim has every one of these values.
    AllOf(Vec<String>),
    /// The claim is this value.
    Equals(ClaimValue),
    /// The claim is there (and not null). Always `true` in a valid config.
    Present(bool),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ClaimValue {
    String(String),
    Bool(bool),
    Integer(i64),
    Float(f64),
}

/// Keys and contents of signed identity assertions (`routes[].identity_assertion`).
#[derive(Debug, Clone, Serialize)]
pub struct IdentityAssertionConfig {
    /// Signing keys: the first signs, all are published at the JWKS endpoint.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<AssertionKey>,
    /// How long an assertion is valid (`exp - iat`).
    #[serde(serialize_with = "ser_duration")]
    pub lifetime: Duration,
    /// Claims of the session copied into assertions (besides `sub` and `sid`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssertionKey {
    /// The `kid` upstreams look the key up by.
    pub id: String,
    /// PEM private key: RSA (RS256) or EC P-256 (ES256), PKCS#8.
    pub private_key: Secret,
}

/// Who may sign in at all (`[authorization]`).
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizationConfig {
    /// Rules on the ID token's claims, checked at the login callback; empty: anyone the IdP
    /// signs in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<ClaimRule>,
}

/// How API calls prove they come from the SPA's own pages.
#[derive(Debug, Clone, Serialize)]
pub struct AntiForgeryConfig {
    /// Header a protected call must carry (`X-CSRF` by convention with Duende BFF clients).
    pub header: String,
    /// The value it must have.
    pub value: String,
    /// Origins besides the gateway's own that may call protected routes.
    #[serde(serialize_with = "ser_display_list")]
    pub allowed_origins: Vec<Origin>,
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
