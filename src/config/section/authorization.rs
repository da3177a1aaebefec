//! Claim rules (`[authorization]` and `routes[].require`): who may sign in, who may reach a route.

use serde::Serialize;

/// A condition on one claim of the signed-in user (a `require` entry). All of a list's rules
/// must hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClaimRule {
    /// The claim's name (`groups`, `https://example.com/roles`), or a dot path into nested
    /// claims (`realm_access.roles`).
    pub claim: String,
    #[serde(flatten)]
    pub condition: ClaimCondition,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimCondition {
    /// The claim (a string, or an array of strings) has at least one of these values.
    AnyOf(Vec<String>),
    /// The claim has every one of these values.
    AllOf(Vec<String>),
    /// The claim is this value.
    Equals(ClaimValue),
    /// The claim is there (and not null). Always `true` in a valid config.
    Present(bool),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ClaimValue {
    String(String),
    Bool(bool),
    Integer(i64),
    Float(f64),
}

/// Who may sign in at all (`[authorization]`).
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizationConfig {
    /// Rules on the ID token's claims, checked at the login callback; empty: anyone the IdP
    /// signs in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<ClaimRule>,
}
