//! Security headers on every response (`[response_headers]`).

use serde::Serialize;

use crate::config::reader::Section;
use crate::config::ser_or_off;

/// Security headers on every response the browser gets, proxied or the gateway's own. `None`
/// (an empty string in the file) leaves a header out.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseHeadersConfig {
    /// `Strict-Transport-Security`; by default `max-age=31536000` when the public origin is
    /// https, else none.
    #[serde(serialize_with = "ser_or_off")]
    pub strict_transport_security: Option<String>,
    /// `X-Content-Type-Options`: `nosniff`.
    #[serde(serialize_with = "ser_or_off")]
    pub content_type_options: Option<String>,
    /// `Referrer-Policy`.
    #[serde(serialize_with = "ser_or_off")]
    pub referrer_policy: Option<String>,
    /// `X-Frame-Options`: `DENY` or `SAMEORIGIN`.
    #[serde(serialize_with = "ser_or_off")]
    pub frame_options: Option<String>,
    /// `Content-Security-Policy`; by default only `frame-ancestors` matching `frame_options`.
    #[serde(serialize_with = "ser_or_off")]
    pub content_security_policy: Option<String>,
    /// Headers (by name, lower-case) whose value from the upstream, when it sends one, is kept
    /// instead of the gateway's.
    pub upstream_wins: Vec<String>,
}

impl ResponseHeadersConfig {
    /// The headers that are on, as `(name, value)`.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        [
            ("strict-transport-security", &self.strict_transport_security),
            ("x-content-type-options", &self.content_type_options),
            ("referrer-policy", &self.referrer_policy),
            ("x-frame-options", &self.frame_options),
            ("content-security-policy", &self.content_security_policy),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
        .collect()
    }
}

pub(in crate::config) const REFERRER_POLICIES: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

pub(in crate::config) fn response_headers(
    s: &Section<'_, '_>,
    https: bool,
) -> Option<ResponseHeadersConfig> {
    // An empty string turns a header off; any other value must be sendable as it is.
    let header = |key: &'static str, fix: &str, check: &dyn Fn(&str) -> Result<(), String>| {
        s.parsed(key, fix, |v| {
            if v.is_empty() {
                return Ok(None);
            }
            if http::HeaderValue::from_str(v).is_err() {
                return Err(format!("{v:?} is not a valid header value"));
            }
            check(v).map(|()| Some(v.to_string()))
        })
    };
    let hsts = header(
        "strict_transport_security",
        "write e.g. \"max-age=31536000; includeSubDomains\", or \"\" for none",
        &|v| {
            let ok = v.split(';').any(|d| {
                d.trim()
                    .strip_prefix("max-age=")
                    .is_some_and(|n| n.parse::<u64>().is_ok())
            });
            if ok {
                Ok(())
            } else {
                Err(format!("{v:?} has no max-age=<seconds> directive"))
            }
        },
    )
    .unwrap_or_else(|| https.then(|| "max-age=31536000".to_string()));
    let content_type_options = header(
        "content_type_options",
        "use \"nosniff\" (or \"\" for none)",
        &|v| {
            if v == "nosniff" {
                Ok(())
            } else {
                Err(format!("{v:?} is not nosniff"))
            }
        },
    )
    .unwrap_or_else(|| Some("nosniff".into()));
    let referrer_policy = header(
        "referrer_policy",
        &format!("use one of: {}", REFERRER_POLICIES.join(", ")),
        &|v| match v
            .split(',')
            .map(str::trim)
            .find(|p| !REFERRER_POLICIES.contains(p))
        {
            None => Ok(()),
            Some(p) => Err(format!("{p:?} is not a referrer policy")),
        },
    )
    .unwrap_or_else(|| Some("strict-origin-when-cross-origin".into()));
    let frame_options = header(
        "frame_options",
        "use \"DENY\", \"SAMEORIGIN\" or \"\" (framing allowed; then set content_security_policy's frame-ancestors)",
        &|v| match v {
            "DENY" | "SAMEORIGIN" => Ok(()),
            _ => Err(format!("{v:?} is neither DENY nor SAMEORIGIN")),
        },
    )
    .unwrap_or_else(|| Some("DENY".into()));
    // Browsers obey `frame-ancestors` over X-Frame-Options, so the default follows it.
    let csp = header(
        "content_security_policy",
        "write a policy such as \"default-src 'self'; frame-ancestors 'none'\", or \"\" for none",
        &|_| Ok(()),
    )
    .unwrap_or_else(|| match frame_options.as_deref() {
        Some("DENY") => Some("frame-ancestors 'none'".into()),
        Some("SAMEORIGIN") => Some("frame-ancestors 'self'".into()),
        _ => None,
    });
    let names = [
        "strict-transport-security",
        "x-content-type-options",
        "referrer-policy",
        "x-frame-options",
        "content-security-policy",
    ];
    let upstream_wins = s.parsed_list(
        "upstream_wins",
        &format!("name some of: {}", names.join(", ")),
        |v| {
            let lower = v.to_ascii_lowercase();
            if names.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                Err(format!("{v:?} is not one of the headers this section sets"))
            }
        },
    );
    Some(ResponseHeadersConfig {
        strict_transport_security: hsts,
        content_type_options,
        referrer_policy,
        frame_options,
        content_security_policy: csp,
        upstream_wins,
    })
}
