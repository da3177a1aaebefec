//! Evaluating `require` rules against a claim set.

use serde_json::{Map, Value};

use crate::config::{ClaimCondition, ClaimRule, ClaimValue};

/// The claim at `path`: a top-level claim of that exact name first (namespaced claims such as
/// Auth0's `https://example.com/roles` contain dots), else a dot path into nested objects
/// (Keycloak's `realm_access.roles`). A JSON `null` counts as absent.
pub fn claim<'c>(claims: &'c Map<String, Value>, path: &str) -> Option<&'c Value> {
    if let Some(v) = claims.get(path) {
        return Some(v).filter(|v| !v.is_null());
    }
    let mut parts = path.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current).filter(|v| !v.is_null())
}

/// The claim's string values: a string is one, an array contributes its strings.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl ClaimRule {
    pub fn holds(&self, claims: &Map<String, Value>) -> bool {
        let Some(v) = claim(claims, &self.claim) else {
            return false;
        };
        match &self.condition {
            ClaimCondition::Present(_) => true,
            ClaimCondition::AnyOf(wanted) => {
                strings(v).iter().any(|s| wanted.iter().any(|w| w == s))
            }
            ClaimCondition::AllOf(wanted) => {
                let have = strings(v);
                wanted.iter().all(|w| have.contains(&w.as_str()))
            }
            ClaimCondition::Equals(expected) => match (expected, v) {
                (ClaimValue::String(e), Value::String(s)) => e == s,
                (ClaimValue::Bool(e), Value::Bool(b)) => e == b,
                // Some IdPs send booleans as strings (`"email_verified": "true"`).
                (ClaimValue::Bool(e), Value::String(s)) => s == if *e { "true" } else { "false" },
                (ClaimValue::Integer(e), Value::Number(n)) => n.as_i64() == Some(*e),
                (ClaimValue::Float(e), Value::Number(n)) => n.as_f64() == Some(*e),
                _ => false,
            },
        }
    }

    /// Names the rule for an error (the claim and the kind of condition), never the user's
    /// values.
    pub fn describe(&self) -> String {
        let kind = match self.condition {
            ClaimCondition::AnyOf(_) => "any_of",
            ClaimCondition::AllOf(_) => "all_of",
            ClaimCondition::Equals(_) => "equals",
            ClaimCondition::Present(_) => "present",
        };
        format!("{} ({kind})", self.claim)
    }
}

/// Adds the claims of `extra` that `claims` lacks (the ID token's win).
pub fn merge(claims: &mut Map<String, Value>, extra: &Map<String, Value>) {
    for (name, value) in extra {
        if !claims.contains_key(name) {
            claims.insert(name.clone(), value.clone());
        }
    }
}

/// The first rule of `rules` that `claims` do not satisfy.
pub fn first_failed<'r>(
    rules: &'r [ClaimRule],
    claims: &Map<String, Value>,
) -> Option<&'r ClaimRule> {
    rules.iter().find(|r| !r.holds(claims))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn rule(claim: &str, condition: ClaimCondition) -> ClaimRule {
        ClaimRule {
            claim: claim.into(),
            condition,
        }
    }

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_condition_kind_on_strings_arrays_and_nested_claims() {
        let c = claims(json!({
            "groups": ["admins", "staff"],
            "role": "ops",
            "email_verified": true,
            "level": 3,
            "realm_access": { "roles": ["reader"] },
            "https://example.com/roles": ["editor"],
            "gone": null,
        }));
        let holds = |r: ClaimRule| r.holds(&c);
        assert!(holds(rule(
            "groups",
            ClaimCondition::AnyOf(list(&["ops", "admins"]))
        )));
        assert!(!holds(rule(
            "groups",
            ClaimCondition::AnyOf(list(&["ops"]))
        )));
        assert!(holds(rule("role", ClaimCondition::AnyOf(list(&["ops"])))));
        assert!(holds(rule(
            "groups",
            ClaimCondition::AllOf(list(&["staff", "admins"]))
        )));
        assert!(!holds(rule(
            "groups",
            ClaimCondition::AllOf(list(&["staff", "root"]))
        )));
        assert!(holds(rule(
            "email_verified",
            ClaimCondition::Equals(ClaimValue::Bool(true))
        )));
        assert!(!holds(rule(
            "email_verified",
            ClaimCondition::Equals(ClaimValue::String("true".into()))
        )));
        assert!(holds(rule(
            "level",
            ClaimCondition::Equals(ClaimValue::Integer(3))
        )));
        assert!(holds(rule(
            "realm_access.roles",
            ClaimCondition::AnyOf(list(&["reader"]))
        )));
        assert!(holds(rule(
            "https://example.com/roles",
            ClaimCondition::AnyOf(list(&["editor"]))
        )));
        assert!(holds(rule("role", ClaimCondition::Present(true))));
        assert!(!holds(rule("gone", ClaimCondition::Present(true))));
        assert!(!holds(rule(
            "missing.deeper",
            ClaimCondition::Present(true)
        )));
        // A number or an object never matches string conditions.
        assert!(!holds(rule("level", ClaimCondition::AnyOf(list(&["3"])))));
        assert!(!holds(rule(
            "realm_access",
            ClaimCondition::AnyOf(list(&["reader"]))
        )));
    }
}
