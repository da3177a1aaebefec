//! The BFF endpoints (Duende BFF conventions: `/bff/login`, `/signin-oidc`, `/bff/user`,
//! `/bff/logout`, `/bff/backchannel`). The building blocks land first; the endpoints follow.

pub mod return_url;
