//! Runs diarization end to end: audio in, segmentation and embedding models, clustering, speaker
//! turns out. Knows nothing of the wire format or the command line.

pub mod batch;
#[cfg(feature = "capture")]
pub mod capture;
pub mod config;
mod driver;
pub mod enroll;
pub mod inputs;
pub mod offline;
pub mod output;
pub mod pool;
pub mod source;
mod spans;
pub mod stats;
pub mod stream;
pub mod turns;
pub mod view;
pub mod voiceprint;

pub use config::{Clustering, EngineConfig, StreamingConfig};
pub use stream::{Engine, Event, ResumeState, Stream, StreamOptions, Summary, Voiceprint};
pub use turns::FinalTurns;

// The audio crate decodes to the core's time base.
const _: () = assert!(diarist_audio::TARGET_RATE == diarist_core::SAMPLE_RATE);

/// The frame grid of a model's output or feature frames, as the core algorithms take it.
fn frame_grid(g: diarist_models::FrameGeometry) -> diarist_core::reconstruct::FrameGrid {
    diarist_core::reconstruct::FrameGrid {
        step: g.step,
        length: g.length,
        offset: g.offset,
    }
}

/// Everything that can stop a diarization.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The audio could not be read.
    #[error(transparent)]
    Audio(#[from] diarist_audio::AudioError),
    /// A model failed to load or run.
    #[error(transparent)]
    Model(#[from] diarist_models::ModelError),
    /// The audio holds no usable speech for what was asked.
    #[error("no speech: {0}")]
    NoSpeech(String),
    /// A batch worker could not load its models, so it could not take this file.
    #[error("models did not load: {0}")]
    ModelsUnavailable(String),
    /// A model run failed, or the inference pool has stopped.
    #[error("inference: {0}")]
    Inference(String),
    /// The stream was dropped before it ended.
    #[error("the stream was cancelled")]
    Cancelled,
    /// A thread could not start, or it panicked.
    #[error("thread: {0}")]
    Thread(String),
}
