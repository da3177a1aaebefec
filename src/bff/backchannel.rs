//! `POST /bff/backchannel`: OIDC Back-Channel Logout 1.0. The IdP tells the gateway, server to
//! server, that a user's session ended there; every matching session ends here, on every
//! replica at once (they share the store).

use http::HeaderMap;

use super::{Bff, Reply};
use crate::error::GatewayError;
use crate::oidc::logout_token::{self, LogoutTokenError, MAX_AGE_SECS};
use crate::oidc::IdentityProvider;
use crate::session::sessions::unix_now;

/// A logout token is a few hundred bytes; anything much larger is not one.
pub const MAX_BODY: usize = 16 * 1024;

/// Ends every session the token names (by `sid`, else every session of `sub`); how many.
async fn end_sessions(
    bff: &Bff,
    claims: &logout_token::LogoutClaims,
) -> Result<u64, crate::session::StoreError> {
    let sessions = match (&claims.sid, &claims.sub) {
        (Some(sid), _) => bff.sessions.of_sid(sid).await?,
        (None, Some(sub)) => bff.sessions.of_sub(sub).await?,
        (None, None) => Vec::new(),
    };
    let mut ended = 0;
    for key in &sessions {
        if bff.sessions.delete_key(key).await? {
            ended += 1;
        }
    }
    Ok(ended)
}

fn refuse(detail: impl Into<String>) -> Reply {
    GatewayError::InvalidParameter {
        detail: detail.into(),
    }
    .into()
}

pub async fn logout(
    bff: &Bff,
    idp: &IdentityProvider,
    headers: &HeaderMap,
    body: &[u8],
    who: &crate::audit::Who<'_>,
) -> Reply {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return refuse("Send the logout_token form-encoded (application/x-www-form-urlencoded).");
    }
    let Some(token) = form_urlencoded::parse(body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
    else {
        return refuse("logout_token is missing.");
    };
    let Some(provider) = idp.current() else {
        return GatewayError::IdentityProviderUnavailable.into();
    };
    let validate = |p: &crate::oidc::Provider| {
        logout_token::validate(
            &token,
            p.metadata.jwks(),
            p.issuer(),
            p.client_id(),
            unix_now(),
        )
    };
    let claims = match validate(&provider) {
        Err(LogoutTokenError::UnknownKey) => match idp.reload_keys().await {
            Some(reloaded) => validate(&reloaded),
            None => Err(LogoutTokenError::UnknownKey),
        },
        other => other,
    };
    let claims = match claims {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "refused a back-channel logout token");
            return refuse(format!("Invalid logout token: {e}."));
        }
    };
    // A logout token is accepted once: a replay (captured on the way) changes nothing and says so.
    let once = format!("jti:{}", claims.jti);
    match bff
        .sessions
        .first_use(&once, std::time::Duration::from_secs(MAX_AGE_SECS * 2))
        .await
    {
        Ok(true) => {}
        Ok(false) => return refuse("This logout token was already used (jti replayed)."),
        Err(e) => return GatewayError::from(e).into(),
    }
    let ended = match end_sessions(bff, &claims).await {
        Ok(ended) => ended,
        Err(e) => {
            // The IdP retries a failed delivery: that retry must not be taken for a replay
            // while the sessions live on. (Ending sessions again is harmless.)
            tracing::warn!(error = %e, "cannot end the sessions of a back-channel logout");
            if let Err(e) = bff.sessions.forget_use(&once).await {
                tracing::warn!(error = %e, "cannot release the logout token id for a retry");
            }
            return GatewayError::SessionStoreUnavailable.into();
        }
    };
    bff.revocations("backchannel", ended);
    let reason = format!(
        "by_{}:{ended}_sessions",
        if claims.sid.is_some() { "sid" } else { "sub" }
    );
    let mut event = crate::audit::Event::new("backchannel_logout", "succeeded")
        .sid(claims.sid.as_deref())
        .reason(&reason);
    if let Some(sub) = &claims.sub {
        event = event.subject(sub);
    }
    crate::audit::record(event, who);
    Reply::Json {
        body: bytes::Bytes::from_static(b"{}"),
    }
}
