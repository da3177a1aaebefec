//! The Helm chart, rendered by a real `helm` (installed by `.ci/install-deps test`).

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::harness::portcullis_check;

/// A test-only key (not the demo's, which `check` refuses outside loopback).
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn helm_bin() -> PathBuf {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/helm");
    if local.exists() {
        return local;
    }
    let on_path = Command::new("helm").arg("version").output();
    assert!(
        on_path.is_ok_and(|o| o.status.success()),
        "helm not found: run `bash .ci/install-deps test`"
    );
    PathBuf::from("helm")
}

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("helm/portcullis")
}

fn helm(args: &[&str]) -> Output {
    Command::new(helm_bin())
        .args(args)
        .output()
        .expect("run helm")
}

fn template(extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec!["template", "gw", chart.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn production() -> String {
    chart()
        .join("ci/production-values.yaml")
        .display()
        .to_string()
}

/// One rendered manifest by kind.
fn manifest<'a>(all: &'a str, kind: &str) -> &'a str {
    all.split("\n---")
        .find(|doc| doc.contains(&format!("\nkind: {kind}\n")))
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// The TOML inside the ConfigMap.
fn rendered_toml(all: &str) -> String {
    let cm = manifest(all, "ConfigMap");
    let mut lines = cm
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("portcullis.toml: |"));
    lines.next();
    lines
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn chart_lints_with_default_and_production_values() {
    let chart = chart();
    for extra in [vec![], vec!["-f", production().leak()]] {
        let mut args = vec!["lint", chart.to_str().unwrap()];
        args.extend(extra.iter().copied());
        let out = helm(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn deployment_is_probed_on_the_admin_port_and_locked_down() {
    let all = template(&[]);
    let d = manifest(&all, "Deployment");
    for expected in [
        "readinessProbe:\n            httpGet:\n              path: /readyz\n              port: admin",
        "livenessProbe:\n            httpGet:\n              path: /healthz\n              port: admin",
        "maxUnavailable: 0",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop:\n              - ALL",
        "terminationGracePeriodSeconds: 30",
        "automountServiceAccountToken: false",
    ] {
        assert!(d.contains(expected), "deployment lacks {expected:?}:\n{d}");
    }
}

#[test]
fn rendered_config_is_valid_and_secrets_stay_in_the_secret() {
    let all = template(&[
        "--set",
        "replicaCount=2",
        "--set",
        "config.session.store=redis",
        "--set",
        &format!("secrets.sessionEncryptionKeys={KEY}"),
        "--set",
        "secrets.redisUrl=redis://:hunter2-pw@redis:6379",
        "--set",
        "secrets.oidcClientSecret=client-s3cret",
        "--set",
        "secrets.adminSessionsApiToken=admin-token-0123456789-abcdefghijkl",
    ]);
    let toml = rendered_toml(&all);
    assert!(toml.contains("listen = \"0.0.0.0:9090\""), "{toml}");
    for secret in [
        "hunter2-pw",
        KEY,
        "client-s3cret",
        "admin-token-0123456789-abcdefghijkl",
    ] {
        assert!(
            !manifest(&all, "ConfigMap").contains(secret),
            "secret in the ConfigMap"
        );
        assert!(
            !manifest(&all, "Deployment").contains(secret),
            "secret in the Deployment"
        );
        assert!(
            manifest(&all, "Secret").contains(secret),
            "secret missing from the Secret"
        );
    }
    // What the pod will run with: the ConfigMap plus the Secret's variables.
    let out = portcullis_check(
        &toml,
        &[
            ("PORTCULLIS__SESSION__ENCRYPTION_KEYS", KEY),
            ("PORTCULLIS__REDIS__URL", "redis://:hunter2-pw@redis:6379"),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let deployment = manifest(&all, "Deployment");
    for var in [
        "PORTCULLIS__OIDC__CLIENT_SECRET",
        "PORTCULLIS__ADMIN__SESSIONS_API_TOKEN",
    ] {
        assert!(deployment.contains(var), "{var} not passed to the pod");
    }

    let prod = template(&["-f", &production()]);
    let out = portcullis_check(
        &rendered_toml(&prod),
        &[
            ("PORTCULLIS__SESSION__ENCRYPTION_KEYS", KEY),
            ("PORTCULLIS__REDIS__URL", "rediss://redis:6380"),
            (
                "PORTCULLIS__OIDC__CLIENT_SECRET",
                "from-the-existing-secret",
            ),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "Ingress",
    ] {
        manifest(&prod, kind);
    }
    assert!(
        !prod.contains("\nkind: Secret\n"),
        "existingSecret must not be re-created"
    );
}

#[test]
fn several_replicas_without_shared_sessions_are_refused() {
    for args in [
        vec!["--set", "replicaCount=2"],
        vec!["--set", "autoscaling.enabled=true"],
    ] {
        let chart = chart();
        let mut all = vec!["template", "gw", chart.to_str().unwrap()];
        all.extend(args.iter().copied());
        let out = helm(&all);
        assert!(!out.status.success(), "{args:?} rendered");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("more than one replica needs config.session.store = \"redis\""),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn secrets_under_config_are_refused_by_the_schema() {
    let chart = chart();
    for (value, path) in [
        ("config.redis.password=x", "/config/redis"),
        ("config.session.encryption_keys={x}", "/config/session"),
        ("config.server.listen=0.0.0.0:1", "/config/server"),
        ("config.oidc.client_secret=x", "/config/oidc"),
        ("config.admin.sessions_api_token=x", "/config/admin"),
    ] {
        let out = helm(&["template", "gw", chart.to_str().unwrap(), "--set", value]);
        assert!(!out.status.success(), "{value} rendered");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(path),
            "{value}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The chart's README lists every value with its `# --` description (the helm-docs
/// convention), generated from values.yaml. `UPDATE_CHART_README=1` rewrites it.
#[test]
fn chart_readme_lists_every_value_as_values_yaml_describes_it() {
    let values = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let table = values_table(&values);
    let readme_path = chart().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_default();
    const BEGIN: &str = "<!-- values:begin (generated from values.yaml by tests/it/helm.rs) -->\n";
    const END: &str = "<!-- values:end -->\n";
    let (head, tail) = match (readme.find(BEGIN), readme.find(END)) {
        (Some(b), Some(e)) => (&readme[..b], &readme[e + END.len()..]),
        _ => (readme.as_str(), ""),
    };
    let expected = format!("{head}{BEGIN}{table}{END}{tail}");
    if std::env::var("UPDATE_CHART_README").is_ok() {
        std::fs::write(&readme_path, &expected).unwrap();
        return;
    }
    assert!(
        readme == expected,
        "helm/portcullis/README.md is out of date with values.yaml: run UPDATE_CHART_README=1 cargo test --test it helm::chart_readme"
    );
    // Every top-level value is described.
    for line in values
        .lines()
        .filter(|l| !l.starts_with([' ', '#']) && l.contains(':'))
    {
        let key = line.split(':').next().unwrap();
        assert!(
            table.contains(&format!("| `{key}")),
            "values.yaml key {key} has no `# --` description"
        );
    }
}

/// `| key | default | description |` rows for every key preceded by a `# --` comment.
fn values_table(values: &str) -> String {
    let mut rows = String::from("| key | default | description |\n|---|---|---|\n");
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut doc: Option<String> = None;
    for line in values.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(text) = trimmed.strip_prefix("# -- ") {
            doc = Some(text.to_string());
            continue;
        }
        if let (Some(d), Some(text)) = (doc.as_mut(), trimmed.strip_prefix("# ")) {
            d.push(' ');
            d.push_str(text);
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('-') {
            if !trimmed.starts_with('#') {
                doc = None;
            }
            continue;
        }
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        while path.last().is_some_and(|(i, _)| *i >= indent) {
            path.pop();
        }
        path.push((indent, key.to_string()));
        if let Some(d) = doc.take() {
            let full: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
            let value = value.trim();
            let default = if value.is_empty() {
                "see values.yaml".to_string()
            } else {
                format!("`{value}`")
            };
            rows.push_str(&format!(
                "| `{}` | {default} | {} |\n",
                full.join("."),
                d.replace('|', "\\|")
            ));
        }
    }
    rows
}

/// What platform teams need from the chart: their own env and volumes (Key Vault through the
/// Secrets Store CSI driver), Workload Identity, spread, priority, startup probe, a rotated
/// Secret restarting the pods, a NetworkPolicy, PDB and HPA that match the replica count, an
/// HTTPRoute, and values that are checked.
#[test]
fn chart_fits_real_clusters() {
    let all = template(&[
        "--set",
        "serviceAccount.create=true",
        "--set",
        "serviceAccount.annotations.azure\\.workload\\.identity/client-id=11111111-2222-3333-4444-555555555555",
        "--set-string",
        "podLabels.azure\\.workload\\.identity/use=true",
        "--set",
        "extraEnv[0].name=PORTCULLIS__LOG__LEVEL,extraEnv[0].value=debug",
        "--set",
        "envFrom[0].secretRef.name=more-settings",
        "--set",
        "extraVolumes[0].name=kv,extraVolumes[0].csi.driver=secrets-store.csi.k8s.io",
        "--set",
        "extraVolumeMounts[0].name=kv,extraVolumeMounts[0].mountPath=/mnt/kv",
        "--set",
        "priorityClassName=high",
        "--set",
        "secrets.oidcClientSecret=s3cret",
        "--set",
        "httpRoute.enabled=true,httpRoute.hostnames[0]=app.example.com,httpRoute.parentRefs[0].name=edge",
    ]);
    let d = manifest(&all, "Deployment");
    for expected in [
        "serviceAccountName: gw-portcullis",
        "azure.workload.identity/use: \"true\"",
        "name: PORTCULLIS__LOG__LEVEL",
        "secretRef:\n                name: more-settings",
        "mountPath: /mnt/kv",
        "driver: secrets-store.csi.k8s.io",
        "priorityClassName: high",
        "startupProbe:",
        "checksum/secret:",
        "topologyKey: kubernetes.io/hostname",
        "topologyKey: topology.kubernetes.io/zone",
    ] {
        assert!(d.contains(expected), "deployment lacks {expected:?}:\n{d}");
    }
    assert!(rendered_toml(&all).contains("shutdown_delay = \"5s\""));
    let sa = manifest(&all, "ServiceAccount");
    assert!(sa.contains("azure.workload.identity/client-id: 11111111-2222-3333-4444-555555555555"));
    assert!(manifest(&all, "HTTPRoute").contains("- app.example.com"));
    // One pod: no disruption budget that would block node drains forever.
    assert!(!all.contains("kind: PodDisruptionBudget"));
    // A rotated secret changes the pod template, so the pods restart.
    let rotated = template(&["--set", "secrets.oidcClientSecret=rotated"]);
    let checksum = |all: &str| {
        manifest(all, "Deployment")
            .lines()
            .find(|l| l.contains("checksum/secret:"))
            .map(str::to_string)
    };
    assert_ne!(checksum(&all), checksum(&rotated));

    let prod = template(&["-f", &production()]);
    let np = manifest(&prod, "NetworkPolicy");
    assert!(
        np.contains("port: admin") && np.contains("kubernetes.io/metadata.name: monitoring"),
        "{np}"
    );
    assert!(
        np.contains("port: http") && np.contains("kubernetes.io/metadata.name: ingress-nginx"),
        "{np}"
    );
    assert!(manifest(&prod, "PodDisruptionBudget").contains("minAvailable: 2"));
    let hpa = manifest(&prod, "HorizontalPodAutoscaler");
    assert!(
        hpa.contains("name: cpu") && hpa.contains("name: memory"),
        "{hpa}"
    );

    // Values are checked: a typo at the top level is an error, not silently ignored.
    let out = helm(&[
        "template",
        "gw",
        chart().to_str().unwrap(),
        "--set",
        "replicas=3",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("additional properties 'replicas' not allowed"));
}
