//! The standard OpenTelemetry variables (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! ...) as `[telemetry]` keys, layered over the file before the `PORTCULLIS__*` variables: so
//! a platform that injects them configures Portcullis like any other service, `check` shows
//! the outcome, and a bad value is reported under the variable's name.

use toml::{Table, Value};

use super::source::{EnvOrigins, Environment, OverlayIssue};

/// How a variable's text becomes the key's value.
#[derive(Clone, Copy)]
enum Form {
    /// As it is (the reader coerces numbers and booleans set from the environment).
    Text,
    /// A number of milliseconds, as a duration.
    Millis,
    /// `key=value,key=value` with percent-encoded values, merged into a table.
    Pairs,
    /// `OTEL_SDK_DISABLED`: "true" turns telemetry off.
    Disabled,
    /// `OTEL_TRACES_EXPORTER`: "none" turns telemetry off; "otlp" is what is built.
    Exporter,
}

/// In application order: a signal-specific variable comes after the general one and wins.
const VARIABLES: &[(&str, &str, Form)] = &[
    ("OTEL_SDK_DISABLED", "enabled", Form::Disabled),
    ("OTEL_TRACES_EXPORTER", "enabled", Form::Exporter),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "endpoint", Form::Text),
    (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "traces_endpoint",
        Form::Text,
    ),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "protocol", Form::Text),
    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "protocol", Form::Text),
    ("OTEL_EXPORTER_OTLP_HEADERS", "headers", Form::Pairs),
    ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "headers", Form::Pairs),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "timeout", Form::Millis),
    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "timeout", Form::Millis),
    ("OTEL_SERVICE_NAME", "service_name", Form::Text),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "resource_attributes",
        Form::Pairs,
    ),
    ("OTEL_TRACES_SAMPLER", "sampler", Form::Text),
    ("OTEL_TRACES_SAMPLER_ARG", "sampler_arg", Form::Text),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "queue_size", Form::Text),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "batch_size", Form::Text),
    ("OTEL_BSP_SCHEDULE_DELAY", "export_interval", Form::Millis),
];

/// Sets the `[telemetry]` keys the `OTEL_*` variables name. Empty variables count as unset,
/// as the OpenTelemetry specification says.
pub fn overlay(root: &mut Table, env: &dyn Environment) -> (EnvOrigins, Vec<OverlayIssue>) {
    let mut origins = EnvOrigins::new();
    let mut issues = Vec::new();
    for &(var, key, form) in VARIABLES {
        let Some(text) = env.var(var).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        let text = text.trim();
        let value = match form {
            Form::Text => Value::String(text.to_string()),
            Form::Millis => match text.parse::<u64>() {
                Ok(ms) => Value::String(format!("{ms}ms")),
                Err(_) => {
                    issues.push(issue(
                        var,
                        format!("{text:?} is not a number of milliseconds"),
                    ));
                    continue;
                }
            },
            Form::Disabled => match text.to_ascii_lowercase().as_str() {
                "true" => Value::String("false".into()),
                "false" => continue,
                _ => {
                    issues.push(issue(var, format!("{text:?} is neither true nor false")));
                    continue;
                }
            },
            Form::Exporter => match text.to_ascii_lowercase().as_str() {
                "none" => Value::String("false".into()),
                "otlp" => continue,
                _ => {
                    issues.push(issue(
                        var,
                        format!("{text:?}: Portcullis exports traces with otlp only (or none)"),
                    ));
                    continue;
                }
            },
            Form::Pairs => match pairs(text) {
                Ok(table) => Value::Table(table),
                Err(problem) => {
                    issues.push(issue(var, problem));
                    continue;
                }
            },
        };
        let telemetry = match root
            .entry("telemetry")
            .or_insert_with(|| Value::Table(Table::new()))
        {
            Value::Table(t) => t,
            _ => {
                issues.push(issue(var, "`telemetry` in the file is not a table".into()));
                continue;
            }
        };
        match (telemetry.get_mut(key), value) {
            (Some(Value::Table(existing)), Value::Table(more)) => existing.extend(more),
            (_, value) => {
                telemetry.insert(key.to_string(), value);
            }
        }
        origins.insert(format!("telemetry.{key}"), var.to_string());
    }
    (origins, issues)
}

fn issue(var: &str, problem: String) -> OverlayIssue {
    OverlayIssue {
        var: var.to_string(),
        problem,
    }
}

/// The W3C Baggage-like list the OTLP variables use: `a=1,b=x%20y`.
fn pairs(text: &str) -> Result<Table, String> {
    let mut table = Table::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            return Err(format!(
                "entry {:?} has no '=' (write key=value,key=value)",
                entry.split('=').next().unwrap_or_default()
            ));
        };
        let value = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| format!("the value of {:?} is not UTF-8 once decoded", k.trim()))?;
        table.insert(k.trim().to_string(), Value::String(value.into_owned()));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::super::source::env;
    use super::*;

    #[test]
    fn signal_variables_win_and_tables_merge() {
        let mut root: Table = toml::from_str("[telemetry]\nheaders = { a = \"file\" }").unwrap();
        let (origins, issues) = overlay(
            &mut root,
            &env(&[
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "b=1,a=x%20y"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_SERVICE_NAME", ""),
            ]),
        );
        assert!(issues.is_empty());
        let t = root["telemetry"].as_table().unwrap();
        assert_eq!(t["protocol"].as_str(), Some("grpc"));
        assert_eq!(t["headers"]["a"].as_str(), Some("x y"));
        assert_eq!(t["headers"]["b"].as_str(), Some("1"));
        assert_eq!(t["timeout"].as_str(), Some("2500ms"));
        assert!(t.get("service_name").is_none(), "empty means unset");
        assert_eq!(
            origins["telemetry.protocol"],
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
        );
    }

    #[test]
    fn every_variable_is_documented() {
        let docs = include_str!("../../docs/configuration.md");
        for (name, key, _) in VARIABLES {
            assert!(
                docs.contains(name),
                "docs/configuration.md does not mention {name}"
            );
            assert!(
                docs.contains(&format!("telemetry.{key}")) || docs.contains(&format!("`{key}`"))
            );
        }
    }

    #[test]
    fn off_switches_and_bad_values_name_the_variable() {
        let mut root = Table::new();
        let (_, issues) = overlay(
            &mut root,
            &env(&[
                ("OTEL_TRACES_EXPORTER", "zipkin"),
                ("OTEL_BSP_SCHEDULE_DELAY", "5s"),
                ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
                ("OTEL_SDK_DISABLED", "true"),
            ]),
        );
        let vars: Vec<&str> = issues.iter().map(|i| i.var.as_str()).collect();
        assert_eq!(
            vars,
            [
                "OTEL_TRACES_EXPORTER",
                "OTEL_RESOURCE_ATTRIBUTES",
                "OTEL_BSP_SCHEDULE_DELAY"
            ]
        );
        assert_eq!(root["telemetry"]["enabled"].as_str(), Some("false"));
    }
}
