//! The HTTP side of the service: reading a request head under limits, plain responses, the
//! WebSocket upgrade answer, and the service's Prometheus metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use diarist_engine::stats::{Stage, Stats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::protocol::ErrorCode;

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Head {
    /// Method, such as `GET`.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query string, without `?`.
    pub query: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The connection closed or failed first.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The head is larger than the limit.
    #[error("request head too large")]
    TooLarge,
    /// Not HTTP.
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Reads one request head of at most `max` bytes; returns it and any bytes read past it.
pub async fn read_head(stream: &mut TcpStream, max: usize) -> Result<(Head, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HeadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let target = req.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let head = Head {
                    method: req.method.unwrap_or("").to_string(),
                    path: path.to_string(),
                    query: query.to_string(),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).trim().to_string(),
                            )
                        })
                        .collect(),
                };
                return Ok((head, buf[len..].to_vec()));
            }
            Ok(httparse::Status::Partial) if buf.len() < max => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::TooLarge),
            Err(e) => return Err(HeadError::Malformed(e.to_string())),
        }
    }
}

/// A complete HTTP/1.1 response that closes the connection.
pub fn response(status: u16, reason: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A `503 Service Unavailable` answer with a `Retry-After` of `retry_after` seconds.
pub fn unavailable(retry_after: u64, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: {retry_after}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The `101 Switching Protocols` answer to a WebSocket upgrade with key `key`.
pub fn upgrade_response(key: &str) -> Vec<u8> {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// Why a connection or a `start` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or a wrong one.
    Unauthorized,
    /// Every session slot taken.
    Full,
    /// The server is draining (SIGTERM): it takes no new sessions.
    Draining,
    /// The engine's queue or the CPU is above the configured level.
    Overloaded,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::Unauthorized,
        Refusal::Full,
        Refusal::Draining,
        Refusal::Overloaded,
    ];

    /// The refusal as the `reason` label of `diarist_connections_refused_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::Full => "full",
            Refusal::Draining => "draining",
            Refusal::Overloaded => "overloaded",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

/// Samples per second of the audio sessions hand the engine.
const RATE: f64 = diarist_core::SAMPLE_RATE as f64;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const METRICS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The service's metrics (`prometheus-client`): the counters and gauges sessions update, and the
/// engine's latency and batching histograms, read from its hdrhistograms at each scrape.
pub struct Metrics {
    registry: Registry,
    sessions_active: Gauge,
    sessions_opened: Counter,
    audio_received: Counter<f64, AtomicU64>,
    audio_final: Counter<f64, AtomicU64>,
    audio_lost: Counter<f64, AtomicU64>,
    refused: [Counter; Refusal::ALL.len()],
    errors: [Counter; ErrorCode::ALL.len()],
    resumed: Counter,
    draining: Gauge,
    engine_queued: Gauge,
    stats: Arc<Stats>,
}

impl Metrics {
    /// The metrics of a server with `capacity` session slots whose engine records into `stats`.
    pub fn new(capacity: usize, stats: Arc<Stats>) -> Self {
        let mut registry = Registry::with_prefix("diarist");
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Sessions open now",
            sessions_active.clone(),
        );
        registry.register(
            "sessions_capacity",
            "Sessions the server takes at once (max_sessions)",
            ConstGauge::new(i64::try_from(capacity).unwrap_or(i64::MAX)),
        );
        let sessions_opened = Counter::default();
        let help = "Sessions opened since the server started";
        registry.register("sessions", help, sessions_opened.clone());
        let audio_received = Counter::default();
        let help = "Audio received from clients";
        registry.register_with_unit(
            "audio_received",
            help,
            Unit::Seconds,
            audio_received.clone(),
        );
        let audio_final = Counter::default();
        let help = "Audio given a final speaker label";
        registry.register_with_unit("audio_final", help, Unit::Seconds, audio_final.clone());
        let audio_lost = Counter::default();
        let help = "Audio lost because the engine could not keep up (diarized as silence)";
        registry.register_with_unit("audio_lost", help, Unit::Seconds, audio_lost.clone());
        let family = Family::<ReasonLabel, Counter>::default();
        let refused =
            Refusal::ALL.map(|r| family.get_or_create_owned(&ReasonLabel { reason: r.as_str() }));
        let help = "Connections (HTTP 503 or 401) and starts (`busy`) refused, by reason";
        registry.register("connections_refused", help, family);
        let resumed = Counter::default();
        let help = "Sessions resumed from a checkpoint";
        registry.register("sessions_resumed", help, resumed.clone());
        let draining = Gauge::default();
        let help = "1 while the server drains after SIGTERM, else 0";
        registry.register("draining", help, draining.clone());
        let engine_queued = Gauge::default();
        let help = "Windows waiting in the engine's batcher for a free worker (the engine's load)";
        registry.register("engine_queued_jobs", help, engine_queued.clone());
        let family = Family::<CodeLabel, Counter>::default();
        let errors =
            ErrorCode::ALL.map(|c| family.get_or_create_owned(&CodeLabel { code: c.as_str() }));
        registry.register("errors", "Errors sent to clients, by code", family);
        registry.register_collector(Box::new(EngineHistograms(stats.clone())));
        Self {
            registry,
            sessions_active,
            sessions_opened,
            audio_received,
            audio_final,
            audio_lost,
            refused,
            errors,
            resumed,
            draining,
            engine_queued,
            stats,
        }
    }

    /// Windows waiting in the engine's batcher now.
    pub fn engine_queued(&self) -> u64 {
        self.stats.queued()
    }

    /// Marks the server as draining.
    pub fn set_draining(&self) {
        self.draining.set(1);
    }

    /// Counts a session resumed from a checkpoint.
    pub fn session_resumed(&self) {
        self.resumed.inc();
    }

    /// Counts `samples` (16 kHz) lost to overload.
    pub fn lost(&self, samples: u64) {
        self.audio_lost.inc_by(samples as f64 / RATE);
    }

    /// Takes a session slot if fewer than `max` are taken; true when it did.
    pub fn take_slot(&self, max: usize) -> bool {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.sessions_active
            .inner()
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a slot taken with [`Metrics::take_slot`] back.
    pub fn release_slot(&self) {
        self.sessions_active.inner().fetch_sub(1, Ordering::AcqRel);
    }

    /// Session slots taken now.
    pub fn sessions_active(&self) -> usize {
        usize::try_from(self.sessions_active.get()).unwrap_or(0)
    }

    /// Counts a session opened.
    pub fn session_opened(&self) {
        self.sessions_opened.inc();
    }

    /// Counts a connection refused before a session.
    pub fn refused(&self, why: Refusal) {
        self.refused[why as usize].inc();
    }

    /// Counts `samples` (16 kHz) received from a client.
    pub fn received(&self, samples: u64) {
        self.audio_received.inc_by(samples as f64 / RATE);
    }

    /// Counts `samples` (16 kHz) given a final label.
    pub fn finalised(&self, samples: u64) {
        self.audio_final.inc_by(samples as f64 / RATE);
    }

    /// Counts an error sent to a client.
    pub fn error(&self, code: ErrorCode) {
        let i = ErrorCode::ALL
            .iter()
            .position(|c| *c == code)
            .expect("every code is listed");
        self.errors[i].inc();
    }

    /// Every metric in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        self.engine_queued
            .set(i64::try_from(self.stats.queued()).unwrap_or(i64::MAX));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String never fails");
        out
    }
}

/// One histogram family read from the engine's stages.
struct Exposed {
    /// Its name after `diarist_` and before the unit.
    name: &'static str,
    /// Its unit: seconds, or none for counts.
    unit: Option<Unit>,
    /// Its help text, a sentence.
    help: &'static str,
    /// Upper bounds of its buckets, in `unit`.
    bounds: &'static [f64],
    /// Recorded values per `unit`: 10⁶ for times (µs), 1 for counts.
    scale: f64,
    /// The stages it reads, each with its `stage` label (none for a family of one stage).
    stages: &'static [(Stage, Option<&'static str>)],
}

/// The model stages take milliseconds, queue waits up to seconds under load.
const STAGE_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Audio becomes final about 3 s after it arrives; a saturated server takes tens of seconds.
const LATENCY_BOUNDS: [f64; 16] = [
    0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0, 60.0,
];
const BATCH_BOUNDS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
const DEPTH_BOUNDS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

static ENGINE_HISTOGRAMS: [Exposed; 4] = [
    Exposed {
        name: "stage",
        unit: Some(Unit::Seconds),
        help: "Time of each pipeline stage: a job's wait in the batcher's queue, a window's segmentation and embedding run, pooling one voice, clustering one window.",
        bounds: &STAGE_BOUNDS,
        scale: 1e6,
        stages: &[
            (Stage::QueueWait, Some("queue_wait")),
            (Stage::Segmentation, Some("segmentation")),
            (Stage::Embedding, Some("embedding")),
            (Stage::Pooling, Some("pooling")),
            (Stage::Clustering, Some("clustering")),
        ],
    },
    Exposed {
        name: "final_label_latency",
        unit: Some(Unit::Seconds),
        help: "From a stretch of audio's arrival to its final speaker label, one value per 270-sample frame.",
        bounds: &LATENCY_BOUNDS,
        scale: 1e6,
        stages: &[(Stage::EndToEnd, None)],
    },
    Exposed {
        name: "batch_size",
        unit: None,
        help: "Windows per model run.",
        bounds: &BATCH_BOUNDS,
        scale: 1.0,
        stages: &[(Stage::BatchSize, None)],
    },
    Exposed {
        name: "queue_depth",
        unit: None,
        help: "Jobs waiting in the batcher's queue each time it wakes (an empty queue is recorded as 1).",
        bounds: &DEPTH_BOUNDS,
        scale: 1.0,
        stages: &[(Stage::QueueDepth, None)],
    },
];

/// The engine's hdrhistograms, exposed as Prometheus histograms at fixed bucket bounds: counted
/// at each scrape, so the engine records into its histograms only and knows nothing of
/// Prometheus.
struct EngineHistograms(Arc<Stats>);

impl std::fmt::Debug for EngineHistograms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineHistograms")
    }
}

impl Collector for EngineHistograms {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        for e in &ENGINE_HISTOGRAMS {
            let mut family = encoder.encode_descriptor(
                e.name,
                e.help,
                e.unit.as_ref(),
                MetricType::Histogram,
            )?;
            for &(stage, label) in e.stages {
                match label {
                    Some(stage_label) => {
                        let label = StageLabel { stage: stage_label };
                        encode_stage(&mut family.encode_family(&label)?, &self.0, stage, e)?
                    }
                    None => encode_stage(&mut family, &self.0, stage, e)?,
                }
            }
        }
        Ok(())
    }
}

/// Writes `stage`'s values as a histogram at `e`'s bounds.
fn encode_stage(
    encoder: &mut MetricEncoder,
    stats: &Stats,
    stage: Stage,
    e: &Exposed,
) -> std::fmt::Result {
    let recorded: Vec<u64> = e
        .bounds
        .iter()
        .map(|b| (b * e.scale).round() as u64)
        .collect();
    let b = stats.buckets(stage, &recorded);
    let buckets: Vec<(f64, u64)> = e
        .bounds
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(b.counts)
        .collect();
    let none: Option<&HashMap<usize, Exemplar<NoLabelSet, f64>>> = None;
    encoder.encode_histogram(b.sum as f64 / e.scale, b.count, &buckets, none)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counters, gauges and one stage's histogram, line by line.
    #[test]
    fn metrics_render_counters_gauges_and_engine_histograms() {
        let stats = Arc::new(Stats::default());
        // 0.7 ms, 7 ms, 12 ms and 2 s of segmentation; a final label 3.2 s after its audio.
        for us in [700, 7_000, 12_000, 2_000_000] {
            stats.record(Stage::Segmentation, us);
        }
        stats.record(Stage::EndToEnd, 3_200_000);
        let metrics = Metrics::new(4, stats);
        assert!(metrics.take_slot(4));
        metrics.session_opened();
        metrics.received(24_000);
        metrics.finalised(16_000);
        metrics.refused(Refusal::Full);
        metrics.error(ErrorCode::BadMessage);
        metrics.error(ErrorCode::BadMessage);
        let text = metrics.render();
        for line in [
            "# TYPE diarist_sessions_active gauge",
            "diarist_sessions_active 1",
            "diarist_sessions_capacity 4",
            "# TYPE diarist_sessions_total counter",
            "diarist_sessions_total 1",
            "# TYPE diarist_audio_received_seconds_total counter",
            "diarist_audio_received_seconds_total 1.5",
            "diarist_audio_final_seconds_total 1.0",
            "diarist_connections_refused_total{reason=\"unauthorized\"} 0",
            "diarist_connections_refused_total{reason=\"full\"} 1",
            "diarist_errors_total{code=\"bad_message\"} 2",
            "diarist_errors_total{code=\"internal\"} 0",
            "# TYPE diarist_stage_seconds histogram",
            "diarist_stage_seconds_bucket{stage=\"segmentation\",le=\"0.0005\"} 0",
            "diarist_stage_seconds_bucket{stage=\"segmentation\",le=\"0.001\"} 1",
            "diarist_stage_seconds_bucket{stage=\"segmentation\",le=\"0.01\"} 2",
            "diarist_stage_seconds_bucket{stage=\"segmentation\",le=\"0.025\"} 3",
            "diarist_stage_seconds_bucket{stage=\"segmentation\",le=\"1\"} 3",
            "diarist_stage_seconds_bucket{stage=\"segmentation\",le=\"2.5\"} 4",
            "diarist_stage_seconds_bucket{stage=\"segmentation\",le=\"+Inf\"} 4",
            "diarist_stage_seconds_count{stage=\"segmentation\"} 4",
            "diarist_stage_seconds_bucket{stage=\"clustering\",le=\"+Inf\"} 0",
            "diarist_stage_seconds_count{stage=\"clustering\"} 0",
            "# TYPE diarist_final_label_latency_seconds histogram",
            "diarist_final_label_latency_seconds_bucket{le=\"3\"} 0",
            "diarist_final_label_latency_seconds_bucket{le=\"3.5\"} 1",
            "diarist_final_label_latency_seconds_count 1",
            "diarist_batch_size_count 0",
            "diarist_queue_depth_count 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
        for code in ErrorCode::ALL {
            let series = format!("diarist_errors_total{{code=\"{}\"}} ", code.as_str());
            assert!(text.contains(&series), "{series}");
        }
        let sum: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("diarist_stage_seconds_sum{stage=\"segmentation\"} "))
            .expect("a sum")
            .parse()
            .unwrap();
        assert!((sum - 2.0197).abs() < 2.0197e-3, "{sum}");
        assert!(!text.contains("summary") && !text.contains("quantile"));
        metrics.release_slot();
        assert_eq!(metrics.sessions_active(), 0);
    }
}
