//! The identity provider and the gateway as its client (`[oidc]`).

use std::time::Duration;

use serde::Serialize;

use crate::config::keys::{ClientKey, Thumbprints};
use crate::config::reader::Section;
use crate::config::{ser_duration, ser_pairs, Secret};

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
    /// The private key of `private_key_jwt` (PEM in the file), parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<ClientKey>,
    /// `kid` of the registered public key, sent in the assertion's header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_id: Option<String>,
    /// PEM certificate of `private_key`, as registered at the IdP: the assertion's header names
    /// it by thumbprint (`x5t`, `x5t#S256`), which is how Microsoft Entra ID finds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Thumbprints>,
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

/// Authorization request parameters the login flow sets itself; configuring them would break
/// or weaken it (PKCE, state, nonce) or contradict other keys.
pub(in crate::config) const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
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

pub(in crate::config) fn oidc(o: &Section<'_, '_>) -> Option<OidcConfig> {
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
    let private_key_pem = o.secret("private_key", "private_key_file");
    let mut private_key = None;
    let private_key_id = o.string("private_key_id");
    let certificate_pem = o.secret("certificate", "certificate_file");
    let mut certificate = None;
    if let Some(cert) = &certificate_pem {
        match crate::config::keys::certificate_thumbprints(cert.expose()) {
            Ok(thumbprints) => certificate = Some(thumbprints),
            Err(e) => {
                o.issue(
                "certificate",
                e,
                "give the certificate registered at the IdP, in PEM (the .pem/.crt you uploaded)",
            );
            }
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
    let allowed_acr_values = crate::config::rules::acr_values(o, "allowed_acr_values");
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
            if let Some(key) = &private_key_pem {
                match crate::config::keys::client_key(key.expose()) {
                    Ok(parsed) => private_key = Some(parsed),
                    Err(e) => o.issue(
                        "private_key",
                        e,
                        "give an RSA private key (2048 bits or more) in PEM, e.g. from: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048",
                    ),
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
            if certificate_pem.is_some() {
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
