//! Property tests of the config reader and the environment overlay: configuration comes from
//! files and variables that people (and scripts) get wrong in every way. Whatever they hold,
//! validation answers with problems, never a panic; and what it accepts, `check` prints as a
//! config that means the same.

use std::collections::HashMap;

use proptest::prelude::*;
use toml::{Table, Value};

use super::{from_str, validate};

/// Names the validator knows, mixed with near misses, so generated trees reach deep checks.
const NAMES: &[&str] = &[
    "server",
    "admin",
    "log",
    "pingora",
    "session",
    "redis",
    "oidc",
    "tokens",
    "clusters",
    "routes",
    "rate_limits",
    "response_headers",
    "anti_forgery",
    "listen",
    "public_origin",
    "trusted_proxies",
    "tls",
    "threads",
    "keepalive_timeout",
    "client_body_timeout",
    "store",
    "idle_timeout",
    "cookie_name",
    "url",
    "cluster_nodes",
    "connection_string",
    "issuer",
    "client_id",
    "destinations",
    "health_check",
    "path",
    "cluster",
    "token",
    "max_body",
    "strip_prefix",
    "rewrite_prefix",
    "host",
    "scopes",
    "frame_options",
    "upstream_wins",
    "window",
    "login",
    "spa",
    "api",
    "0",
    "1",
    "x",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(str::to_string),
        1 => "[a-z_]{1,8}",
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[ -~]{0,24}".prop_map(Value::String),
        prop::sample::select(
            &[
                "127.0.0.1:8080",
                "0.0.0.0:0",
                "http://127.0.0.1:3000",
                "https://app.example.com",
                "30s",
                "0s",
                "1MiB",
                "DENY",
                "user",
                "redis",
                "memory",
                "/",
                "/api/",
                "",
            ][..]
        )
        .prop_map(|s| Value::String(s.to_string())),
        any::<i64>().prop_map(Value::Integer),
        any::<bool>().prop_map(Value::Boolean),
        any::<f64>().prop_map(Value::Float),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(name(), inner, 0..6)
                .prop_map(|m| Value::Table(m.into_iter().collect())),
        ]
    })
}

fn env_var() -> impl Strategy<Value = (String, String)> {
    (
        prop::collection::vec(
            prop_oneof![
                name().prop_map(|n| n.to_ascii_uppercase()),
                Just(String::new())
            ],
            1..4,
        ),
        "[ -~]{0,20}",
    )
        .prop_map(|(segments, v)| (format!("PORTCULLIS__{}", segments.join("__")), v))
}

/// A valid config to start from, so that overrides land next to real values.
const BASE: &str = r#"
[clusters.spa]
destinations = ["http://127.0.0.1:3000"]
[[routes]]
path = "/"
cluster = "spa"
"#;

/// Overrides that are sometimes valid, sometimes not.
fn override_var() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        (1u16.., any::<bool>()).prop_map(|(p, loopback)| (
            "PORTCULLIS__SERVER__LISTEN".into(),
            format!("{}:{p}", if loopback { "127.0.0.1" } else { "0.0.0.0" })
        )),
        (0i64..2000).prop_map(|n| ("PORTCULLIS__PINGORA__THREADS".into(), n.to_string())),
        "[0-9]{1,4}(ms|s|m|h|d|x)?"
            .prop_map(|d| ("PORTCULLIS__PINGORA__CLIENT_BODY_TIMEOUT".into(), d)),
        "[0-9]{1,5}(B|KiB|MiB|GB|kb)?".prop_map(|s| ("PORTCULLIS__ROUTES__0__MAX_BODY".into(), s)),
        prop::sample::select(&["DENY", "SAMEORIGIN", "", "ALLOW"][..]).prop_map(|v| (
            "PORTCULLIS__RESPONSE_HEADERS__FRAME_OPTIONS".into(),
            v.to_string()
        )),
        (0i64..2_000_000).prop_map(|n| ("PORTCULLIS__RATE_LIMITS__LOGIN".into(), n.to_string())),
        prop::sample::select(&["user", "none", "client", "bogus"][..])
            .prop_map(|v| ("PORTCULLIS__ROUTES__0__TOKEN".into(), v.to_string())),
        "/[a-z/]{0,8}".prop_map(|p| ("PORTCULLIS__ROUTES__1__PATH".into(), p)),
        Just((
            "PORTCULLIS__ROUTES__1__CLUSTER".to_string(),
            "spa".to_string()
        )),
    ]
}

proptest! {
    #[test]
    fn any_tree_and_environment_is_validated_without_panicking(
        tree in prop::collection::btree_map(name(), value(), 0..8),
        env in prop::collection::vec(env_var(), 0..6),
    ) {
        let mut root: Table = tree.into_iter().collect();
        let env: HashMap<String, String> = env.into_iter().collect();
        let _ = validate::validate(&mut root, &env);
    }

    #[test]
    fn accepted_configs_print_as_configs_that_mean_the_same(
        vars in prop::collection::vec(override_var(), 0..6),
    ) {
        let env: HashMap<String, String> = vars.into_iter().collect();
        if let Ok(config) = from_str(BASE, &env) {
            let printed = config.to_toml();
            let again = from_str(&printed, &HashMap::new())
                .map_err(|e| TestCaseError::fail(format!("{e}\n{printed}")))?;
            prop_assert_eq!(again.to_toml(), printed);
        }
    }
}
