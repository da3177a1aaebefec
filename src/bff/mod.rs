//! The BFF endpoints, with the paths SPA libraries already use (Duende BFF conventions):
//!
//! ```text
//! GET /bff/login?returnUrl=/path     start a login (login.rs)
//! GET /signin-oidc                   finish it: code exchange, new session (callback.rs)
//! GET /bff/user                      who is signed in, as claims (user.rs)
//! GET /bff/logout?sid=..&returnUrl=  end the session, then the IdP's (logout.rs)
//! GET /signout-callback-oidc         back from the IdP's logout (logout.rs)
//! POST /bff/backchannel              the IdP ends sessions server to server (backchannel.rs)
//! ```
//!
//! Handlers are plain async functions from the request head to a [`Reply`]; the proxy writes
//! the reply, so they know nothing of Pingora.

pub mod backchannel;
mod callback;
mod login;
mod login_state;
mod logout;
pub mod return_url;
mod user;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;

use crate::config::{Config, IdpLogout};
use crate::error::GatewayError;
use crate::oidc::IdentityProvider;
use crate::session::Sessions;

/// A gateway endpoint, recognised by exact path before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login,
    Callback,
    User,
    Logout,
    SignoutCallback,
    Backchannel,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Login,
        Endpoint::Callback,
        Endpoint::User,
        Endpoint::Logout,
        Endpoint::SignoutCallback,
        Endpoint::Backchannel,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The name in access logs and metrics (`route` label).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Login => "bff:login",
            Endpoint::Callback => "bff:callback",
            Endpoint::User => "bff:user",
            Endpoint::Logout => "bff:logout",
            Endpoint::SignoutCallback => "bff:signout_callback",
            Endpoint::Backchannel => "bff:backchannel",
        }
    }

    /// Endpoints that scripts call (not navigations) get the anti-forgery checks of API routes.
    pub fn needs_anti_forgery(self) -> bool {
        matches!(self, Endpoint::User)
    }
}

/// What an endpoint answers.
#[derive(Debug)]
pub enum Reply {
    /// `302 Found` to `location`.
    Redirect {
        location: String,
        cookies: Vec<String>,
    },
    /// `200` with a JSON body.
    Json { body: Bytes },
    /// A problem (JSON for scripts, a page for browsers), optionally setting cookies.
    Error {
        error: GatewayError,
        cookies: Vec<String>,
    },
}

impl From<GatewayError> for Reply {
    fn from(error: GatewayError) -> Reply {
        Reply::Error {
            error,
            cookies: Vec::new(),
        }
    }
}

pub struct Bff {
    pub sessions: Arc<Sessions>,
    /// The session cookie, then the pending-login cookie: never forwarded upstream.
    pub cookie_names: [String; 2],
    idp: Option<Arc<IdentityProvider>>,
    callback_path: String,
    post_logout_path: String,
    post_logout_redirect_uri: String,
    idp_logout: IdpLogout,
    login_timeout: Duration,
    /// `portcullis_sessions_revoked_total{by}`.
    revoked: Option<prometheus::IntCounterVec>,
    /// `[authorization] require`: who may sign in at all.
    login_require: Vec<crate::config::ClaimRule>,
    /// `acr_values` a login may ask for: every route's and `oidc.allowed_acr_values`.
    acr_allowed: Vec<String>,
    /// `oidc.userinfo`: read the userinfo endpoint at login.
    userinfo: bool,
}

impl Bff {
    pub fn new(
        config: &Config,
        sessions: Arc<Sessions>,
        idp: Option<Arc<IdentityProvider>>,
    ) -> Bff {
        let (callback_path, post_logout_path, login_timeout) = config.oidc.as_ref().map_or_else(
            || (String::new(), String::new(), Duration::from_secs(600)),
            |o| {
                (
                    o.callback_path.clone(),
                    o.post_logout_path.clone(),
                    o.login_timeout,
                )
            },
        );
        let origin = config
            .server
            .public_origin
            .as_ref()
            .map_or("", |o| o.as_str());
        let post_logout_redirect_uri = format!("{origin}{post_logout_path}");
        let cookie_names = [
            sessions.cookie.name.clone(),
            format!("{}-login", sessions.cookie.name),
        ];
        Bff {
            cookie_names,
            sessions,
            idp,
            callback_path,
            post_logout_path,
            post_logout_redirect_uri,
            idp_logout: config
                .oidc
                .as_ref()
                .map_or(IdpLogout::EndSession, |o| o.idp_logout),
            login_timeout,
            revoked: None,
            login_require: config.authorization.require.clone(),
            userinfo: config.oidc.as_ref().is_some_and(|o| o.userinfo),
            acr_allowed: {
                let mut acr: Vec<String> = config
                    .routes
                    .iter()
                    .flat_map(|r| r.acr_values.iter().cloned())
                    .chain(
                        config
                            .oidc
                            .iter()
                            .flat_map(|o| o.allowed_acr_values.iter().cloned()),
                    )
                    .collect();
                acr.sort();
                acr.dedup();
                acr
            },
        }
    }

    pub fn with_revocation_metric(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.revoked = Some(counter);
        self
    }

    /// The endpoint at `path`, if login is configured; other paths go to the routes.
    pub fn endpoint(&self, path: &str) -> Option<Endpoint> {
        self.idp.as_ref()?;
        match path {
            "/bff/login" => Some(Endpoint::Login),
            "/bff/user" => Some(Endpoint::User),
            "/bff/logout" => Some(Endpoint::Logout),
            "/bff/backchannel" => Some(Endpoint::Backchannel),
            p if p == self.callback_path => Some(Endpoint::Callback),
            p if p == self.post_logout_path => Some(Endpoint::SignoutCallback),
            _ => None,
        }
    }

    /// `body` is the request body for the one endpoint that takes one (back-channel logout).
    pub async fn handle(
        &self,
        endpoint: Endpoint,
        req: &Parts,
        body: &[u8],
        who: &crate::audit::Who<'_>,
    ) -> Reply {
        // GET only (POST for the back channel): these endpoints start logins, end sessions and
        // set cookies, and HEAD (a link prefetcher) must not do that behind the user's back.
        let method = if endpoint == Endpoint::Backchannel {
            http::Method::POST
        } else {
            http::Method::GET
        };
        if req.method != method {
            return GatewayError::MethodNotAllowed.into();
        }
        let Some(idp) = &self.idp else {
            return GatewayError::NoRoute.into();
        };
        let query = query_pairs(req.uri.query());
        match endpoint {
            Endpoint::Login => login::start(self, idp, &req.headers, &query).await,
            Endpoint::Callback => callback::finish(self, idp, &req.headers, &query, who).await,
            Endpoint::User => user::claims(self, &req.headers, &query).await,
            Endpoint::Logout => logout::start(self, idp, &req.headers, &query, who).await,
            Endpoint::SignoutCallback => logout::finish(self, &query).await,
            Endpoint::Backchannel => backchannel::logout(self, idp, &req.headers, body, who).await,
        }
    }

    /// Counts ended sessions, by what ended them.
    fn revocations(&self, by: &str, count: u64) {
        if let Some(m) = &self.revoked {
            m.with_label_values(&[by]).inc_by(count);
        }
    }

    /// The cookie that holds the browser's logins in progress (`login_state.rs`).
    fn login_cookie_name(&self) -> &str {
        &self.cookie_names[1]
    }
}

/// Decoded query parameters; a name given twice keeps its first value.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !out.iter().any(|(name, _)| name == k.as_ref()) {
            out.push((k.into_owned(), v.into_owned()));
        }
    }
    out
}

/// The checked `returnUrl` parameter (`/` when absent), or the 400 to answer with.
fn return_url_param(query: &[(String, String)]) -> Result<String, Reply> {
    return_url::check(param(query, "returnUrl")).map_err(|e| {
        GatewayError::InvalidParameter {
            detail: e.to_string(),
        }
        .into()
    })
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
