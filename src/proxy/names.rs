//! Header names the hot path looks up, built once. Looking a header up by `&str` parses and
//! lower-cases the name on every call; a `HeaderName` only hashes.

use http::HeaderName;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const HOST: HeaderName = http::header::HOST;
pub const CONNECTION: HeaderName = http::header::CONNECTION;
pub const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
pub const ORIGIN: HeaderName = http::header::ORIGIN;
