//! `GET /signin-oidc` (path configurable): the IdP sends the browser back here with `code` and
//! `state` (or `error`). Finishes the login and starts a new session.

use http::HeaderMap;

use super::login_state::{plausible_state, LoginState};
use super::{param, Bff, Reply};
use crate::error::{GatewayError, LoginFailure};
use crate::oidc::{IdTokenError, IdentityProvider, TokenError};
use crate::session::{cookie, SessionData};

pub async fn finish(
    bff: &Bff,
    idp: &IdentityProvider,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Reply {
    let failed = |why| GatewayError::LoginFailed(why).into();
    let Some(state) = param(query, "state").filter(|s| !s.is_empty()) else {
        return failed(LoginFailure::MissingState);
    };
    if !plausible_state(state) {
        return failed(LoginFailure::UnknownState);
    }
    // Taken (and so consumed) before anything else: a state works once, whatever happens next.
    let login = match bff.sessions.take_login_state(state).await {
        Ok(Some(plain)) => match serde_json::from_slice::<LoginState>(&plain) {
            Ok(login) => login,
            Err(_) => return failed(LoginFailure::UnknownState),
        },
        Ok(None) => return failed(LoginFailure::UnknownState),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the login state");
            return GatewayError::SessionStoreUnavailable.into();
        }
    };
    let binding = cookie::session_id(headers, bff.binding_cookie_name());
    if binding.as_ref().map(|b| b.as_str()) != Some(login.binding.as_str()) {
        return failed(LoginFailure::OtherBrowser);
    }
    if let Some(code) = param(query, "error") {
        return failed(LoginFailure::IdentityProvider {
            code: oauth_error_code(code),
        });
    }
    let Some(code) = param(query, "code").filter(|c| !c.is_empty()) else {
        return failed(LoginFailure::MissingCode);
    };
    let Some(provider) = idp.current() else {
        return GatewayError::IdentityProviderUnavailable.into();
    };

    let response = match provider
        .exchange_code(&idp.http, code, &login.pkce_verifier)
        .await
    {
        Ok(r) => r,
        Err(e @ TokenError::Rejected { .. }) => {
            tracing::info!(error = %e, "the IdP refused the authorization code");
            return failed(LoginFailure::CodeRejected);
        }
        Err(e @ TokenError::Unavailable(_)) => {
            tracing::warn!(error = %e, "code exchange failed");
            return GatewayError::IdentityProviderFailed.into();
        }
    };
    let tokens = match provider.login_tokens(&response, &login.nonce) {
        Err(IdTokenError::UnknownKey) => match idp.reload_keys().await {
            Some(reloaded) => reloaded.login_tokens(&response, &login.nonce),
            None => Err(IdTokenError::UnknownKey),
        },
        other => other,
    };
    let tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "refusing the ID token of a login");
            return GatewayError::IdentityProviderFailed.into();
        }
    };
    let claim = |name: &str| {
        tokens
            .claims
            .get(name)
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    let (Some(sub), sid) = (claim("sub"), claim("sid")) else {
        return GatewayError::IdentityProviderFailed.into();
    };
    let data = SessionData {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        id_token: tokens.id_token,
        access_expires_at: tokens.access_expires_at,
        claims: tokens.claims,
        resource_tokens: Default::default(),
    };
    let id = match bff.sessions.create(sub, sid, &data).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = %e, "cannot store the new session");
            return GatewayError::SessionStoreUnavailable.into();
        }
    };
    // A session the browser still held ends here: one browser, one session.
    if let Some(previous) = bff.sessions.id_in(headers) {
        if let Err(e) = bff.sessions.delete(&previous).await {
            tracing::warn!(error = %e, "cannot end the browser's previous session");
        }
    }
    tracing::info!("login completed");
    Reply::Redirect {
        location: login.return_url,
        cookies: vec![bff.sessions.set_cookie(&id)],
    }
}

/// OAuth error codes are `[a-z_]`; anything else from the query is not echoed back.
fn oauth_error_code(code: &str) -> String {
    if !code.is_empty()
        && code.len() <= 64
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        code.to_string()
    } else {
        "error".to_string()
    }
}
