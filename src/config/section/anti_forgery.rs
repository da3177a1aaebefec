//! How API calls prove they come from the SPA (`[anti_forgery]`).

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::{ser_display_list, Origin};

/// How API calls prove they come from the SPA's own pages.
#[derive(Debug, Clone, Serialize)]
pub struct AntiForgeryConfig {
    /// Header a protected call must carry (`X-CSRF` by convention with Duende BFF clients).
    pub header: String,
    /// The value it must have.
    pub value: String,
    /// Origins besides the gateway's own that may call protected routes.
    #[serde(serialize_with = "ser_display_list")]
    pub allowed_origins: Vec<Origin>,
}

/// The valid clusters, and the names of all declared ones (a route naming a declared but
/// invalid cluster is not reported twice).
pub(in crate::config) fn anti_forgery(s: &Section<'_, '_>) -> Option<AntiForgeryConfig> {
    let header = s
        .parsed("header", "use a header name such as \"X-CSRF\"", |h| {
            http::HeaderName::from_bytes(h.as_bytes())
                .map(|_| h.to_string())
                .map_err(|_| format!("{h:?} is not a valid header name"))
        })
        .unwrap_or_else(|| "X-CSRF".into());
    let value = s
        .parsed(
            "value",
            "use a short visible-ASCII value such as \"1\"",
            |v| {
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic()) {
                    Ok(v.to_string())
                } else {
                    Err(format!("{v:?} is empty or not visible ASCII"))
                }
            },
        )
        .unwrap_or_else(|| "1".into());
    let allowed_origins = s.parsed_list(
        "allowed_origins",
        "write an origin such as \"https://admin.example.com\" (no path)",
        Origin::parse,
    );
    Some(AntiForgeryConfig {
        header,
        value,
        allowed_origins,
    })
}
