//! `GET /bff/login?returnUrl=/path[&prompt=...]`: starts an authorization code + PKCE login.

use http::HeaderMap;

use super::login_state::LoginState;
use super::{param, return_url_param, Bff, Reply};
use crate::error::GatewayError;
use crate::oidc::IdentityProvider;
use crate::session::{cookie, SessionId};

/// `prompt` values passed through to the IdP (OIDC Core §3.1.2.1, Initiating User Registration).
const PROMPTS: &[&str] = &["none", "login", "consent", "select_account", "create"];

pub async fn start(
    bff: &Bff,
    idp: &IdentityProvider,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Reply {
    let return_url = match return_url_param(query) {
        Ok(url) => url,
        Err(reply) => return reply,
    };
    let prompt = param(query, "prompt").filter(|p| !p.is_empty());
    if let Some(p) = prompt {
        if !PROMPTS.contains(&p) {
            return GatewayError::InvalidParameter {
                detail: format!("prompt must be one of: {}", PROMPTS.join(", ")),
            }
            .into();
        }
    }
    let Some(provider) = idp.current() else {
        return GatewayError::IdentityProviderUnavailable.into();
    };
    let request = provider.authorize(prompt);

    // One binding per browser, shared by its tabs, so parallel logins all succeed.
    let binding_name = bff.binding_cookie_name();
    let binding = cookie::session_id(headers, binding_name).unwrap_or_else(SessionId::generate);
    let state = LoginState {
        pkce_verifier: request.pkce_verifier,
        nonce: request.nonce,
        return_url,
        binding: binding.as_str().to_string(),
    };
    let Ok(plain) = serde_json::to_vec(&state) else {
        return GatewayError::Internal.into();
    };
    if let Err(e) = bff
        .sessions
        .put_login_state(&request.state, &plain, bff.login_timeout)
        .await
    {
        tracing::warn!(error = %e, "cannot store the login state");
        return GatewayError::SessionStoreUnavailable.into();
    }
    Reply::Redirect {
        location: request.url,
        cookies: vec![cookie::set_with_max_age(
            binding_name,
            &binding,
            bff.sessions.cookie.secure,
            bff.login_timeout.as_secs(),
        )],
    }
}
