//! The gateway as an OpenID Connect client of one provider: authorization requests, the code
//! exchange and ID token validation, built once per discovery result.
//!
//! Longer than most modules (~600 lines): every call made to the provider (authorize URL, code
//! exchange, refresh, client credentials, userinfo, revocation) shares its metadata, client
//! authentication and error mapping, which live here once.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClient, CoreClientAuthMethod, CoreErrorResponseType, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType, CoreTokenResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};

use super::assertion::ClientAssertion;
use crate::config::ClientAuth;

/// Discovery fields beyond OIDC Discovery 1.0 that logout needs.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct LogoutMetadata {
    /// RP-Initiated Logout 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
    /// RFC 7009 token revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for LogoutMetadata {}

pub type Metadata = ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The gateway's registration at the IdP, from `[oidc]` and `server.public_origin`.
pub struct ClientSettings {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub auth: ClientAuth,
    pub assertion: Option<Arc<ClientAssertion>>,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub authorize_params: Vec<(String, String)>,
    /// RFC 8707 resources of routes with `resource`: asked for at login, so the refresh token
    /// can later be exchanged for tokens for each of them.
    pub resources: Vec<String>,
}

/// What the browser is sent to, and what must be kept to finish the login.
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Tokens of a completed login, with the ID token's claims (signature and `nonce` checked).
pub struct LoginTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: String,
    /// Unix seconds; `None` when the IdP did not say (`expires_in` is optional).
    pub access_expires_at: Option<u64>,
    /// `expires_in` as granted, in seconds.
    pub access_lifetime: Option<u64>,
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Why the token endpoint did not give us tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The IdP answered with an OAuth error (RFC 6749 §5.2): the grant is bad, not the network.
    #[error("the identity provider refused: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        code: String,
        description: Option<String>,
    },
    /// Network failure, timeout, 5xx or an unreadable answer: worth retrying later.
    #[error("the identity provider could not be reached: {0}")]
    Unavailable(String),
}

impl TokenError {
    /// The refresh token (or code) will never work again: `invalid_grant` (RFC 6749 §5.2:
    /// expired, revoked, reused after rotation). Other refusals (`invalid_scope`,
    /// `invalid_target`, `invalid_client`) are about what was asked or how the gateway is
    /// configured, not about this session, so they do not end it.
    pub fn is_fatal(&self) -> bool {
        matches!(self, TokenError::Rejected { code, .. } if code == "invalid_grant")
    }
}

/// A token endpoint answer for a refresh or client-credentials grant.
pub struct GrantedToken {
    pub access_token: String,
    /// Unix seconds; `None` when the IdP did not say.
    pub expires_at: Option<u64>,
    /// `expires_in` as granted, in seconds.
    pub lifetime: Option<u64>,
    /// The rotated refresh token, when the IdP rotates.
    pub refresh_token: Option<String>,
    /// The ID token a refresh returned, signature, `iss`, `aud` and `exp` checked (the
    /// comparison with the session's own is [`same_authentication`]), or why it is unusable.
    pub id_token: Option<Result<VerifiedIdToken, String>>,
}

/// An ID token whose signature and standard claims were checked, with all its claims.
pub struct VerifiedIdToken {
    pub raw: String,
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// OIDC Core 12.2: an ID token from a refresh must describe the same authentication as the
/// session's: same `iss` and `sub`, and the same `auth_time` and `nonce` when it carries them.
pub fn same_authentication(
    original: &serde_json::Map<String, serde_json::Value>,
    refreshed: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    for claim in ["iss", "sub"] {
        if refreshed.get(claim).is_none() || original.get(claim) != refreshed.get(claim) {
            return Err(format!("its {claim} differs from the session's"));
        }
    }
    for claim in ["auth_time", "nonce"] {
        if let (Some(new), Some(old)) = (refreshed.get(claim), original.get(claim)) {
            if new != old {
                return Err(format!("its {claim} differs from the session's"));
            }
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    #[error("the token response has no ID token")]
    Missing,
    /// Signed with a key that is not in our copy of the JWKS: reload the keys and try again.
    #[error("the ID token is signed with an unknown key")]
    UnknownKey,
    #[error("the ID token is invalid: {0}")]
    Invalid(String),
}

pub struct Provider {
    pub metadata: Metadata,
    client: OidcClient,
    settings: Arc<ClientSettings>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Provider {
    pub fn new(metadata: Metadata, settings: Arc<ClientSettings>) -> Result<Provider, String> {
        let redirect = RedirectUrl::new(settings.redirect_uri.clone())
            .map_err(|e| format!("redirect URI {:?}: {e}", settings.redirect_uri))?;
        let secret = settings.client_secret.clone().map(ClientSecret::new);
        let client = CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(settings.client_id.clone()),
            secret,
        )
        .set_redirect_uri(redirect)
        .set_auth_type(match settings.auth {
            ClientAuth::ClientSecretPost => AuthType::RequestBody,
            _ => AuthType::BasicAuth,
        });
        Ok(Provider {
            metadata,
            client,
            settings,
        })
    }

    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    pub fn issuer(&self) -> &str {
        self.metadata.issuer().as_str()
    }

    pub fn token_endpoint(&self) -> Option<&str> {
        self.metadata.token_endpoint().map(|u| u.as_str())
    }

    /// RFC 7009: revokes a refresh token at the IdP's revocation endpoint, if it has one.
    /// `Ok(false)` when there is no endpoint to call.
    pub async fn revoke_refresh_token(
        &self,
        http: &openidconnect::reqwest::Client,
        token: &str,
    ) -> Result<bool, TokenError> {
        let Some(endpoint) = self
            .metadata
            .additional_metadata()
            .revocation_endpoint
            .as_deref()
        else {
            return Ok(false);
        };
        let mut form: Vec<(&str, String)> = vec![
            ("token", token.to_string()),
            ("token_type_hint", "refresh_token".into()),
        ];
        let mut request = http.post(endpoint);
        match (self.settings.auth, &self.settings.client_secret) {
            (ClientAuth::ClientSecretBasic, Some(secret)) => {
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request = request.basic_auth(enc(&self.settings.client_id), Some(enc(secret)));
            }
            (ClientAuth::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", self.settings.client_id.clone()));
                form.push(("client_secret", secret.clone()));
            }
            _ => {
                form.push(("client_id", self.settings.client_id.clone()));
                if let Some(assertion) = self.client_assertion()? {
                    form.push((
                        "client_assertion_type",
                        super::assertion::ASSERTION_TYPE.into(),
                    ));
                    form.push(("client_assertion", assertion));
                }
            }
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| TokenError::Unavailable(chain(&e)))?;
        if response.status().is_success() {
            Ok(true)
        } else {
            Err(TokenError::Unavailable(format!(
                "revocation endpoint answered {}",
                response.status()
            )))
        }
    }

    /// The userinfo endpoint's claims for this access token (OIDC Core 5.3), refused unless
    /// their `sub` is `sub` (5.3.4: a substituted response must not pass). JSON responses only.
    pub async fn userinfo(
        &self,
        http: &openidconnect::reqwest::Client,
        access_token: &str,
        sub: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let endpoint = self
            .metadata
            .userinfo_endpoint()
            .ok_or("the IdP advertises no userinfo endpoint")?;
        let response = http
            .get(endpoint.url().as_str())
            .bearer_auth(access_token)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| chain(&e))?;
        if !response.status().is_success() {
            return Err(format!(
                "the userinfo endpoint answered {}",
                response.status()
            ));
        }
        let body = response.bytes().await.map_err(|e| chain(&e))?;
        let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| format!("the userinfo answer is not a JSON object: {e}"))?;
        if claims.get("sub").and_then(|s| s.as_str()) != Some(sub) {
            return Err("the userinfo answer is for another subject".into());
        }
        Ok(claims)
    }

    /// Auth0's logout endpoint (`{issuer}v2/logout`), for tenants that do not advertise an
    /// end-session endpoint. Auth0 returns no `state`.
    pub fn auth0_logout_url(&self, return_to: &str) -> Option<String> {
        let mut url = url::Url::parse(self.issuer())
            .ok()?
            .join("v2/logout")
            .ok()?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("returnTo", return_to);
        Some(url.into())
    }

    /// RP-Initiated Logout 1.0: where to send the browser to end the IdP session, if the IdP
    /// has an end-session endpoint.
    pub fn end_session_url(
        &self,
        id_token_hint: &str,
        post_logout_redirect_uri: &str,
        state: &str,
    ) -> Option<String> {
        let endpoint = self
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .as_deref()?;
        let mut url = url::Url::parse(endpoint).ok()?;
        url.query_pairs_mut()
            .append_pair("id_token_hint", id_token_hint)
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
            .append_pair("state", state);
        Some(url.into())
    }

    /// A fresh authorization request: code flow, PKCE S256, random `state` and `nonce`.
    pub fn authorize(
        &self,
        prompt: Option<&str>,
        acr_values: Option<&str>,
    ) -> AuthorizationRequest {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (name, value) in &self.settings.authorize_params {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        for resource in &self.settings.resources {
            request = request.add_extra_param("resource", resource.as_str());
        }
        if let Some(acr) = acr_values {
            request = request.add_extra_param("acr_values", acr);
        }
        match prompt {
            Some("none") => request = request.add_prompt(CoreAuthPrompt::None),
            Some("login") => request = request.add_prompt(CoreAuthPrompt::Login),
            Some("consent") => request = request.add_prompt(CoreAuthPrompt::Consent),
            Some("select_account") => request = request.add_prompt(CoreAuthPrompt::SelectAccount),
            Some(other) => {
                request = request.add_prompt(CoreAuthPrompt::Extension(other.to_string()))
            }
            None => {}
        }
        let (url, state, nonce) = request.url();
        AuthorizationRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Exchanges an authorization code (with its PKCE verifier) at the token endpoint.
    pub async fn exchange_code(
        &self,
        http: &openidconnect::reqwest::Client,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<CoreTokenResponse, TokenError> {
        let mut request = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| TokenError::Unavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()));
        for (name, value) in self.grant_params(None)? {
            request = request.add_extra_param(name, value);
        }
        request.request_async(http).await.map_err(classify)
    }

    /// The refresh-token grant (RFC 6749 §6), optionally for another API (RFC 8707 `resource`).
    pub async fn refresh(
        &self,
        http: &openidconnect::reqwest::Client,
        refresh_token: &str,
        resource: Option<&str>,
        scopes: &[String],
    ) -> Result<GrantedToken, TokenError> {
        let refresh_token = RefreshToken::new(refresh_token.to_string());
        let mut request = self
            .client
            .exchange_refresh_token(&refresh_token)
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
        for scope in scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (name, value) in self.grant_params(resource)? {
            request = request.add_extra_param(name, value);
        }
        let response = request.request_async(http).await.map_err(classify)?;
        let mut granted = granted(&response);
        granted.id_token = response.id_token().map(|t| self.verify_refreshed(t));
        Ok(granted)
    }

    /// Signature, `iss`, `aud`, `azp` and `exp` of an ID token from a refresh. The nonce is
    /// compared with the session's by [`same_authentication`] (a refresh may omit it).
    fn verify_refreshed(
        &self,
        id_token: &openidconnect::core::CoreIdToken,
    ) -> Result<VerifiedIdToken, String> {
        let verifier = self.client.id_token_verifier();
        id_token
            .claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .map_err(|e| e.to_string())?;
        let raw = id_token.to_string();
        let claims = payload(&raw).ok_or("its claims are unreadable")?;
        Ok(VerifiedIdToken { raw, claims })
    }

    /// The client-credentials grant: a token of the gateway itself.
    pub async fn client_credentials(
        &self,
        http: &openidconnect::reqwest::Client,
        resource: Option<&str>,
        scopes: &[String],
    ) -> Result<GrantedToken, TokenError> {
        let mut request = self
            .client
            .exchange_client_credentials()
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
        for scope in scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        for (name, value) in self.grant_params(resource)? {
            request = request.add_extra_param(name, value);
        }
        let response = request.request_async(http).await.map_err(classify)?;
        Ok(granted(&response))
    }

    /// Parameters every token request of this client carries beyond its grant: the RFC 8707
    /// `resource`, and the `private_key_jwt` assertion when that is how the client authenticates.
    fn grant_params(
        &self,
        resource: Option<&str>,
    ) -> Result<Vec<(&'static str, String)>, TokenError> {
        let mut params = Vec::new();
        if let Some(resource) = resource {
            params.push(("resource", resource.to_string()));
        }
        if let Some(assertion) = self.client_assertion()? {
            params.push((
                "client_assertion_type",
                super::assertion::ASSERTION_TYPE.to_string(),
            ));
            params.push(("client_assertion", assertion));
        }
        Ok(params)
    }

    fn client_assertion(&self) -> Result<Option<String>, TokenError> {
        let (Some(signer), Some(audience)) = (&self.settings.assertion, self.token_endpoint())
        else {
            return Ok(None);
        };
        signer
            .sign(audience)
            .map(Some)
            .map_err(TokenError::Unavailable)
    }

    /// Checks the ID token of a code exchange (signature with the IdP's keys, `iss`, `aud`,
    /// `azp`, `exp`, `nonce`) and collects the tokens.
    pub fn login_tokens(
        &self,
        response: &CoreTokenResponse,
        nonce: &str,
    ) -> Result<LoginTokens, IdTokenError> {
        let id_token = response.id_token().ok_or(IdTokenError::Missing)?;
        let verifier = self.client.id_token_verifier();
        let nonce = Nonce::new(nonce.to_string());
        id_token.claims(&verifier, &nonce).map_err(|e| match e {
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ) => IdTokenError::UnknownKey,
            other => IdTokenError::Invalid(other.to_string()),
        })?;
        let raw = id_token.to_string();
        let claims =
            payload(&raw).ok_or_else(|| IdTokenError::Invalid("unreadable claims".into()))?;
        Ok(LoginTokens {
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
            id_token: raw,
            access_expires_at: response.expires_in().map(|d| now() + d.as_secs()),
            access_lifetime: response.expires_in().map(|d| d.as_secs()),
            claims,
        })
    }
}

/// The claims of a JWT whose signature is already verified, read as-is: this keeps the claims
/// the typed view drops (custom claims such as roles, `sid`).
fn payload(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let part = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

fn granted(response: &CoreTokenResponse) -> GrantedToken {
    GrantedToken {
        access_token: response.access_token().secret().clone(),
        expires_at: response.expires_in().map(|d| now() + d.as_secs()),
        lifetime: response.expires_in().map(|d| d.as_secs()),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        id_token: None,
    }
}

fn classify<E: std::error::Error>(
    e: RequestTokenError<E, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
) -> TokenError {
    match e {
        RequestTokenError::ServerResponse(r) => TokenError::Rejected {
            code: r.error().as_ref().to_string(),
            description: r.error_description().cloned(),
        },
        RequestTokenError::Request(e) => TokenError::Unavailable(chain(&e)),
        RequestTokenError::Parse(e, _) => {
            TokenError::Unavailable(format!("unreadable token response: {e}"))
        }
        RequestTokenError::Other(s) => TokenError::Unavailable(s),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::same_authentication;

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_refreshed_id_token_must_describe_the_same_sign_in() {
        let original = claims(serde_json::json!({
            "iss": "https://op", "sub": "alice", "auth_time": 100, "nonce": "n1", "name": "A"
        }));
        let same = |extra: serde_json::Value| {
            let mut c = claims(serde_json::json!({"iss": "https://op", "sub": "alice"}));
            c.extend(claims(extra));
            same_authentication(&original, &c)
        };
        // New profile claims, no nonce (refreshes usually omit it): accepted.
        assert_eq!(same(serde_json::json!({"name": "B"})), Ok(()));
        assert_eq!(
            same(serde_json::json!({"auth_time": 100, "nonce": "n1"})),
            Ok(())
        );
        assert!(same(serde_json::json!({"sub": "mallory"})).is_err());
        assert!(same(serde_json::json!({"iss": "https://other"})).is_err());
        assert!(same(serde_json::json!({"auth_time": 200})).is_err());
        assert!(same(serde_json::json!({"nonce": "n2"})).is_err());
        let mut no_sub = claims(serde_json::json!({"iss": "https://op"}));
        no_sub.insert("name".into(), "x".into());
        assert!(same_authentication(&original, &no_sub).is_err());
    }
}
