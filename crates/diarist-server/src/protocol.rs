//! Protocol v1 messages (`docs/PROTOCOL.md`): JSON text frames in both directions, audio in
//! binary frames from the client.

use diarist_audio::Resampler;
use diarist_engine::stream::TurnStatus as EngineTurnStatus;
use diarist_engine::{Event, StreamOptions, Voiceprint};
use serde::{Deserialize, Serialize};

/// Audio sample encodings a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Signed 16-bit little-endian integers.
    PcmS16le,
    /// 32-bit little-endian IEEE floats in [-1, 1].
    PcmF32le,
}

impl Encoding {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            Self::PcmS16le => 2,
            Self::PcmF32le => 4,
        }
    }
}

/// Per-session choices in `start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartOptions {
    /// Exact number of speakers, when known (online clustering treats it as the most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_speakers: Option<usize>,
    /// Most speakers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_speakers: Option<usize>,
    /// Delay after which audio is final, seconds (between the hop and the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<f64>,
    /// Step between analysis windows, seconds (0.1 to the window; default: the server's). A
    /// longer hop costs the server less and gives coarser turns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<f64>,
    /// Enrolled speakers to recognise by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known_speakers: Vec<Voiceprint>,
    /// Whether transcript text comes back with personal data redacted (default: yes, when the
    /// server has a PII tagger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact: Option<bool>,
    /// Whether the server sends `checkpoint` messages (watermark and token) to resume from.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checkpoint: bool,
    /// A `checkpoint` token of an earlier session to resume: its speakers keep their names and
    /// positions continue from its watermark (send the audio from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

/// What a client sends as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Opens the session; must come first.
    Start {
        /// Sample encoding of the binary frames.
        encoding: Encoding,
        /// Sample rate of the audio (any; resampled to 16 kHz).
        sample_rate: u32,
        /// Interleaved channels (mixed down to mono).
        channels: u16,
        /// Per-session options.
        #[serde(default)]
        options: StartOptions,
    },
    /// A transcript segment to attribute to the speaker who spoke then (seconds from the start).
    Transcript {
        /// Start, seconds.
        start: f64,
        /// End, seconds.
        end: f64,
        /// Text.
        text: String,
    },
    /// No more audio: flush and end the session.
    Stop,
}

/// Stable error codes (the `code` of an `error` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A text frame that is not a valid message.
    BadMessage,
    /// Audio or a transcript before `start`.
    NotStarted,
    /// A second `start`.
    AlreadyStarted,
    /// `start` with an encoding, rate, channel count or option the server cannot take.
    BadStart,
    /// A binary frame that is not a whole number of sample frames.
    BadAudio,
    /// Non-finite float samples (replaced by silence; the session goes on).
    NonFiniteSamples,
    /// A frame larger than the server's limit.
    FrameTooLarge,
    /// The session reached the server's longest session length.
    SessionTooLong,
    /// Nothing arrived for the idle timeout.
    IdleTimeout,
    /// The client did not read what the server sent for too long.
    SlowConsumer,
    /// The server is shutting down (final results were flushed first).
    ShuttingDown,
    /// A `resume` token that this server cannot take (altered, another fleet's key, or the
    /// server has no key).
    BadCheckpoint,
    /// The server takes no new session now (draining, full or overloaded): try again after
    /// `retry_after_secs`, here or elsewhere.
    Busy,
    /// The server failed.
    Internal,
}

impl ErrorCode {
    /// Every code, for metrics.
    pub const ALL: [ErrorCode; 14] = [
        Self::BadMessage,
        Self::NotStarted,
        Self::AlreadyStarted,
        Self::BadStart,
        Self::BadAudio,
        Self::NonFiniteSamples,
        Self::FrameTooLarge,
        Self::SessionTooLong,
        Self::IdleTimeout,
        Self::SlowConsumer,
        Self::ShuttingDown,
        Self::BadCheckpoint,
        Self::Busy,
        Self::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadMessage => "bad_message",
            Self::NotStarted => "not_started",
            Self::AlreadyStarted => "already_started",
            Self::BadStart => "bad_start",
            Self::BadAudio => "bad_audio",
            Self::NonFiniteSamples => "non_finite_samples",
            Self::FrameTooLarge => "frame_too_large",
            Self::SessionTooLong => "session_too_long",
            Self::IdleTimeout => "idle_timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::ShuttingDown => "shutting_down",
            Self::BadCheckpoint => "bad_checkpoint",
            Self::Busy => "busy",
            Self::Internal => "internal",
        }
    }
}

/// Totals at the end of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndTotals {
    /// Samples received (16 kHz, after resampling).
    pub samples_received: u64,
    /// Samples diarized with a final label.
    pub samples_processed: u64,
    /// Samples lost (always 0: the server slows a fast client instead).
    pub samples_lost: u64,
    /// Speakers, in order of appearance.
    pub speakers: Vec<String>,
    /// Transcript segments attributed.
    pub transcripts: u64,
}

/// What a turn message says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// The speaker started talking.
    Started,
    /// The turn goes on; final up to `end`.
    Updated,
    /// The turn is over.
    Ended,
}

/// A provisional turn in the stretch that is not final yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TentativeTurn {
    /// Speaker, `null` while the voice is not named yet.
    pub speaker: Option<String>,
    /// First sample.
    pub start: u64,
    /// One past the last sample.
    pub end: u64,
}

/// What the server sends as text. Times in `speaker`, `turn` and `tentative` messages are samples
/// at 16 kHz. These types are the protocol's own: engine events are converted into them
/// (`TryFrom<Event>`), so a change in the engine cannot change the wire format by accident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The session is open and takes audio.
    Ready {
        /// Session id.
        session: u64,
        /// Protocol version.
        protocol: u32,
        /// Sample rate of positions in events.
        sample_rate: u32,
    },
    /// A new speaker was heard (or an enrolled one for the first time).
    Speaker {
        /// Label used in turn messages.
        speaker: String,
        /// Whether the speaker was enrolled (recognised by voiceprint).
        enrolled: bool,
    },
    /// A final statement about a speaker's turn: it never changes afterwards.
    Turn {
        /// Started, updated or ended.
        status: TurnStatus,
        /// Speaker label.
        speaker: String,
        /// First sample of the turn.
        start: u64,
        /// One past the last final sample.
        end: u64,
        /// Always true: turn messages are final.
        #[serde(rename = "final")]
        is_final: bool,
    },
    /// The current guess for the stretch that is not final yet; each replaces the previous one.
    Tentative {
        /// Always false.
        #[serde(rename = "final")]
        is_final: bool,
        /// First sample not final yet.
        from: u64,
        /// One past the last sample diarized.
        to: u64,
        /// Provisional turns.
        turns: Vec<TentativeTurn>,
    },
    /// A transcript segment attributed to a speaker.
    Transcript {
        /// Start, seconds.
        start: f64,
        /// End, seconds.
        end: f64,
        /// Speaker who spoke most in it, else the speaker of a turn that ends where it starts or
        /// starts where it ends (`None`: neither).
        speaker: Option<String>,
        /// The text, redacted when `redacted`.
        text: String,
        /// Whether personal data in `text` was replaced by its label (`[PERSON_NAME]`, ...).
        redacted: bool,
    },
    /// Everything before `samples_final` is final and reported; `token` resumes the session
    /// from there on any instance of the fleet (with `checkpoint: true` in `start`).
    Checkpoint {
        /// The watermark: samples final from the start of the client's audio.
        samples_final: u64,
        /// Where a resumed session's audio must start (before the watermark: the audio between
        /// is heard again as warm-up, and nothing is reported twice).
        resend_from: u64,
        /// Opaque, signed: the `resume` option of a later `start`.
        token: String,
    },
    /// Periodic session statistics.
    Stats {
        /// Samples received so far.
        samples_received: u64,
        /// Samples with a final label so far.
        samples_final: u64,
    },
    /// Something went wrong; `fatal` errors close the session after `end`.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// Whether the session ends because of it.
        fatal: bool,
        /// With `busy`: seconds after which a new session may be taken.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
    /// The session is over: totals.
    End(EndTotals),
}

impl ServerMessage {
    /// A `turn` message as the engine's event (for `FinalTurns`); `None` for other messages.
    pub fn turn_event(&self) -> Option<Event> {
        let Self::Turn {
            status,
            speaker,
            start,
            end,
            is_final,
        } = self
        else {
            return None;
        };
        Some(Event::Turn {
            status: match status {
                TurnStatus::Started => EngineTurnStatus::Started,
                TurnStatus::Updated => EngineTurnStatus::Updated,
                TurnStatus::Ended => EngineTurnStatus::Ended,
            },
            speaker: speaker.clone(),
            start: *start,
            end: *end,
            is_final: *is_final,
        })
    }

    /// The message with its positions moved `base` samples later (a resumed session's positions
    /// continue those of the session it resumes).
    pub fn shifted(self, base: u64) -> Self {
        let secs = base as f64 / f64::from(RATE);
        match self {
            Self::Turn {
                status,
                speaker,
                start,
                end,
                is_final,
            } => Self::Turn {
                status,
                speaker,
                start: start + base,
                end: end + base,
                is_final,
            },
            Self::Tentative {
                is_final,
                from,
                to,
                turns,
            } => Self::Tentative {
                is_final,
                from: from + base,
                to: to + base,
                turns: (turns.into_iter())
                    .map(|t| TentativeTurn {
                        start: t.start + base,
                        end: t.end + base,
                        ..t
                    })
                    .collect(),
            },
            Self::Transcript {
                start,
                end,
                speaker,
                text,
                redacted,
            } => Self::Transcript {
                start: start + secs,
                end: end + secs,
                speaker,
                text,
                redacted,
            },
            Self::Stats {
                samples_received,
                samples_final,
            } => Self::Stats {
                samples_received: samples_received + base,
                samples_final: samples_final + base,
            },
            other => other,
        }
    }
}

impl TryFrom<Event> for ServerMessage {
    /// An event with no message of its own: `overload` (a server never pushes live audio) and
    /// `summary` (the session's `end` carries its totals).
    type Error = Event;

    fn try_from(e: Event) -> Result<Self, Event> {
        Ok(match e {
            Event::Speaker { speaker, enrolled } => Self::Speaker { speaker, enrolled },
            Event::Turn {
                status,
                speaker,
                start,
                end,
                is_final,
            } => Self::Turn {
                status: match status {
                    EngineTurnStatus::Started => TurnStatus::Started,
                    EngineTurnStatus::Updated => TurnStatus::Updated,
                    EngineTurnStatus::Ended => TurnStatus::Ended,
                },
                speaker,
                start,
                end,
                is_final,
            },
            Event::Tentative {
                is_final,
                from,
                to,
                turns,
            } => Self::Tentative {
                is_final,
                from,
                to,
                turns: turns
                    .into_iter()
                    .map(|t| TentativeTurn {
                        speaker: t.speaker,
                        start: t.start,
                        end: t.end,
                    })
                    .collect(),
            },
            other @ (Event::Overload { .. } | Event::Summary(_) | Event::Checkpoint { .. }) => {
                return Err(other);
            }
        })
    }
}

const RATE: u32 = diarist_core::SAMPLE_RATE;

/// What a valid `start` asks for.
pub struct Start {
    /// The decoder of the session's binary frames.
    pub audio: FrameDecoder,
    /// The engine stream's options.
    pub options: StreamOptions,
    /// The client's choice on redacting transcripts, if it made one.
    pub redact: Option<bool>,
    /// The token of the session to resume, if any.
    pub resume: Option<String>,
}

/// Turns a session's binary frames into 16 kHz mono samples: interleaved channels averaged,
/// non-finite samples silenced, other rates resampled.
pub struct FrameDecoder {
    encoding: Encoding,
    channels: usize,
    resampler: Option<Resampler>,
    /// Mono samples of the frame being decoded (kept between frames).
    mono: Vec<f32>,
}

impl FrameDecoder {
    /// A decoder for `channels` interleaved channels of `encoding` at `sample_rate` Hz.
    pub fn new(encoding: Encoding, sample_rate: u32, channels: usize) -> Result<Self, String> {
        let resampler = if sample_rate == RATE {
            None
        } else {
            Some(Resampler::new(sample_rate, RATE)?)
        };
        Ok(Self {
            encoding,
            channels: channels.max(1),
            resampler,
            mono: Vec::new(),
        })
    }

    /// Mono 16 kHz samples of one binary frame into `out`; returns how many samples were not
    /// finite (they become silence). A frame that is not a whole number of sample frames is
    /// refused whole.
    pub fn decode(&mut self, bytes: &[u8], out: &mut Vec<f32>) -> Result<usize, String> {
        let frame = self.encoding.bytes() * self.channels;
        if !bytes.len().is_multiple_of(frame) {
            return Err(format!(
                "{} bytes is not a whole number of {frame}-byte sample frames",
                bytes.len()
            ));
        }
        let mut bad = 0;
        self.mono.clear();
        for f in bytes.chunks_exact(frame) {
            let mut sum = 0f32;
            for s in f.chunks_exact(self.encoding.bytes()) {
                let v = match self.encoding {
                    Encoding::PcmS16le => i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0,
                    Encoding::PcmF32le => f32::from_le_bytes([s[0], s[1], s[2], s[3]]),
                };
                if v.is_finite() {
                    sum += v.clamp(-1.0, 1.0);
                } else {
                    bad += 1;
                }
            }
            self.mono.push(sum / self.channels as f32);
        }
        match &mut self.resampler {
            Some(r) => r.push(&self.mono, out),
            None => out.extend_from_slice(&self.mono),
        }
        Ok(bad)
    }

    /// The resampler's last samples into `out`, at the end of the audio.
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if let Some(r) = self.resampler.as_mut() {
            r.finish(out);
        }
    }
}

/// Reads a client's text message as a `start`: `Ok(None)` for another valid message, an error
/// code and message for one that is not valid.
pub fn parse_start(text: &str) -> Result<Option<Start>, (ErrorCode, String)> {
    let msg: ClientMessage = serde_json::from_str(text).map_err(|e| {
        let is_start = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|v| v["type"] == "start");
        let code = if is_start {
            ErrorCode::BadStart
        } else {
            ErrorCode::BadMessage
        };
        (code, e.to_string())
    })?;
    let ClientMessage::Start {
        encoding,
        sample_rate,
        channels,
        options,
    } = msg
    else {
        return Ok(None);
    };
    let bad = |m: String| Err((ErrorCode::BadStart, m));
    if !(4_000..=384_000).contains(&sample_rate) {
        return bad(format!(
            "sample_rate {sample_rate} is outside 4000..=384000"
        ));
    }
    if !(1..=32).contains(&channels) {
        return bad(format!("channels {channels} is outside 1..=32"));
    }
    let StartOptions {
        num_speakers,
        max_speakers,
        latency,
        hop,
        known_speakers,
        redact,
        checkpoint,
        resume,
    } = options;
    if num_speakers == Some(0) {
        return bad("num_speakers must be at least 1".into());
    }
    let audio = FrameDecoder::new(encoding, sample_rate, channels as usize)
        .map_err(|e| (ErrorCode::BadStart, e))?;
    Ok(Some(Start {
        audio,
        options: StreamOptions {
            max_speakers: num_speakers.or(max_speakers),
            known_speakers,
            latency_secs: latency,
            hop_secs: hop,
            // The engine spreads sessions over the backbone phases.
            backbone_phase: None,
            checkpoints: checkpoint,
            // A resumed session's warm-up comes from its token (the session sets it).
            resume: None,
        },
        redact,
        resume,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialises `m`, compares with `json` and reads it back.
    fn pin<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
        m: T,
        json: &str,
    ) {
        assert_eq!(serde_json::to_string(&m).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(json).unwrap(), m);
    }

    #[test]
    fn every_server_message_has_its_pinned_json() {
        pin(
            ServerMessage::Ready {
                session: 7,
                protocol: 1,
                sample_rate: 16_000,
            },
            r#"{"type":"ready","session":7,"protocol":1,"sample_rate":16000}"#,
        );
        pin(
            ServerMessage::Speaker {
                speaker: "Ana".into(),
                enrolled: true,
            },
            r#"{"type":"speaker","speaker":"Ana","enrolled":true}"#,
        );
        for (status, name) in [
            (TurnStatus::Started, "started"),
            (TurnStatus::Updated, "updated"),
            (TurnStatus::Ended, "ended"),
        ] {
            pin(
                ServerMessage::Turn {
                    status,
                    speaker: "S1".into(),
                    start: 16_000,
                    end: 20_000,
                    is_final: true,
                },
                &format!(
                    r#"{{"type":"turn","status":"{name}","speaker":"S1","start":16000,"end":20000,"final":true}}"#
                ),
            );
        }
        pin(
            ServerMessage::Tentative {
                is_final: false,
                from: 32_000,
                to: 48_000,
                turns: vec![
                    TentativeTurn {
                        speaker: Some("S2".into()),
                        start: 32_000,
                        end: 40_000,
                    },
                    TentativeTurn {
                        speaker: None,
                        start: 40_000,
                        end: 48_000,
                    },
                ],
            },
            r#"{"type":"tentative","final":false,"from":32000,"to":48000,"turns":[{"speaker":"S2","start":32000,"end":40000},{"speaker":null,"start":40000,"end":48000}]}"#,
        );
        pin(
            ServerMessage::Transcript {
                start: 22.0,
                end: 26.5,
                speaker: None,
                text: "this is [PERSON_NAME]".into(),
                redacted: true,
            },
            r#"{"type":"transcript","start":22.0,"end":26.5,"speaker":null,"text":"this is [PERSON_NAME]","redacted":true}"#,
        );
        pin(
            ServerMessage::Checkpoint {
                samples_final: 32_000,
                resend_from: 0,
                token: "e30.c2ln".into(),
            },
            r#"{"type":"checkpoint","samples_final":32000,"resend_from":0,"token":"e30.c2ln"}"#,
        );
        pin(
            ServerMessage::Stats {
                samples_received: 48_000,
                samples_final: 16_000,
            },
            r#"{"type":"stats","samples_received":48000,"samples_final":16000}"#,
        );
        for code in ErrorCode::ALL {
            pin(
                ServerMessage::Error {
                    code,
                    message: "why".into(),
                    fatal: false,
                    retry_after_secs: None,
                },
                &format!(
                    r#"{{"type":"error","code":"{}","message":"why","fatal":false}}"#,
                    code.as_str()
                ),
            );
        }
        pin(
            ServerMessage::End(EndTotals {
                samples_received: 480_000,
                samples_processed: 480_000,
                samples_lost: 0,
                speakers: vec!["S1".into(), "S2".into()],
                transcripts: 1,
            }),
            r#"{"type":"end","samples_received":480000,"samples_processed":480000,"samples_lost":0,"speakers":["S1","S2"],"transcripts":1}"#,
        );
    }

    #[test]
    fn every_client_message_has_its_pinned_json() {
        pin(
            ClientMessage::Start {
                encoding: Encoding::PcmS16le,
                sample_rate: 48_000,
                channels: 2,
                options: StartOptions {
                    max_speakers: Some(3),
                    hop: Some(0.5),
                    redact: Some(false),
                    ..Default::default()
                },
            },
            r#"{"type":"start","encoding":"pcm_s16le","sample_rate":48000,"channels":2,"options":{"max_speakers":3,"hop":0.5,"redact":false}}"#,
        );
        pin(
            ClientMessage::Start {
                encoding: Encoding::PcmF32le,
                sample_rate: 16_000,
                channels: 1,
                options: StartOptions {
                    num_speakers: Some(2),
                    latency: Some(2.0),
                    known_speakers: vec![Voiceprint {
                        name: "Ana".into(),
                        embedding: vec![0.5, -0.25],
                    }],
                    ..Default::default()
                },
            },
            r#"{"type":"start","encoding":"pcm_f32le","sample_rate":16000,"channels":1,"options":{"num_speakers":2,"latency":2.0,"known_speakers":[{"name":"Ana","embedding":[0.5,-0.25]}]}}"#,
        );
        pin(
            ClientMessage::Start {
                encoding: Encoding::PcmS16le,
                sample_rate: 16_000,
                channels: 1,
                options: StartOptions {
                    checkpoint: true,
                    resume: Some("e30.c2ln".into()),
                    ..Default::default()
                },
            },
            r#"{"type":"start","encoding":"pcm_s16le","sample_rate":16000,"channels":1,"options":{"checkpoint":true,"resume":"e30.c2ln"}}"#,
        );
        pin(
            ClientMessage::Transcript {
                start: 1.5,
                end: 2.0,
                text: "hello".into(),
            },
            r#"{"type":"transcript","start":1.5,"end":2.0,"text":"hello"}"#,
        );
        pin(ClientMessage::Stop, r#"{"type":"stop"}"#);
    }

    #[test]
    fn engine_events_become_their_messages_and_the_rest_stay_events() {
        let turn = Event::Turn {
            status: EngineTurnStatus::Updated,
            speaker: "S1".into(),
            start: 1,
            end: 2,
            is_final: true,
        };
        assert_eq!(
            ServerMessage::try_from(turn).unwrap(),
            ServerMessage::Turn {
                status: TurnStatus::Updated,
                speaker: "S1".into(),
                start: 1,
                end: 2,
                is_final: true,
            }
        );
        let overload = Event::Overload { at: 5, samples: 9 };
        assert_eq!(ServerMessage::try_from(overload.clone()), Err(overload));
    }
}
