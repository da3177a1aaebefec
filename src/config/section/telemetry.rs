//! Traces (`[telemetry]`): where spans go, how many are kept, and what an incoming
//! `traceparent` means. The standard `OTEL_*` variables set the same keys (`otel_env.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::config::reader::Section;
use crate::config::{ser_duration, Secret};

/// OpenTelemetry trace export over OTLP. Off unless enabled or an endpoint is configured.
#[derive(Debug, Clone, Serialize)]
pub struct TelemetryConfig {
    /// Whether spans are made and exported. Defaults to true when `endpoint` or
    /// `traces_endpoint` is set (in the file or by `OTEL_EXPORTER_OTLP_*ENDPOINT`), else false.
    pub enabled: bool,
    /// The collector: for `http/protobuf` its base URL, to which `/v1/traces` is added
    /// (default `http://localhost:4318`); for `grpc` its address (`http://localhost:4317`).
    /// Set for `grpc` only once read: an HTTP base becomes `traces_endpoint`.
    #[serde(
        serialize_with = "ser_opt_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub endpoint: Option<Url>,
    /// Where exports go, used as given (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): the full URL for
    /// OTLP/HTTP, the address for gRPC (printed as `endpoint` then). Wins over `endpoint`.
    #[serde(
        serialize_with = "ser_opt_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub traces_endpoint: Option<Url>,
    /// `http/protobuf` (default, port 4318) or `grpc` (port 4317).
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (a collector's API key): values are secrets.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// How long one export may take before it is abandoned (its spans are dropped, counted).
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// More resource attributes (`deployment.environment.name`, `service.namespace`, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_attributes: BTreeMap<String, String>,
    /// Which requests are traced: the OpenTelemetry sampler names.
    pub sampler: SamplerKind,
    /// The ratio of `traceidratio` samplers, 0.0 to 1.0.
    pub sampler_arg: f64,
    /// What a valid incoming `traceparent` means: `continue` its trace, or `link` it from a
    /// new one (for a public edge, where clients must not choose trace ids or sampling).
    pub incoming: IncomingTrace,
    /// Finished spans waiting for export; when full, new spans are dropped (and counted), so a
    /// slow or absent collector never slows a request.
    pub queue_size: usize,
    /// Spans per export request.
    pub batch_size: usize,
    /// How often the queue is exported when it does not fill a batch first.
    #[serde(serialize_with = "ser_duration")]
    pub export_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OtlpProtocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "grpc")]
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    AlwaysOn,
    AlwaysOff,
    #[serde(rename = "traceidratio")]
    TraceIdRatio,
    ParentbasedAlwaysOn,
    ParentbasedAlwaysOff,
    #[serde(rename = "parentbased_traceidratio")]
    ParentbasedTraceIdRatio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncomingTrace {
    Continue,
    Link,
}

impl TelemetryConfig {
    /// Where export requests go.
    pub fn export_url(&self) -> Option<&Url> {
        self.traces_endpoint.as_ref().or(self.endpoint.as_ref())
    }
}

fn ser_opt_url<S: serde::Serializer>(v: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(u) => s.serialize_str(u.as_str()),
        None => s.serialize_none(),
    }
}

const SAMPLERS: &str = "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio";

pub(in crate::config) fn telemetry(s: &Section<'_, '_>) -> Option<TelemetryConfig> {
    let protocol = s
        .parsed(
            "protocol",
            "use \"http/protobuf\" or \"grpc\"",
            |v| match v {
                "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
                "grpc" => Ok(OtlpProtocol::Grpc),
                "http/json" => Err("http/json is not built into Portcullis".into()),
                other => Err(format!("{other:?} is not an OTLP protocol")),
            },
        )
        .unwrap_or(OtlpProtocol::HttpProtobuf);
    let url = |key: &'static str| {
        s.parsed(
            key,
            "write the collector's URL, e.g. \"http://otel-collector:4318\"",
            |v| match Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
                Ok(u) => Err(format!("{v:?} is a {} URL, not http(s)", u.scheme())),
                Err(e) => Err(format!("{v:?} is not a URL: {e}")),
            },
        )
    };
    let base = url("endpoint");
    let exact = url("traces_endpoint");
    let (endpoint, traces_endpoint) = match (exact, base, protocol) {
        (Some(exact), _, OtlpProtocol::HttpProtobuf) => (None, Some(exact)),
        // As OTEL_EXPORTER_OTLP_TRACES_ENDPOINT means for gRPC: the address, as given.
        (Some(exact), _, OtlpProtocol::Grpc) => (Some(exact), None),
        (_, Some(base), OtlpProtocol::Grpc) => (Some(base), None),
        (_, Some(base), OtlpProtocol::HttpProtobuf) => (None, Some(with_traces_path(base))),
        (_, None, OtlpProtocol::Grpc) => (Url::parse("http://localhost:4317").ok(), None),
        (_, None, OtlpProtocol::HttpProtobuf) => {
            (None, Url::parse("http://localhost:4318/v1/traces").ok())
        }
    };
    let configured = s.has("endpoint") || s.has("traces_endpoint");
    let sampler = s
        .parsed("sampler", &format!("use one of {SAMPLERS}"), |v| {
            Ok(match v {
                "always_on" => SamplerKind::AlwaysOn,
                "always_off" => SamplerKind::AlwaysOff,
                "traceidratio" => SamplerKind::TraceIdRatio,
                "parentbased_always_on" => SamplerKind::ParentbasedAlwaysOn,
                "parentbased_always_off" => SamplerKind::ParentbasedAlwaysOff,
                "parentbased_traceidratio" => SamplerKind::ParentbasedTraceIdRatio,
                other => return Err(format!("{other:?} is not a sampler this build has")),
            })
        })
        .unwrap_or(SamplerKind::ParentbasedAlwaysOn);
    let headers = s
        .string_map("headers")
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, value)| {
            let ok = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
                && http::HeaderValue::from_str(value).is_ok();
            if !ok {
                s.issue(
                    &format!("headers.{name}"),
                    "is not a valid HTTP header name and value",
                    "use a token name (letters, digits, '-') and a visible-ASCII value",
                );
            }
            ok
        })
        .map(|(name, value)| (name, Secret::new(value)))
        .collect();
    let count = |key: &'static str, default: i64| {
        s.integer(key, 1, 1_000_000)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default as usize)
    };
    let queue_size = count("queue_size", 2048);
    let batch_size = count("batch_size", 512);
    if batch_size > queue_size {
        s.issue(
            "batch_size",
            format!("{batch_size} is larger than queue_size ({queue_size})"),
            "make batch_size at most queue_size",
        );
    }
    let resource_attributes: BTreeMap<String, String> = s
        .string_map("resource_attributes")
        .unwrap_or_default()
        .into_iter()
        .collect();
    let export_interval = s
        .duration("export_interval")
        .unwrap_or(Duration::from_secs(5));
    let timeout = s.duration("timeout").unwrap_or(Duration::from_secs(10));
    for (key, d) in [("export_interval", export_interval), ("timeout", timeout)] {
        if d < Duration::from_millis(10) || d > Duration::from_secs(600) {
            s.issue(key, "must be between 10ms and 10m", "use e.g. \"5s\"");
        }
    }
    Some(TelemetryConfig {
        enabled: s.bool("enabled").unwrap_or(configured),
        endpoint,
        traces_endpoint,
        protocol,
        headers,
        timeout,
        // OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES.
        service_name: s
            .string("service_name")
            .filter(|n| !n.is_empty())
            .or_else(|| resource_attributes.get("service.name").cloned())
            .unwrap_or_else(|| "portcullis".into()),
        resource_attributes,
        sampler,
        sampler_arg: s.float("sampler_arg", 0.0, 1.0).unwrap_or(1.0),
        incoming: s
            .parsed("incoming", "use \"continue\" or \"link\"", |v| match v {
                "continue" => Ok(IncomingTrace::Continue),
                "link" => Ok(IncomingTrace::Link),
                other => Err(format!("{other:?} is neither continue nor link")),
            })
            .unwrap_or(IncomingTrace::Continue),
        queue_size,
        batch_size,
        export_interval,
    })
}

/// OTLP/HTTP's rule for a base endpoint: the signal's path is appended.
fn with_traces_path(mut base: Url) -> Url {
    let path = format!("{}/v1/traces", base.path().trim_end_matches('/'));
    base.set_path(&path);
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_endpoint_gets_the_traces_path_once() {
        for (base, want) in [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("https://c/otlp/", "https://c/otlp/v1/traces"),
        ] {
            let url = with_traces_path(Url::parse(base).unwrap());
            assert_eq!(url.as_str(), want);
        }
    }
}
