//! `returnUrl` checking for `/bff/login` and `/bff/logout`: only a path on this origin.
//!
//! An open redirect turns the gateway's good name into a phishing hop
//! (`/bff/login?returnUrl=https://evil.example`). Browsers are generous in what they treat as
//! another host: `//evil`, `/\evil`, `\\evil`, and their percent-encoded forms after a decoding
//! step somewhere. So the rule is strict: a local path that stays local however often it is
//! decoded.

/// Long enough for any real deep link; short enough that two logins in progress still fit the
/// browser's pending-login cookie (`login_state.rs`).
const MAX_LEN: usize = 1024;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReturnUrlError {
    #[error("returnUrl must be a path on this site, starting with a single '/'")]
    NotLocal,
    #[error("returnUrl contains characters that are not allowed")]
    BadCharacters,
    #[error("returnUrl is longer than {MAX_LEN} characters")]
    TooLong,
}

/// The path to send the browser back to: `raw` itself when it is safely local, `/` when absent.
pub fn check(raw: Option<&str>) -> Result<String, ReturnUrlError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok("/".to_string());
    };
    if raw.len() > MAX_LEN {
        return Err(ReturnUrlError::TooLong);
    }
    let mut candidate = raw.to_string();
    // Decode up to three times: whatever a later hop decodes must still be local.
    for _ in 0..4 {
        if candidate.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(ReturnUrlError::BadCharacters);
        }
        if candidate.contains('\\') {
            return Err(ReturnUrlError::NotLocal);
        }
        let b = candidate.as_bytes();
        if b.first() != Some(&b'/') || b.get(1) == Some(&b'/') {
            return Err(ReturnUrlError::NotLocal);
        }
        let decoded = percent_decode(&candidate);
        if decoded == candidate {
            return Ok(raw.to_string());
        }
        candidate = decoded;
    }
    Err(ReturnUrlError::BadCharacters)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_pass_unchanged() {
        for ok in [
            "/",
            "/orders/7",
            "/a?next=https://x.example",
            "/caf%C3%A9",
            "/a#frag",
        ] {
            assert_eq!(check(Some(ok)).as_deref(), Ok(ok), "{ok}");
        }
        assert_eq!(check(None).as_deref(), Ok("/"));
        assert_eq!(check(Some("")).as_deref(), Ok("/"));
    }

    #[test]
    fn anything_that_can_leave_the_site_is_refused() {
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/%2Fevil.example",
            "/%2fevil.example",
            "%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/%09/evil.example",
            "/\t/evil.example",
        ] {
            assert!(check(Some(bad)).is_err(), "{bad} was accepted");
        }
        assert_eq!(
            check(Some(&format!("/{}", "a".repeat(3000)))),
            Err(ReturnUrlError::TooLong)
        );
        assert_eq!(
            check(Some(&format!("/{}", "a".repeat(MAX_LEN)))),
            Err(ReturnUrlError::TooLong)
        );
        assert!(check(Some(&format!("/{}", "a".repeat(MAX_LEN - 1)))).is_ok());
    }
}

/// Property tests: `returnUrl` is attacker-chosen; what passes must stay on our origin under
/// the WHATWG URL rules browsers follow (the `url` crate implements them), however many times
/// something on the way decodes it.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// Characters that make URLs leave the origin, in every spelling.
    fn hostile() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("/".to_string()),
                Just("\\".to_string()),
                Just("%2f".to_string()),
                Just("%2F".to_string()),
                Just("%5c".to_string()),
                Just("%25".to_string()),
                Just("%09".to_string()),
                Just("\t".to_string()),
                Just(":".to_string()),
                Just("@".to_string()),
                Just(".".to_string()),
                Just("?".to_string()),
                Just("#".to_string()),
                Just("evil.example".to_string()),
                Just("https:".to_string()),
                "[ -~]{0,3}",
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn accepted_return_urls_stay_on_the_origin(raw in hostile()) {
            let base = url::Url::parse("https://app.example.com/").map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Ok(accepted) = check(Some(&raw)) {
                // Accepted values come back as they were sent.
                prop_assert!(accepted == raw || (raw.is_empty() && accepted == "/"));
                let mut form = accepted.clone();
                for _ in 0..4 {
                    let joined = base.join(&form);
                    prop_assert!(
                        joined.as_ref().is_ok_and(|u| u.origin() == base.origin()),
                        "{raw:?} leaves the origin as {form:?}: {joined:?}"
                    );
                    form = percent_decode(&form);
                }
            }
        }
    }
}
