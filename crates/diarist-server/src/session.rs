//! One client session: protocol v1 over a WebSocket, audio into a stream of the shared engine,
//! its events back out, transcript segments attributed to speakers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use diarist_audio::AudioWriter;
use diarist_core::rttm::Turn;
use diarist_core::transcript::speaker_of;
use diarist_engine::Event;
use diarist_engine::stream::TurnState;
use diarist_pii::{PiiConfig, TaggerPool};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::protocol::{ClientMessage, EndTotals, ErrorCode, ServerMessage, Start, parse_start};
use crate::server::Shared;

const RATE: f64 = 16_000.0;

/// The sending half, with the send timeout and the error counters.
struct Out<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// The session's id, for the log.
    session: u64,
    timeout: Duration,
    shared: Arc<Shared>,
    /// The client is gone or stopped reading: nothing more is sent.
    dead: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Out<S> {
    async fn send(&mut self, msg: &ServerMessage) {
        if self.dead {
            return;
        }
        let text = serde_json::to_string(msg).expect("messages serialise");
        match tokio::time::timeout(self.timeout, self.sink.send(Message::text(text))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::info!(session = self.session, error = %e, "the client is gone: its audio is still diarized");
                self.dead = true;
            }
            Err(_) => {
                // The client stopped reading: it is dropped, its audio is still diarized.
                tracing::warn!(
                    session = self.session,
                    "the client stopped reading: dropped, its audio is still diarized"
                );
                self.shared.metrics.error(ErrorCode::SlowConsumer);
                self.dead = true;
            }
        }
    }

    async fn error(&mut self, code: ErrorCode, message: impl Into<String>, fatal: bool) {
        self.shared.metrics.error(code);
        let message = message.into();
        tracing::warn!(
            session = self.session,
            code = code.as_str(),
            fatal,
            "{message}"
        );
        self.send(&ServerMessage::Error {
            code,
            message,
            fatal,
        })
        .await;
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        if self.dead {
            return;
        }
        let frame = CloseFrame {
            code,
            reason: reason.to_string().into(),
        };
        let _ =
            tokio::time::timeout(self.timeout, self.sink.send(Message::Close(Some(frame)))).await;
        self.dead = true;
    }
}

/// The PII taggers every session shares (a pool of worker threads behind a bounded queue), with
/// the redaction policy.
#[derive(Clone)]
pub struct Redaction {
    pool: Arc<TaggerPool>,
    policy: Arc<PiiConfig>,
}

impl Redaction {
    /// Shares the taggers of `pool` between sessions; `policy` says what is hidden and how.
    pub fn new(pool: TaggerPool, policy: PiiConfig) -> Self {
        Self {
            pool: Arc::new(pool),
            policy: Arc::new(policy),
        }
    }

    /// `text` with its personal data hidden. If tagging fails the whole text is hidden: personal
    /// data never leaves unredacted.
    async fn redact(&self, text: String, session: u64) -> String {
        match self.pool.tag(text).await {
            Ok((text, entities)) => diarist_pii::redact(&text, &entities, &self.policy),
            Err(e) => {
                tracing::warn!(session, error = %e, "PII tagging failed: the transcript is masked");
                self.policy.mask.clone()
            }
        }
    }
}

/// A transcript segment waiting for its stretch to become final.
struct PendingTranscript {
    start: f64,
    end: f64,
    text: String,
}

/// Speaker turns heard so far, for attributing transcripts.
#[derive(Default)]
struct Turns {
    closed: Vec<Turn>,
    /// Turns still going on, by speaker.
    open: HashMap<String, Turn>,
    /// First sample not final yet.
    frontier: u64,
}

impl Turns {
    fn take(&mut self, e: &Event) {
        match e {
            Event::Turn {
                status,
                speaker,
                start,
                end,
                ..
            } => {
                if *status == TurnState::Ended {
                    self.open.remove(speaker);
                    self.closed.push(Turn {
                        start: *start,
                        end: *end,
                        speaker: speaker.clone(),
                    });
                } else {
                    let turn = Turn {
                        start: *start,
                        end: *end,
                        speaker: speaker.clone(),
                    };
                    self.open.insert(speaker.clone(), turn);
                }
                self.frontier = self.frontier.max(*end);
            }
            Event::Tentative { from, .. } => self.frontier = self.frontier.max(*from),
            _ => {}
        }
    }

    /// The speaker who talks most in `[start, end)` samples.
    fn speaker(&self, start: u64, end: u64) -> Option<String> {
        let turns = self.closed.iter().chain(self.open.values());
        speaker_of(turns, start, end, 0).map(str::to_string)
    }
}

/// Why the audio of a session stopped.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// Still taking audio.
    Open,
    /// The client sent `stop` (or hit a fatal limit): flush what is pending, then end.
    Stopping,
    /// The writer is dropped: waiting for the engine's summary.
    Draining,
}

/// Runs a session to its end.
pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    id: u64,
) {
    let (sink, mut source) = ws.split();
    let mut out = Out {
        sink,
        session: id,
        timeout: Duration::from_secs_f64(shared.config.send_timeout_secs),
        shared: shared.clone(),
        dead: false,
    };
    let idle = Duration::from_secs_f64(shared.config.idle_timeout_secs);
    let mut shutdown = shared.shutdown.clone();
    // Before `start`.
    let Start {
        mut audio,
        options,
        redact,
    } = loop {
        let msg = tokio::select! {
            m = source.next() => m,
            _ = tokio::time::sleep(idle) => {
                out.error(ErrorCode::IdleTimeout, "no start message", true).await;
                out.close(CloseCode::Policy, "idle").await;
                return;
            }
            _ = stopped(&mut shutdown) => {
                out.error(ErrorCode::ShuttingDown, "the server is shutting down", true).await;
                out.close(CloseCode::Away, "shutting down").await;
                return;
            }
        };
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
            Some(Ok(Message::Binary(_))) => {
                out.error(ErrorCode::NotStarted, "audio before start", false)
                    .await
            }
            Some(Ok(Message::Text(t))) => match parse_start(&t) {
                Ok(Some(start)) => break start,
                Ok(None) => {
                    out.error(ErrorCode::NotStarted, "send start first", false)
                        .await
                }
                Err((code, m)) => out.error(code, m, false).await,
            },
            Some(Ok(_)) => {}
        }
    };
    let redaction = match (redact, &shared.redaction) {
        (Some(true), None) => {
            out.error(
                ErrorCode::BadStart,
                "this server has no PII tagger: redact must be false",
                true,
            )
            .await;
            out.close(CloseCode::Policy, "bad start").await;
            return;
        }
        (Some(false), _) | (_, None) => None,
        (_, Some(r)) => Some(r.clone()),
    };
    let (writer, stream) = match shared.engine.open(options) {
        Ok(s) => s,
        Err(e) => {
            out.error(ErrorCode::BadStart, e.to_string(), true).await;
            out.close(CloseCode::Policy, "bad start").await;
            return;
        }
    };
    // The engine's events reach this task through a bounded channel.
    let (tx, mut events) = mpsc::channel::<Event>(256);
    let forwarder = std::thread::Builder::new()
        .name(format!("diarist-session-{id}"))
        .spawn(move || {
            for e in stream.events().iter() {
                if tx.blocking_send(e).is_err() {
                    break;
                }
            }
            let _ = stream.wait();
        });
    if forwarder.is_err() {
        out.error(ErrorCode::Internal, "cannot start the session", true)
            .await;
        return;
    }
    tracing::info!(session = id, "session started");
    out.send(&ServerMessage::Ready {
        session: id,
        protocol: 1,
        sample_rate: RATE as u32,
    })
    .await;
    let mut writer: Option<AudioWriter> = Some(writer);
    let mut ending = Ending::Open;
    let mut pending: VecDeque<f32> = VecDeque::new();
    let mut scratch = Vec::new();
    let mut received = 0u64;
    let max_samples = (shared.config.max_session_secs * RATE) as u64;
    let mut turns = Turns::default();
    let mut transcripts: VecDeque<PendingTranscript> = VecDeque::new();
    let mut attributed = 0u64;
    let mut warned_non_finite = false;
    let mut last_input = Instant::now();
    let stats_every = (shared.config.stats_interval_secs > 0.0)
        .then(|| Duration::from_secs_f64(shared.config.stats_interval_secs));
    let mut next_stats = stats_every.map(|d| Instant::now() + d);
    loop {
        // Hand pending audio to the engine; when it is behind, the socket is not read.
        if let Some(w) = writer.as_mut() {
            while !pending.is_empty() {
                let (a, _) = pending.as_slices();
                match w.push_some(a) {
                    Ok(0) => break,
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(_) => {
                        pending.clear();
                        break;
                    }
                }
            }
            if ending == Ending::Stopping && pending.is_empty() {
                writer = None;
                ending = Ending::Draining;
            }
        }
        let reading = ending == Ending::Open && pending.is_empty() && !out.dead;
        let backlog = !pending.is_empty() && writer.is_some();
        tokio::select! {
            biased;
            e = events.recv() => {
                let Some(e) = e else {
                    out.error(ErrorCode::Internal, "the stream ended without a summary", true).await;
                    break;
                };
                turns.take(&e);
                if let Event::Summary(s) = &e {
                    turns.frontier = u64::MAX;
                    attributed += flush_transcripts(&mut out, &mut transcripts, &turns, redaction.as_ref()).await;
                    shared.metrics.samples_final.fetch_add(s.samples_final, Ordering::Relaxed);
                    out.send(&ServerMessage::End(EndTotals {
                        samples_received: received,
                        samples_processed: s.samples_final,
                        samples_lost: s.samples_lost,
                        speakers: s.speakers.clone(),
                        transcripts: attributed,
                    })).await;
                    out.close(CloseCode::Normal, "end").await;
                    tracing::info!(session = id, seconds = s.samples_final as f64 / RATE, speakers = s.speakers.len(), "session ended");
                    break;
                }
                // A server never pushes live audio, so there is no overload; the summary is `end`.
                if let Ok(m) = ServerMessage::try_from(e) {
                    out.send(&m).await;
                }
                attributed += flush_transcripts(&mut out, &mut transcripts, &turns, redaction.as_ref()).await;
            }
            _ = tokio::time::sleep(Duration::from_millis(2)), if backlog => {}
            msg = source.next(), if reading => {
                last_input = Instant::now();
                match msg {
                    None | Some(Ok(Message::Close(_))) => {
                        // The client went away: what it sent is still diarized.
                        out.dead = true;
                        ending = Ending::Stopping;
                    }
                    Some(Err(e)) => {
                        use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
                        let code = match &e {
                            Error::Capacity(_) => Some((ErrorCode::FrameTooLarge, CloseCode::Size)),
                            Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
                            Error::Protocol(_) | Error::Utf8(_) => Some((ErrorCode::BadMessage, CloseCode::Protocol)),
                            // Reset, closed or failed: the client is gone.
                            _ => None,
                        };
                        match code {
                            Some((code, close)) => {
                                out.error(code, e.to_string(), true).await;
                                out.close(close, code.as_str()).await;
                            }
                            None => out.dead = true,
                        }
                        ending = Ending::Stopping;
                    }
                    Some(Ok(Message::Binary(b))) => {
                        scratch.clear();
                        match audio.decode(&b, &mut scratch) {
                            Ok(bad) => {
                                if bad > 0 && !warned_non_finite {
                                    warned_non_finite = true;
                                    out.error(ErrorCode::NonFiniteSamples,
                                        format!("{bad} non-finite samples became silence"), false).await;
                                }
                                let room = max_samples.saturating_sub(received) as usize;
                                let take = scratch.len().min(room);
                                received += take as u64;
                                shared.metrics.samples_received.fetch_add(take as u64, Ordering::Relaxed);
                                pending.extend(scratch[..take].iter().copied());
                                if take < scratch.len() {
                                    out.error(ErrorCode::SessionTooLong,
                                        format!("sessions end after {} s of audio", shared.config.max_session_secs), true).await;
                                    ending = Ending::Stopping;
                                }
                            }
                            Err(m) => out.error(ErrorCode::BadAudio, m, false).await,
                        }
                    }
                    Some(Ok(Message::Text(t))) => match serde_json::from_str::<ClientMessage>(&t) {
                        Ok(ClientMessage::Stop) => {
                            scratch.clear();
                            audio.finish(&mut scratch);
                            received += scratch.len() as u64;
                            shared.metrics.samples_received.fetch_add(scratch.len() as u64, Ordering::Relaxed);
                            pending.extend(scratch.iter().copied());
                            ending = Ending::Stopping;
                        }
                        Ok(ClientMessage::Transcript { start, end, text }) => {
                            if transcripts.len() >= shared.config.max_pending_transcripts {
                                out.error(ErrorCode::BadMessage, format!(
                                    "{} transcript segments already wait for their audio to become final; this one is dropped",
                                    transcripts.len()), false).await;
                            } else if start.is_finite() && end.is_finite() && start >= 0.0 && end >= start {
                                transcripts.push_back(PendingTranscript { start, end, text });
                                attributed += flush_transcripts(&mut out, &mut transcripts, &turns, redaction.as_ref()).await;
                            } else {
                                out.error(ErrorCode::BadMessage, "transcript times must satisfy 0 <= start <= end", false).await;
                            }
                        }
                        Ok(ClientMessage::Start { .. }) => {
                            out.error(ErrorCode::AlreadyStarted, "the session has started", false).await;
                        }
                        Err(e) => out.error(ErrorCode::BadMessage, e.to_string(), false).await,
                    },
                    Some(Ok(_)) => {}
                }
            }
            _ = sleep_until(last_input + idle), if reading => {
                out.error(ErrorCode::IdleTimeout, "no audio or message for the idle timeout", true).await;
                ending = Ending::Stopping;
            }
            _ = stopped(&mut shutdown), if ending == Ending::Open => {
                out.error(ErrorCode::ShuttingDown, "the server is shutting down; final results follow", true).await;
                ending = Ending::Stopping;
            }
            _ = sleep_until(next_stats.unwrap_or_else(Instant::now)), if next_stats.is_some() => {
                next_stats = stats_every.map(|d| Instant::now() + d);
                out.send(&ServerMessage::Stats { samples_received: received, samples_final: turns.frontier.min(received) }).await;
            }
        }
    }
    drop(writer);
}

/// Completes once the server is shutting down.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Sends the transcripts whose stretch is final; returns how many.
async fn flush_transcripts<S: AsyncRead + AsyncWrite + Unpin>(
    out: &mut Out<S>,
    pending: &mut VecDeque<PendingTranscript>,
    turns: &Turns,
    redaction: Option<&Redaction>,
) -> u64 {
    let mut n = 0;
    while let Some(t) = pending.front() {
        let (start, end) = ((t.start * RATE) as u64, (t.end * RATE).ceil() as u64);
        if end > turns.frontier {
            break;
        }
        let t = pending.pop_front().expect("front exists");
        let text = match redaction {
            Some(r) => r.redact(t.text, out.session).await,
            None => t.text,
        };
        out.send(&ServerMessage::Transcript {
            start: t.start,
            end: t.end,
            speaker: turns.speaker(start, end.max(start + 1)),
            text,
            redacted: redaction.is_some(),
        })
        .await;
        n += 1;
    }
    n
}
