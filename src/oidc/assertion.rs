//! `private_key_jwt` client authentication (OIDC Core §9, RFC 7523): instead of a shared
//! secret, each token request carries a short-lived JWT signed with the gateway's private key,
//! whose public half is registered at the IdP. Microsoft Entra ID recommends it over secrets.
//!
//! RS256 only: it is the one algorithm every IdP accepts for client assertions. Built on the
//! `rsa`/`sha2` crates openidconnect already uses, so no second crypto stack is compiled.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Assertions live this long: enough for one request, too short to be worth stealing.
const LIFETIME_SECS: u64 = 60;

pub struct ClientAssertion {
    key: RsaPrivateKey,
    key_id: Option<String>,
    client_id: String,
}

/// Reads an RSA private key in PEM, PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes)
/// or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub fn parse_key(pem: &str) -> Result<RsaPrivateKey, String> {
    let key = RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| "is not an RSA private key in PEM (PKCS#8 or PKCS#1)".to_string())?;
    if rsa::traits::PublicKeyParts::size(&key) < 256 {
        return Err("is shorter than 2048 bits".into());
    }
    Ok(key)
}

impl ClientAssertion {
    pub fn new(pem: &str, key_id: Option<String>, client_id: String) -> Result<Self, String> {
        Ok(ClientAssertion {
            key: parse_key(pem)?,
            key_id,
            client_id,
        })
    }

    /// A fresh assertion for `audience` (the token endpoint URL).
    pub fn sign(&self, audience: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let mut header = serde_json::json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "exp": now + LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let digest = Sha256::digest(signing_input.as_bytes());
        let signature = self
            .key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .map_err(|e| format!("cannot sign the client assertion: {e}"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::RsaPublicKey;

    #[test]
    fn assertions_verify_with_the_public_key_and_name_the_client() {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let signer = ClientAssertion::new(&pem, Some("k1".into()), "portcullis".into()).unwrap();
        let jwt = signer.sign("https://idp.example/token").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "k1");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "portcullis");
        assert_eq!(claims["sub"], "portcullis");
        assert_eq!(claims["aud"], "https://idp.example/token");
        let digest = Sha256::digest(format!("{}.{}", parts[0], parts[1]).as_bytes());
        RsaPublicKey::from(&key)
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &digest,
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();
        // Each assertion is single-use at the IdP: ids never repeat.
        let again = signer.sign("https://idp.example/token").unwrap();
        assert_ne!(again.split('.').nth(1), Some(parts[1]));
    }

    #[test]
    fn non_rsa_or_garbage_keys_are_refused() {
        assert!(parse_key("not a key").is_err());
        assert!(
            parse_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }
}
