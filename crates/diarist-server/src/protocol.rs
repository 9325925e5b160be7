//! Protocol v1 messages (`docs/PROTOCOL.md`): JSON text frames in both directions, audio in
//! binary frames from the client.

use diarist_audio::Resampler;
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
    /// The server failed.
    Internal,
}

impl ErrorCode {
    /// Every code, for metrics.
    pub const ALL: [ErrorCode; 12] = [
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

/// What the server sends as text. Times in stream events are samples at 16 kHz.
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
    },
    /// The session is over: totals.
    End(EndTotals),
    /// A stream event as the engine reports it: `speaker`, `turn` (final) or `tentative`.
    #[serde(untagged)]
    Stream(Event),
}

/// The rate every session's audio is resampled to.
const RATE: u32 = 16_000;

/// What a valid `start` asks for.
pub struct Start {
    /// The decoder of the session's binary frames.
    pub audio: FrameDecoder,
    /// The engine stream's options.
    pub options: StreamOptions,
    /// The client's choice on redacting transcripts, if it made one.
    pub redact: Option<bool>,
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
        },
        redact,
    }))
}
