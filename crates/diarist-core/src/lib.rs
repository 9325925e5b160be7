//! Pure diarization algorithms: decoding segmentation scores into local speaker activity,
//! clustering embeddings into global speakers, reconstructing recording-level activity and turns,
//! RTTM/UEM types and DER scoring.
//!
//! Nothing here does I/O or runs a model: functions take arrays and return arrays, so every step
//! is deterministic and unit-testable. Time is kept in samples at 16 kHz.

pub mod activity;
pub mod assignment;
pub mod cluster;
pub mod der;
pub mod online;
pub mod reconstruct;
pub mod rttm;
pub mod transcript;
pub mod vbx;

/// Samples per second of every position and duration in memory: the one time base of diarist
/// (audio is decoded and resampled to it; seconds appear only at the edges).
pub const SAMPLE_RATE: u32 = 16_000;
