//! What the gateway tells its operators besides metrics: log lines (`logs.rs`) and
//! OpenTelemetry traces (`traces.rs` makes spans, `export.rs` ships them over OTLP,
//! `propagation.rs` reads and writes W3C `traceparent`).

mod export;
pub mod logs;
pub mod propagation;
pub mod traces;

pub use self::export::TraceExport;
pub use self::logs::init;
