//! Turns the layered tree into a [`Config`], collecting every problem on the way.
//!
//! Pure apart from reading `*_file` secrets: no sockets are bound and no names are resolved.

use std::collections::BTreeSet;

use toml::Table;

use super::reader::{Issue, Reader};
use super::section::{
    admin::admin, anti_forgery::anti_forgery, clusters::clusters,
    identity_assertion::identity_assertion, log::log, oidc::oidc, pingora::pingora,
    rate_limits::rate_limits, redis::redis, response_headers::response_headers, routes::routes,
    server::server, session::session, telemetry::telemetry, tokens::tokens,
};
use super::source::{overlay, Environment};
use super::*;

pub fn validate(root: &mut Table, env: &dyn Environment) -> Result<Config, Vec<Issue>> {
    validate_and_list_keys(root, env).0
}

/// Also returns every key the validator knows, in schema form (`routes[].path`); tests check
/// the docs and the example config against it.
pub fn validate_and_list_keys(
    root: &mut Table,
    env: &dyn Environment,
) -> (Result<Config, Vec<Issue>>, BTreeSet<String>) {
    // OTEL_* first, so a PORTCULLIS__TELEMETRY__* variable wins over its standard twin.
    let (mut origins, mut overlay_issues) = super::otel_env::overlay(root, env);
    let (more_origins, more_issues) = overlay(root, env);
    origins.extend(more_origins);
    overlay_issues.extend(more_issues);
    let reader = Reader::new(&origins);
    for issue in overlay_issues {
        reader.push(
            issue.var.clone(),
            issue.problem,
            "fix or unset the variable",
        );
    }
    let config = {
        let top = reader.root(root);
        let server = server(&top.section("server"));
        let admin = admin(&top.section("admin"));
        let log = log(&top.section("log"));
        let pingora = pingora(&top.section("pingora"));
        let anti_forgery = anti_forgery(&top.section("anti_forgery"));
        let rate_limits = rate_limits(&top.section("rate_limits"));
        let identity_assertion = identity_assertion(&top.section("identity_assertion"));
        let telemetry = telemetry(&top.section("telemetry"));
        let authorization = AuthorizationConfig {
            require: super::rules::claim_rules(&top.section("authorization"), "require"),
        };
        let response_headers = response_headers(
            &top.section("response_headers"),
            server
                .as_ref()
                .and_then(|s| s.public_origin.as_ref())
                .is_some_and(|o| o.is_https()),
        );
        let session = session(&top.section("session"));
        let tokens = tokens(&top.section("tokens"));
        let redis = redis(&top.section("redis"), session.as_ref().map(|s| s.store));
        let oidc = oidc(&top.section("oidc"));
        let (clusters, declared) = clusters(&top);
        let af_header = anti_forgery
            .as_ref()
            .map_or("X-CSRF", |a| a.header.as_str())
            .to_string();
        let routes = routes(&top, &declared, &af_header);
        for (i, r) in routes.iter().enumerate() {
            if r.identity_assertion && identity_assertion.keys.is_empty() {
                reader.push(
                    format!("routes[{i}].identity_assertion"),
                    "is true, but identity_assertion.keys has no key to sign with",
                    "add a key: [[identity_assertion.keys]] id = \"2026-01\" private_key_file = \"...\" (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)",
                );
            }
            if r.identity_assertion && server.as_ref().is_some_and(|s| s.public_origin.is_none()) {
                reader.push(
                    format!("routes[{i}].identity_assertion"),
                    "is true, but server.public_origin (the assertions' iss) is not set",
                    "set server.public_origin",
                );
            }
        }
        // The demo's key is public: fine on a laptop, never where real users sign in.
        if let (Some(sess), Some(srv)) = (&session, &server) {
            if !srv.public_origin.as_ref().is_none_or(|o| o.is_loopback()) {
                for (i, key) in sess.encryption_keys.iter().enumerate() {
                    if PUBLISHED_SESSION_KEYS.contains(&key.expose()) {
                        reader.push(
                            format!("session.encryption_keys[{i}]"),
                            "is the demo key published in Portcullis' repository: anyone can read and forge sessions sealed with it",
                            "generate your own with openssl rand -base64 32 and keep it in a secret (PORTCULLIS__SESSION__ENCRYPTION_KEYS or encryption_keys_file)",
                        );
                    }
                }
            }
        }
        if !authorization.require.is_empty() && oidc.is_none() {
            reader.push(
                "authorization.require".into(),
                "is set, but [oidc] is not configured: nobody logs in",
                "configure [oidc], or remove [authorization]",
            );
        }
        if oidc.is_none() {
            for (i, r) in routes.iter().enumerate() {
                if r.token != TokenPolicy::None {
                    reader.push(
                        format!("routes[{i}].token"),
                        format!(
                            "{:?} needs a login provider, and [oidc] is not configured",
                            r.token
                        ),
                        "configure [oidc], or set token = \"none\"",
                    );
                }
            }
        }
        if let (Some(o), Some(s)) = (&oidc, &server) {
            match &s.public_origin {
                None => reader.push(
                    "server.public_origin".into(),
                    "missing: [oidc] needs it to build the redirect URI the IdP sends browsers back to",
                    format!(
                        "set the origin browsers use, e.g. \"https://app.example.com\" (register https://app.example.com{} at the IdP)",
                        o.callback_path
                    ),
                ),
                Some(origin) if !origin.is_https() && !origin.is_loopback() => {
                    if !session.as_ref().is_some_and(|s| s.dev_insecure_cookie) {
                        reader.push(
                            "server.public_origin".into(),
                            format!("{origin} is plain http: browsers drop the Secure session cookie there"),
                            "serve https (or terminate TLS in front and set an https origin); for local development only, set session.dev_insecure_cookie = true",
                        );
                    }
                }
                Some(_) => {}
            }
        }
        if let (Some(s), Some(a)) = (&server, &admin) {
            if s.listen == a.listen {
                reader.push(
                    "admin.listen".into(),
                    format!("{} is also server.listen", a.listen),
                    "give the admin listener its own port, e.g. 127.0.0.1:9090",
                );
            }
        }
        Sections {
            server,
            admin,
            log,
            pingora,
            anti_forgery,
            rate_limits,
            response_headers,
            authorization,
            identity_assertion,
            telemetry,
            session,
            tokens,
            redis,
            oidc,
            clusters,
            routes,
        }
    };
    let keys = reader.asked();
    let issues = reader.into_issues();
    let result = match config.complete() {
        Some(config) if issues.is_empty() => Ok(config),
        _ => Err(issues),
    };
    (result, keys)
}

/// Every section as read; `None` where a section had problems (already reported).
struct Sections {
    server: Option<ServerConfig>,
    admin: Option<AdminConfig>,
    log: Option<LogConfig>,
    pingora: Option<PingoraConfig>,
    anti_forgery: Option<AntiForgeryConfig>,
    rate_limits: Option<RateLimitsConfig>,
    response_headers: Option<ResponseHeadersConfig>,
    authorization: AuthorizationConfig,
    identity_assertion: IdentityAssertionConfig,
    telemetry: Option<TelemetryConfig>,
    session: Option<SessionConfig>,
    tokens: Option<TokensConfig>,
    redis: Option<RedisConfig>,
    oidc: Option<OidcConfig>,
    clusters: BTreeMap<String, ClusterConfig>,
    routes: Vec<RouteConfig>,
}

impl Sections {
    /// The configuration, when every required section could be read.
    fn complete(self) -> Option<Config> {
        Some(Config {
            server: self.server?,
            admin: self.admin?,
            log: self.log?,
            pingora: self.pingora?,
            anti_forgery: self.anti_forgery?,
            rate_limits: self.rate_limits?,
            response_headers: self.response_headers?,
            authorization: self.authorization,
            identity_assertion: self.identity_assertion,
            telemetry: self.telemetry?,
            session: self.session?,
            tokens: self.tokens?,
            redis: self.redis,
            oidc: self.oidc,
            clusters: self.clusters,
            routes: self.routes,
        })
    }
}
