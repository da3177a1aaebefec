//! What is kept between `/bff/login` and `/signin-oidc`, server-side under the OAuth `state`:
//! several tabs can log in at once and the callback may reach another replica.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct LoginState {
    pub pkce_verifier: String,
    pub nonce: String,
    pub return_url: String,
    /// The value of the browser's binding cookie when the login started: a callback carrying
    /// this state from any other browser is refused (login CSRF, a state handed to a victim).
    pub binding: String,
}

/// States we issue are base64url of 16 random bytes; anything far from that shape is not ours
/// and is refused before it becomes a store key.
pub fn plausible_state(state: &str) -> bool {
    (16..=128).contains(&state.len())
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_state_shaped_values_reach_the_store() {
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
}
