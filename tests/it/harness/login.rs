//! A complete login setup: the test OP, and a gateway registered there as its client, in front
//! of an SPA and an API upstream.

use std::time::Duration;

use serde_json::Value;

use super::idp::{Idp, CLIENT_ID, CLIENT_SECRET};
use super::user_agent::{Page, UserAgent};
use super::{client, eventually, free_port, Gateway, GatewayConfig, Upstream};

pub struct Stack {
    pub idp: Idp,
    pub gw: Gateway,
    pub spa: Upstream,
    pub api: Upstream,
}

/// The gateway's config for the OP at `issuer`, serving on `port`. Replicas behind one public
/// origin share `public_port` (the one registered at the OP).
pub fn gateway_config(
    port: u16,
    public_port: u16,
    issuer: &str,
    spa: &Upstream,
    api: &Upstream,
) -> GatewayConfig {
    GatewayConfig::new()
        .port(port)
        .server(&format!(
            "public_origin = \"http://127.0.0.1:{public_port}\""
        ))
        .toml(&format!(
            "[oidc]\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             authorize_params = {{ audience = \"urn:test:audience\", resource = \"urn:portcullis:api\" }}\ndiscovery_refresh = \"10m\"\n"
        ))
        .cluster("spa", &[spa.url()], "")
        .cluster("api", &[api.url()], "")
        .route("/api/", "api", "token = \"user\"")
        .route("/public-api/", "api", "token = \"user-or-none\"")
        .route("/machine/", "api", "token = \"client\"")
        .route("/either/", "api", "token = \"user-or-client\"")
        .route("/live/", "api", "token = \"user\"\nstrip_prefix = true")
        .route(
            "/partner/",
            "api",
            "token = \"user\"\nresource = \"urn:portcullis:partner\"",
        )
        .route(
            "/ungranted/",
            "api",
            "token = \"user\"\nresource = \"urn:portcullis:partner\"\nscopes = [\"admin:everything\"]",
        )
        .route("/", "spa", "")
}

/// Starts OP, upstreams and a gateway with `extra` TOML (store, timeouts), ready to log in.
pub async fn start(extra: &str) -> Stack {
    start_with(extra, &[]).await
}

/// Like [`start`], with `PORTCULLIS__*` variables (for keys of `[oidc]`, which is generated).
pub async fn start_with(extra: &str, env: &[(&str, &str)]) -> Stack {
    start_with_op(extra, env, &[]).await
}

/// Like [`start_with`], with settings for the OP too (`OP_ACCESS_TOKEN_TTL`, ...).
pub async fn start_with_op(extra: &str, env: &[(&str, &str)], op_env: &[(&str, &str)]) -> Stack {
    let port = free_port();
    let idp = start_idp_with(&[port], op_env);
    let spa = Upstream::start("spa").await;
    let api = Upstream::start("api").await;
    let mut cfg = gateway_config(port, port, &idp.issuer, &spa, &api).toml(extra);
    for (k, v) in env {
        cfg = cfg.env(k, v);
    }
    let gw = cfg.start().await;
    wait_ready(&gw).await;
    Stack { idp, gw, spa, api }
}

/// Another replica of `stack`'s gateway: same public origin, OP registration and upstreams,
/// with `extra` TOML (the shared session store) and `env`.
pub async fn second_replica(stack: &Stack, extra: &str, env: &[(&str, &str)]) -> Gateway {
    let mut cfg = gateway_config(
        free_port(),
        stack.gw.port,
        &stack.idp.issuer,
        &stack.spa,
        &stack.api,
    )
    .toml(extra);
    for (k, v) in env {
        cfg = cfg.env(k, v);
    }
    let gw = cfg.start().await;
    wait_ready(&gw).await;
    gw
}

/// The test OP, with the gateway's redirect URIs on these ports (and back-channel logout
/// registered, which is what makes it put `sid` in ID tokens).
/// (More OP settings in `op_env`.)
pub fn start_idp_with(ports: &[u16], op_env: &[(&str, &str)]) -> Idp {
    let redirects: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/signin-oidc"))
        .collect();
    let backchannel = format!("http://127.0.0.1:{}/bff/backchannel", ports[0]);
    let post_logout = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/signout-callback-oidc"))
        .collect::<Vec<_>>()
        .join(",");
    let mut env = vec![
        ("OP_BACKCHANNEL_URI", backchannel.as_str()),
        ("OP_POST_LOGOUT_URIS", post_logout.as_str()),
    ];
    env.extend_from_slice(op_env);
    Idp::start(&redirects, &env)
}

/// Waits for `/readyz` to report every check ok: discovery done and the session store
/// connected (a store that is away only degrades readiness, so 200 alone is not enough).
pub async fn wait_ready(gw: &Gateway) {
    eventually(
        "the gateway to be ready",
        Duration::from_secs(30),
        || async {
            let r = client().get(gw.admin_url("/readyz")).send().await.ok()?;
            let ready = r.status() == 200;
            let body: serde_json::Value = r.json().await.ok()?;
            let checks = body["checks"].as_object()?;
            (ready && checks.values().all(|v| v == "ok")).then_some(())
        },
    )
    .await;
}

/// Logs `user` in through `/bff/login?returnUrl=...` and returns the callback's answer (the
/// redirect back into the app, with the session cookie).
pub async fn login(ua: &mut UserAgent, gw: &Gateway, return_url: &str, user: &str) -> Page {
    let start = gw.url(&format!(
        "/bff/login?returnUrl={}",
        form_urlencoded_component(return_url)
    ));
    through_idp(ua, &gw.url(""), &start, user).await
}

/// Navigates to `url` (a gateway login or logout) through the IdP, signing in as `user` where
/// asked, and stops at the redirect that leads back into the app: the first one to a page on
/// `origin` that is not one of the gateway's login or logout endpoints.
pub async fn through_idp(ua: &mut UserAgent, origin: &str, url: &str, user: &str) -> Page {
    ua.navigate(url, user, |next| {
        next.starts_with(origin)
            && ![
                "/bff/login",
                "/signin-oidc",
                "/bff/logout",
                "/signout-callback-oidc",
            ]
            .iter()
            .any(|endpoint| next.contains(endpoint))
    })
    .await
}

/// One claim of a `/bff/user` answer.
pub fn claim<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    claims
        .as_array()?
        .iter()
        .find(|c| c["type"] == name)
        .map(|c| &c["value"])
}

/// The logout URL `/bff/user` on `origin` (a gateway, or a load balancer in front of several)
/// hands the signed-in SPA (`/bff/logout?sid=...`).
pub async fn logout_url(ua: &mut UserAgent, origin: &str) -> String {
    let me = ua
        .get(&format!("{origin}/bff/user"), &[("x-csrf", "1")])
        .await;
    let claims: Value = serde_json::from_str(&me.body).unwrap_or(Value::Null);
    claim(&claims, "bff:logout_url")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no logout URL for this browser: {}", me.body))
        .to_string()
}

pub fn form_urlencoded_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /bff/user` as the SPA calls it.
pub async fn user(ua: &mut UserAgent, gw: &Gateway) -> Page {
    ua.get(&gw.url("/bff/user"), &[("x-csrf", "1")]).await
}
