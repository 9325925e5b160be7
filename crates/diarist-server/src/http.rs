//! The HTTP side of the service: reading a request head under limits, plain responses, the
//! WebSocket upgrade answer, and the Prometheus metrics text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use diarist_engine::stats::Stats;
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

/// The `101 Switching Protocols` answer to a WebSocket upgrade with key `key`.
pub fn upgrade_response(key: &str) -> Vec<u8> {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// Counters of the whole service.
#[derive(Default)]
pub struct Metrics {
    /// Sessions open now.
    pub sessions_active: AtomicU64,
    /// Sessions opened since start.
    pub sessions_total: AtomicU64,
    /// Connections refused: bad token.
    pub refused_unauthorized: AtomicU64,
    /// Connections refused: too many sessions or shutting down.
    pub refused_busy: AtomicU64,
    /// Samples received at 16 kHz.
    pub samples_received: AtomicU64,
    /// Samples given a final label.
    pub samples_final: AtomicU64,
    errors: [AtomicU64; ErrorCode::ALL.len()],
}

impl Metrics {
    /// Counts an error sent to a client.
    pub fn error(&self, code: ErrorCode) {
        let i = ErrorCode::ALL
            .iter()
            .position(|c| *c == code)
            .expect("every code is listed");
        self.errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of the counters and of the engine's stage histograms.
    pub fn render(&self, stats: &Stats) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "diarist_sessions_active",
            "gauge",
            "Sessions open now.",
            get(&self.sessions_active).to_string(),
        );
        metric(
            "diarist_sessions_total",
            "counter",
            "Sessions opened since the server started.",
            get(&self.sessions_total).to_string(),
        );
        metric(
            "diarist_audio_seconds_received_total",
            "counter",
            "Seconds of audio received.",
            format!("{}", get(&self.samples_received) as f64 / 16_000.0),
        );
        metric(
            "diarist_audio_seconds_final_total",
            "counter",
            "Seconds of audio given a final speaker label.",
            format!("{}", get(&self.samples_final) as f64 / 16_000.0),
        );
        let _ = writeln!(
            out,
            "# HELP diarist_connections_refused_total Connections refused before a session.\n# TYPE diarist_connections_refused_total counter"
        );
        let _ = writeln!(
            out,
            "diarist_connections_refused_total{{reason=\"unauthorized\"}} {}\ndiarist_connections_refused_total{{reason=\"busy\"}} {}",
            get(&self.refused_unauthorized),
            get(&self.refused_busy)
        );
        let _ = writeln!(
            out,
            "# HELP diarist_errors_total Errors sent to clients, by code.\n# TYPE diarist_errors_total counter"
        );
        for (code, n) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "diarist_errors_total{{code=\"{}\"}} {}",
                code.as_str(),
                get(n)
            );
        }
        let _ = writeln!(
            out,
            "# HELP diarist_stage_seconds Latency of each pipeline stage.\n# TYPE diarist_stage_seconds summary"
        );
        let summary = stats.summary();
        for s in summary.iter().filter(|s| s.unit == "ms") {
            let stage = s.stage.replace(' ', "_");
            for (q, v) in [
                ("0.5", s.p50),
                ("0.95", s.p95),
                ("0.99", s.p99),
                ("1", s.max),
            ] {
                let _ = writeln!(
                    out,
                    "diarist_stage_seconds{{stage=\"{stage}\",quantile=\"{q}\"}} {}",
                    v / 1000.0
                );
            }
            let _ = writeln!(
                out,
                "diarist_stage_seconds_count{{stage=\"{stage}\"}} {}",
                s.count
            );
        }
        for s in summary.iter().filter(|s| s.unit != "ms") {
            let name = format!("diarist_{}", s.stage.replace(' ', "_"));
            let _ = writeln!(
                out,
                "# HELP {name} Distribution of the {} ({}).\n# TYPE {name} summary",
                s.stage, s.unit
            );
            for (q, v) in [
                ("0.5", s.p50),
                ("0.95", s.p95),
                ("0.99", s.p99),
                ("1", s.max),
            ] {
                let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {v}");
            }
            let _ = writeln!(out, "{name}_count {}", s.count);
        }
        out
    }
}
