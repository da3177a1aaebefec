//! Routes (`[[routes]]`): path, host, cluster, token policy and per-route rules.

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::{ser_pairs, ser_size, ClaimRule};

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

pub(in crate::config) fn routes(
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
        let require = crate::config::rules::claim_rules(r, "require");
        let identity_assertion = r.bool("identity_assertion").unwrap_or(false);
        let identity_assertion_audience = r.string("identity_assertion_audience");
        if identity_assertion_audience.is_some() && !identity_assertion {
            r.issue(
                "identity_assertion_audience",
                "is set, but identity_assertion is not true",
                "set identity_assertion = true, or remove it",
            );
        }
        let claim_headers = crate::config::rules::claim_headers(r, anti_forgery_header);
        let acr_values = crate::config::rules::acr_values(r, "acr_values");
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
            crate::config::size::parse,
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
