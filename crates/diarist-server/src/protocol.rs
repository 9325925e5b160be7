//! Protocol v1 messages (`docs/PROTOCOL.md`): JSON text frames in both directions, audio in
//! binary frames from the client.

use diarist_engine::{Event, Voiceprint};
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
