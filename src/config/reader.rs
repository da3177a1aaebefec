//! A typed, consuming reader over the layered TOML tree.
//!
//! Every getter records the key as known, so whatever is left in a table when its [`Section`]
//! drops is an unknown key. Problems are collected, never returned early: `portcullis check`
//! shows all of them at once, each as `key: problem (fix)`.
//!
//! Longer than most modules (~620 lines): one typed getter per kind of value (string, number,
//! duration, list, table, secret, ...), each with its environment coercion and its messages;
//! they are read together when a message style changes.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use toml::{Table, Value};

use super::duration;
use super::source::EnvOrigins;
use super::Secret;

/// One configuration problem: which key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted key path, e.g. `clusters.api.health_check.interval`.
    pub key: String,
    /// The environment variable that set the value, when one did.
    pub var: Option<String>,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.var {
            Some(var) => write!(f, "{} (from {var}): {}", self.key, self.problem)?,
            None => write!(f, "{}: {}", self.key, self.problem)?,
        }
        if !self.fix.is_empty() {
            write!(f, " ({})", self.fix)?;
        }
        Ok(())
    }
}

/// Owns the issue list and knows which keys the environment set.
pub struct Reader<'t> {
    origins: &'t EnvOrigins,
    issues: RefCell<Vec<Issue>>,
    /// Every key asked for, in schema form (`clusters.<name>.destinations`, `routes[].path`):
    /// the reference the docs and the example config are checked against.
    asked: RefCell<std::collections::BTreeSet<String>>,
}

impl<'t> Reader<'t> {
    pub fn new(origins: &'t EnvOrigins) -> Self {
        Reader {
            origins,
            issues: RefCell::new(Vec::new()),
            asked: RefCell::new(Default::default()),
        }
    }

    pub fn root<'r>(&'r self, table: &'r Table) -> Section<'r, 't> {
        Section {
            reader: self,
            path: String::new(),
            schema: String::new(),
            table: Some(table),
            known: RefCell::new(Vec::new()),
        }
    }

    pub fn push(&self, key: String, problem: impl Into<String>, fix: impl Into<String>) {
        let var = self.origins.get(&key).cloned();
        self.issues.borrow_mut().push(Issue {
            key,
            var,
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub fn into_issues(self) -> Vec<Issue> {
        self.issues.into_inner()
    }

    pub fn asked(&self) -> std::collections::BTreeSet<String> {
        self.asked.borrow().clone()
    }
}

/// A view of one table. Dropping it reports the keys nobody asked for.
pub struct Section<'r, 't> {
    reader: &'r Reader<'t>,
    path: String,
    schema: String,
    table: Option<&'r Table>,
    known: RefCell<Vec<&'static str>>,
}

impl<'r, 't> Section<'r, 't> {
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Whether the table itself was present in the configuration.
    pub fn is_present(&self) -> bool {
        self.table.is_some()
    }

    fn note(&self, key: &'static str) {
        self.known.borrow_mut().push(key);
        let schema = if self.schema.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.schema)
        };
        self.reader.asked.borrow_mut().insert(schema);
    }

    fn child_schema(&self, key: &str) -> String {
        if self.schema.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.schema)
        }
    }

    pub fn has(&self, key: &'static str) -> bool {
        self.note(key);
        self.table.is_some_and(|t| t.contains_key(key))
    }

    pub fn issue(&self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.reader.push(self.key_path(key), problem, fix);
    }

    fn raw(&self, key: &'static str) -> Option<&'r Value> {
        self.note(key);
        self.table.and_then(|t| t.get(key))
    }

    fn set_by_env(&self, key: &str) -> bool {
        self.reader.origins.contains_key(&self.key_path(key))
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Value, example: &str) {
        self.issue(
            key,
            format!("expected {expected}, got {} {got}", got.type_str()),
            format!("write it like {key} = {example}"),
        );
    }

    pub fn string(&self, key: &'static str) -> Option<String> {
        match self.raw(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(key, "a string", other, "\"...\"");
                None
            }
        }
    }

    /// A string turned into `T` by `parse`, whose error text becomes the problem.
    pub fn parsed<T>(
        &self,
        key: &'static str,
        fix: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(key)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(problem) => {
                self.issue(key, problem, fix);
                None
            }
        }
    }

    /// A list of strings, each turned into `T` by `parse`; a bad entry is reported under its
    /// index (`key[i]`) and left out.
    pub fn parsed_list<T>(
        &self,
        key: &'static str,
        fix: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for (i, entry) in self.strings(key).unwrap_or_default().iter().enumerate() {
            match parse(entry) {
                Ok(v) => out.push(v),
                Err(problem) => self.issue(&format!("{key}[{i}]"), problem, fix),
            }
        }
        out
    }

    pub fn bool(&self, key: &'static str) -> Option<bool> {
        match self.raw(key)? {
            Value::Boolean(b) => Some(*b),
            Value::String(s) if self.set_by_env(key) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => {
                    self.issue(
                        key,
                        format!("expected true or false, got {s:?}"),
                        "set the variable to true or false",
                    );
                    None
                }
            },
            other => {
                self.wrong_type(key, "true or false", other, "true");
                None
            }
        }
    }

    /// A whole number within `min..=max`.
    pub fn integer(&self, key: &'static str, min: i64, max: i64) -> Option<i64> {
        let n = match self.raw(key)? {
            Value::Integer(n) => *n,
            Value::String(s) if self.set_by_env(key) => match s.trim().parse::<i64>() {
                Ok(n) => n,
                Err(_) => {
                    self.issue(
                        key,
                        format!("expected a whole number, got {s:?}"),
                        format!("set the variable to a number between {min} and {max}"),
                    );
                    return None;
                }
            },
            other => {
                self.wrong_type(key, "a whole number", other, &min.max(1).to_string());
                return None;
            }
        };
        self.within(key, n, min, max)
    }

    /// `n` when it is within `min..=max`, else a problem naming the range.
    fn within<N: PartialOrd + std::fmt::Display>(
        &self,
        key: &str,
        n: N,
        min: N,
        max: N,
    ) -> Option<N> {
        if n < min || n > max {
            self.issue(
                key,
                format!("{n} is out of range"),
                format!("use a number between {min} and {max}"),
            );
            return None;
        }
        Some(n)
    }

    /// A number within `min..=max`; whole numbers are accepted as well.
    pub fn float(&self, key: &'static str, min: f64, max: f64) -> Option<f64> {
        let n = match self.raw(key)? {
            Value::Float(f) => *f,
            Value::Integer(n) => *n as f64,
            Value::String(s) if self.set_by_env(key) => match s.trim().parse::<f64>() {
                Ok(n) => n,
                Err(_) => {
                    self.issue(
                        key,
                        format!("expected a number, got {s:?}"),
                        format!("set the variable to a number between {min} and {max}"),
                    );
                    return None;
                }
            },
            other => {
                self.wrong_type(key, "a number", other, &max.to_string());
                return None;
            }
        };
        self.within(key, n, min, max)
    }

    pub fn duration(&self, key: &'static str) -> Option<Duration> {
        match self.raw(key)? {
            Value::String(s) => {
                match duration::parse(s) {
                    Ok(d) => Some(d),
                    Err(problem) => {
                        self.issue(key, problem, "write a number and a unit: \"500ms\", \"30s\", \"20m\", \"12h\" or \"7d\"");
                        None
                    }
                }
            }
            other => {
                self.wrong_type(key, "a duration string", other, "\"30s\"");
                None
            }
        }
    }

    /// A list of strings; from the environment, one comma-separated string.
    pub fn strings(&self, key: &'static str) -> Option<Vec<String>> {
        match self.raw(key)? {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => {
                            self.issue(
                                &format!("{key}[{i}]"),
                                format!("expected a string, got {} {other}", other.type_str()),
                                "quote every entry of the list",
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Value::String(s) if self.set_by_env(key) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            other => {
                self.wrong_type(key, "a list of strings", other, "[\"...\", \"...\"]");
                None
            }
        }
    }

    /// A claim value to compare with: a string, a boolean or a number. From the environment,
    /// `true`/`false` and numbers are read as such, anything else as a string.
    pub fn claim_value(&self, key: &'static str) -> Option<super::ClaimValue> {
        use super::ClaimValue;
        Some(match self.raw(key)? {
            Value::String(s) if self.set_by_env(key) => match s.as_str() {
                "true" => ClaimValue::Bool(true),
                "false" => ClaimValue::Bool(false),
                other => other
                    .parse::<i64>()
                    .map(ClaimValue::Integer)
                    .unwrap_or_else(|_| ClaimValue::String(s.clone())),
            },
            Value::String(s) => ClaimValue::String(s.clone()),
            Value::Boolean(b) => ClaimValue::Bool(*b),
            Value::Integer(n) => ClaimValue::Integer(*n),
            Value::Float(f) => ClaimValue::Float(*f),
            other => {
                self.wrong_type(key, "a string, boolean or number", other, "\"admin\"");
                return None;
            }
        })
    }

    /// A table of free-form string values (`{ audience = "..." }`), in key order. Its keys are
    /// data, not schema, so they are not checked against the known keys.
    pub fn string_map(&self, key: &'static str) -> Option<Vec<(String, String)>> {
        match self.raw(key)? {
            Value::Table(t) => {
                let mut out = Vec::with_capacity(t.len());
                for (k, v) in t {
                    match v {
                        Value::String(s) => out.push((k.clone(), s.clone())),
                        other => {
                            self.issue(
                                &format!("{key}.{k}"),
                                format!("expected a string, got {} {other}", other.type_str()),
                                "quote the value",
                            );
                            return None;
                        }
                    }
                }
                out.sort();
                Some(out)
            }
            other => {
                self.wrong_type(key, "a table of strings", other, "{ name = \"value\" }");
                None
            }
        }
    }

    /// A secret given inline as `key` or as a file path in `key_file` (one, not both).
    /// The file's content is trimmed of trailing newlines, as Kubernetes and Docker secrets end.
    pub fn secret(&self, key: &'static str, file_key: &'static str) -> Option<Secret> {
        let inline = self.string(key).map(Secret::new);
        self.inline_or_file(key, file_key, inline, |text| {
            Secret::new(text.trim_end_matches(['\r', '\n']).to_string())
        })
    }

    /// A list of secrets given inline as `key` or in `key_file`, one per line.
    pub fn secret_list(&self, key: &'static str, file_key: &'static str) -> Option<Vec<Secret>> {
        let inline = self
            .strings(key)
            .map(|v| v.into_iter().map(Secret::new).collect());
        self.inline_or_file(key, file_key, inline, |text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| Secret::new(l.to_string()))
                .collect()
        })
    }

    /// The inline value of `key`, or `from_file` applied to the content of the file named by
    /// `file_key`; both set, or an unreadable file, is a problem.
    #[allow(clippy::disallowed_methods, reason = "config is read before serving")]
    fn inline_or_file<T>(
        &self,
        key: &'static str,
        file_key: &'static str,
        inline: Option<T>,
        from_file: impl FnOnce(String) -> T,
    ) -> Option<T> {
        match (inline, self.string(file_key)) {
            (Some(_), Some(_)) => {
                self.issue(
                    key,
                    format!("both `{key}` and `{file_key}` are set"),
                    "keep one of them",
                );
                None
            }
            (Some(v), None) => Some(v),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => Some(from_file(text)),
                Err(e) => {
                    self.issue(
                        file_key,
                        format!("cannot read {path:?}: {e}"),
                        "point it at a readable file holding the secret",
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// A sub-table; absent tables read as empty so defaults apply.
    pub fn section(&self, key: &'static str) -> Section<'r, 't> {
        let table = match self.raw(key) {
            Some(Value::Table(t)) => Some(t),
            Some(other) => {
                self.wrong_type(key, "a table", other, "{ ... } or a [section]");
                None
            }
            None => None,
        };
        Section {
            reader: self.reader,
            path: self.key_path(key),
            schema: self.child_schema(key),
            table,
            known: RefCell::new(Vec::new()),
        }
    }

    /// A table whose keys are user-chosen names (`[clusters.NAME]`).
    pub fn named_sections(&self, key: &'static str) -> Vec<(String, Section<'r, 't>)> {
        let mut parent = self.section(key);
        let Some(table) = parent.table else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in table {
            let path = parent.key_path(name);
            match value {
                Value::Table(t) => out.push((
                    name.clone(),
                    Section {
                        reader: self.reader,
                        path,
                        schema: format!("{}.<name>", parent.schema),
                        table: Some(t),
                        known: RefCell::new(Vec::new()),
                    },
                )),
                other => self.reader.push(
                    path,
                    format!("expected a table, got {} {other}", other.type_str()),
                    format!("write it as [{}.{name}]", parent.path),
                ),
            }
        }
        // Every name is a legitimate key of the parent.
        parent.table = None;
        out
    }

    /// An array of tables (`[[routes]]`).
    pub fn table_list(&self, key: &'static str) -> Vec<Section<'r, 't>> {
        match self.raw(key) {
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let path = format!("{}[{i}]", self.key_path(key));
                    match item {
                        Value::Table(t) => Some(Section {
                            reader: self.reader,
                            path,
                            schema: format!("{}[]", self.child_schema(key)),
                            table: Some(t),
                            known: RefCell::new(Vec::new()),
                        }),
                        other => {
                            self.reader.push(
                                path,
                                format!("expected a table, got {} {other}", other.type_str()),
                                format!("write each entry as [[{key}]]"),
                            );
                            None
                        }
                    }
                })
                .collect(),
            Some(other) => {
                self.wrong_type(
                    key,
                    "a list of tables",
                    other,
                    &format!("[[{key}]] sections"),
                );
                Vec::new()
            }
            None => Vec::new(),
        }
    }
}

impl Drop for Section<'_, '_> {
    fn drop(&mut self) {
        let Some(table) = self.table else { return };
        let known = self.known.borrow();
        for key in table.keys() {
            if known.iter().any(|k| k == key) {
                continue;
            }
            let fix = match closest(key, &known) {
                Some(near) => format!("did you mean `{near}`? otherwise remove it"),
                None if known.is_empty() => "remove it".to_string(),
                None => format!("remove it; known keys here: {}", known.join(", ")),
            };
            self.reader.push(self.key_path(key), "unknown key", fix);
        }
    }
}

/// The known key nearest to `key` by edit distance, if it is plausibly a typo of it.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(closest("clustr", &["cluster", "path"]), Some("cluster"));
        assert_eq!(closest("zzzzzz", &["cluster", "path"]), None);
    }

    #[test]
    fn reports_unknown_and_mistyped_keys_together() {
        let table: Table = toml::from_str("listen = 8080\nlisen = 'x'\n[inner]\nfoo = 1").unwrap();
        let origins = EnvOrigins::new();
        let reader = Reader::new(&origins);
        {
            let root = reader.root(&table);
            assert_eq!(root.string("listen"), None);
            let _inner = root.section("inner");
        }
        let issues: Vec<String> = reader
            .into_issues()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            issues,
            vec![
                "listen: expected a string, got integer 8080 (write it like listen = \"...\")",
                "inner.foo: unknown key (remove it)",
                "lisen: unknown key (did you mean `listen`? otherwise remove it)",
            ]
        );
    }
}
