//! `GET /bff/logout?sid=...&returnUrl=/path` and `GET /signout-callback-oidc`: RP-initiated
//! logout. The session ends in the store first (every replica sees it gone at once), then the
//! browser visits the IdP's end-session endpoint and comes back to a local page.

use http::HeaderMap;

use super::login_state::plausible_state;
use super::{param, return_url, return_url_param, Bff, Reply};
use crate::config::IdpLogout;
use crate::error::GatewayError;
use crate::oidc::IdentityProvider;
use crate::session::id::same_secret;
use crate::session::{Current, SessionId};

/// Keeps logout states apart from anything else under the store's state keys.
const STATE_PREFIX: &str = "lo.";

/// The value `/bff/logout` requires, derived from the session id: only the session's own page
/// (via `/bff/user`) knows it, so a link on another site cannot log the user out. Not the IdP's
/// `sid`: every application in the same IdP session knows that one (Keycloak, Entra ID), and
/// any of them could then log the user out here with a top-level navigation.
pub fn logout_key(current: &Current) -> String {
    current.id.fingerprint("logout")
}

pub async fn start(
    bff: &Bff,
    idp: &IdentityProvider,
    headers: &HeaderMap,
    query: &[(String, String)],
    who: &crate::audit::Who<'_>,
) -> Reply {
    let return_url = match return_url_param(query) {
        Ok(url) => url,
        Err(reply) => return reply,
    };
    let current = match bff.sessions.find(headers, false).await {
        Ok(c) => c,
        Err(e) => return GatewayError::from(e).into(),
    };
    let Some(current) = current else {
        // Nobody to log out: just go where the user was going.
        return Reply::Redirect {
            location: return_url,
            cookies: bff
                .sessions
                .id_in(headers)
                .map(|_| vec![bff.sessions.clear_cookie()])
                .unwrap_or_default(),
        };
    };
    let presented = param(query, "sid").unwrap_or("");
    if !same_secret(presented.as_bytes(), logout_key(&current).as_bytes()) {
        return GatewayError::InvalidParameter {
            detail: "This logout link is not for your session (sid is missing or wrong). Use the logout button of the application.".into(),
        }
        .into();
    }
    if let Err(e) = bff.sessions.delete_key(&current.key).await {
        return GatewayError::from(e).into();
    }
    bff.revocations("user", 1);
    crate::audit::record(
        crate::audit::Event::new("logout", "succeeded")
            .subject(&current.record.sub)
            .sid(current.record.sid.as_deref())
            .session(&current.key.fingerprint("admin")),
        who,
    );
    let cookies = vec![bff.sessions.clear_cookie()];
    let Some(provider) = idp.current() else {
        return Reply::Redirect {
            location: return_url,
            cookies,
        };
    };
    // RFC 7009: the refresh token dies with the session, even if it leaked before. Off the
    // request path: the user's redirect does not wait for the IdP.
    if let Some(refresh_token) = current.data.refresh_token.clone() {
        idp.revoke_later(provider.clone(), refresh_token, "logout");
    }
    let location = match bff.idp_logout {
        IdpLogout::None => None,
        IdpLogout::Auth0 => provider.auth0_logout_url(&bff.post_logout_redirect_uri),
        IdpLogout::EndSession => {
            // The browser returns with a state we keep, like a login's.
            let state = SessionId::generate();
            let stored = bff
                .sessions
                .put_logout_state(
                    &format!("{STATE_PREFIX}{}", state.as_str()),
                    return_url.as_bytes(),
                    bff.login_timeout,
                )
                .await;
            stored.ok().and_then(|()| {
                provider.end_session_url(
                    &current.data.id_token,
                    &bff.post_logout_redirect_uri,
                    state.as_str(),
                )
            })
        }
    };
    Reply::Redirect {
        location: location.unwrap_or(return_url),
        cookies,
    }
}

/// The IdP sends the browser back here after its logout. An unknown state is harmless (the
/// session is already gone), so it leads to the start page rather than an error.
pub async fn finish(bff: &Bff, query: &[(String, String)]) -> Reply {
    let mut location = "/".to_string();
    if let Some(state) = param(query, "state").filter(|s| plausible_state(s)) {
        if let Ok(Some(url)) = bff
            .sessions
            .take_logout_state(&format!("{STATE_PREFIX}{state}"))
            .await
        {
            if let Ok(url) = String::from_utf8(url) {
                // Checked again: it went through the store.
                if let Ok(url) = return_url::check(Some(&url)) {
                    location = url;
                }
            }
        }
    }
    Reply::Redirect {
        location,
        cookies: Vec::new(),
    }
}
