//! Logging (`[log]`): format, level, access lines.

use serde::Serialize;

use crate::config::reader::Section;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
    /// Whether access lines name the signed-in user (`"sub"`) or not (`"none"`).
    pub access_log_user: AccessLogUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogUser {
    None,
    Sub,
}

pub(in crate::config) fn log(s: &Section<'_, '_>) -> Option<LogConfig> {
    let format = s
        .parsed("format", "use \"text\" or \"json\"", |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{v:?} is not a log format")),
        })
        .unwrap_or(LogFormat::Text);
    Some(LogConfig {
        format,
        level: s
            .parsed(
                "level",
                "use error, warn, info, debug or trace, or a filter such as \"info,portcullis=debug\"",
                |v| match tracing_subscriber::EnvFilter::try_new(v) {
                    Ok(_) => Ok(v.to_string()),
                    Err(e) => Err(format!("{v:?} is not a log filter: {e}")),
                },
            )
            .unwrap_or_else(|| "info".into()),
        access_log: s.bool("access_log").unwrap_or(true),
        access_log_user: s
            .parsed("access_log_user", "use \"none\" or \"sub\"", |v| match v {
                "none" => Ok(AccessLogUser::None),
                "sub" => Ok(AccessLogUser::Sub),
                other => Err(format!("{other:?} is neither none nor sub")),
            })
            .unwrap_or(AccessLogUser::None),
    })
}
