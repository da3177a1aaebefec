//! Turns the layered tree into a [`Config`], collecting every problem on the way.
//!
//! Pure apart from reading `*_file` secrets: no sockets are bound and no names are resolved.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use toml::Table;

use super::reader::{Issue, Reader, Section};
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
    let (origins, overlay_issues) = overlay(root, env);
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
        (
            server,
            admin,
            log,
            pingora,
            anti_forgery,
            rate_limits,
            response_headers,
            authorization,
            identity_assertion,
            session,
            tokens,
            redis,
            oidc,
            clusters,
            routes,
        )
    };
    let keys = reader.asked();
    let issues = reader.into_issues();
    let result = match config {
        (
            Some(server),
            Some(admin),
            Some(log),
            Some(pingora),
            Some(anti_forgery),
            Some(rate_limits),
            Some(response_headers),
            authorization,
            identity_assertion,
            Some(session),
            Some(tokens),
            redis,
            oidc,
            clusters,
            routes,
        ) if issues.is_empty() => Ok(Config {
            server,
            admin,
            log,
            pingora,
            anti_forgery,
            rate_limits,
            response_headers,
            authorization,
            identity_assertion,
            session,
            tokens,
            redis,
            oidc,
            clusters,
            routes,
        }),
        _ => Err(issues),
    };
    (result, keys)
}

fn socket_addr(s: &Section<'_, '_>, key: &'static str, default: &str) -> Option<SocketAddr> {
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

fn server(s: &Section<'_, '_>) -> Option<ServerConfig> {
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

fn admin(s: &Section<'_, '_>) -> Option<AdminConfig> {
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

fn log(s: &Section<'_, '_>) -> Option<LogConfig> {
    let format = s
        .parsed("format", "use \"text\" or \"json\"", |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{v:?} is not a log format")),
        })
        .unwrap_or(LogFormat::Text);
    Some(LogConfig {
        format,
        level: s
            .parsed(
                "level",
                "use error, warn, info, debug or trace, or a filter such as \"info,portcullis=debug\"",
                |v| match tracing_subscriber::EnvFilter::try_new(v) {
                    Ok(_) => Ok(v.to_string()),
                    Err(e) => Err(format!("{v:?} is not a log filter: {e}")),
                },
            )
            .unwrap_or_else(|| "info".into()),
        access_log: s.bool("access_log").unwrap_or(true),
        access_log_user: s
            .parsed("access_log_user", "use \"none\" or \"sub\"", |v| match v {
                "none" => Ok(AccessLogUser::None),
                "sub" => Ok(AccessLogUser::Sub),
                other => Err(format!("{other:?} is neither none nor sub")),
            })
            .unwrap_or(AccessLogUser::None),
    })
}

fn pingora(s: &Section<'_, '_>) -> Option<PingoraConfig> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let count = |key, min, max, default: usize| {
        s.integer(key, min, max)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default)
    };
    Some(PingoraConfig {
        threads: count("threads", 1, 1024, cores),
        work_stealing: s.bool("work_stealing").unwrap_or(true),
        shutdown_delay: match s.duration("shutdown_delay") {
            Some(d) if d > Duration::from_secs(300) => {
                s.issue(
                    "shutdown_delay",
                    "is longer than 5m",
                    "use a few seconds: long enough for endpoints to update, e.g. \"5s\"",
                );
                d
            }
            d => d.unwrap_or(Duration::ZERO),
        },
        grace_period: s
            .duration("grace_period")
            .unwrap_or(Duration::from_secs(10)),
        graceful_shutdown_timeout: s
            .duration("graceful_shutdown_timeout")
            .unwrap_or(Duration::from_secs(5)),
        upstream_keepalive_pool_size: count("upstream_keepalive_pool_size", 1, 1_000_000, 1024),
        keepalive_timeout: s
            .duration("keepalive_timeout")
            .unwrap_or(Duration::from_secs(60)),
        client_body_timeout: match s.duration("client_body_timeout") {
            Some(d) if d.is_zero() => {
                s.issue(
                    "client_body_timeout",
                    "is zero, which would let a client stall forever",
                    "use a few seconds to a minute, e.g. \"60s\"",
                );
                Duration::from_secs(60)
            }
            d => d.unwrap_or(Duration::from_secs(60)),
        },
        keepalive_request_limit: s
            .integer("keepalive_request_limit", 1, i64::from(u32::MAX))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(10_000),
        listener_tasks_per_fd: count("listener_tasks_per_fd", 1, 64, 1),
        upgrade_sock: s
            .string("upgrade_sock")
            .unwrap_or_else(|| "/tmp/portcullis_upgrade.sock".into()),
        pid_file: s
            .string("pid_file")
            .unwrap_or_else(|| "/tmp/portcullis.pid".into()),
    })
}

/// The valid clusters, and the names of all declared ones (a route naming a declared but
/// invalid cluster is not reported twice).
fn anti_forgery(s: &Section<'_, '_>) -> Option<AntiForgeryConfig> {
    let header = s
        .parsed("header", "use a header name such as \"X-CSRF\"", |h| {
            http::HeaderName::from_bytes(h.as_bytes())
                .map(|_| h.to_string())
                .map_err(|_| format!("{h:?} is not a valid header name"))
        })
        .unwrap_or_else(|| "X-CSRF".into());
    let value = s
        .parsed(
            "value",
            "use a short visible-ASCII value such as \"1\"",
            |v| {
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()) {
                    Ok(v.to_string())
                } else {
                    Err(format!("{v:?} is empty or not visible ASCII"))
                }
            },
        )
        .unwrap_or_else(|| "1".into());
    let allowed_origins = s.parsed_list(
        "allowed_origins",
        "write an origin such as \"https://admin.example.com\" (no path)",
        Origin::parse,
    );
    Some(AntiForgeryConfig {
        header,
        value,
        allowed_origins,
    })
}

fn rate_limits(s: &Section<'_, '_>) -> Option<RateLimitsConfig> {
    let window = s.duration("window").unwrap_or(Duration::from_secs(60));
    if window < Duration::from_secs(1) || window > Duration::from_secs(3600) {
        s.issue("window", "must be between 1s and 1h", "use e.g. \"1m\"");
    }
    let limit = |key: &'static str, default: u32| {
        s.integer(key, 0, 1_000_000)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default)
    };
    Some(RateLimitsConfig {
        window,
        login: limit("login", 60),
        callback: limit("callback", 60),
        backchannel: limit("backchannel", 600),
        failed_session_lookups: limit("failed_session_lookups", 60),
    })
}

fn identity_assertion(s: &Section<'_, '_>) -> IdentityAssertionConfig {
    let mut keys: Vec<AssertionKey> = Vec::new();
    for k in s.table_list("keys") {
        let id = k.string("id").filter(|i| !i.is_empty());
        if id.is_none() {
            k.issue(
                "id",
                "missing or empty",
                "name the key, e.g. id = \"2026-01\"",
            );
        }
        let key = k.secret("private_key", "private_key_file");
        if key.is_none() && !k.has("private_key") && !k.has("private_key_file") {
            k.issue(
                "private_key_file",
                "missing",
                "point it at a PEM private key: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem",
            );
        }
        let (Some(id), Some(key)) = (id, key) else {
            continue;
        };
        if let Err(e) = crate::authz::assertion::parse_key(&id, key.expose()) {
            k.issue(
                "private_key",
                e,
                "give an EC P-256 key (ES256) or an RSA key of 2048 bits or more (RS256), in PEM",
            );
            continue;
        }
        if keys.iter().any(|o| o.id == id) {
            k.issue(
                "id",
                format!("{id:?} is used by another key"),
                "give every key its own id",
            );
            continue;
        }
        keys.push(AssertionKey {
            id,
            private_key: key,
        });
    }
    let lifetime = s.duration("lifetime").unwrap_or(Duration::from_secs(60));
    if lifetime < Duration::from_secs(10) || lifetime > Duration::from_secs(600) {
        s.issue(
            "lifetime",
            "must be between 10s and 10m",
            "use e.g. \"60s\": long enough for one call chain, short enough that a copy is useless soon",
        );
    }
    IdentityAssertionConfig {
        keys,
        lifetime,
        claims: s.strings("claims").unwrap_or_default(),
    }
}

/// Session keys that appear in this repository's demo files (`docker/compose.yaml`): accepted
/// only for a loopback origin, and then with a warning.
pub const PUBLISHED_SESSION_KEYS: &[&str] = &["q0S8pJlY0E9o1cJc3m2m4G7mQ3cGmZq1v7bS0lJcR2U="];

const REFERRER_POLICIES: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

fn response_headers(s: &Section<'_, '_>, https: bool) -> Option<ResponseHeadersConfig> {
    // An empty string turns a header off; any other value must be sendable as it is.
    let header = |key: &'static str, fix: &str, check: &dyn Fn(&str) -> Result<(), String>| {
        s.parsed(key, fix, |v| {
            if v.is_empty() {
                return Ok(None);
            }
            if http::HeaderValue::from_str(v).is_err() {
                return Err(format!("{v:?} is not a valid header value"));
            }
            check(v).map(|()| Some(v.to_string()))
        })
    };
    let hsts = header(
        "strict_transport_security",
        "write e.g. \"max-age=31536000; includeSubDomains\", or \"\" for none",
        &|v| {
            let ok = v.split(';').any(|d| {
                d.trim()
                    .strip_prefix("max-age=")
                    .is_some_and(|n| n.parse::<u64>().is_ok())
            });
            if ok {
                Ok(())
            } else {
                Err(format!("{v:?} has no max-age=<seconds> directive"))
            }
        },
    )
    .unwrap_or_else(|| https.then(|| "max-age=31536000".to_string()));
    let content_type_options = header(
        "content_type_options",
        "use \"nosniff\" (or \"\" for none)",
        &|v| {
            if v == "nosniff" {
                Ok(())
            } else {
                Err(format!("{v:?} is not nosniff"))
            }
        },
    )
    .unwrap_or_else(|| Some("nosniff".into()));
    let referrer_policy = header(
        "referrer_policy",
        &format!("use one of: {}", REFERRER_POLICIES.join(", ")),
        &|v| match v
            .split(',')
            .map(str::trim)
            .find(|p| !REFERRER_POLICIES.contains(p))
        {
            None => Ok(()),
            Some(p) => Err(format!("{p:?} is not a referrer policy")),
        },
    )
    .unwrap_or_else(|| Some("strict-origin-when-cross-origin".into()));
    let frame_options = header(
        "frame_options",
        "use \"DENY\", \"SAMEORIGIN\" or \"\" (framing allowed; then set content_security_policy's frame-ancestors)",
        &|v| match v {
            "DENY" | "SAMEORIGIN" => Ok(()),
            _ => Err(format!("{v:?} is neither DENY nor SAMEORIGIN")),
        },
    )
    .unwrap_or_else(|| Some("DENY".into()));
    // Browsers obey `frame-ancestors` over X-Frame-Options, so the default follows it.
    let csp = header(
        "content_security_policy",
        "write a policy such as \"default-src 'self'; frame-ancestors 'none'\", or \"\" for none",
        &|_| Ok(()),
    )
    .unwrap_or_else(|| match frame_options.as_deref() {
        Some("DENY") => Some("frame-ancestors 'none'".into()),
        Some("SAMEORIGIN") => Some("frame-ancestors 'self'".into()),
        _ => None,
    });
    let names = [
        "strict-transport-security",
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
        "content-security-policy",
    ];
    let upstream_wins = s.parsed_list(
        "upstream_wins",
        &format!("name some of: {}", names.join(", ")),
        |v| {
            let lower = v.to_ascii_lowercase();
            if names.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(format!("{v:?} is not one of the headers this section sets"))
            }
        },
    );
    Some(ResponseHeadersConfig {
        strict_transport_security: hsts,
        content_type_options,
        referrer_policy,
        frame_options,
        content_security_policy: csp,
        upstream_wins,
    })
}

/// Authorization request parameters the login flow sets itself; configuring them would break
/// or weaken it (PKCE, state, nonce) or contradict other keys.
const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "client_id",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "redirect_uri",
    "response_mode",
    "response_type",
    "scope",
    "state",
];

fn oidc(o: &Section<'_, '_>) -> Option<OidcConfig> {
    let issuer = o.parsed(
        "issuer",
        "write the issuer exactly as the IdP publishes it, e.g. \"https://tenant.eu.auth0.com/\"",
        |v| {
            let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| v.starts_with(p));
            if !(v.starts_with("https://") || loopback) {
                return Err(format!(
                    "{v:?} must be https (plain http only on loopback, for tests)"
                ));
            }
            if v.contains(['?', '#']) {
                return Err(format!("{v:?} must not have a query or fragment"));
            }
            Ok(v.to_string())
        },
    );
    let client_id = o.string("client_id");
    let client_auth = o
        .parsed(
            "client_auth",
            "use \"client_secret_basic\", \"client_secret_post\" or \"private_key_jwt\"",
            |v| match v {
                "client_secret_basic" => Ok(ClientAuth::ClientSecretBasic),
                "client_secret_post" => Ok(ClientAuth::ClientSecretPost),
                "private_key_jwt" => Ok(ClientAuth::PrivateKeyJwt),
                _ => Err(format!("{v:?} is not a supported client authentication")),
            },
        )
        .unwrap_or(ClientAuth::ClientSecretBasic);
    let client_secret = o.secret("client_secret", "client_secret_file");
    let private_key = o.secret("private_key", "private_key_file");
    let private_key_id = o.string("private_key_id");
    let certificate = o.secret("certificate", "certificate_file");
    if let Some(cert) = &certificate {
        if let Err(e) = crate::oidc::assertion::thumbprints(cert.expose()) {
            o.issue(
                "certificate",
                e,
                "give the certificate registered at the IdP, in PEM (the .pem/.crt you uploaded)",
            );
        }
    }
    let scopes = o.strings("scopes").unwrap_or_else(|| {
        ["openid", "profile", "email", "offline_access"]
            .map(String::from)
            .to_vec()
    });
    for (i, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\') {
            o.issue(
                &format!("scopes[{i}]"),
                format!("{scope:?} is not a valid scope"),
                "write one scope per entry, without spaces",
            );
        }
    }
    let allowed_acr_values = super::rules::acr_values(o, "allowed_acr_values");
    let authorize_params = o.string_map("authorize_params").unwrap_or_default();
    for (name, _) in &authorize_params {
        if RESERVED_AUTHORIZE_PARAMS.contains(&name.as_str()) {
            o.issue(
                &format!("authorize_params.{name}"),
                "is set by the login flow itself",
                "remove it (scopes go in oidc.scopes; PKCE, state and nonce are always sent)",
            );
        }
    }
    let local_path = |v: &str| {
        if v.starts_with('/') && !v.starts_with("//") && !v.contains(['?', '#', '\\']) {
            Ok(v.to_string())
        } else {
            Err(format!("{v:?} is not an absolute path"))
        }
    };
    let callback_path = o
        .parsed(
            "callback_path",
            "write a path such as \"/signin-oidc\"",
            local_path,
        )
        .unwrap_or_else(|| "/signin-oidc".into());
    let post_logout_path = o
        .parsed(
            "post_logout_path",
            "write a path such as \"/signout-callback-oidc\"",
            local_path,
        )
        .unwrap_or_else(|| "/signout-callback-oidc".into());
    for (key, path) in [
        ("callback_path", &callback_path),
        ("post_logout_path", &post_logout_path),
    ] {
        if path.starts_with("/bff/") {
            o.issue(
                key,
                format!("{path:?} is under /bff/, where the gateway's own endpoints live"),
                "use a path such as \"/signin-oidc\"",
            );
        }
    }
    if callback_path == post_logout_path {
        o.issue(
            "post_logout_path",
            "is the same as callback_path",
            "use \"/signout-callback-oidc\"",
        );
    }
    let userinfo = o.bool("userinfo").unwrap_or(false);
    let idp_logout = o
        .parsed(
            "idp_logout",
            "use \"end-session\", \"auth0\" or \"none\"",
            |v| match v {
                "end-session" => Ok(IdpLogout::EndSession),
                "auth0" => Ok(IdpLogout::Auth0),
                "none" => Ok(IdpLogout::None),
                _ => Err(format!("{v:?} is not an IdP logout mode")),
            },
        )
        .unwrap_or(IdpLogout::EndSession);
    let login_timeout = o
        .duration("login_timeout")
        .unwrap_or(Duration::from_secs(600));
    let discovery_refresh = o
        .duration("discovery_refresh")
        .unwrap_or(Duration::from_secs(3600));
    let http_timeout = o
        .duration("http_timeout")
        .unwrap_or(Duration::from_secs(10));
    if !o.is_present() {
        return None;
    }
    if issuer.is_none() && !o.has("issuer") {
        o.issue("issuer", "missing", "set the IdP's issuer URL");
    }
    if client_id.is_none() && !o.has("client_id") {
        o.issue(
            "client_id",
            "missing",
            "set the client id registered at the IdP",
        );
    }
    if login_timeout.is_zero() || login_timeout > Duration::from_secs(3600) {
        o.issue(
            "login_timeout",
            "must be between 1s and 1h",
            "use e.g. \"10m\": long enough to sign in, short enough that a leaked state is useless",
        );
    }
    let secret_given = o.has("client_secret") || o.has("client_secret_file");
    match client_auth {
        ClientAuth::PrivateKeyJwt => {
            if !(o.has("private_key") || o.has("private_key_file")) {
                o.issue(
                    "private_key_file",
                    "missing: private_key_jwt signs client assertions with it",
                    "set private_key_file to the PEM private key registered (as a public JWK) at the IdP",
                );
            }
            if let Some(key) = &private_key {
                if let Err(e) = crate::oidc::assertion::parse_key(key.expose()) {
                    o.issue(
                        "private_key",
                        e,
                        "give an RSA private key (2048 bits or more) in PEM, e.g. from: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048",
                    );
                }
            }
            if secret_given {
                o.issue(
                    "client_secret",
                    "is not used with client_auth = \"private_key_jwt\"",
                    "remove client_secret, or choose a client_secret_* method",
                );
            }
        }
        _ => {
            if !secret_given {
                o.issue(
                    "client_secret",
                    "missing",
                    "set client_secret, client_secret_file or PORTCULLIS__OIDC__CLIENT_SECRET",
                );
            }
            if o.has("private_key") || o.has("private_key_file") {
                o.issue(
                    "private_key_file",
                    "is only used with client_auth = \"private_key_jwt\"",
                    "remove it, or set client_auth = \"private_key_jwt\"",
                );
            }
            if certificate.is_some() {
                o.issue(
                    "certificate_file",
                    "is only used with client_auth = \"private_key_jwt\"",
                    "remove it, or set client_auth = \"private_key_jwt\"",
                );
            }
        }
    }
    Some(OidcConfig {
        issuer: issuer?,
        client_id: client_id?,
        client_auth,
        client_secret,
        private_key,
        private_key_id,
        certificate,
        scopes,
        allowed_acr_values,
        authorize_params,
        callback_path,
        post_logout_path,
        idp_logout,
        userinfo,
        login_timeout,
        discovery_refresh,
        http_timeout,
    })
}

fn session(s: &Section<'_, '_>) -> Option<SessionConfig> {
    let store = s
        .parsed(
            "store",
            "use \"memory\" (one replica) or \"redis\" (shared)",
            |v| match v {
                "memory" => Ok(StoreKind::Memory),
                "redis" => Ok(StoreKind::Redis),
                _ => Err(format!("{v:?} is not a session store")),
            },
        )
        .unwrap_or(StoreKind::Memory);
    let cookie_name = s.parsed(
        "cookie_name",
        "use letters, digits, '-' and '_', e.g. \"__Host-portcullis\"",
        |v| {
            if !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                Ok(v.to_string())
            } else {
                Err(format!("{v:?} is not a valid cookie name"))
            }
        },
    );
    let dev_insecure_cookie = s.bool("dev_insecure_cookie").unwrap_or(false);
    let cookie_name = match cookie_name {
        Some(name)
            if dev_insecure_cookie
                && (name.starts_with("__Host-") || name.starts_with("__Secure-")) =>
        {
            s.issue(
                "cookie_name",
                format!("{name:?} has a prefix browsers only accept on Secure cookies, and dev_insecure_cookie drops Secure"),
                "use a name without __Host-/__Secure-, e.g. \"portcullis\"",
            );
            name
        }
        // Without the prefix, a sibling subdomain (or plain-http page) can plant a cookie of
        // the same name that the browser sends first (RFC 6265bis §4.1.3.2).
        Some(name) if !dev_insecure_cookie && !name.starts_with("__Host-") => {
            s.issue(
                "cookie_name",
                format!("{name:?} lacks the __Host- prefix, so another subdomain could plant a cookie of that name"),
                "use a name that starts with __Host-, e.g. \"__Host-portcullis\"",
            );
            name
        }
        Some(name) => name,
        None if dev_insecure_cookie => "portcullis".into(),
        None => "__Host-portcullis".into(),
    };
    let idle_timeout = s
        .duration("idle_timeout")
        .unwrap_or(Duration::from_secs(20 * 60));
    let absolute_timeout = s
        .duration("absolute_timeout")
        .unwrap_or(Duration::from_secs(12 * 3600));
    if idle_timeout.is_zero() {
        s.issue(
            "idle_timeout",
            "must be longer than zero",
            "use e.g. \"20m\"",
        );
    }
    if absolute_timeout < idle_timeout {
        s.issue(
            "absolute_timeout",
            "is shorter than idle_timeout",
            "make absolute_timeout at least as long as idle_timeout",
        );
    }
    let encryption_keys = s
        .secret_list("encryption_keys", "encryption_keys_file")
        .unwrap_or_default();
    for (i, key) in encryption_keys.iter().enumerate() {
        if crate::session::KeyRing::from_base64(&[key.expose()]).is_err() {
            s.issue(
                &format!("encryption_keys[{i}]"),
                "is not base64 of 32 bytes",
                "generate one with: openssl rand -base64 32",
            );
        }
    }
    let cache_size = s
        .integer("cache_size", 0, 10_000_000)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(10_000);
    let cache_max_age = s
        .duration("cache_max_age")
        .unwrap_or(Duration::from_secs(300));
    if cache_max_age.is_zero() {
        s.issue(
            "cache_max_age",
            "must be longer than zero",
            "use e.g. \"5m\", or set cache_size = 0 to turn the session cache off",
        );
    }
    if store == StoreKind::Redis && encryption_keys.is_empty() {
        s.issue(
            "encryption_keys",
            "missing: sessions in Redis hold tokens and must be encrypted with keys every replica shares",
            "set encryption_keys = [\"<openssl rand -base64 32>\"] or encryption_keys_file",
        );
    }
    Some(SessionConfig {
        store,
        cookie_name,
        dev_insecure_cookie,
        idle_timeout,
        absolute_timeout,
        encryption_keys,
        cache_size,
        cache_max_age,
    })
}

fn redis(r: &Section<'_, '_>, store: Option<StoreKind>) -> Option<RedisConfig> {
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
        let nodes = cluster_nodes.unwrap_or_default();
        for (i, n) in nodes.iter().enumerate() {
            let ok = n
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                r.issue(
                    &format!("cluster_nodes[{i}]"),
                    format!("{n:?} is not host:port"),
                    "e.g. \"10.0.0.1:6379\"",
                );
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

fn clusters(top: &Section<'_, '_>) -> (BTreeMap<String, ClusterConfig>, Vec<String>) {
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

fn cluster(c: &Section<'_, '_>) -> Option<ClusterConfig> {
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

fn health_check(h: &Section<'_, '_>) -> Option<HealthCheckConfig> {
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

fn routes(
    top: &Section<'_, '_>,
    clusters: &[String],
    anti_forgery_header: &str,
) -> Vec<RouteConfig> {
    let list = top.table_list("routes");
    if list.is_empty() && !top.has("routes") {
        top.issue(
            "routes",
            "no route is defined",
            "add at least one, e.g. [[routes]] path = \"/\" cluster = \"spa\"",
        );
    }
    let mut out: Vec<RouteConfig> = Vec::new();
    for r in &list {
        let path = r.parsed("path", "write a path prefix such as \"/api/\"", |p| {
            if !p.starts_with('/') {
                Err(format!("{p:?} does not start with /"))
            } else if p.contains(['?', '#', '\\']) || p.contains("//") {
                Err(format!("{p:?} is not a plain path prefix"))
            } else {
                Ok(p.to_string())
            }
        });
        if path.is_none() && !r.has("path") {
            r.issue(
                "path",
                "missing",
                "set the path prefix this route matches, e.g. \"/api/\"",
            );
        }
        let host = r.string("host").map(|h| h.to_ascii_lowercase());
        let cluster = r.string("cluster");
        match &cluster {
            None if !r.has("cluster") => r.issue(
                "cluster",
                "missing",
                "name the cluster that serves this route",
            ),
            Some(name) if !clusters.contains(name) => {
                r.issue(
                    "cluster",
                    format!("no cluster named {name:?}"),
                    format!(
                        "use one of: {}, or define [clusters.{name}]",
                        clusters.join(", ")
                    ),
                );
            }
            _ => {}
        }
        let strip = r.bool("strip_prefix").unwrap_or(false);
        let rewrite = r.parsed("rewrite_prefix", "write a path such as \"/v1/\"", |p| {
            if p.starts_with('/') {
                Ok(p.to_string())
            } else {
                Err(format!("{p:?} does not start with /"))
            }
        });
        if strip && rewrite.is_some() {
            r.issue(
                "strip_prefix",
                "strip_prefix and rewrite_prefix are both set",
                "keep one: strip_prefix = true is rewrite_prefix = \"/\"",
            );
        }
        let rewrite_prefix = rewrite.or_else(|| strip.then(|| "/".to_string()));
        let token = r
            .parsed(
                "token",
                "use \"none\", \"user\", \"client\", \"user-or-client\" or \"user-or-none\"",
                TokenPolicy::parse,
            )
            .unwrap_or(TokenPolicy::None);
        // A route that forwards a token acts with the user's authority: protected by default.
        let anti_forgery = r.bool("anti_forgery").unwrap_or(token != TokenPolicy::None);
        let resource = r.parsed(
            "resource",
            "write the API's resource indicator, an absolute URI such as \"https://api.example.com\"",
            |v| {
                if v.contains("://") || v.starts_with("urn:") {
                    if v.contains('#') {
                        Err(format!("{v:?} must not have a fragment (RFC 8707)"))
                    } else {
                        Ok(v.to_string())
                    }
                } else {
                    Err(format!("{v:?} is not an absolute URI"))
                }
            },
        );
        let scopes = r.strings("scopes").unwrap_or_default();
        let require = super::rules::claim_rules(r, "require");
        let identity_assertion = r.bool("identity_assertion").unwrap_or(false);
        let identity_assertion_audience = r.string("identity_assertion_audience");
        if identity_assertion_audience.is_some() && !identity_assertion {
            r.issue(
                "identity_assertion_audience",
                "is set, but identity_assertion is not true",
                "set identity_assertion = true, or remove it",
            );
        }
        let claim_headers = super::rules::claim_headers(r, anti_forgery_header);
        let acr_values = super::rules::acr_values(r, "acr_values");
        // Rules judge a session; a route without one has nobody to judge.
        if token == TokenPolicy::None || token == TokenPolicy::Client {
            for (key, set) in [
                ("identity_assertion", identity_assertion),
                ("require", !require.is_empty()),
                ("claim_headers", !claim_headers.is_empty()),
                ("acr_values", !acr_values.is_empty()),
            ] {
                if set {
                    r.issue(
                        key,
                        format!("is set, but the route looks up no session (token = {token:?})"),
                        "set token = \"user\" (or \"user-or-none\"/\"user-or-client\")",
                    );
                }
            }
        }
        let max_body = r.parsed(
            "max_body",
            "write a size with a unit, such as \"1MiB\" or \"512KiB\"",
            super::size::parse,
        );
        if token == TokenPolicy::None && (resource.is_some() || !scopes.is_empty()) {
            r.issue(
                if resource.is_some() {
                    "resource"
                } else {
                    "scopes"
                },
                "is set but the route forwards no token (token = \"none\")",
                "set token = \"user\" (or another policy), or remove it",
            );
        }
        let name = r.string("name");
        let (Some(path), Some(cluster)) = (path, cluster) else {
            continue;
        };
        if let Some(dup) = out.iter().find(|o| o.path == path && o.host == host) {
            r.issue(
                "path",
                format!(
                    "route {:?} already matches {path:?} for the same host",
                    dup.name
                ),
                "remove one of the two routes",
            );
            continue;
        }
        let name = name.unwrap_or_else(|| match &host {
            Some(h) => format!("{h}{path}"),
            None => path.clone(),
        });
        if out.iter().any(|o| o.name == name) {
            r.issue(
                "name",
                format!("{name:?} is used by another route"),
                "give every route its own name",
            );
            continue;
        }
        out.push(RouteConfig {
            name,
            path,
            host,
            cluster,
            rewrite_prefix,
            anti_forgery,
            token,
            resource,
            scopes,
            require,
            claim_headers,
            acr_values,
            identity_assertion,
            identity_assertion_audience,
            max_body,
        });
    }
    out
}

fn tokens(t: &Section<'_, '_>) -> Option<TokensConfig> {
    let refresh_skew = t
        .duration("refresh_skew")
        .unwrap_or(Duration::from_secs(60));
    let refresh_lock_lease = t
        .duration("refresh_lock_lease")
        .unwrap_or(Duration::from_secs(5));
    let refresh_wait = t
        .duration("refresh_wait")
        .unwrap_or(Duration::from_secs(10));
    if refresh_lock_lease < Duration::from_millis(500) {
        t.issue(
            "refresh_lock_lease",
            "is shorter than 500ms",
            "use a few seconds: the lease is renewed while the IdP call runs",
        );
    }
    if refresh_wait < refresh_lock_lease {
        t.issue(
            "refresh_wait",
            "is shorter than refresh_lock_lease",
            "wait at least one lease, so a crashed refresher's lock can expire and be taken over",
        );
    }
    Some(TokensConfig {
        refresh_skew,
        refresh_lock_lease,
        refresh_wait,
    })
}
