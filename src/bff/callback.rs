//! `GET /signin-oidc` (path configurable): the IdP sends the browser back here with `code` and
//! `state` (or `error`). Finishes the login and starts a new session.

use http::HeaderMap;

use super::login_state::{plausible_state, Pending};
use super::{param, Bff, Reply};
use crate::audit::{self, Event, Who};
use crate::error::{GatewayError, LoginFailure};
use crate::oidc::{IdTokenError, IdentityProvider, TokenError};
use crate::session::sessions::unix_now;
use crate::session::SessionData;

pub async fn finish(
    bff: &Bff,
    idp: &IdentityProvider,
    headers: &HeaderMap,
    query: &[(String, String)],
    who: &Who<'_>,
) -> Reply {
    let Some(state) = param(query, "state").filter(|s| !s.is_empty()) else {
        return GatewayError::LoginFailed(LoginFailure::MissingState).into();
    };
    let (name, timeout) = (bff.login_cookie_name(), bff.login_timeout.as_secs());
    let mut pending = Pending::read(&bff.sessions, headers, name, unix_now(), timeout);
    // Taken out of the browser's cookie before anything else: whatever happens next, this
    // state does not work twice from this browser.
    let login = plausible_state(state)
        .then(|| pending.take(state))
        .flatten();
    let remaining = if pending.present {
        pending.set_cookie(&bff.sessions, name, timeout)
    } else {
        None
    };
    // Every answer from here on carries the cookie without this login.
    let answer = |error| Reply::Error {
        error,
        cookies: remaining.iter().cloned().collect(),
    };
    let failed = |why| answer(GatewayError::LoginFailed(why));
    let Some(login) = login else {
        return failed(if pending.present {
            LoginFailure::UnknownState
        } else {
            LoginFailure::OtherBrowser
        });
    };
    if let Some(code) = param(query, "error") {
        let code = oauth_error_code(code);
        audit::record(
            Event::new("login", "failed").reason(&format!("idp_error:{code}")),
            who,
        );
        return failed(LoginFailure::IdentityProvider { code });
    }
    let Some(code) = param(query, "code").filter(|c| !c.is_empty()) else {
        return failed(LoginFailure::MissingCode);
    };
    let Some(provider) = idp.current() else {
        return answer(GatewayError::IdentityProviderUnavailable);
    };

    let exchange = provider.exchange_code(&idp.http, code, &login.pkce_verifier);
    let response = match idp.timed("token", exchange).await {
        Ok(r) => r,
        Err(e @ TokenError::Rejected { .. }) => {
            tracing::info!(error = %e, "the IdP refused the authorization code");
            audit::record(Event::new("login", "failed").reason("code_rejected"), who);
            return failed(LoginFailure::CodeRejected);
        }
        Err(e @ TokenError::Unavailable(_)) => {
            tracing::warn!(error = %e, "code exchange failed");
            return answer(GatewayError::IdentityProviderFailed);
        }
    };
    let tokens = match provider.login_tokens(&response, &login.nonce) {
        Err(IdTokenError::UnknownKey) => match idp.reload_keys().await {
            Some(reloaded) => reloaded.login_tokens(&response, &login.nonce),
            None => Err(IdTokenError::UnknownKey),
        },
        other => other,
    };
    let mut tokens = match tokens {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "refusing the ID token of a login");
            audit::record(
                Event::new("login", "failed").reason("invalid_id_token"),
                who,
            );
            return answer(GatewayError::IdentityProviderFailed);
        }
    };
    // Claims the IdP only gives at its userinfo endpoint (profile, email, groups at some IdPs)
    // join the ID token's, which win where both have one.
    let mut userinfo = serde_json::Map::new();
    if bff.userinfo {
        let sub = tokens
            .claims
            .get("sub")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let call = provider.userinfo(&idp.http, &tokens.access_token, sub);
        match idp.timed("userinfo", call).await {
            Ok(claims) => {
                crate::authz::rules::merge(&mut tokens.claims, &claims);
                userinfo = claims;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the userinfo endpoint at login");
                audit::record(Event::new("login", "failed").reason("userinfo"), who);
                return answer(GatewayError::IdentityProviderFailed);
            }
        }
    }
    let claim = |name: &str| {
        tokens
            .claims
            .get(name)
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    let (Some(sub), sid) = (claim("sub"), claim("sid")) else {
        return answer(GatewayError::IdentityProviderFailed);
    };
    // Step-up: the IdP must say it did what was asked (OIDC Core 3.1.2.1 makes `acr_values` a
    // voluntary request, so an IdP may well not).
    if !login.acr_values.is_empty() && !claim("acr").is_some_and(|a| login.acr_values.contains(&a))
    {
        audit::record(
            Event::new("login", "refused")
                .subject(&sub)
                .sid(sid.as_deref())
                .reason("acr_not_confirmed"),
            who,
        );
        return failed(LoginFailure::StepUpNotDone);
    }
    // Who may sign in at all: refused users get no session, and the refresh token they were
    // just given dies at the IdP (their IdP session is theirs and stays).
    if let Some(rule) = crate::authz::rules::first_failed(&bff.login_require, &tokens.claims) {
        audit::record(
            Event::new("login", "refused")
                .subject(&sub)
                .sid(sid.as_deref())
                .reason(&format!("require:{}", rule.describe())),
            who,
        );
        if let Some(refresh_token) = tokens.refresh_token.clone() {
            idp.revoke_later(provider.clone(), refresh_token, "refused login");
        }
        return answer(GatewayError::LoginRefused {
            rule: rule.describe(),
        });
    }
    let data = SessionData {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        id_token: tokens.id_token,
        access_expires_at: tokens.access_expires_at,
        access_lifetime: tokens.access_lifetime,
        claims: tokens.claims,
        userinfo,
        resource_tokens: Default::default(),
    };
    let (data_sub, sid_for_log) = (sub.clone(), sid.clone());
    let id = match bff.sessions.create(sub, sid, &data).await {
        Ok(id) => id,
        Err(e) => return answer(GatewayError::from(e)),
    };
    // A session the browser still held ends here: one browser, one session.
    if let Some(previous) = bff.sessions.id_in(headers) {
        if let Err(e) = bff.sessions.delete(&previous).await {
            tracing::warn!(error = %e, "cannot end the browser's previous session");
        }
    }
    audit::record(
        Event::new("login", "succeeded")
            .subject(&data_sub)
            .sid(sid_for_log.as_deref())
            .session(&bff.sessions.fingerprint(&id)),
        who,
    );
    let mut cookies = vec![bff.sessions.set_cookie(&id)];
    cookies.extend(remaining);
    Reply::Redirect {
        location: login.return_url,
        cookies,
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
