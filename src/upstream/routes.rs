//! Route matching: longest path prefix wins, a route with a matching `host` beats one without.

use std::sync::Arc;

use crate::config::{RouteConfig, TokenPolicy};
use crate::metrics::{Metrics, RouteMetrics};

use super::Cluster;

/// One configured route, resolved to its cluster.
pub struct Route {
    pub name: String,
    pub prefix: String,
    pub host: Option<String>,
    pub cluster: Arc<Cluster>,
    pub rewrite_prefix: Option<String>,
    /// Whether the anti-forgery checks guard this route.
    pub anti_forgery: bool,
    pub token: TokenPolicy,
    /// RFC 8707 resource of the route's API, when it is not the login's default audience.
    pub resource: Option<String>,
    pub scopes: Vec<String>,
    /// Largest request body forwarded (bytes); `None`: no limit.
    pub max_body: Option<u64>,
    /// Rules the session's claims must satisfy (403 otherwise).
    pub require: Vec<crate::config::ClaimRule>,
    /// Step-up: `acr` values of which the session must have one (401 with a login URL).
    pub acr_values: Vec<String>,
    /// Headers set from the session's claims: (name, claim path).
    pub claim_headers: Vec<(http::HeaderName, String)>,
    /// The `aud` of the identity assertion this route's upstream gets; `None`: no assertion.
    pub assertion_audience: Option<Arc<str>>,
    pub metrics: RouteMetrics,
}

impl Route {
    /// Whether `path` is under this route's prefix, on a segment boundary: `/api` matches
    /// `/api` and `/api/x` but not `/apix`.
    fn matches_path(&self, path: &str) -> bool {
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) => self.prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// The path to send upstream, with the matched prefix replaced when the route says so.
    /// `None` means unchanged.
    pub fn rewrite(&self, path_and_query: &str) -> Option<String> {
        let replacement = self.rewrite_prefix.as_deref()?;
        let rest = path_and_query.get(self.prefix.len()..).unwrap_or("");
        let mut out = String::with_capacity(replacement.len() + rest.len() + 1);
        out.push_str(replacement);
        match (replacement.ends_with('/'), rest.strip_prefix('/')) {
            (true, Some(r)) => out.push_str(r),
            (false, None) if !rest.is_empty() && !rest.starts_with('?') => {
                out.push('/');
                out.push_str(rest);
            }
            _ => out.push_str(rest),
        }
        Some(out)
    }
}

/// Routes ordered so the first match is the best one.
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(
        configs: &[RouteConfig],
        cluster: impl Fn(&str) -> Option<Arc<Cluster>>,
        metrics: &Metrics,
    ) -> Self {
        let mut routes: Vec<Arc<Route>> = configs
            .iter()
            .filter_map(|c| {
                Some(Arc::new(Route {
                    name: c.name.clone(),
                    prefix: c.path.clone(),
                    host: c.host.clone(),
                    cluster: cluster(&c.cluster)?,
                    rewrite_prefix: c.rewrite_prefix.clone(),
                    anti_forgery: c.anti_forgery,
                    token: c.token,
                    resource: c.resource.clone(),
                    scopes: c.scopes.clone(),
                    max_body: c.max_body,
                    require: c.require.clone(),
                    assertion_audience: c.identity_assertion.then(|| {
                        Arc::from(
                            c.identity_assertion_audience
                                .as_deref()
                                .unwrap_or(c.cluster.as_str()),
                        )
                    }),
                    acr_values: c.acr_values.clone(),
                    claim_headers: c
                        .claim_headers
                        .iter()
                        .filter_map(|(n, c)| {
                            Some((http::HeaderName::from_bytes(n.as_bytes()).ok()?, c.clone()))
                        })
                        .collect(),
                    metrics: metrics.route(&c.name, &c.cluster),
                }))
            })
            .collect();
        routes.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
        });
        RouteTable { routes }
    }

    /// Every `claim_headers` name of any route, folded (lower case, `_` as `-`): removed from
    /// every incoming request.
    pub fn claim_header_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .routes
            .iter()
            .flat_map(|r| r.claim_headers.iter())
            .map(|(n, _)| crate::config::rules::fold(n.as_str()))
            .chain(std::iter::once(crate::authz::assertion::HEADER.to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every host a route is limited to.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().filter_map(|r| r.host.as_deref())
    }

    /// The best route for `host` (without port, any case) and `path` (without query).
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && r.matches_path(path)
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, RouteConfig};

    fn table(routes: &[(&str, Option<&str>, Option<&str>)]) -> RouteTable {
        let cfg = config::from_str(
            "[clusters.c]\ndestinations = ['http://127.0.0.1:1']\n[[routes]]\npath='/'\ncluster='c'",
            &std::collections::HashMap::new(),
        )
        .unwrap();
        let cluster = Cluster::for_tests("c", cfg.clusters["c"].clone());
        let configs: Vec<RouteConfig> = routes
            .iter()
            .map(|(path, host, rewrite)| RouteConfig {
                name: format!("{}{path}", host.unwrap_or("")),
                path: path.to_string(),
                host: host.map(String::from),
                cluster: "c".into(),
                rewrite_prefix: rewrite.map(String::from),
                anti_forgery: false,
                token: config::TokenPolicy::None,
                resource: None,
                scopes: Vec::new(),
                max_body: None,
                require: Vec::new(),
                identity_assertion: false,
                identity_assertion_audience: None,
                claim_headers: Vec::new(),
                acr_values: Vec::new(),
            })
            .collect();
        RouteTable::new(
            &configs,
            |_| Some(cluster.clone()),
            &Metrics::new().unwrap(),
        )
    }

    fn name<'a>(t: &'a RouteTable, host: Option<&str>, path: &str) -> Option<&'a str> {
        t.find(host, path).map(|r| r.name.as_str())
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let t = table(&[
            ("/", None, None),
            ("/api", None, None),
            ("/api/admin/", None, None),
        ]);
        assert_eq!(name(&t, None, "/api/admin/users"), Some("/api/admin/"));
        assert_eq!(name(&t, None, "/api/users"), Some("/api"));
        assert_eq!(name(&t, None, "/api"), Some("/api"));
        assert_eq!(name(&t, None, "/apix"), Some("/"));
        assert_eq!(name(&t, None, "/api/admin"), Some("/api"));
    }

    #[test]
    fn host_specific_route_beats_generic_one() {
        let t = table(&[
            ("/api/", None, None),
            ("/api/", Some("partner.example.com"), None),
        ]);
        assert_eq!(
            name(&t, Some("PARTNER.example.com"), "/api/x"),
            Some("partner.example.com/api/")
        );
        assert_eq!(name(&t, Some("app.example.com"), "/api/x"), Some("/api/"));
        assert_eq!(name(&t, None, "/other"), None);
    }

    #[test]
    fn rewrites_the_prefix_and_keeps_the_query() {
        let t = table(&[
            ("/api/", None, Some("/")),
            ("/old", None, Some("/v2")),
            ("/keep/", None, None),
        ]);
        let rw = |p: &str| {
            t.find(None, p.split('?').next().unwrap())
                .unwrap()
                .rewrite(p)
        };
        assert_eq!(rw("/api/users?x=1").as_deref(), Some("/users?x=1"));
        assert_eq!(rw("/api/").as_deref(), Some("/"));
        assert_eq!(rw("/old/a/b").as_deref(), Some("/v2/a/b"));
        assert_eq!(rw("/old").as_deref(), Some("/v2"));
        assert_eq!(rw("/old?q").as_deref(), Some("/v2?q"));
        assert_eq!(rw("/keep/x"), None);
    }
}
