//! The authorization phase, after the session lookup and before token injection: the route's
//! `require` rules (403 `insufficient-claims`) and step-up `acr_values` (401
//! `step-up-required`, with the login URL that asks the IdP for them). An anonymous caller of
//! such a route gets 401, like on any route that needs a user.

use crate::error::GatewayError;
use crate::session::Current;
use crate::upstream::Route;

pub fn check(
    route: &Route,
    session: Option<&Current>,
    path_and_query: &str,
) -> Result<(), GatewayError> {
    if route.require.is_empty() && route.acr_values.is_empty() {
        return Ok(());
    }
    let Some(current) = session else {
        return Err(GatewayError::Unauthenticated);
    };
    let claims = &current.data.claims;
    if let Some(rule) = crate::authz::rules::first_failed(&route.require, claims) {
        return Err(GatewayError::InsufficientClaims {
            rule: rule.describe(),
        });
    }
    if !route.acr_values.is_empty() {
        let acr = claims.get("acr").and_then(|v| v.as_str());
        if !acr.is_some_and(|a| route.acr_values.iter().any(|v| v == a)) {
            return Err(GatewayError::StepUpRequired {
                login_url: login_url(&route.acr_values, path_and_query),
            });
        }
    }
    Ok(())
}

/// `/bff/login?acr_values=...&returnUrl=...`: back to this path after the stronger sign-in.
fn login_url(acr_values: &[String], path_and_query: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("acr_values", &acr_values.join(" "));
    query.append_pair("returnUrl", path_and_query);
    format!("/bff/login?{}", query.finish())
}
