//! `docker/azure/deploy.sh` cannot run here (no Azure), so its contract is checked: the
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
    assert!(script.contains("--min-replicas 2"));
}
