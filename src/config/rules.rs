//! `require` lists (`[authorization]` and routes), `claim_headers` and `acr_values`: who may
//! log in and who may reach a route, as the validator reads them.

use super::reader::Section;
use super::{ClaimCondition, ClaimRule};

const CONDITIONS: &str = "any_of, all_of, equals or present";

/// The rules under `key` (an array of `{ claim = "...", <condition> }` tables).
pub fn claim_rules(s: &Section<'_, '_>, key: &'static str) -> Vec<ClaimRule> {
    let mut out = Vec::new();
    for r in s.table_list(key) {
        let claim = r.string("claim").filter(|c| !c.is_empty());
        if claim.is_none() {
            r.issue(
                "claim",
                "missing or empty",
                "name the claim, e.g. claim = \"groups\" (a dot path reaches nested claims: \"realm_access.roles\")",
            );
        }
        let list = |k: &'static str| {
            let v = r.strings(k)?;
            if v.is_empty() || v.iter().any(String::is_empty) {
                r.issue(
                    k,
                    "is empty or has an empty value",
                    "list at least one non-empty value",
                );
                return None;
            }
            Some(v)
        };
        let mut conditions = Vec::new();
        if let Some(v) = list("any_of") {
            conditions.push(ClaimCondition::AnyOf(v));
        }
        if let Some(v) = list("all_of") {
            conditions.push(ClaimCondition::AllOf(v));
        }
        if let Some(v) = r.claim_value("equals") {
            conditions.push(ClaimCondition::Equals(v));
        }
        match r.bool("present") {
            Some(true) => conditions.push(ClaimCondition::Present(true)),
            Some(false) => r.issue(
                "present",
                "is false, which no rule can mean",
                "write present = true, or remove the rule",
            ),
            None => {}
        }
        let condition = match conditions.len() {
            1 => conditions.pop(),
            0 => {
                r.issue(
                    "claim",
                    "has no condition",
                    format!("add one of {CONDITIONS}"),
                );
                None
            }
            _ => {
                r.issue(
                    "claim",
                    "has more than one condition",
                    format!("keep one of {CONDITIONS} per rule; add another rule for the rest"),
                );
                None
            }
        };
        if let (Some(claim), Some(condition)) = (claim, condition) {
            out.push(ClaimRule { claim, condition });
        }
    }
    out
}

/// Header names the gateway writes or that carry the request's own meaning: a claim header
/// may not be one of them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "content-type",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
];

/// `claim_headers` of a route: valid header names that are not reserved, each once (names
/// compared as upstreams compare them: case-insensitively, `_` as `-`).
pub fn claim_headers(r: &Section<'_, '_>, anti_forgery_header: &str) -> Vec<(String, String)> {
    let map = r.string_map("claim_headers").unwrap_or_default();
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (name, claim) in map {
        let key = format!("claim_headers.{name}");
        let folded = fold(&name);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            r.issue(
                &key,
                format!("{name:?} is not a valid header name"),
                "use letters, digits and dashes, e.g. \"X-User-Sub\"",
            );
        } else if RESERVED_HEADERS.contains(&folded.as_str()) || folded == fold(anti_forgery_header)
        {
            r.issue(
                &key,
                format!("{name} is a header the gateway or the request already defines"),
                "choose your own name, e.g. \"X-User-Email\"",
            );
        } else if claim.is_empty() {
            r.issue(&key, "names no claim", "write the claim, e.g. \"email\"");
        } else if seen.contains(&folded) {
            r.issue(
                &key,
                "is the same header as another one here (names compare case-insensitively, _ as -)",
                "keep one",
            );
        } else {
            seen.push(folded);
            out.push((name, claim));
        }
    }
    out
}

/// A header name as upstreams compare it: lower-case, with `_` folded into `-` (CGI, PHP,
/// WSGI, nginx's `underscores_in_headers`).
pub fn fold(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// `acr_values` lists: non-empty values without spaces (they are joined with spaces).
pub fn acr_values(s: &Section<'_, '_>, key: &'static str) -> Vec<String> {
    s.parsed_list(key, "write each value on its own, e.g. \"urn:mfa\"", |v| {
        if v.is_empty() || v.bytes().any(|b| b <= b' ' || b == 0x7f) {
            Err(format!(
                "{v:?} is empty or has spaces or control characters"
            ))
        } else {
            Ok(v.to_string())
        }
    })
}
