//! JWTs as the tests see them: reading claims, RSA keys for the OP or the client (made with the
//! `openssl` CLI so the OP reads the same PEM), and the clock tokens are stamped with.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs8::DecodePrivateKey;
use rsa::RsaPrivateKey;
use serde_json::Value;

/// The payload of a JWT, unverified.
pub fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Unix seconds, as in `iat` and `exp`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A fresh 2048-bit RSA key written to `path` (PKCS#8 PEM), and parsed.
pub fn rsa_key(path: &Path) -> RsaPrivateKey {
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ],
        path,
    );
    RsaPrivateKey::from_pkcs8_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The public half of the PEM key at `key`, written to `path`.
pub fn public_key(key: &Path, path: &Path) {
    let key = key.to_str().unwrap();
    openssl(&["pkey", "-in", key, "-pubout", "-out"], path);
}

fn openssl(args: &[&str], out: &Path) {
    let ok = std::process::Command::new("openssl")
        .args(args)
        .arg(out)
        .status()
        .expect("run openssl")
        .success();
    assert!(ok, "openssl {args:?} failed");
}
