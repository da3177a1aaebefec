//! `GET /bff/login?returnUrl=/path[&prompt=...][&acr_values=...]`: starts an authorization
//! code + PKCE login. `acr_values` (step-up) must be values some route requires or
//! `oidc.allowed_acr_values` lists: a link cannot make the IdP ask for anything else.

use http::HeaderMap;

use super::login_state::{LoginState, Pending};
use super::{param, return_url_param, Bff, Reply};
use crate::error::GatewayError;
use crate::oidc::IdentityProvider;
use crate::session::sessions::unix_now;

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
    let acr_values: Vec<String> = param(query, "acr_values")
        .map(|v| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if let Some(unknown) = acr_values.iter().find(|v| !bff.acr_allowed.contains(v)) {
        return GatewayError::InvalidParameter {
            detail: format!("acr_values {unknown:?} is not one this application asks for."),
        }
        .into();
    }
    let Some(provider) = idp.current() else {
        return GatewayError::IdentityProviderUnavailable.into();
    };
    let joined = acr_values.join(" ");
    let request = provider.authorize(prompt, (!joined.is_empty()).then_some(joined.as_str()));

    // The login waits in the browser's sealed cookie, beside its other tabs' logins: nothing
    // is stored for a client that never comes back.
    let (name, timeout) = (bff.login_cookie_name(), bff.login_timeout.as_secs());
    let now = unix_now();
    let mut pending = Pending::read(&bff.sessions, headers, name, now, timeout);
    pending.push(LoginState {
        state: request.state,
        pkce_verifier: request.pkce_verifier,
        nonce: request.nonce,
        return_url,
        started: now,
        acr_values,
    });
    let Some(cookie) = pending.set_cookie(&bff.sessions, name, timeout) else {
        return GatewayError::Internal.into();
    };
    Reply::Redirect {
        location: request.url,
        cookies: vec![cookie],
    }
}
