//! Logins in progress, kept by the browser: between `/bff/login` and `/signin-oidc` the PKCE
//! verifier, nonce and return URL travel in a sealed cookie (`<session cookie>-login`), never
//! in the store. An anonymous client that starts a million logins costs the gateway and Redis
//! nothing, and the callback may reach any replica.
//!
//! The cookie holds the last few logins of the browser (several tabs may log in at once), each
//! with its OAuth `state`. It is sealed with the session keys (AES-256-GCM, bound to its
//! purpose), so it cannot be read or forged, and being a cookie it binds the login to the
//! browser that started it: a callback from any other browser finds no pending login (login
//! CSRF, a stolen callback link). A finished login leaves the cookie without its state, so the
//! callback cannot be replayed from this browser; replayed from a copy of the old cookie, the
//! IdP refuses the code, which OAuth 2.0 makes single use (RFC 6749 §4.1.2).

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::session::{cookie, Sessions};

/// Logins one browser can have in progress at once; the oldest gives way.
pub const MAX_PENDING: usize = 3;

/// Cookie values above this are not stored by every browser (RFC 6265 §6.1 promises 4096
/// bytes per cookie including its name and attributes): the oldest logins give way first.
const MAX_VALUE: usize = 3600;

/// Bound into the seal: a sealed session payload cannot pass for a login cookie.
const PURPOSE: &str = "portcullis pending logins v1";

#[derive(Serialize, Deserialize, Clone)]
pub struct LoginState {
    #[serde(rename = "s")]
    pub state: String,
    #[serde(rename = "v")]
    pub pkce_verifier: String,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "r")]
    pub return_url: String,
    /// Unix seconds when the login started.
    #[serde(rename = "t")]
    pub started: u64,
    /// Step-up: the `acr` values asked for, one of which the ID token must carry.
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
}

/// The browser's logins in progress, oldest first.
pub struct Pending {
    logins: Vec<LoginState>,
    /// Whether the browser sent a cookie that opened (as opposed to none at all).
    pub present: bool,
}

impl Pending {
    /// What the browser's cookie holds, minus logins older than `timeout_secs`. Times are whole
    /// seconds, so a login is kept while at most `timeout_secs` have passed since the second it
    /// started in: it always gets its full timeout (up to a second more), never less.
    pub fn read(
        sessions: &Sessions,
        headers: &HeaderMap,
        name: &str,
        now: u64,
        timeout_secs: u64,
    ) -> Pending {
        let opened = cookie::value(headers, name)
            .and_then(|v| sessions.open_from_browser(v, PURPOSE))
            .and_then(|plain| serde_json::from_slice::<Vec<LoginState>>(&plain).ok());
        let present = opened.is_some();
        let mut logins = opened.unwrap_or_default();
        logins.retain(|l| l.started <= now && now - l.started <= timeout_secs);
        Pending { logins, present }
    }

    pub fn push(&mut self, login: LoginState) {
        self.logins.push(login);
        if self.logins.len() > MAX_PENDING {
            self.logins.remove(0);
        }
    }

    /// Removes and returns the login with this `state`.
    pub fn take(&mut self, state: &str) -> Option<LoginState> {
        let i = self.logins.iter().position(|l| l.state == state)?;
        Some(self.logins.remove(i))
    }

    /// The `Set-Cookie` that stores what is left (an empty list too: a replayed callback then
    /// reads "already used", not "another browser").
    pub fn set_cookie(
        &mut self,
        sessions: &Sessions,
        name: &str,
        max_age_secs: u64,
    ) -> Option<String> {
        loop {
            let plain = serde_json::to_vec(&self.logins).ok()?;
            let value = sessions.seal_for_browser(&plain, PURPOSE)?;
            if value.len() <= MAX_VALUE || self.logins.is_empty() {
                return Some(cookie::set_value(
                    name,
                    &value,
                    sessions.cookie.secure,
                    Some(max_age_secs),
                ));
            }
            self.logins.remove(0);
        }
    }
}

/// States we issue are base64url of 16 random bytes; anything far from that shape is not ours.
pub fn plausible_state(state: &str) -> bool {
    (16..=128).contains(&state.len())
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SessionConfig;

    #[test]
    fn only_state_shaped_values_are_accepted() {
        assert!(plausible_state("Xy3_-abcdefghijklmnopq"));
        for bad in [
            "",
            "short",
            "a b c d e f g h i j k",
            "{x}:sess:aaaaaaaaaaaaaaaa",
            &"a".repeat(200),
        ] {
            assert!(!plausible_state(bad), "{bad}");
        }
    }

    fn sessions() -> Sessions {
        let config = crate::config::from_str(
            "[clusters.a]\ndestinations = [\"http://127.0.0.1:1\"]\n[[routes]]\npath = \"/\"\ncluster = \"a\"\n",
            &std::collections::HashMap::new(),
        )
        .unwrap();
        let config: SessionConfig = config.session;
        let metrics = crate::metrics::Metrics::new().unwrap().sessions;
        let store = std::sync::Arc::new(crate::session::service::SessionStore::new(
            metrics.store_degraded.clone(),
        ));
        let cache = std::sync::Arc::new(crate::session::cache::SessionCache::new(
            0,
            std::time::Duration::from_secs(1),
            false,
            metrics,
        ));
        Sessions::new(&config, store, cache).unwrap()
    }

    fn login(state: &str, return_url: &str, started: u64) -> LoginState {
        LoginState {
            state: state.into(),
            pkce_verifier: "v".repeat(43),
            nonce: "n".repeat(22),
            return_url: return_url.into(),
            started,
            acr_values: Vec::new(),
        }
    }

    fn headers(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, pair.parse().unwrap());
        h
    }

    const NAME: &str = "__Host-portcullis-login";

    #[test]
    fn pending_logins_round_trip_sealed_and_single_use() {
        let s = sessions();
        let mut p = Pending::read(&s, &HeaderMap::new(), NAME, 100, 600);
        assert!(!p.present);
        p.push(login("state-one-aaaaaaaa", "/a", 100));
        p.push(login("state-two-aaaaaaaa", "/b", 100));
        let set = p.set_cookie(&s, NAME, 600).unwrap();
        assert!(set.contains("Max-Age=600") && set.contains("HttpOnly"));
        assert!(!set.contains("state-one") && !set.contains("/a"), "{set}");
        let mut back = Pending::read(&s, &headers(&set), NAME, 101, 600);
        assert!(back.present);
        assert_eq!(back.take("state-two-aaaaaaaa").unwrap().return_url, "/b");
        assert!(back.take("state-two-aaaaaaaa").is_none());
        // Another gateway's keys (or a forged value) open nothing.
        let other = sessions();
        assert!(!Pending::read(&other, &headers(&set), NAME, 101, 600).present);
    }

    #[test]
    fn old_and_surplus_logins_give_way_and_the_cookie_stays_small() {
        let s = sessions();
        let mut p = Pending::read(&s, &HeaderMap::new(), NAME, 0, 600);
        for i in 0..5 {
            p.push(login(&format!("state-{i}-aaaaaaaaaa"), "/", 100 + i));
        }
        let set = p.set_cookie(&s, NAME, 600).unwrap();
        let mut back = Pending::read(&s, &headers(&set), NAME, 110, 600);
        assert!(back.take("state-0-aaaaaaaaaa").is_none());
        assert!(back.take("state-4-aaaaaaaaaa").is_some());
        // Expired after the login timeout: one started in second 104 may finish in second 704
        // (whole seconds: never less than its timeout), not in 705.
        let at_timeout = Pending::read(&s, &headers(&set), NAME, 704, 600);
        assert!(at_timeout
            .logins
            .iter()
            .any(|l| l.state == "state-4-aaaaaaaaaa"));
        let after = Pending::read(&s, &headers(&set), NAME, 705, 600);
        assert!(after.logins.is_empty());
        let mut late = Pending::read(&s, &headers(&set), NAME, 800, 600);
        assert!(late.present && late.take("state-4-aaaaaaaaaa").is_none());
        // Long return URLs: older logins are dropped to keep the cookie storable.
        let mut big = Pending::read(&s, &HeaderMap::new(), NAME, 0, 600);
        for i in 0..3 {
            big.push(login(
                &format!("state-{i}-aaaaaaaaaa"),
                &"/x".repeat(500),
                100,
            ));
        }
        let set = big.set_cookie(&s, NAME, 600).unwrap();
        assert!(set.len() < 4000, "{}", set.len());
        let mut back = Pending::read(&s, &headers(&set), NAME, 110, 600);
        assert!(
            back.take("state-2-aaaaaaaaaa").is_some(),
            "the newest survives"
        );
    }
}
