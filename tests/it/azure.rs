//! `docker/azure/deploy.sh` cannot reach Azure here, so its contract is checked: the
//! variables it gives the Portcullis app, with the image's built-in config, pass
//! `portcullis check`, and every secret reaches the app only as a `secretref:`.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_azure_deployment_configures_a_valid_gateway_with_secrets_by_reference() {
    let script = std::fs::read_to_string(root().join("docker/azure/deploy.sh")).unwrap();
    let samples = [
        (
            "${PORTCULLIS_FQDN}",
            "portcullis.nicefield-1234.westeurope.azurecontainerapps.io",
        ),
        ("${OIDC_ISSUER}", "https://example.eu.auth0.com/"),
        ("${OIDC_CLIENT_ID}", "abc123"),
        (
            "${SPA_FQDN}",
            "spa.internal.nicefield-1234.westeurope.azurecontainerapps.io",
        ),
        (
            "${API_FQDN}",
            "api.internal.nicefield-1234.westeurope.azurecontainerapps.io",
        ),
        ("${OIDC_AUDIENCE}", "https://api.example.com"),
    ];
    // What ACA resolves each secretref to (the values the script stores as app secrets).
    let secrets = [
        ("secretref:oidc-client-secret", "client-secret-value"),
        ("secretref:session-keys", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        (
            "secretref:redis-connection-string",
            "portcullis-sessions.redis.cache.windows.net:6380,password=k3y,ssl=True,abortConnect=False",
        ),
    ];
    let mut env: Vec<(String, String)> = Vec::new();
    for line in script.lines() {
        let line = line.trim();
        let Some(pair) = line
            .strip_prefix("\"PORTCULLIS__")
            .or_else(|| line.strip_prefix("ENV_VARS+=(\"PORTCULLIS__"))
        else {
            continue;
        };
        let pair = pair.trim_end_matches(')').trim_end_matches('"');
        let (name, mut value) = pair
            .split_once('=')
            .map(|(n, v)| (format!("PORTCULLIS__{n}"), v.to_string()))
            .unwrap();
        for (placeholder, sample) in samples {
            value = value.replace(placeholder, sample);
        }
        assert!(!value.contains("${"), "{name}={value}: unknown placeholder");
        if value.starts_with("secretref:") {
            value = secrets
                .iter()
                .find(|(r, _)| *r == value)
                .unwrap_or_else(|| panic!("{name}: unknown {value}"))
                .1
                .to_string();
        } else {
            for secret in [
                "CLIENT_SECRET",
                "ENCRYPTION_KEYS",
                "CONNECTION_STRING",
                "PASSWORD",
            ] {
                assert!(!name.ends_with(secret), "{name} must come from a secretref");
            }
        }
        env.push((name, value));
    }
    assert!(env.len() >= 12, "found only {env:?}");
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let base = std::fs::read_to_string(root().join("docker/portcullis.toml")).unwrap();
    let out = crate::harness::portcullis_check(&base, &refs);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "public_origin = \"https://portcullis.nicefield-1234.westeurope.azurecontainerapps.io\"",
        "store = \"redis\"",
        "listen = \"0.0.0.0:9090\"",
        "token = \"user\"",
    ] {
        assert!(effective.contains(expected), "{expected}:\n{effective}");
    }
    assert!(!effective.contains("client-secret-value") && !effective.contains("k3y"));
    // The SPA and API stay on internal ingress; only Portcullis is external.
    assert!(script.contains("--ingress internal") && script.contains("--ingress external"));
    assert!(script.contains("MIN_REPLICAS=${MIN_REPLICAS:-2}"));
}

/// The script runs twice against a fake `az` that records every call: the second run creates
/// nothing new and keeps the session keys (nobody is logged out), and no secret value is ever
/// an argument (process lists and shell history would show it).
#[test]
fn deploying_twice_creates_nothing_new_and_never_puts_a_secret_on_a_command_line() {
    let dir = crate::harness::gateway::scratch_dir();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(root().join("tests/azure/az"), bin.join("az")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log = dir.join("az.log");
    let client_secret = "super-secret-client-value";
    let run = || {
        let out = std::process::Command::new("bash")
            .arg(root().join("docker/azure/deploy.sh"))
            .env("PATH", &path)
            .env("FAKE_AZ_STATE", &dir)
            .env("FAKE_AZ_LOG", &log)
            .env("PORTCULLIS_IMAGE", "myregistry.azurecr.io/portcullis:0.1.0")
            .env("SPA_IMAGE", "myregistry.azurecr.io/spa:1")
            .env("API_IMAGE", "myregistry.azurecr.io/api:1")
            .env("OIDC_ISSUER", "https://example.eu.auth0.com/")
            .env("OIDC_CLIENT_ID", "abc123")
            .env("OIDC_CLIENT_SECRET", client_secret)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap())
                .unwrap();
        state
    };
    let first = run();
    let created = first["created"].as_array().unwrap().len();
    for expected in [
        "group/portcullis",
        "containerapp env/portcullis-env",
        "identity/portcullis-identity",
        "containerapp/portcullis",
        "containerapp/spa",
        "containerapp/api",
    ] {
        assert!(
            first["created"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == expected),
            "{expected} not created: {first}"
        );
    }
    let vault = first["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str()?.strip_prefix("keyvault/"))
        .next()
        .expect("a Key Vault")
        .to_string();
    let session_keys = first["secrets"][format!("{vault}/session-keys")]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(session_keys.len(), 44, "{session_keys}");
    assert_eq!(
        first["secrets"][format!("{vault}/oidc-client-secret")],
        client_secret
    );

    let second = run();
    assert_eq!(
        second["created"].as_array().unwrap().len(),
        created,
        "the second run created: {:?}",
        &second["created"].as_array().unwrap()[created..]
    );
    assert_eq!(
        second["secrets"][format!("{vault}/session-keys")],
        session_keys,
        "the session keys changed: everyone would be logged out"
    );
    // Names are derived, not random: the same on both runs.
    assert_eq!(first["resources"], second["resources"]);

    let calls = std::fs::read_to_string(&log).unwrap();
    let connection_string = first["secrets"][format!("{vault}/redis-connection-string")]
        .as_str()
        .unwrap()
        .to_string();
    for secret in [
        client_secret,
        session_keys.as_str(),
        "fake-redis-primary-key",
        connection_string.as_str(),
    ] {
        assert!(
            !calls.contains(secret),
            "a secret was an az argument: {secret}"
        );
    }
    // The app's secrets point into Key Vault, read with the managed identity.
    assert!(calls.contains(&format!(
        "session-keys=keyvaultref:https://{vault}.vault.azure.net/secrets/session-keys,identityref:"
    )));
    let yaml = std::fs::read_to_string(dir.join("portcullis.yaml")).unwrap();
    for expected in [
        "type: Startup",
        "type: Liveness",
        "type: Readiness",
        "port: 9090",
        "minReplicas: 2",
        "concurrentRequests: \"50\"",
        "secretRef: session-keys",
        "resources: { cpu: 0.5, memory: 1Gi }",
    ] {
        assert!(yaml.contains(expected), "{expected}:\n{yaml}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
