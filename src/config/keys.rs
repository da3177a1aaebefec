//! Keys and certificates given in the configuration, parsed once while the configuration is
//! read: `check` refuses what cannot be used, and the OIDC client and the assertion signer get
//! the parsed keys, so starting cannot fail on them. Each prints as `***` (Debug, `check`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{json, Value};

/// The RSA key of `private_key_jwt`, ready to sign RS256 client assertions.
#[derive(Clone)]
pub struct ClientKey(pub EncodingKey);

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for ClientKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Reads the `private_key_jwt` key: RSA, 2048 bits or more, PEM.
pub fn client_key(pem: &str) -> Result<ClientKey, String> {
    rsa_private_key(pem)?;
    EncodingKey::from_rsa_pem(pem.as_bytes())
        .map(ClientKey)
        .map_err(|e| format!("cannot be used for RS256: {e}"))
}

/// A certificate's thumbprints as JOSE headers name them: `x5t` (SHA-1) and `x5t#S256`.
#[derive(Clone, Debug)]
pub struct Thumbprints {
    pub x5t: String,
    pub x5t_s256: String,
}

impl Serialize for Thumbprints {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Reads an RSA private key in PEM, PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genpkey` writes)
/// or PKCS#1 (`BEGIN RSA PRIVATE KEY`).
pub fn rsa_private_key(pem: &str) -> Result<RsaPrivateKey, String> {
    let key = RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|_| "is not an RSA private key in PEM (PKCS#8 or PKCS#1)".to_string())?;
    if rsa::traits::PublicKeyParts::size(&key) < 256 {
        return Err("is shorter than 2048 bits".into());
    }
    Ok(key)
}

/// The certificate's thumbprints, each base64url of the digest of the DER certificate.
pub fn certificate_thumbprints(certificate_pem: &str) -> Result<Thumbprints, String> {
    let cert = pem::parse(certificate_pem)
        .ok()
        .filter(|p| p.tag() == "CERTIFICATE")
        .ok_or("is not a certificate in PEM (-----BEGIN CERTIFICATE-----)")?;
    let digest = |alg| URL_SAFE_NO_PAD.encode(ring::digest::digest(alg, cert.contents()));
    Ok(Thumbprints {
        x5t: digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        x5t_s256: digest(&ring::digest::SHA256),
    })
}

/// One identity assertion signing key and its public half as a JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub id: String,
    pub alg: Algorithm,
    pub key: EncodingKey,
    pub jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey {{ id: {:?}, alg: {:?}, key: *** }}",
            self.id, self.alg
        )
    }
}

/// As `check` prints a key: its id, the key masked.
impl Serialize for SigningKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("private_key", "***")?;
        map.end()
    }
}

/// Reads a PEM private key: RSA (PKCS#8 or PKCS#1, 2048 bits or more) signs RS256, an EC P-256
/// key (PKCS#8) signs ES256.
pub fn signing_key(id: &str, pem_text: &str) -> Result<SigningKey, String> {
    let is_rsa = RsaPrivateKey::from_pkcs8_pem(pem_text)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(pem_text))
        .is_ok();
    if is_rsa {
        let key = rsa_private_key(pem_text).map_err(|e| format!("is an RSA key that {e}"))?;
        let encoding = EncodingKey::from_rsa_pem(pem_text.as_bytes())
            .map_err(|e| format!("cannot sign RS256 with it: {e}"))?;
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": id,
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        });
        return Ok(SigningKey {
            id: id.to_string(),
            alg: Algorithm::RS256,
            key: encoding,
            jwk,
        });
    }
    let der = pem::parse(pem_text)
        .ok()
        .filter(|p| p.tag() == "PRIVATE KEY")
        .ok_or(
            "is neither an RSA key nor an EC P-256 key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)",
        )?;
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.contents(),
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|_| "is not an RSA key or an EC key on P-256".to_string())?;
    let point = pair.public_key().as_ref();
    let (x, y) = (point.get(1..33), point.get(33..65));
    let (Some(x), Some(y)) = (x, y) else {
        return Err("has an unexpected public key encoding".into());
    };
    Ok(SigningKey {
        id: id.to_string(),
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_der(der.contents()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": id,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        }),
    })
}
