//! `private_key_jwt` client authentication (OIDC Core §9, RFC 7523): instead of a shared
//! secret, each token request carries a short-lived JWT signed with the gateway's private key,
//! whose public half is registered at the IdP. Microsoft Entra ID recommends it over secrets.
//!
//! RS256 only: it is the one algorithm every IdP accepts for client assertions. Signed by
//! `jsonwebtoken`. With a certificate configured, the header names it by thumbprint (`x5t`,
//! `x5t#S256`): Microsoft Entra ID identifies certificate credentials that way, not by `kid`.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;

use crate::config::keys::{ClientKey, Thumbprints};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Assertions live this long: enough for one request, too short to be worth stealing.
const LIFETIME_SECS: u64 = 60;

pub struct ClientAssertion {
    key: EncodingKey,
    header: Header,
    client_id: String,
}

impl ClientAssertion {
    /// From the parsed `oidc.private_key` (and `certificate`): cannot fail.
    pub fn new(
        key: &ClientKey,
        key_id: Option<String>,
        certificate: Option<&Thumbprints>,
        client_id: String,
    ) -> Self {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = key_id;
        if let Some(cert) = certificate {
            header.x5t = Some(cert.x5t.clone());
            header.x5t_s256 = Some(cert.x5t_s256.clone());
        }
        ClientAssertion {
            key: key.0.clone(),
            header,
            client_id,
        }
    }

    /// A fresh assertion for `audience` (the token endpoint URL).
    pub fn sign(&self, audience: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "exp": now + LIFETIME_SECS,
        });
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the client assertion: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::keys::{certificate_thumbprints, client_key};
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::RsaPrivateKey;
    use rsa::{Pkcs1v15Sign, RsaPublicKey};
    use sha2::{Digest, Sha256};

    #[test]
    fn assertions_verify_with_the_public_key_and_name_the_client() {
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let signer = ClientAssertion::new(
            &client_key(&pem).unwrap(),
            Some("k1".into()),
            None,
            "portcullis".into(),
        );
        let jwt = signer.sign("https://idp.example/token").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "k1");
        assert!(header.get("x5t").is_none());
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

    /// PEM-armoured bytes labelled as a certificate: a thumbprint is the digest of whatever DER
    /// the armour holds (tests/it/login.rs checks one against `openssl x509 -fingerprint`).
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBMjCB2aADAgECAhQf1tQ9a5uT3pK2yLxY8n9gq7Vw6DAKBggqhkjOPQQDAjAP
MQ0wCwYDVQQDDARUZXN0MB4XDTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAwMDAwMFow
DzENMAsGA1UEAwwEVGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJ0VtH1T
-----END CERTIFICATE-----
";

    #[test]
    fn a_certificate_is_named_by_its_thumbprints() {
        let der = pem::parse(CERT).unwrap().contents().to_vec();
        let thumbprints = certificate_thumbprints(CERT).unwrap();
        let (x5t, x5t_s256) = (thumbprints.x5t.clone(), thumbprints.x5t_s256.clone());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&x5t_s256).unwrap(),
            Sha256::digest(&der).to_vec()
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(&x5t).unwrap().len(), 20);
        let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let signer = ClientAssertion::new(
            &client_key(&pem).unwrap(),
            None,
            Some(&thumbprints),
            "c".into(),
        );
        let jwt = signer.sign("https://idp.example/token").unwrap();
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["x5t#S256"], x5t_s256);
        assert_eq!(header["x5t"], x5t);
        assert!(
            certificate_thumbprints(&pem).is_err(),
            "a key is not a certificate"
        );
    }

    #[test]
    fn non_rsa_or_garbage_keys_are_refused() {
        assert!(client_key("not a key").is_err());
        assert!(
            client_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }
}
