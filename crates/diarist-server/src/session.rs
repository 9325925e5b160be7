//! One client session: protocol v1 over a WebSocket, audio into a stream of the shared engine,
//! its events back out, transcript segments attributed to speakers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use diarist_audio::AudioWriter;
use diarist_engine::{Event, FinalTurns, ResumeState, Stream};
use diarist_pii::{PiiConfig, TaggerPool};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::checkpoint::Checkpoint;
use crate::http::Refusal;
use crate::protocol::{
    ClientMessage, EndTotals, ErrorCode, FrameDecoder, ServerMessage, Start, parse_start,
};
use crate::server::Shared;

const RATE: f64 = diarist_core::SAMPLE_RATE as f64;

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
            retry_after_secs: None,
        })
        .await;
    }

    /// Refuses a `start` as `busy` (`why`), asking the client to retry after `retry_after`
    /// seconds, and closes the socket.
    async fn busy(&mut self, why: Refusal, retry_after: u64) {
        let m = &self.shared.metrics;
        m.refused(why);
        m.error(ErrorCode::Busy);
        tracing::warn!(
            session = self.session,
            reason = why.as_str(),
            "start refused: busy"
        );
        self.send(&ServerMessage::Error {
            code: ErrorCode::Busy,
            message: format!("the server takes no new session now ({})", why.as_str()),
            fatal: true,
            retry_after_secs: Some(retry_after),
        })
        .await;
        self.close(CloseCode::Again, "busy").await;
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

/// What woke a started session.
enum Wake {
    /// An engine event (`None`: the stream ended without a summary).
    Event(Option<Event>),
    /// The engine's ring has room again for the audio waiting.
    Room,
    /// The client's next message (`None`: it has gone).
    Message(Option<Result<Message, WsError>>),
    /// Nothing from the client for the idle timeout.
    Idle,
    /// The server is shutting down.
    Shutdown,
    /// Time for a `stats` message.
    Stats,
}

/// A started session: its engine stream and what it keeps between wake-ups.
struct Session<S> {
    out: Out<S>,
    shared: Arc<Shared>,
    id: u64,
    /// Where this session's audio starts in the client's (a resumed session's: its checkpoint's
    /// position); every position sent is moved by it.
    base: u64,
    /// When the next `checkpoint` may go out (`None`: the client asked for none).
    next_checkpoint: Option<Instant>,
    /// The hop the client asked for (`None`: the engine's), which a checkpoint's `resend_from`
    /// follows.
    hop_secs: Option<f64>,
    audio: FrameDecoder,
    /// The engine stream's audio input; dropped once the audio has ended.
    writer: Option<AudioWriter>,
    stream: Stream,
    redaction: Option<Redaction>,
    ending: Ending,
    /// Decoded audio the engine's ring had no room for yet: the socket is not read meanwhile.
    pending: VecDeque<f32>,
    scratch: Vec<f32>,
    received: u64,
    max_samples: u64,
    turns: FinalTurns,
    transcripts: VecDeque<PendingTranscript>,
    attributed: u64,
    warned_non_finite: bool,
    last_input: Instant,
    next_stats: Option<Instant>,
    shutdown: tokio::sync::watch::Receiver<bool>,
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
    let Some(start) = wait_for_start(&mut out, &mut source, &shared).await else {
        return;
    };
    if let Some(mut session) = Session::open(out, shared, id, start).await {
        session.serve(&mut source).await;
    }
}

/// Reads the client's messages until a valid `start` (answering the others with errors); `None`
/// when the client goes, idles or the server shuts down first.
async fn wait_for_start<S: AsyncRead + AsyncWrite + Unpin>(
    out: &mut Out<S>,
    source: &mut SplitStream<WebSocketStream<S>>,
    shared: &Shared,
) -> Option<Start> {
    let idle = Duration::from_secs_f64(shared.config.idle_timeout_secs);
    let mut shutdown = shared.shutdown.clone();
    loop {
        let msg = tokio::select! {
            m = source.next() => m,
            _ = tokio::time::sleep(idle) => {
                out.error(ErrorCode::IdleTimeout, "no start message", true).await;
                out.close(CloseCode::Policy, "idle").await;
                return None;
            }
            _ = stopped(&mut shutdown) => {
                out.error(ErrorCode::ShuttingDown, "the server is shutting down", true).await;
                out.close(CloseCode::Away, "shutting down").await;
                return None;
            }
        };
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Binary(_))) => {
                out.error(ErrorCode::NotStarted, "audio before start", false)
                    .await
            }
            Some(Ok(Message::Text(t))) => match parse_start(&t) {
                Ok(Some(start)) => {
                    // The slot is this session's: only draining or overload refuse it now.
                    let why = shared.ready.refusal(&shared.metrics, true);
                    if let Some(why) = why {
                        out.busy(why, shared.config.busy_retry_after_secs).await;
                        return None;
                    }
                    return Some(start);
                }
                Ok(None) => {
                    out.error(ErrorCode::NotStarted, "send start first", false)
                        .await
                }
                Err((code, m)) => out.error(code, m, false).await,
            },
            Some(Ok(_)) => {}
        }
    }
}

/// The checkpoint a `start` resumes from: `Ok(None)` when it resumes none; an error message
/// when the token does not verify, or checkpoints are asked for and the server has no key.
fn checkpoint_in(
    shared: &Shared,
    token: Option<&str>,
    wanted: bool,
) -> Result<Option<Checkpoint>, String> {
    let key = shared.config.checkpoint_key.as_bytes();
    if key.is_empty() && (wanted || token.is_some()) {
        return Err(
            "this server has no checkpoint key (checkpoint_key, DIARIST_CHECKPOINT_KEY)".into(),
        );
    }
    token
        .map(|t| Checkpoint::verify(t, key).map_err(|e| e.to_string()))
        .transpose()
}

/// Completes once the server is shutting down.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Completes once the engine's ring takes audio again (at once when there is no writer).
async fn room(writer: &mut Option<AudioWriter>) {
    if let Some(w) = writer {
        // A reader that has gone shows when the audio is pushed.
        let _ = w.writable().await;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Opens the engine stream `start` asks for and says `ready`; `None` (after a typed error)
    /// when it cannot.
    async fn open(mut out: Out<S>, shared: Arc<Shared>, id: u64, start: Start) -> Option<Self> {
        let Start {
            audio,
            mut options,
            redact,
            resume,
        } = start;
        let base = match checkpoint_in(&shared, resume.as_deref(), options.checkpoints) {
            Ok(Some(c)) => {
                // The client's own known speakers that the checkpoint does not hold yet.
                let held = &c.state.diarizer.speakers;
                (options.known_speakers).retain(|k| held.iter().all(|s| s.name != k.name));
                shared.metrics.session_resumed();
                tracing::info!(session = id, position = c.position, "resuming a session");
                let step = shared.engine.frame_step();
                options.resume = c.state.moved(c.resend_from as i64, step);
                options.backbone_phase = Some(c.backbone_phase);
                c.resend_from
            }
            Ok(None) => 0,
            Err(m) => {
                out.error(ErrorCode::BadCheckpoint, m, true).await;
                out.close(CloseCode::Policy, "bad checkpoint").await;
                return None;
            }
        };
        let next_checkpoint = options.checkpoints.then(Instant::now);
        let hop_secs = options.hop_secs;
        let redaction = match (redact, &shared.redaction) {
            (Some(true), None) => {
                let m = "this server has no PII tagger: redact must be false";
                out.error(ErrorCode::BadStart, m, true).await;
                out.close(CloseCode::Policy, "bad start").await;
                return None;
            }
            (Some(false), _) | (_, None) => None,
            (_, Some(r)) => Some(r.clone()),
        };
        let (writer, stream) = match shared.engine.open(options) {
            Ok(s) => s,
            Err(e) => {
                out.error(ErrorCode::BadStart, e.to_string(), true).await;
                out.close(CloseCode::Policy, "bad start").await;
                return None;
            }
        };
        tracing::info!(session = id, "session started");
        out.send(&ServerMessage::Ready {
            session: id,
            protocol: 1,
            sample_rate: RATE as u32,
        })
        .await;
        let config = &shared.config;
        let stats_every = config.stats_interval_secs;
        Some(Self {
            out,
            id,
            base,
            next_checkpoint,
            hop_secs,
            audio,
            writer: Some(writer),
            stream,
            redaction,
            ending: Ending::Open,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            received: 0,
            max_samples: (config.max_session_secs * RATE) as u64,
            turns: FinalTurns::default(),
            transcripts: VecDeque::new(),
            attributed: 0,
            warned_non_finite: false,
            last_input: Instant::now(),
            next_stats: (stats_every > 0.0)
                .then(|| Instant::now() + Duration::from_secs_f64(stats_every)),
            shutdown: shared.shutdown.clone(),
            shared,
        })
    }

    /// Serves the session until the engine's summary has gone out as `end`.
    async fn serve(&mut self, source: &mut SplitStream<WebSocketStream<S>>) {
        loop {
            self.feed_engine();
            let wake = self.next_wake(source).await;
            let done = match wake {
                Wake::Event(e) => self.on_event(e).await,
                Wake::Room => false,
                Wake::Message(m) => {
                    self.last_input = Instant::now();
                    self.on_message(m).await;
                    false
                }
                Wake::Idle => {
                    let m = "no audio or message for the idle timeout";
                    self.out.error(ErrorCode::IdleTimeout, m, true).await;
                    self.ending = Ending::Stopping;
                    false
                }
                Wake::Shutdown => {
                    let m = "the server is shutting down; final results follow";
                    self.out.error(ErrorCode::ShuttingDown, m, true).await;
                    self.ending = Ending::Stopping;
                    false
                }
                Wake::Stats => {
                    self.send_stats().await;
                    false
                }
            };
            if done {
                break;
            }
        }
    }

    /// Hands the audio waiting to the engine while its ring has room; once the audio has ended
    /// and all of it is handed over, closes the stream's input.
    fn feed_engine(&mut self) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        while !self.pending.is_empty() {
            let (a, _) = self.pending.as_slices();
            match w.push_some(a) {
                Ok(0) => break,
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(_) => {
                    self.pending.clear();
                    break;
                }
            }
        }
        if self.ending == Ending::Stopping && self.pending.is_empty() {
            self.writer = None;
            self.ending = Ending::Draining;
        }
    }

    /// Waits for the next thing to do. While the engine is behind (audio waits for room in its
    /// ring), the socket is not read: TCP slows the client down.
    async fn next_wake(&mut self, source: &mut SplitStream<WebSocketStream<S>>) -> Wake {
        let reading = self.ending == Ending::Open && self.pending.is_empty() && !self.out.dead;
        let backlog = !self.pending.is_empty() && self.writer.is_some();
        let idle = self.last_input + Duration::from_secs_f64(self.shared.config.idle_timeout_secs);
        let open = self.ending == Ending::Open;
        let stats_at = self.next_stats;
        tokio::select! {
            biased;
            e = self.stream.events().recv_async() => Wake::Event(e.ok()),
            _ = room(&mut self.writer), if backlog => Wake::Room,
            m = source.next(), if reading => Wake::Message(m),
            _ = sleep_until(idle), if reading => Wake::Idle,
            _ = stopped(&mut self.shutdown), if open => Wake::Shutdown,
            _ = sleep_until(stats_at.unwrap_or_else(Instant::now)), if stats_at.is_some() => Wake::Stats,
        }
    }

    /// One engine event: passed on, transcripts flushed; the summary ends the session (returns
    /// true).
    async fn on_event(&mut self, e: Option<Event>) -> bool {
        let Some(e) = e else {
            let m = "the stream ended without a summary";
            self.out.error(ErrorCode::Internal, m, true).await;
            return true;
        };
        self.turns.observe(&e);
        if let Event::Summary(s) = &e {
            self.flush_transcripts().await;
            self.shared.metrics.finalised(s.samples_final);
            self.shared.metrics.lost(s.samples_lost);
            self.out
                .send(&ServerMessage::End(EndTotals {
                    samples_received: self.received,
                    samples_processed: s.samples_final,
                    samples_lost: s.samples_lost,
                    speakers: s.speakers.clone(),
                    transcripts: self.attributed,
                }))
                .await;
            self.out.close(CloseCode::Normal, "end").await;
            let seconds = s.samples_final as f64 / RATE;
            let speakers = s.speakers.len();
            tracing::info!(session = self.id, seconds, speakers, "session ended");
            return true;
        }
        if let Event::Checkpoint {
            samples_final,
            state,
        } = e
        {
            self.send_checkpoint(samples_final, state).await;
            return false;
        }
        // A server never pushes live audio, so there is no overload; the summary is `end`.
        if let Ok(m) = ServerMessage::try_from(e) {
            self.out.send(&m.shifted(self.base)).await;
        }
        self.flush_transcripts().await;
        false
    }

    /// One message from the client (or its absence: it has gone).
    async fn on_message(&mut self, msg: Option<Result<Message, WsError>>) {
        match msg {
            None | Some(Ok(Message::Close(_))) => {
                // The client went away: what it sent is still diarized.
                self.out.dead = true;
                self.ending = Ending::Stopping;
            }
            Some(Err(e)) => self.on_socket_error(e).await,
            Some(Ok(Message::Binary(b))) => self.on_audio(&b).await,
            Some(Ok(Message::Text(t))) => self.on_text(&t).await,
            Some(Ok(_)) => {}
        }
    }

    /// A broken or refused frame: a typed fatal error where the client can still hear it.
    async fn on_socket_error(&mut self, e: WsError) {
        use tokio_tungstenite::tungstenite::error::ProtocolError;
        let code = match &e {
            WsError::Capacity(_) => Some((ErrorCode::FrameTooLarge, CloseCode::Size)),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
            WsError::Protocol(_) | WsError::Utf8(_) => {
                Some((ErrorCode::BadMessage, CloseCode::Protocol))
            }
            // Reset, closed or failed: the client is gone.
            _ => None,
        };
        match code {
            Some((code, close)) => {
                self.out.error(code, e.to_string(), true).await;
                self.out.close(close, code.as_str()).await;
            }
            None => self.out.dead = true,
        }
        self.ending = Ending::Stopping;
    }

    /// A binary frame: decoded into the audio waiting for the engine, up to the longest session.
    async fn on_audio(&mut self, bytes: &[u8]) {
        self.scratch.clear();
        let bad = match self.audio.decode(bytes, &mut self.scratch) {
            Ok(bad) => bad,
            Err(m) => return self.out.error(ErrorCode::BadAudio, m, false).await,
        };
        if bad > 0 && !self.warned_non_finite {
            self.warned_non_finite = true;
            let m = format!("{bad} non-finite samples became silence");
            self.out.error(ErrorCode::NonFiniteSamples, m, false).await;
        }
        let room = self.max_samples.saturating_sub(self.received) as usize;
        let take = self.scratch.len().min(room);
        self.accept(take);
        if take < self.scratch.len() {
            let secs = self.shared.config.max_session_secs;
            let m = format!("sessions end after {secs} s of audio");
            self.out.error(ErrorCode::SessionTooLong, m, true).await;
            self.ending = Ending::Stopping;
        }
    }

    /// Counts the first `n` samples of `scratch` as received and queues them for the engine.
    fn accept(&mut self, n: usize) {
        self.received += n as u64;
        self.shared.metrics.received(n as u64);
        self.pending.extend(self.scratch[..n].iter().copied());
    }

    /// A text message after `start`: `stop`, a transcript, or an error.
    async fn on_text(&mut self, text: &str) {
        match serde_json::from_str::<ClientMessage>(text) {
            Ok(ClientMessage::Stop) => {
                self.scratch.clear();
                self.audio.finish(&mut self.scratch);
                self.accept(self.scratch.len());
                self.ending = Ending::Stopping;
            }
            Ok(ClientMessage::Transcript { start, end, text }) => {
                self.on_transcript(start, end, text).await
            }
            Ok(ClientMessage::Start { .. }) => {
                let m = "the session has started";
                self.out.error(ErrorCode::AlreadyStarted, m, false).await;
            }
            Err(e) => {
                self.out
                    .error(ErrorCode::BadMessage, e.to_string(), false)
                    .await
            }
        }
    }

    /// A transcript segment: queued until its stretch is final (a bounded number of them).
    async fn on_transcript(&mut self, start: f64, end: f64, text: String) {
        let waiting = self.transcripts.len();
        if waiting >= self.shared.config.max_pending_transcripts {
            let m = format!(
                "{waiting} transcript segments already wait for their audio to become final; this one is dropped"
            );
            self.out.error(ErrorCode::BadMessage, m, false).await;
        } else if start.is_finite() && end.is_finite() && start >= 0.0 && end >= start {
            self.transcripts
                .push_back(PendingTranscript { start, end, text });
            self.flush_transcripts().await;
        } else {
            let m = "transcript times must satisfy 0 <= start <= end";
            self.out.error(ErrorCode::BadMessage, m, false).await;
        }
    }

    /// Sends the transcripts whose stretch is final, attributed and redacted.
    async fn flush_transcripts(&mut self) {
        while let Some(t) = self.transcripts.front() {
            // Client times (from its first sample) to this session's samples.
            let start = ((t.start * RATE) as u64).saturating_sub(self.base);
            let end = ((t.end * RATE).ceil() as u64).saturating_sub(self.base);
            if end > self.turns.frontier() {
                break;
            }
            let t = self.transcripts.pop_front().expect("front exists");
            let text = match &self.redaction {
                Some(r) => r.redact(t.text, self.id).await,
                None => t.text,
            };
            let speaker = self.turns.speaker_of(start, end.max(start + 1));
            let msg = ServerMessage::Transcript {
                start: t.start,
                end: t.end,
                speaker: speaker.map(str::to_string),
                text,
                redacted: self.redaction.is_some(),
            };
            self.out.send(&msg).await;
            self.attributed += 1;
        }
    }

    /// Sends a `checkpoint` at `samples_final` with the stream's `state` (this session's
    /// positions), unless one went out less than `checkpoint_interval_secs` ago.
    async fn send_checkpoint(&mut self, samples_final: u64, state: ResumeState) {
        let now = Instant::now();
        if self.next_checkpoint.is_none_or(|at| now < at) {
            return;
        }
        let every = Duration::from_secs_f64(self.shared.config.checkpoint_interval_secs);
        self.next_checkpoint = Some(now + every);
        let position = self.base + samples_final;
        let engine = &self.shared.engine;
        let resend_from = self.base + engine.resume_from(self.hop_secs, state.next_window);
        let Some(state) = state.moved(-(self.base as i64), engine.frame_step()) else {
            return;
        };
        let key = self.shared.config.checkpoint_key.as_bytes();
        let checkpoint = Checkpoint {
            position,
            resend_from,
            backbone_phase: self.stream.backbone_phase(),
            state,
        };
        let msg = ServerMessage::Checkpoint {
            samples_final: position,
            resend_from,
            token: checkpoint.sign(key),
        };
        self.out.send(&msg).await;
    }

    async fn send_stats(&mut self) {
        let every = Duration::from_secs_f64(self.shared.config.stats_interval_secs);
        self.next_stats = Some(Instant::now() + every);
        let msg = ServerMessage::Stats {
            samples_received: self.received,
            samples_final: self.turns.frontier().min(self.received),
        };
        self.out.send(&msg.shifted(self.base)).await;
    }
}
