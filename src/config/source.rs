//! Where configuration comes from: the TOML file, then `PORTCULLIS__*` variables layered on top.
//!
//! The overlay works on the raw TOML tree so that the typed reader (`reader.rs`) sees one tree
//! and reports every problem with the key path *and* the variable that set it.

use std::collections::HashMap;

use toml::{Table, Value};

/// Prefix of every override variable: `PORTCULLIS__SECTION__KEY`.
pub const ENV_PREFIX: &str = "PORTCULLIS__";

/// The process environment, behind a trait so tests pass a map instead of mutating the real one.
pub trait Environment {
    /// Every `(name, value)` pair whose name starts with [`ENV_PREFIX`] (case-insensitive).
    fn portcullis_vars(&self) -> Vec<(String, String)>;
    /// The value of one variable by its exact name (the standard `OTEL_*` ones).
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn portcullis_vars(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| has_prefix(k))
            .collect()
    }

    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for HashMap<String, String> {
    fn portcullis_vars(&self) -> Vec<(String, String)> {
        self.iter()
            .filter(|(k, _)| has_prefix(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

fn has_prefix(name: &str) -> bool {
    name.len() >= ENV_PREFIX.len() && name[..ENV_PREFIX.len()].eq_ignore_ascii_case(ENV_PREFIX)
}

/// Dotted key path (`clusters.api.destinations`, `routes[0].path`) -> the variable that set it.
/// Values set from the environment are strings; the reader coerces them to the key's type.
pub type EnvOrigins = HashMap<String, String>;

/// A problem found while layering variables, before any key is typed.
#[derive(Debug)]
pub struct OverlayIssue {
    pub var: String,
    pub problem: String,
}

/// Applies every `PORTCULLIS__*` variable to `root`, in name order so results are stable.
///
/// Segments are matched case-insensitively against keys already in the file (cluster names keep
/// the file's spelling); a numeric segment indexes an array of tables (`ROUTES__0__PATH`), and the
/// index one past the end appends a new table.
pub fn overlay(root: &mut Table, env: &dyn Environment) -> (EnvOrigins, Vec<OverlayIssue>) {
    let mut vars = env.portcullis_vars();
    // Name order, with indexes compared as numbers: ROUTES__2 comes before ROUTES__10.
    vars.sort_by_cached_key(|(name, _)| {
        name.to_ascii_uppercase()
            .split("__")
            .map(|seg| match seg.parse::<u64>() {
                Ok(n) => format!("{n:020}"),
                Err(_) => seg.to_string(),
            })
            .collect::<Vec<_>>()
    });
    let mut origins = EnvOrigins::new();
    let mut issues = Vec::new();
    for (var, value) in vars {
        let segments: Vec<String> = var[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if segments.iter().any(|s| s.is_empty()) {
            issues.push(OverlayIssue {
                var,
                problem: "empty key segment (use exactly two underscores between levels, e.g. PORTCULLIS__SERVER__LISTEN)".into(),
            });
            continue;
        }
        match set_path(root, &segments, value) {
            Ok(path) => {
                origins.insert(path, var);
            }
            Err(problem) => issues.push(OverlayIssue { var, problem }),
        }
    }
    (origins, issues)
}

fn set_path(root: &mut Table, segments: &[String], value: String) -> Result<String, String> {
    let mut path = String::new();
    let mut table = root;
    let (last, parents) = segments.split_last().ok_or("no key after the prefix")?;
    let mut i = 0;
    while i < parents.len() {
        let key = existing_key(table, &parents[i]);
        push_key(&mut path, &key);
        // A numeric next segment makes a missing key a list of tables (`ROUTES__0__PATH` with
        // no [[routes]] in the file), anything else a table.
        let indexed = parents
            .get(i + 1)
            .is_some_and(|s| s.parse::<usize>().is_ok());
        let entry = table.entry(key.clone()).or_insert_with(|| {
            if indexed {
                Value::Array(Vec::new())
            } else {
                Value::Table(Table::new())
            }
        });
        match entry {
            Value::Table(t) => {
                table = t;
                i += 1;
            }
            Value::Array(items) => {
                let Some(index) = parents.get(i + 1).and_then(|s| s.parse::<usize>().ok()) else {
                    return Err(format!(
                        "`{path}` is a list of tables; name an index next, e.g. {}{}__0__...",
                        ENV_PREFIX,
                        path.to_ascii_uppercase().replace('.', "__")
                    ));
                };
                let len = items.len();
                if index == len {
                    items.push(Value::Table(Table::new()));
                }
                let Some(Value::Table(t)) = items.get_mut(index) else {
                    return Err(format!(
                        "`{path}` has {len} entries; index {index} is neither one of them nor the next"
                    ));
                };
                path.push_str(&format!("[{index}]"));
                table = t;
                i += 2;
            }
            _ => return Err(format!("`{path}` is a value, not a table")),
        }
    }
    let key = existing_key(table, last);
    push_key(&mut path, &key);
    table.insert(key, Value::String(value));
    Ok(path)
}

/// The file's own spelling of `lower` when one matches case-insensitively, else `lower`.
fn existing_key(table: &Table, lower: &str) -> String {
    table
        .keys()
        .find(|k| k.eq_ignore_ascii_case(lower))
        .cloned()
        .unwrap_or_else(|| lower.to_string())
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// A test environment of these variables.
#[cfg(test)]
pub(crate) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_nested_keys_case_insensitively_keeping_file_spelling() {
        let mut root: Table =
            toml::from_str("[clusters.SPA]\ndestinations = ['http://a:1']").unwrap();
        let (origins, issues) = overlay(
            &mut root,
            &env(&[(
                "portcullis__clusters__spa__destinations",
                "http://b:2,http://c:3",
            )]),
        );
        assert!(issues.is_empty());
        assert_eq!(
            root["clusters"]["SPA"]["destinations"].as_str(),
            Some("http://b:2,http://c:3")
        );
        assert_eq!(
            origins["clusters.SPA.destinations"],
            "portcullis__clusters__spa__destinations"
        );
    }

    #[test]
    fn indexes_and_appends_arrays_of_tables() {
        let mut root: Table = toml::from_str("[[routes]]\npath = '/'\ncluster = 'spa'").unwrap();
        let (origins, issues) = overlay(
            &mut root,
            &env(&[
                ("PORTCULLIS__ROUTES__0__CLUSTER", "web"),
                ("PORTCULLIS__ROUTES__1__PATH", "/api/"),
            ]),
        );
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(root["routes"][0]["cluster"].as_str(), Some("web"));
        assert_eq!(root["routes"][1]["path"].as_str(), Some("/api/"));
        assert!(origins.contains_key("routes[1].path"));
    }

    #[test]
    fn builds_lists_of_tables_from_the_environment_alone() {
        let mut root = Table::new();
        let mut vars: Vec<(String, String)> = (0..12)
            .map(|i| (format!("PORTCULLIS__ROUTES__{i}__PATH"), format!("/r{i}/")))
            .collect();
        vars.reverse();
        let refs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (_, issues) = overlay(&mut root, &env(&refs));
        assert!(issues.is_empty(), "{issues:?}");
        let routes = root["routes"].as_array().unwrap();
        assert_eq!(
            routes.len(),
            12,
            "indexes are ordered as numbers (2 before 10)"
        );
        assert_eq!(routes[10]["path"].as_str(), Some("/r10/"));
    }

    #[test]
    fn reports_bad_array_index_and_empty_segments() {
        let mut root: Table = toml::from_str("[[routes]]\npath = '/'").unwrap();
        let (_, issues) = overlay(
            &mut root,
            &env(&[
                ("PORTCULLIS__ROUTES__7__PATH", "/x"),
                ("PORTCULLIS__ROUTES__PATH", "/x"),
                ("PORTCULLIS__SERVER____LISTEN", "x"),
            ]),
        );
        assert_eq!(issues.len(), 3, "{issues:?}");
    }
}
