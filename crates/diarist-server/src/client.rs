//! A protocol v1 client: streams 16 kHz mono audio to a server (at real time or as fast as the
//! server takes it) and hands every server message to a callback. With [`Resume`], it asks for
//! checkpoints, keeps the audio after the last watermark, and when the connection drops it
//! reconnects through the same URL, resumes from the checkpoint and sends the audio again from
//! the watermark; its output is stitched so that every sample is final exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::protocol::{ClientMessage, Encoding, EndTotals, ErrorCode, ServerMessage, StartOptions};
use crate::stitch::Stitcher;

const RATE: f64 = diarist_core::SAMPLE_RATE as f64;

/// Samples per binary frame (100 ms).
const FRAME: usize = 1600;

/// How to reach the server and what to send.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `ws://host:port/v1/stream`.
    pub url: String,
    /// Bearer token.
    pub token: String,
    /// Pace: `Some(1.0)` is real time; `None` sends as fast as the server reads.
    pub speed: Option<f64>,
    /// Session options of `start`.
    pub options: StartOptions,
    /// Resume on another instance when the connection drops (`None`: the run fails instead).
    pub resume: Option<Resume>,
}

/// How a client resumes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resume {
    /// Most audio kept past the last watermark, seconds: sending waits while this much is
    /// unconfirmed.
    pub buffer_secs: f64,
    /// Most connection attempts after a loss before the run fails.
    pub attempts: u32,
}

impl Default for Resume {
    fn default() -> Self {
        Self {
            buffer_secs: 30.0,
            attempts: 20,
        }
    }
}

/// Why a client run failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or the connection failed.
    #[error("connection: {0}")]
    Connect(String),
    /// The server refused the connection with this HTTP status (401: bad token).
    #[error("the server refused the connection: HTTP {0}")]
    Refused(u16),
    /// The server takes no new session now (HTTP 503 or a `busy` error): try after this long.
    #[error("the server is busy: retry after {retry_after_secs} s")]
    Busy {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The server ended the session with an error and no `end`.
    #[error("server error {}: {message}", code.as_str())]
    Server {
        /// Stable code.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// The server broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// The end of a run: the last session's totals, the fatal error that ended it early, if any,
/// and what resuming took.
#[derive(Debug, Clone, Serialize)]
pub struct Finished {
    /// Totals of the last session's `end` (its own counts).
    pub totals: EndTotals,
    /// A fatal error the server reported before `end`.
    pub error: Option<(ErrorCode, String)>,
    /// Samples of the audio (each sent at least once).
    pub samples_sent: u64,
    /// Samples final over every session (each once).
    pub samples_final: u64,
    /// Samples sent again after a resume.
    pub samples_resent: u64,
    /// Sessions resumed, and how long each took from the loss to `ready`, seconds.
    pub resumes: Vec<f64>,
}

impl Finished {
    /// Why the run ended before its audio did, when a fatal error ended it.
    pub fn ended_early(&self) -> Option<String> {
        (self.error.as_ref())
            .map(|(code, m)| format!("the session ended early: {}: {m}", code.as_str()))
    }
}

impl ClientError {
    /// Whether the server could not be reached or would not take the session (as opposed to
    /// failing during it).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Refused(_) | Self::Connect(_) | Self::Busy { .. }
        )
    }
}

/// What every connection of one run shares: the audio, the watermark and its waker.
struct Run {
    samples: Arc<[f32]>,
    watermark: AtomicU64,
    /// Where the next session's audio starts: the last checkpoint's `resend_from`.
    resend_from: AtomicU64,
    /// Samples sent by the current connection's sender, from the start.
    sent: AtomicU64,
    confirmed: Notify,
    begun: Instant,
}

/// How one connection ended.
enum Outcome {
    /// `end` came: the run is over.
    Ended(EndTotals, Option<(ErrorCode, String)>),
    /// The connection was lost before `end`.
    Lost(String),
}

/// Streams `samples` (16 kHz mono) to the server; every message goes to `on_message`.
pub async fn stream_samples(
    samples: Vec<f32>,
    opts: &ClientOptions,
    mut on_message: impl FnMut(&ServerMessage),
) -> Result<Finished, ClientError> {
    let run = Arc::new(Run {
        samples: samples.into(),
        watermark: AtomicU64::new(0),
        resend_from: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        confirmed: Notify::new(),
        begun: Instant::now(),
    });
    let mut stitch = Stitcher::new(opts.resume.is_some());
    let mut out = |m: &ServerMessage| on_message(m);
    let attempts = opts.resume.map_or(1, |r| r.attempts.max(1));
    let mut r = Resuming::default();
    loop {
        let from = run.resend_from.load(Ordering::SeqCst);
        let result = match open(opts, r.token.as_deref()).await {
            Ok(ws) => session(ws, opts, &run, from, &mut r, &mut stitch, &mut out).await,
            Err(e) => Err(e),
        };
        let why = match result {
            Ok(Outcome::Ended(totals, error)) => {
                return Ok(Finished {
                    samples_final: from + totals.samples_processed,
                    totals,
                    error,
                    samples_sent: run.samples.len() as u64,
                    samples_resent: r.resent,
                    resumes: r.times,
                });
            }
            Ok(Outcome::Lost(why)) if opts.resume.is_some() => {
                // Lost: what is held past the watermark comes again from the next session.
                stitch.cut(&mut out);
                let sent = run.sent.load(Ordering::SeqCst);
                r.resent += sent.saturating_sub(run.resend_from.load(Ordering::SeqCst));
                r.lost_at.get_or_insert_with(Instant::now);
                tracing::warn!(
                    watermark = stitch.watermark(),
                    "connection lost ({why}): resuming"
                );
                ClientError::Connect(why)
            }
            Ok(Outcome::Lost(why)) => return Err(ClientError::Connect(why)),
            Err(e @ (ClientError::Busy { .. } | ClientError::Connect(_)))
                if r.lost_at.is_some() =>
            {
                e
            }
            Err(e) => return Err(e),
        };
        r.failures += 1;
        if r.failures >= attempts {
            return Err(why);
        }
        let wait = match why {
            ClientError::Busy { retry_after_secs } => (retry_after_secs as f64).min(5.0),
            _ => (0.05 * f64::from(1u32 << r.failures.min(6))).min(2.0),
        };
        sleep(Duration::from_secs_f64(wait)).await;
    }
}

/// A run's state across its connections.
#[derive(Default)]
struct Resuming {
    /// The latest checkpoint token.
    token: Option<String>,
    /// When the connection was lost, until the next session says `ready`.
    lost_at: Option<Instant>,
    /// Failed attempts since the last `ready`.
    failures: u32,
    /// Seconds from each loss to the next `ready`.
    times: Vec<f64>,
    /// Samples sent again.
    resent: u64,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One connection attempt: the WebSocket and `start` (resuming `token` when there is one).
async fn open(opts: &ClientOptions, token: Option<&str>) -> Result<Ws, ClientError> {
    let mut request = (opts.url.as_str().into_client_request())
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    let bearer = format!("Bearer {}", opts.token)
        .parse()
        .map_err(|_| ClientError::Connect("the token is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", bearer);
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 503 => {
                let retry_after_secs = (r.headers().get("retry-after"))
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1);
                ClientError::Busy { retry_after_secs }
            }
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                ClientError::Refused(r.status().as_u16())
            }
            e => ClientError::Connect(e.to_string()),
        })?;
    let mut options = opts.options.clone();
    options.checkpoint |= opts.resume.is_some();
    // The run's latest checkpoint, else the one the caller resumes from, if any.
    options.resume = token.map(str::to_string).or(options.resume);
    let start = ClientMessage::Start {
        encoding: Encoding::PcmS16le,
        sample_rate: diarist_core::SAMPLE_RATE,
        channels: 1,
        options,
    };
    let text = serde_json::to_string(&start).expect("messages serialise");
    ws.send(Message::text(text))
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    Ok(ws)
}

/// Runs one session: sends the audio from `from` on its own task, passes messages through the
/// stitcher, keeps the latest checkpoint token, until `end` or a lost connection.
async fn session(
    ws: Ws,
    opts: &ClientOptions,
    run: &Arc<Run>,
    from: u64,
    r: &mut Resuming,
    stitch: &mut Stitcher,
    out: &mut impl FnMut(&ServerMessage),
) -> Result<Outcome, ClientError> {
    let (sink, mut source) = ws.split();
    // The sender runs on its own task so that a server slowing the audio down never stops this
    // task from reading events.
    let buffer = opts.resume.map(|r| (r.buffer_secs * RATE) as u64);
    let sender = tokio::spawn(send_audio(sink, run.clone(), from, opts.speed, buffer));
    let resumable = opts.resume.is_some();
    let outcome = receive(&mut source, run, (from, resumable), r, stitch, out).await;
    sender.abort();
    outcome
}

/// Reads the server's messages until `end` or the connection's loss. A `resumable` session
/// (its audio sent from `from`) that an instance going away ends before all of its audio is
/// final counts as lost, to be resumed elsewhere.
async fn receive(
    source: &mut SplitStream<Ws>,
    run: &Run,
    (from, resumable): (u64, bool),
    r: &mut Resuming,
    stitch: &mut Stitcher,
    out: &mut impl FnMut(&ServerMessage),
) -> Result<Outcome, ClientError> {
    let mut fatal = None;
    loop {
        let t = match source.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            // Gone before `end`: after a fatal error, that error (a shutdown or an internal
            // failure can be resumed from); else the connection was lost.
            gone => {
                let why = gone.and_then(Result::err).map_or_else(
                    || "the server closed before `end`".to_string(),
                    |e| e.to_string(),
                );
                return match fatal.take() {
                    Some((ErrorCode::ShuttingDown, m)) | Some((ErrorCode::Internal, m)) => {
                        Ok(Outcome::Lost(m))
                    }
                    Some((code, message)) => Err(ClientError::Server { code, message }),
                    None => Ok(Outcome::Lost(why)),
                };
            }
        };
        let msg: ServerMessage =
            serde_json::from_str(&t).map_err(|e| ClientError::Protocol(format!("{e}: {t}")))?;
        match &msg {
            ServerMessage::Ready { .. } => {
                r.failures = 0;
                if let Some(at) = r.lost_at.take() {
                    r.times.push(at.elapsed().as_secs_f64());
                }
            }
            ServerMessage::Checkpoint {
                samples_final,
                resend_from,
                token: t,
            } => {
                r.token = Some(t.clone());
                run.resend_from.store(*resend_from, Ordering::SeqCst);
                run.watermark.fetch_max(*samples_final, Ordering::SeqCst);
                run.confirmed.notify_waiters();
            }
            ServerMessage::Error {
                code: ErrorCode::Busy,
                retry_after_secs,
                ..
            } => {
                return Err(ClientError::Busy {
                    retry_after_secs: retry_after_secs.unwrap_or(1),
                });
            }
            ServerMessage::Error {
                code,
                message,
                fatal: true,
                ..
            } => fatal = Some((*code, message.clone())),
            _ => {}
        }
        if let ServerMessage::End(totals) = &msg {
            let short = from + totals.samples_processed < run.samples.len() as u64;
            if let Some((ErrorCode::ShuttingDown | ErrorCode::Internal, m)) = &fatal
                && short
                && resumable
                && r.token.is_some()
            {
                return Ok(Outcome::Lost(m.clone()));
            }
            let totals = totals.clone();
            stitch.push(msg, out);
            return Ok(Outcome::Ended(totals, fatal));
        }
        stitch.push(msg, out);
    }
}

/// Sends the run's audio from sample `from` at `speed` (each sample when it is due in the run's
/// timeline; late ones at once), at most `buffer` samples past the watermark, then `stop`.
async fn send_audio(
    mut sink: SplitSink<Ws, Message>,
    run: Arc<Run>,
    from: u64,
    speed: Option<f64>,
    buffer: Option<u64>,
) {
    let mut pos = from as usize;
    while pos < run.samples.len() {
        if let Some(speed) = speed {
            let at = Duration::from_secs_f64(pos as f64 / RATE / speed.max(1e-3));
            sleep_until(run.begun + at).await;
        }
        while let Some(b) = buffer {
            let confirmed = run.confirmed.notified();
            if (pos as u64) < run.watermark.load(Ordering::SeqCst) + b {
                break;
            }
            confirmed.await;
        }
        let end = (pos + FRAME).min(run.samples.len());
        let bytes: Vec<u8> = run.samples[pos..end]
            .iter()
            .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
            .collect();
        if sink.send(Message::binary(bytes)).await.is_err() {
            return;
        }
        pos = end;
        run.sent.store(pos as u64, Ordering::SeqCst);
    }
    let stop = serde_json::to_string(&ClientMessage::Stop).expect("messages serialise");
    let _ = sink.send(Message::text(stop)).await;
    // Keep the sink open until the server closes.
    std::future::pending::<()>().await;
}

/// [`stream_samples`] on a runtime of its own, for callers without one.
pub fn stream_samples_blocking(
    samples: Vec<f32>,
    opts: &ClientOptions,
    on_message: impl FnMut(&ServerMessage),
) -> Result<Finished, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ClientError::Connect(e.to_string()))?
        .block_on(stream_samples(samples, opts, on_message))
}
