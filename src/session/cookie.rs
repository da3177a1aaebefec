//! The session cookie: reading it from requests, keeping it away from upstreams, writing it.
//!
//! The cookie is `__Host-portcullis` by default: the `__Host-` prefix (RFC 6265bis §4.1.3.2)
//! makes browsers refuse it unless it is `Secure`, has no `Domain` and `Path=/`, so a sibling
//! subdomain cannot plant or overwrite it (cookie tossing / session fixation).

use http::{HeaderMap, HeaderValue};

use super::SessionId;

/// The first syntactically valid session id among all `Cookie` headers (HTTP/2 may split
/// them). Browsers list more specific cookies first. With the `__Host-` prefix (required by
/// the config unless `dev_insecure_cookie`) nobody else can set a cookie of this name; without
/// it a sibling subdomain could plant its own session id first and sign the user in as the
/// planter (login CSRF), which is why the prefix is not optional.
pub fn session_id(headers: &HeaderMap, name: &str) -> Option<SessionId> {
    values(headers, name).find_map(SessionId::parse)
}

/// The first value of the cookie `name` (the login cookie, which is not an id).
pub fn value<'h>(headers: &'h HeaderMap, name: &'h str) -> Option<&'h str> {
    values(headers, name).next()
}

fn values<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether any `Cookie` header has a cookie named one of `names` (without allocating: most
/// requests to most routes carry none of the gateway's cookies).
pub fn mentions(headers: &HeaderMap, names: &[&str]) -> bool {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .any(|pair| names.contains(&pair.split_once('=').map_or(pair, |(k, _)| k)))
}

/// The `Cookie` header to send upstream: every cookie but ours, joined into one header.
/// `None` when nothing is left (drop the header).
pub fn without(headers: &HeaderMap, names: &[&str]) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty() && !names.contains(&pair.split_once('=').map_or(*pair, |(k, _)| k))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
}

fn attributes(secure: bool) -> &'static str {
    if secure {
        "Path=/; HttpOnly; Secure; SameSite=Lax"
    } else {
        "Path=/; HttpOnly; SameSite=Lax"
    }
}

/// `Set-Cookie` for a new session. No `Max-Age`: the server-side session decides its lifetime,
/// and the cookie goes with the browser session.
pub fn set(name: &str, id: &SessionId, secure: bool) -> String {
    set_value(name, id.as_str(), secure, None)
}

/// `Set-Cookie` for any of our cookies; with `max_age_secs` it expires on its own (the
/// pending-login cookie).
pub fn set_value(name: &str, value: &str, secure: bool, max_age_secs: Option<u64>) -> String {
    match max_age_secs {
        Some(secs) => format!("{name}={value}; Max-Age={secs}; {}", attributes(secure)),
        None => format!("{name}={value}; {}", attributes(secure)),
    }
}

/// `Set-Cookie` that removes the cookie.
pub fn clear(name: &str, secure: bool) -> String {
    format!("{name}=; Max-Age=0; {}", attributes(secure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_matches_whole_cookie_names_only() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(http::header::COOKIE, HeaderValue::from_str(v).unwrap());
            m
        };
        let ours = ["__Host-portcullis", "__Host-portcullis-login"];
        assert!(mentions(&h("a=1; __Host-portcullis=x"), &ours));
        assert!(mentions(&h("__Host-portcullis-login=y"), &ours));
        assert!(!mentions(
            &h("x__Host-portcullis=1; __Host-portcullis-other=2"),
            &ours
        ));
        assert!(!mentions(&HeaderMap::new(), &ours));
    }

    const NAME: &str = "__Host-portcullis";

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(http::header::COOKIE, c.parse().unwrap());
        }
        h
    }

    #[test]
    fn finds_the_session_across_split_cookie_headers() {
        let id = SessionId::generate();
        let h = headers(&[
            "theme=dark; a=b",
            &format!("{NAME}={}; lang=en", id.as_str()),
        ]);
        assert_eq!(session_id(&h, NAME), Some(id));
        assert_eq!(session_id(&headers(&["theme=dark"]), NAME), None);
        assert_eq!(
            session_id(&headers(&[&format!("{NAME}=forged")]), NAME),
            None
        );
        // A name that merely contains ours is not ours.
        assert_eq!(
            session_id(
                &headers(&[&format!("x{NAME}={}", SessionId::generate().as_str())]),
                NAME
            ),
            None
        );
    }

    #[test]
    fn upstreams_get_every_cookie_but_the_session() {
        let id = SessionId::generate();
        let h = headers(&[&format!("theme=dark; {NAME}={}", id.as_str()), "lang=en"]);
        assert_eq!(without(&h, &[NAME]).unwrap(), "theme=dark; lang=en");
        assert_eq!(without(&h, &[NAME, "lang"]).unwrap(), "theme=dark");
        assert_eq!(
            without(&headers(&[&format!("{NAME}={}", id.as_str())]), &[NAME]),
            None
        );
        assert_eq!(without(&HeaderMap::new(), &[NAME]), None);
    }

    #[test]
    fn cookies_are_host_only_http_only_and_lax() {
        let id = SessionId::generate();
        let set = set(NAME, &id, true);
        assert_eq!(
            set,
            format!(
                "{NAME}={}; Path=/; HttpOnly; Secure; SameSite=Lax",
                id.as_str()
            )
        );
        assert!(!set.contains("Domain"));
        assert_eq!(
            clear(NAME, true),
            format!("{NAME}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax")
        );
        assert!(!super::set("portcullis", &id, false).contains("Secure"));
    }
}

/// Property tests: the Cookie header is the browser's (or an attacker's) to write.
#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    const NAME: &str = "__Host-portcullis";

    /// Cookie pairs as hostile clients write them: any visible ASCII, spaces, `;` and `=`,
    /// and names that resemble ours.
    fn pair() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{0,40}",
            (
                "(__Host-portcullis|__host-portcullis|__Host-portcullis-login|x)",
                "[ -~]{0,60}"
            )
                .prop_map(|(k, v)| format!("{k}={v}")),
        ]
    }

    fn header_of(pairs: &[String]) -> Option<HeaderMap> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).ok()?,
        );
        Some(headers)
    }

    proptest! {
        /// Whatever the header holds: no panic, and a found id is a well-formed id that the
        /// header carried under exactly our name.
        #[test]
        fn any_cookie_header_yields_only_our_well_formed_ids(pairs in prop::collection::vec(pair(), 0..8)) {
            let Some(headers) = header_of(&pairs) else { return Ok(()) };
            if let Some(id) = session_id(&headers, NAME) {
                prop_assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
                let wanted = format!("{NAME}={}", id.as_str());
                prop_assert!(pairs.iter().any(|p| p.trim() == wanted));
            }
            // What goes upstream never names our cookies, and keeps every other pair.
            let ours = [NAME, "__Host-portcullis-login"];
            let kept = without(&headers, &ours);
            let kept = kept.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
            for p in kept.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                prop_assert!(!ours.contains(&p.split_once('=').map_or(p, |(k, _)| k)));
            }
        }

        /// A real session id among any other cookies is found, whatever surrounds it.
        #[test]
        fn a_real_id_is_found_among_any_other_cookies(
            before in prop::collection::vec("[a-z]{1,8}=[!-:<-~]{0,20}", 0..5),
            after in prop::collection::vec("[a-z]{1,8}=[!-:<-~]{0,20}", 0..5),
        ) {
            let id = SessionId::generate();
            let mut pairs = before;
            pairs.push(format!("{NAME}={}", id.as_str()));
            pairs.extend(after);
            let headers = header_of(&pairs).ok_or(TestCaseError::reject("not a header value"))?;
            prop_assert_eq!(session_id(&headers, NAME), Some(id));
        }

        #[test]
        fn session_ids_parse_only_what_generate_makes(s in "[ -~]{0,60}") {
            if let Some(id) = SessionId::parse(&s) {
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert_eq!(s.len(), SessionId::generate().as_str().len());
            }
        }
    }
}
