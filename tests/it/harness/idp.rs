//! The real OpenID Provider: `node tests/idp/op.mjs` (npm `oidc-provider`, pinned by
//! `tests/idp/package-lock.json`, installed by `.ci/install-deps test`). Stopped by PID on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub const CLIENT_ID: &str = "portcullis";
pub const CLIENT_SECRET: &str = "portcullis-test-secret";

pub struct Idp {
    child: Child,
    pub issuer: String,
}

impl Idp {
    /// An OP that knows the gateway's client with these redirect URIs.
    pub fn start(redirect_uris: &[String], env: &[(&str, &str)]) -> Idp {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/idp");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "oidc-provider is not installed: run `bash .ci/install-deps test`"
        );
        let mut child = Command::new("node")
            .arg(dir.join("op.mjs"))
            .env("OP_CLIENT_ID", CLIENT_ID)
            .env("OP_CLIENT_SECRET", CLIENT_SECRET)
            .env("OP_REDIRECT_URIS", redirect_uris.join(","))
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node tests/idp/op.mjs");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep draining: a closed pipe would kill the OP (EPIPE) the next time it prints.
        std::thread::spawn(move || {
            for l in stdout.lines().map_while(Result::ok) {
                eprintln!("op: {l}");
            }
        });
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the OP did not start: {line:?}"));
        Idp {
            child,
            issuer: ready["issuer"].as_str().unwrap().to_string(),
        }
    }
}

impl Idp {
    /// Grants the OP issued and refused so far: `{"issued": {"refresh_token": 1, ...},
    /// "refused": {"refresh_token:invalid_grant": 1}}`.
    pub async fn grants(&self) -> serde_json::Value {
        super::client()
            .get(format!("{}/test/grants", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Gives `sub` these extra ID token claims from its next login on (`groups`,
    /// `realm_access`, `level`, `https://example.test/roles`).
    pub async fn set_claims(&self, sub: &str, claims: serde_json::Value) {
        let r = super::client()
            .get(format!("{}/test/claims", self.issuer))
            .query(&[("sub", sub), ("json", &claims.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// Changes the display name (`name` claim) the OP gives `sub` from now on.
    pub async fn rename(&self, sub: &str, name: &str) {
        let r = super::client()
            .get(format!("{}/test/rename", self.issuer))
            .query(&[("sub", sub), ("name", name)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    /// Stops the OP now (an outage); its port stays known through `issuer`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
