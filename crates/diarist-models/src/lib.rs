//! ONNX Runtime environment, model manifests, and the two model roles diarization needs:
//! frame-level speaker segmentation and speaker embedding. Other model roles (the PII tagger)
//! build their sessions through the same [`Runtime`].
//!
//! This crate knows how to load and run models; it does not know where audio came from nor what
//! the scores mean for diarization (that is `diarist-core`).

mod manifest;
mod runtime;
mod session;

pub use manifest::{
    Activation, FrameGeometry, FrontEnd, Layout, Manifest, ModelSpec, OutputKind, SplitSection,
    Task, read_verified,
};
pub use runtime::{Provider, Runtime, SessionOptions};
pub use session::{EmbeddingModel, Embeddings, Features, FrameScores, SegmentationModel};

use std::path::PathBuf;

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The ONNX Runtime shared library could not be loaded.
    #[error(
        "cannot load the ONNX Runtime library at {path}: {reason} (run `make setup`, or set DIARIST_ORT_LIB)"
    )]
    Runtime {
        /// Library path that was tried.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A manifest is malformed or inconsistent.
    #[error("bad model manifest {path}: {reason}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A model file does not match the checksum in its manifest.
    #[error("{path} has sha256 {actual}, but its manifest says {expected}")]
    Checksum {
        /// The model file.
        path: PathBuf,
        /// Checksum from the manifest.
        expected: String,
        /// Checksum of the file.
        actual: String,
    },
    /// The graph does not match its manifest or the caller's input.
    #[error("model {model}: {reason}")]
    Mismatch {
        /// Model name.
        model: String,
        /// What does not match.
        reason: String,
    },
    /// ONNX Runtime reported an error.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
}
