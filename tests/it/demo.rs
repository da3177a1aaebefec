//! The quickstart as a newcomer runs it (`bash docker/demo/run.sh`): the demo apps, the demo OP
//! with `docker/demo/op.env`, and Portcullis with `conf/portcullis.toml`, on their fixed ports.
//! A user logs in, calls the API with their token, and logs out.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{client, eventually, login, UserAgent};

/// A process of the demo, stopped by PID when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn spawn(cmd: &mut Command) -> Running {
    Running(
        cmd.current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a demo process"),
    )
}

#[tokio::test]
async fn the_quickstart_demo_logs_in_calls_the_api_and_logs_out() {
    for port in [8080, 9090, 3000, 3001, 3002] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "the demo needs 127.0.0.1:{port} free"
        );
    }
    let _apps = spawn(Command::new("node").arg("docker/demo/apps.mjs"));
    let op_env: Vec<(String, String)> = std::fs::read_to_string(root().join("docker/demo/op.env"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _op = spawn(Command::new("node").arg("tests/idp/op.mjs").envs(op_env));
    let _gateway = spawn(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config", "conf/portcullis.toml"])
            .env("RUST_LOG", "warn"),
    );
    eventually("the demo to be ready", Duration::from_secs(30), || async {
        let r = client()
            .get("http://127.0.0.1:9090/readyz")
            .send()
            .await
            .ok()?;
        (r.status() == 200).then_some(())
    })
    .await;

    let gw = "http://127.0.0.1:8080";
    let mut ua = UserAgent::new();
    eventually(
        "the demo SPA through Portcullis",
        Duration::from_secs(20),
        || async {
            let r = client().get(format!("{gw}/")).send().await.ok()?;
            let body = r.text().await.ok()?;
            body.contains("Portcullis demo SPA").then_some(())
        },
    )
    .await;
    let api = format!("{gw}/api/hello");
    assert_eq!(ua.get(&api, &[("x-csrf", "1")]).await.status, 401);

    let back = login::through_idp(
        &mut ua,
        gw,
        &format!("{gw}/bff/login?returnUrl=/"),
        "newcomer",
    )
    .await;
    assert_eq!(back.location(), Some("/"), "{}", back.body);
    let hello = ua.get(&api, &[("x-csrf", "1")]).await;
    assert_eq!(hello.status, 200, "{}", hello.body);
    let hello: Value = serde_json::from_str(&hello.body).unwrap();
    assert_eq!(hello["access_token_claims"]["sub"], "newcomer", "{hello}");

    let logout = login::logout_url(&mut ua, gw).await;
    let out = login::through_idp(
        &mut ua,
        gw,
        &format!("{gw}{logout}&returnUrl=/"),
        "newcomer",
    )
    .await;
    assert_eq!(out.location(), Some("/"), "{}", out.body);
    assert_eq!(ua.get(&api, &[("x-csrf", "1")]).await.status, 401);
}
