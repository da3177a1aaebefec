//! `docker/compose.yaml` cannot run here (no Docker engine), so its contract is checked: the
//! replicas run `conf/portcullis.toml` with their variables and that passes `portcullis check`,
//! the load balancer's config is valid nginx pointing at those replicas, and the OP registers
//! the redirect URIs the config produces.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(root().join("docker/compose.yaml"))
        .output()
        .expect("python3 with PyYAML (apt install python3-yaml)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_compose_stack_runs_the_shipped_config_and_stays_in_sync_with_it() {
    let stack = compose();
    let services = stack["services"].as_object().unwrap();
    let config = std::fs::read_to_string(root().join("conf/portcullis.toml")).unwrap();
    let mut listens = Vec::new();
    let replicas: Vec<_> = services
        .keys()
        .filter(|k| k.starts_with("portcullis-"))
        .collect();
    assert!(replicas.len() >= 2, "the demo stack runs several replicas");
    for name in replicas {
        let svc = &services[name];
        let volumes = svc["volumes"].to_string();
        assert!(
            volumes.contains("../conf/portcullis.toml:/etc/portcullis/portcullis.toml"),
            "{name} does not run conf/portcullis.toml: {volumes}"
        );
        assert_eq!(svc["read_only"], true, "{name}");
        let env: Vec<(String, String)> = svc["environment"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = crate::harness::portcullis_check(&config, &env_refs);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let effective = String::from_utf8(out.stdout).unwrap();
        assert!(
            effective.contains("store = \"redis\""),
            "{name} shares sessions"
        );
        let listen = env
            .iter()
            .find(|(k, _)| k == "PORTCULLIS__SERVER__LISTEN")
            .map(|(_, v)| v.clone())
            .unwrap();
        listens.push(listen);
    }

    // The load balancer balances over exactly those replicas, and nginx accepts its config.
    let nginx = std::fs::read_to_string(root().join("docker/demo/nginx.conf")).unwrap();
    for listen in &listens {
        assert!(
            nginx.contains(&format!("server {listen};")),
            "{listen} not behind nginx"
        );
    }
    let dir = crate::harness::gateway::scratch_dir();
    let out = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(root().join("docker/demo/nginx.conf"))
        .args(["-e", "stderr"])
        .output()
        .expect("nginx (apt install nginx-light)");
    let _ = std::fs::remove_dir_all(dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No host networking (Docker Desktop lacks it): one shared namespace, owned by the lb, which
    // publishes what the browser opens on the host's loopback only.
    for (name, svc) in services {
        assert_ne!(svc["network_mode"], "host", "{name} needs host networking");
        if name != "lb" {
            assert_eq!(svc["network_mode"], "service:lb", "{name}");
        }
    }
    let ports = services["lb"]["ports"].to_string();
    for published in ["127.0.0.1:8080:8080", "127.0.0.1:3002:3002"] {
        assert!(ports.contains(published), "{published}: {ports}");
    }
    assert_eq!(services["op"]["environment"]["OP_BIND"], "0.0.0.0");
    assert!(
        nginx.contains("listen 8080;"),
        "published traffic reaches nginx"
    );

    // The OP knows the redirect URIs the config makes (the same file the quickstart uses).
    assert_eq!(services["op"]["env_file"], "demo/op.env");
    let op = std::fs::read_to_string(root().join("docker/demo/op.env")).unwrap();
    assert!(
        op.contains("OP_REDIRECT_URIS=http://127.0.0.1:8080/signin-oidc"),
        "{op}"
    );
    assert!(config.contains("public_origin = \"http://127.0.0.1:8080\""));
}
