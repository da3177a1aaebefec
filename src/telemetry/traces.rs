//! Spans. The proxy makes one server span per request (`proxy/spans.rs`); the work that can
//! take time makes children here, from wherever it runs, under the context its future was
//! given (`opentelemetry::trace::FutureExt::with_context`).
//!
//! Until [`install`] ran with telemetry on, every helper is one check of a `OnceLock`; and a
//! child is only made inside a sampled request, so unsampled traffic costs no span at all.
//! Attributes never hold a token, cookie, code or session id: callers pass names, routes,
//! operations and outcomes only.

use std::future::Future;
use std::sync::OnceLock;

use opentelemetry::trace::{FutureExt, SpanBuilder, Status, TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use super::export::{QueueProcessor, TraceExport};
use crate::config::{SamplerKind, TelemetryConfig};
use crate::metrics::TraceMetrics;

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Turns tracing on for this process when `config.enabled`; the returned service ships the
/// spans (add it to the server, which gives it a runtime and a shutdown signal).
pub fn install(config: &TelemetryConfig, metrics: TraceMetrics) -> Option<TraceExport> {
    if !config.enabled {
        return None;
    }
    let resource = resource(config);
    let (processor, queue) = QueueProcessor::new(
        config.queue_size,
        config.batch_size,
        metrics.dropped.clone(),
    );
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(config))
        .with_resource(resource.clone())
        .build();
    let scope = InstrumentationScope::builder("portcullis")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    if TRACER.set(provider.tracer_with_scope(scope)).is_err() {
        tracing::warn!("tracing was already installed in this process; keeping the first");
        return None;
    }
    Some(TraceExport::new(config.clone(), resource, queue, metrics))
}

/// The tracer, when tracing is on.
pub fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

fn sampler(config: &TelemetryConfig) -> Sampler {
    let ratio = Sampler::TraceIdRatioBased(config.sampler_arg);
    match config.sampler {
        SamplerKind::AlwaysOn => Sampler::AlwaysOn,
        SamplerKind::AlwaysOff => Sampler::AlwaysOff,
        SamplerKind::TraceIdRatio => ratio,
        SamplerKind::ParentbasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerKind::ParentbasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerKind::ParentbasedTraceIdRatio => Sampler::ParentBased(Box::new(ratio)),
    }
}

fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder_empty()
        .with_attributes(
            config
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("telemetry.sdk.name", "opentelemetry"),
            KeyValue::new("telemetry.sdk.language", "rust"),
        ])
        .with_service_name(config.service_name.clone())
        .build()
}

/// A child of the current span, when tracing is on and the current span is sampled; it ends
/// when the returned context (and every clone) is dropped, or with `cx.span().end()`.
pub fn child(span: impl FnOnce() -> SpanBuilder) -> Option<Context> {
    let tracer = TRACER.get()?;
    let parent = Context::current();
    if !parent.span().span_context().is_sampled() {
        return None;
    }
    let span = span().start_with_context(tracer, &parent);
    Some(parent.with_span(span))
}

/// Runs `work` in a child span built by `span` (called only when the span is made); the span
/// ends when `work` does, marked as an error when `work` fails.
pub async fn in_span<T, E: std::fmt::Display>(
    span: impl FnOnce() -> SpanBuilder,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    in_span_judged(span, work, |outcome| {
        outcome.as_ref().err().map(ToString::to_string)
    })
    .await
}

/// [`in_span`] for work whose failure `failed` tells apart (a reply, not a `Result`).
pub async fn in_span_judged<T>(
    span: impl FnOnce() -> SpanBuilder,
    work: impl Future<Output = T>,
    failed: impl FnOnce(&T) -> Option<String>,
) -> T {
    let Some(cx) = child(span) else {
        return work.await;
    };
    let outcome = work.with_context(cx.clone()).await;
    if let Some(problem) = failed(&outcome) {
        cx.span().set_status(Status::error(problem));
    }
    cx.span().end();
    outcome
}

/// Adds an attribute to the current span, when there is a recording one.
pub fn note(attribute: impl FnOnce() -> KeyValue) {
    if TRACER.get().is_none() {
        return;
    }
    Context::map_current(|cx| {
        let span = cx.span();
        if span.is_recording() {
            span.set_attribute(attribute());
        }
    });
}
