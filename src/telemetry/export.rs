//! Shipping finished spans: a bounded queue filled from request threads, emptied by one
//! background task that exports in batches over OTLP.
//!
//! A request only ever does a `try_send`: when the collector is slow or down the queue fills
//! and further spans are dropped and counted (`portcullis_trace_spans_dropped_total`), never
//! waited for. Nor does a span wake the exporter: it wakes once a batch is waiting (as the
//! SDK's own processor does), else it runs on its interval — a wake per span would cost a
//! cross-thread notification on every request. The SDK's `BatchSpanProcessor` is not used: it exports from a thread of its own
//! with no Tokio runtime, where the async HTTP and gRPC exporters cannot run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use opentelemetry::Context;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter as _, SpanProcessor};
use opentelemetry_sdk::Resource;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::{IntCounter, IntCounterVec};
use tokio::sync::{mpsc, Notify};

use crate::config::{OtlpProtocol, TelemetryConfig};
use crate::metrics::TraceMetrics;

/// The longest wait between two export attempts to a collector that keeps failing.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// Hands sampled spans to the queue as they end.
#[derive(Debug)]
pub(super) struct QueueProcessor {
    queue: mpsc::Sender<SpanData>,
    /// Spans waiting that make a batch: the exporter is woken from then on.
    batch_size: usize,
    batch_ready: Arc<Notify>,
    /// `dropped{reason="queue_full"}`, resolved once: it is counted per span.
    queue_full: IntCounter,
}

/// The exporter's end of the queue.
pub(super) struct Queue {
    spans: mpsc::Receiver<SpanData>,
    batch_ready: Arc<Notify>,
}

impl QueueProcessor {
    pub(super) fn new(capacity: usize, batch_size: usize, dropped: IntCounterVec) -> (Self, Queue) {
        let (queue, spans) = mpsc::channel(capacity.max(1));
        let batch_ready = Arc::new(Notify::new());
        let processor = QueueProcessor {
            queue,
            batch_size: batch_size.max(1),
            batch_ready: batch_ready.clone(),
            queue_full: dropped.with_label_values(&["queue_full"]),
        };
        (processor, Queue { spans, batch_ready })
    }
}

impl SpanProcessor for QueueProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        match self.queue.try_send(span) {
            Ok(()) => {
                if self.queue.max_capacity() - self.queue.capacity() >= self.batch_size {
                    self.batch_ready.notify_one();
                }
            }
            Err(_) => self.queue_full.inc(),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The background task that empties the queue.
pub struct TraceExport {
    config: TelemetryConfig,
    resource: Resource,
    queue: Mutex<Option<Queue>>,
    metrics: TraceMetrics,
}

impl TraceExport {
    pub(super) fn new(
        config: TelemetryConfig,
        resource: Resource,
        queue: Queue,
        metrics: TraceMetrics,
    ) -> Self {
        TraceExport {
            config,
            resource,
            queue: Mutex::new(Some(queue)),
            metrics,
        }
    }
}

#[async_trait]
impl BackgroundService for TraceExport {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut queue) = self.queue.lock().ok().and_then(|mut q| q.take()) else {
            return;
        };
        // Built here: the gRPC channel needs the runtime this service runs on.
        let mut exporter = match exporter(&self.config) {
            Ok(e) => e,
            Err(e) => {
                // The config check accepted the endpoint, so this is unexpected; spans made
                // from now on are dropped (and counted) as the queue closes.
                tracing::error!(error = %e, "cannot set up trace export; no spans will be sent");
                return;
            }
        };
        exporter.set_resource(&self.resource);
        let mut shipper = Shipper {
            exporter,
            metrics: &self.metrics,
            timeout: self.config.timeout,
            failing_since: None,
            last_warning: None,
        };
        let size = self.config.batch_size;
        let mut pause = Duration::ZERO;
        let mut tick = tokio::time::interval(self.config.export_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = queue.batch_ready.notified() => {}
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            // Everything waiting goes, a batch at a time.
            let mut sent = true;
            loop {
                let batch = take(&mut queue.spans, size);
                if batch.is_empty() {
                    break;
                }
                let last = batch.len() < size;
                sent = shipper.ship(batch).await;
                if !sent || last {
                    break;
                }
            }
            // A collector that is down gets one batch per pause, doubling up to a limit: the
            // queue fills meanwhile and new spans are dropped where they end, which costs
            // nothing, instead of being encoded again and again for nobody.
            pause = if sent {
                Duration::ZERO
            } else {
                (pause * 2).clamp(self.config.export_interval, MAX_PAUSE)
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
        // Shutting down: what is queued now goes out, within one timeout per batch; not to a
        // collector that just failed, which would only hold the exit up.
        if !pause.is_zero() {
            let lost = queue.spans.len() as u64;
            self.metrics
                .dropped
                .with_label_values(&["export_failed"])
                .inc_by(lost);
            return;
        }
        loop {
            let batch = take(&mut queue.spans, size);
            if batch.is_empty() || !shipper.ship(batch).await {
                break;
            }
        }
    }
}

/// Up to `size` queued spans, without waiting.
fn take(spans: &mut mpsc::Receiver<SpanData>, size: usize) -> Vec<SpanData> {
    let mut batch = Vec::with_capacity(size.min(spans.len()));
    while batch.len() < size {
        match spans.try_recv() {
            Ok(span) => batch.push(span),
            Err(_) => break,
        }
    }
    batch
}

struct Shipper<'a> {
    exporter: opentelemetry_otlp::SpanExporter,
    metrics: &'a TraceMetrics,
    timeout: Duration,
    failing_since: Option<Instant>,
    last_warning: Option<Instant>,
}

impl Shipper<'_> {
    /// Exports one batch; a failure loses it (counted) and is logged at most once a minute.
    /// Returns whether the collector took it.
    async fn ship(&mut self, batch: Vec<SpanData>) -> bool {
        let n = batch.len() as u64;
        let outcome = tokio::time::timeout(self.timeout, self.exporter.export(batch)).await;
        let problem = match outcome {
            Ok(Ok(())) => {
                self.metrics.exported.inc_by(n);
                if self.failing_since.take().is_some() {
                    tracing::info!("trace export works again");
                    self.last_warning = None;
                }
                return true;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        self.metrics
            .dropped
            .with_label_values(&["export_failed"])
            .inc_by(n);
        self.failing_since.get_or_insert_with(Instant::now);
        if self
            .last_warning
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.last_warning = Some(Instant::now());
            tracing::warn!(error = %problem, spans = n, "cannot export traces; dropping them");
        }
        false
    }
}

fn exporter(
    config: &TelemetryConfig,
) -> Result<opentelemetry_otlp::SpanExporter, opentelemetry_otlp::ExporterBuildError> {
    let url = config
        .export_url()
        .map(|u| u.as_str().to_string())
        .unwrap_or_default();
    match config.protocol {
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(config.timeout)
            .with_headers(
                config
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect(),
            )
            .build(),
        OtlpProtocol::Grpc => {
            let mut headers = http::HeaderMap::new();
            for (k, v) in &config.headers {
                // Checked by the config: both parse.
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    http::HeaderValue::from_str(v.expose()),
                ) {
                    headers.insert(name, value);
                }
            }
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url.clone())
                .with_timeout(config.timeout)
                .with_metadata(
                    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers),
                );
            if url.starts_with("https:") {
                builder = builder.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_native_roots(),
                );
            }
            builder.build()
        }
    }
}
