//! Logging setup: `tracing` with text or JSON output; Pingora's `log` records are bridged in.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// `PORTCULLIS_LOG_FORMAT=json` overrides the configured format; `RUST_LOG` the level.
pub fn init(config: &LogConfig) {
    let format = match std::env::var("PORTCULLIS_LOG_FORMAT").ok().as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        _ => config.format,
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = result {
        eprintln!("portcullis: logging already initialised: {e}");
    }
}
