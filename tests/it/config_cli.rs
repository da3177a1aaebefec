//! `portcullis check` and `--version`: exit codes and the exact problem messages users see.

use std::process::{Command, Output};

use crate::harness::gateway::scratch_dir;

fn check(text: &str, env: &[(&str, &str)]) -> Output {
    crate::harness::portcullis_check(text, env)
}

const VALID: &str = r#"
[clusters.spa]
destinations = ["http://127.0.0.1:3000"]
[[routes]]
path = "/"
cluster = "spa"
"#;

#[test]
fn valid_config_exits_0_and_prints_the_effective_config() {
    let out = check(VALID, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("listen = \"0.0.0.0:8080\""), "{stdout}");
    assert!(stdout.contains("grace_period = \"10s\""), "{stdout}");
    // What `check` prints is itself a valid config, so it can be saved and reused.
    let again = check(&stdout, &[]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn every_problem_is_reported_at_once_with_key_problem_and_fix() {
    let text = r#"
[server]
listen = "0.0.0.0:8080"
trusted_proxy = ["10.0.0.0/8"]

[clusters.api]
destinations = ["http://api:8080"]
health_check = { path = "/health", interval = "5 minutes" }

[[routes]]
path = "/api/"
cluster = "backend"
"#;
    let out = check(text, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("3 problem(s) in the configuration"),
        "{stderr}"
    );
    assert!(stderr.contains(
        "server.trusted_proxy: unknown key (did you mean `trusted_proxies`? otherwise remove it)"
    ), "{stderr}");
    assert!(
        stderr.contains(
            "clusters.api.health_check.interval: \"5 minutes\" has an unknown unit \" minutes\" \
         (write a number and a unit: \"500ms\", \"30s\", \"20m\", \"12h\" or \"7d\")"
        ),
        "{stderr}"
    );
    assert!(stderr.contains(
        "routes[0].cluster: no cluster named \"backend\" (use one of: api, or define [clusters.backend])"
    ), "{stderr}");
}

#[test]
fn environment_overrides_keys_and_unknown_variables_are_errors() {
    let out = check(
        VALID,
        &[
            (
                "PORTCULLIS__CLUSTERS__SPA__DESTINATIONS",
                "http://10.0.0.1:80,http://10.0.0.2:80",
            ),
            ("PORTCULLIS__PINGORA__THREADS", "3"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("\"http://10.0.0.1\""), "{stdout}");
    assert!(stdout.contains("\"http://10.0.0.2\""), "{stdout}");
    assert!(stdout.contains("threads = 3"), "{stdout}");

    let out = check(
        VALID,
        &[
            ("PORTCULLIS__SERVER__LISTN", "0.0.0.0:1"),
            ("PORTCULLIS__PINGORA__THREADS", "many"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(
        "server.listn (from PORTCULLIS__SERVER__LISTN): unknown key (did you mean `listen`? otherwise remove it)"
    ), "{stderr}");
    assert!(stderr.contains(
        "pingora.threads (from PORTCULLIS__PINGORA__THREADS): expected a whole number, got \"many\""
    ), "{stderr}");
}

#[test]
fn missing_file_and_bad_toml_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["check", "--config", "/nonexistent/portcullis.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
    let out = check("[server\nlisten=", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not valid TOML"));
}

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("portcullis {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn redis_sessions_need_redis_settings_and_shared_keys() {
    let text = format!("[session]\nstore = \"redis\"\n{VALID}");
    let out = check(&text, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(
        "session.encryption_keys: missing: sessions in Redis hold tokens and must be encrypted with keys every replica shares"
    ), "{stderr}");
    assert!(
        stderr.contains("redis.url: session.store is \"redis\" but [redis] is missing"),
        "{stderr}"
    );

    let text = format!(
        "[session]\nstore = \"redis\"\nencryption_keys = [\"not-a-key\"]\n\
         [redis]\nconnection_string = \"h:6380,password=hunter2,proxy=x\"\n{VALID}"
    );
    let out = check(&text, &[]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("session.encryption_keys[0]: is not base64 of 32 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("redis.connection_string: unknown option \"proxy\""),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "a secret leaked into an error: {stderr}"
    );
}

#[test]
fn secrets_are_masked_and_can_come_from_files() {
    let dir = scratch_dir();
    let key_file = dir.join("keys");
    std::fs::write(&key_file, "q0S8pJlY0E9o1cJc3m2m4G7mQ3cGmZq1v7bS0lJcR2U=\n").unwrap();
    let text = format!(
        "[session]\nstore = \"redis\"\nencryption_keys_file = {:?}\n[redis]\nurl = \"redis://:hunter2@127.0.0.1:6379\"\n{VALID}",
        key_file.display().to_string()
    );
    let out = check(&text, &[("PORTCULLIS__REDIS__PASSWORD", "also-secret")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("encryption_keys = [\"***\"]"), "{stdout}");
    assert!(stdout.contains("url = \"***\""), "{stdout}");
    assert!(stdout.contains("password = \"***\""), "{stdout}");
    for secret in ["hunter2", "also-secret", "q0S8pJ"] {
        assert!(!stdout.contains(secret), "{secret} printed by check");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_busy_port_stops_the_start_with_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = scratch_dir();
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n\
             [pingora]\nupgrade_sock = {:?}\n{VALID}",
            crate::harness::free_port(),
            dir.join("u.sock").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("server.listen 127.0.0.1:{port} cannot be bound")),
        "{stderr}"
    );
    drop(busy);
}

#[test]
fn oidc_settings_are_checked_and_the_client_secret_masked() {
    let out = check(
        &format!("[oidc]\nissuer = \"http://idp.example.com\"\nclient_id = \"p\"\n{VALID}"),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("oidc.issuer: \"http://idp.example.com\" must be https (plain http only on loopback, for tests)"), "{stderr}");
    assert!(stderr.contains("oidc.client_secret: missing (set client_secret, client_secret_file or PORTCULLIS__OIDC__CLIENT_SECRET)"), "{stderr}");

    let out = check(
        &format!("[server]\npublic_origin = \"https://app.example.com\"\n[oidc]\nissuer = \"https://tenant.eu.auth0.com/\"\nclient_id = \"p\"\n{VALID}"),
        &[("PORTCULLIS__OIDC__CLIENT_SECRET", "s3cr3t-value")],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("client_secret = \"***\""), "{stdout}");
    assert!(!stdout.contains("s3cr3t-value"));
}

#[test]
fn login_settings_that_would_break_or_weaken_the_flow_are_refused() {
    let oidc = |server: &str, session: &str, oidc: &str| {
        format!(
            "[server]\n{server}\n[session]\n{session}\n\
             [oidc]\nissuer = \"https://idp.example.com\"\nclient_id = \"portcullis\"\n{oidc}\n{VALID}"
        )
    };
    let problems = |text: String, env: &[(&str, &str)]| {
        let out = check(&text, env);
        assert_eq!(out.status.code(), Some(2), "{text}");
        String::from_utf8(out.stderr).unwrap()
    };
    // Login needs to know the browser's origin to build the redirect URI.
    let e = problems(oidc("", "", "client_secret = \"s\""), &[]);
    assert!(e.contains("server.public_origin: missing"), "{e}");
    assert!(
        e.contains("/signin-oidc"),
        "the fix names the redirect URI: {e}"
    );
    // Plain http off loopback: the Secure cookie would never come back.
    let e = problems(
        oidc(
            "public_origin = \"http://app.example.com\"",
            "",
            "client_secret = \"s\"",
        ),
        &[],
    );
    assert!(
        e.contains("server.public_origin: http://app.example.com is plain http"),
        "{e}"
    );
    assert!(e.contains("dev_insecure_cookie"), "{e}");
    // ...unless explicitly in development mode, where a __Host- name cannot work.
    let e = problems(
        oidc(
            "public_origin = \"http://app.example.com\"",
            "dev_insecure_cookie = true\ncookie_name = \"__Host-x\"",
            "client_secret = \"s\"",
        ),
        &[],
    );
    assert!(e.contains("session.cookie_name"), "{e}");
    assert!(!e.contains("server.public_origin"), "{e}");
    // In production, the session cookie keeps its __Host- prefix.
    let e = problems(
        oidc(
            "public_origin = \"https://app.example.com\"",
            "cookie_name = \"portcullis\"",
            "client_secret = \"s\"",
        ),
        &[],
    );
    assert!(
        e.contains("session.cookie_name: \"portcullis\" lacks the __Host- prefix"),
        "{e}"
    );
    // Parameters the flow owns, and client authentication without its credential.
    let e = problems(
        oidc(
            "public_origin = \"https://app.example.com\"",
            "",
            "client_secret = \"s\"\nauthorize_params = { state = \"fixed\", audience = \"x\" }",
        ),
        &[],
    );
    assert!(
        e.contains("oidc.authorize_params.state: is set by the login flow itself"),
        "{e}"
    );
    assert!(!e.contains("authorize_params.audience"), "{e}");
    let e = problems(
        oidc(
            "public_origin = \"https://app.example.com\"",
            "",
            "client_auth = \"private_key_jwt\"",
        ),
        &[],
    );
    assert!(e.contains("oidc.private_key_file: missing"), "{e}");
    let e = problems(
        oidc(
            "public_origin = \"https://app.example.com\"",
            "",
            "client_auth = \"private_key_jwt\"\nprivate_key = \"not a key\"",
        ),
        &[],
    );
    assert!(
        e.contains("oidc.private_key: is not an RSA private key"),
        "{e}"
    );
    let e = problems(
        oidc(
            "public_origin = \"https://app.example.com\"",
            "",
            "client_secret = \"s\"\ncallback_path = \"/bff/cb\"",
        ),
        &[],
    );
    assert!(e.contains("oidc.callback_path"), "{e}");

    // Extra parameters can come from the environment too (Azure Container Apps).
    let ok = check(
        &oidc(
            "public_origin = \"https://app.example.com\"",
            "",
            "client_secret = \"s\"",
        ),
        &[(
            "PORTCULLIS__OIDC__AUTHORIZE_PARAMS__AUDIENCE",
            "https://api.example.com",
        )],
    );
    let stdout = String::from_utf8(ok.stdout).unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("audience = \"https://api.example.com\""),
        "{stdout}"
    );
    assert!(
        !stdout.contains("client_secret = \"s\""),
        "secrets are masked: {stdout}"
    );
}

#[test]
fn response_headers_and_body_limits_are_checked_and_printed_reusably() {
    let text = format!(
        "[response_headers]\nframe_options = \"ALLOW-FROM https://x\"\nreferrer_policy = \"nope\"\n\
         strict_transport_security = \"1 year\"\nupstream_wins = [\"Set-Cookie\"]\n{VALID}max_body = \"1 megabyte\"\n"
    );
    let out = check(&text, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for expected in [
        "response_headers.frame_options: \"ALLOW-FROM https://x\" is neither DENY nor SAMEORIGIN",
        "response_headers.referrer_policy: \"nope\" is not a referrer policy",
        "response_headers.strict_transport_security: \"1 year\" has no max-age=<seconds> directive",
        "response_headers.upstream_wins[0]: \"Set-Cookie\" is not one of the headers this section sets",
        "routes[0].max_body: \"1 megabyte\" has an unknown unit",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }

    // A header turned off stays off, and a limit stays set, when `check`'s output is reused.
    let text = format!("[response_headers]\nframe_options = \"\"\n{VALID}max_body = \"1MiB\"\n");
    let out = check(&text, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("frame_options = \"\""), "{printed}");
    assert!(
        printed.contains("content_security_policy = \"\""),
        "{printed}"
    );
    assert!(printed.contains("max_body = \"1048576B\""), "{printed}");
    let again = check(&printed, &[]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
}

#[test]
fn authorization_rules_and_claim_headers_are_checked() {
    let oidc = "[server]\npublic_origin = \"https://app.example.com\"\n[oidc]\nissuer = \"https://idp.example.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\n";
    let text = format!(
        "{oidc}[authorization]\nrequire = [{{ claim = \"groups\", any_of = [] }}, {{ claim = \"a\", equals = 1, present = true }}, {{ claim = \"b\", one_of = [\"x\"] }}]\n\
         [clusters.spa]\ndestinations = [\"http://127.0.0.1:3000\"]\n\
         [[routes]]\npath = \"/\"\ncluster = \"spa\"\nrequire = [{{ claim = \"groups\", present = true }}]\n\
         [[routes]]\npath = \"/api/\"\ncluster = \"spa\"\ntoken = \"user\"\nclaim_headers = {{ \"Authorization\" = \"sub\", \"X_CSRF\" = \"sub\", \"bad header\" = \"sub\", \"X-User\" = \"sub\", \"x_user\" = \"email\" }}\nacr_values = [\"two words\"]\n"
    );
    let out = check(&text, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for expected in [
        "authorization.require[0].any_of: is empty or has an empty value",
        "authorization.require[1].claim: has more than one condition",
        "authorization.require[2].one_of: unknown key",
        "authorization.require[2].claim: has no condition",
        "routes[0].require: is set, but the route looks up no session",
        "routes[1].claim_headers.Authorization: Authorization is a header the gateway or the request already defines",
        "routes[1].claim_headers.X_CSRF: X_CSRF is a header the gateway or the request already defines",
        "routes[1].claim_headers.bad header: \"bad header\" is not a valid header name",
        "routes[1].claim_headers.x_user: is the same header as another one here",
        "routes[1].acr_values[0]: \"two words\" is empty or has spaces",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }

    // A valid set prints as a config that reads back the same.
    let text = format!(
        "{oidc}[authorization]\nrequire = [{{ claim = \"email_verified\", equals = true }}]\n\
         [clusters.spa]\ndestinations = [\"http://127.0.0.1:3000\"]\n\
         [[routes]]\npath = \"/\"\ncluster = \"spa\"\n\
         [[routes]]\npath = \"/api/\"\ncluster = \"spa\"\ntoken = \"user\"\nrequire = [{{ claim = \"realm_access.roles\", all_of = [\"a\", \"b\"] }}]\n\
         claim_headers = {{ \"X-User-Sub\" = \"sub\" }}\nacr_values = [\"urn:mfa\"]\n"
    );
    let out = check(&text, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(
        printed.contains("all_of = [\"a\", \"b\"]") || printed.contains("all_of = [\n"),
        "{printed}"
    );
    // Secrets are masked in the printout, so the reread supplies the secret again.
    let again = check(&printed, &[("PORTCULLIS__OIDC__CLIENT_SECRET", "s")]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}\n{printed}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn the_demo_session_key_is_refused_where_real_users_sign_in() {
    let demo_key = "q0S8pJlY0E9o1cJc3m2m4G7mQ3cGmZq1v7bS0lJcR2U=";
    let with_origin = |origin: &str| {
        format!(
            "[server]\npublic_origin = \"{origin}\"\n[session]\nstore = \"redis\"\nencryption_keys = [\"{demo_key}\"]\n\
             [redis]\nurl = \"redis://127.0.0.1:6379\"\n{VALID}"
        )
    };
    let out = check(&with_origin("https://app.example.com"), &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(
            "session.encryption_keys[0]: is the demo key published in Portcullis' repository"
        ),
        "{stderr}"
    );
    // On a laptop (the demo), it passes with a warning.
    let out = check(&with_origin("http://127.0.0.1:8080"), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("warning: session.encryption_keys"));
}

/// `check` and `run` read a file the same way: whatever `check` refuses, `run` refuses at once
/// with the same problems (it never starts and fails later in a background task), including
/// values only the Redis client or the key decoder could judge before.
#[test]
fn check_and_run_refuse_exactly_the_same_files() {
    let redis = |redis_lines: &str, session_key: &str| {
        format!(
            "[session]\nstore = \"redis\"\nencryption_keys = [\"{session_key}\"]\n[redis]\n{redis_lines}\n{VALID}"
        )
    };
    let good_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let cases = [
        (
            redis("url = \"redis://cache:abc\"", good_key),
            "redis.url: is not a Redis URL the client accepts",
        ),
        (
            redis("url = \"redis://cache:6379/zero\"", good_key),
            "redis.url: is not a Redis URL the client accepts",
        ),
        (
            redis(
                "cluster_nodes = [\"10.0.0.1:6379\", \"10.0.0.2\"]",
                good_key,
            ),
            "redis.cluster_nodes[1]: \"10.0.0.2\" is not host:port",
        ),
        (
            redis("url = \"redis://cache:6379\"", "c2hvcnQ="),
            "session.encryption_keys[0]: is not base64 of 32 bytes",
        ),
        (
            redis(
                "connection_string = \"cache:6380,password=x,ssl=maybe\"",
                good_key,
            ),
            "redis.connection_string: ssl=maybe is neither True nor False",
        ),
    ];
    for (text, expected) in &cases {
        let checked = check(text, &[]);
        assert_eq!(checked.status.code(), Some(2), "check accepted:\n{text}");
        let check_err = String::from_utf8_lossy(&checked.stderr).into_owned();
        assert!(check_err.contains(expected), "{expected}\n{check_err}");

        let dir = scratch_dir();
        let path = dir.join("portcullis.toml");
        std::fs::write(&path, text).unwrap();
        let ran = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(dir);
        assert_eq!(ran.status.code(), Some(2), "run started with:\n{text}");
        let run_err = String::from_utf8_lossy(&ran.stderr);
        assert!(run_err.contains(expected), "{expected}\n{run_err}");
    }
}

#[test]
fn the_standard_otel_variables_configure_traces_and_bad_ones_are_named() {
    let out = check(
        VALID,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr3t-value"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            // The Portcullis variable wins over its standard twin.
            ("OTEL_SERVICE_NAME", "from-otel"),
            ("PORTCULLIS__TELEMETRY__SERVICE_NAME", "from-portcullis"),
        ],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "enabled = true",
        "traces_endpoint = \"http://collector:4318/v1/traces\"",
        "sampler = \"parentbased_traceidratio\"",
        "sampler_arg = 0.25",
        "service_name = \"from-portcullis\"",
        "api-key = \"***\"",
    ] {
        assert!(stdout.contains(line), "{line} not in:\n{stdout}");
    }
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
    // `check`'s output reads back the same, telemetry included.
    let again = check(&stdout, &[]);
    let again_out = String::from_utf8(again.stdout).unwrap();
    assert!(
        again_out.contains("traces_endpoint = \"http://collector:4318/v1/traces\""),
        "{again_out}"
    );

    let out = check(
        VALID,
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for expected in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "http/json is not built into Portcullis",
        "OTEL_TRACES_SAMPLER_ARG",
        "2 is out of range",
        "OTEL_BSP_SCHEDULE_DELAY",
    ] {
        assert!(stderr.contains(expected), "{expected} not in:\n{stderr}");
    }
}
