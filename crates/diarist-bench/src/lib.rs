//! Benchmarks and load tests of diarist, each printing its table on standard output: model load
//! time, per-window model latency, offline speed and DER ([`models`]); concurrent real-time
//! streams on one engine, and streaming DER beside offline DER ([`streams`]); the WebSocket
//! service under real-time clients on loopback ([`clients`]); the PII tagger's latency,
//! throughput and span scores ([`pii`]). The criterion micro-benchmarks of the pure algorithms
//! are this crate's `benches/` (`cargo bench -p diarist-bench`).
//!
//! Nothing depends on this crate but the binary, whose `diarist bench` parses the arguments,
//! finds the inputs, configuration and reference files, and calls it.

pub mod clients;
pub mod measure;
pub mod models;
pub mod pii;
pub mod streams;

use std::collections::BTreeMap;
use std::path::PathBuf;

use diarist_core::der::{self, DerBreakdown};
use diarist_core::rttm;

/// Everything that can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The engine failed: loading the models, starting the engine or a stream.
    #[error(transparent)]
    Engine(#[from] diarist_engine::EngineError),
    /// A model failed to load or run.
    #[error(transparent)]
    Model(#[from] diarist_models::ModelError),
    /// The audio could not be read.
    #[error(transparent)]
    Audio(#[from] diarist_audio::AudioError),
    /// The PII tagger failed.
    #[error(transparent)]
    Pii(#[from] diarist_pii::PiiError),
    /// The loopback service or its runtime failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The loopback service's task failed.
    #[error(transparent)]
    Join(#[from] tokio::task::JoinError),
    /// One file of an offline run failed (the first, in the order they finished).
    #[error("{}: {error}", path.display())]
    Diarize {
        /// The file.
        path: PathBuf,
        /// Why.
        error: diarist_engine::EngineError,
    },
    /// A recording replayed as a stream could not be read.
    #[error("reading {}", path.display())]
    Replay {
        /// The recording.
        path: PathBuf,
        /// Why.
        #[source]
        error: diarist_engine::EngineError,
    },
    /// A recording could not be decoded.
    #[error("decoding {}", path.display())]
    Decode {
        /// The recording.
        path: PathBuf,
        /// Why.
        #[source]
        error: diarist_audio::AudioError,
    },
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// A line of the PII reference file is not a reference sentence.
    #[error("{}:{line}: not a reference sentence", path.display())]
    Sentence {
        /// The reference file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        #[source]
        error: serde_json::Error,
    },
    /// A reference sentence names a label the tagger does not know.
    #[error("{}:{line}: unknown label {label:?}", path.display())]
    Label {
        /// The reference file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The label.
        label: String,
    },
    /// The PII tagger could not be loaded.
    #[error("loading the PII tagger {}", path.display())]
    Tagger {
        /// The tagger's model directory.
        path: PathBuf,
        /// Why.
        #[source]
        error: diarist_pii::PiiError,
    },
    /// A latency histogram could not be made.
    #[error("creating a latency histogram")]
    Histogram(#[source] hdrhistogram::CreationError),
    /// A latency could not be recorded.
    #[error(transparent)]
    Record(#[from] hdrhistogram::RecordError),
    /// The inputs cannot be benchmarked (what is missing).
    #[error("{0}")]
    Input(String),
    /// A thread of the benchmark panicked (which one).
    #[error("{0}")]
    Panicked(&'static str),
}

/// A reference diarization to score against: turns and scored regions by file id.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// Reference turns by file id.
    pub turns: BTreeMap<String, Vec<rttm::Turn>>,
    /// Scored regions by file id; a file without any is scored where either side has speech.
    pub uems: BTreeMap<String, Vec<(u64, u64)>>,
}

impl Reference {
    /// The reference turns and scored regions under `path` (RTTM and UEM files, one or a tree).
    pub fn read(path: &std::path::Path) -> Result<Self, diarist_engine::inputs::InputsError> {
        Ok(Self {
            turns: diarist_engine::inputs::read_rttm_tree(path)?,
            uems: diarist_engine::inputs::read_uem_tree(path)?,
        })
    }

    /// DER of the hypothesis `hyp` for file `id` (collar 0, overlap scored); a file the
    /// reference does not hold has no reference speech.
    pub fn score(&self, id: &str, hyp: &[rttm::Turn]) -> DerBreakdown {
        let reference = self.turns.get(id).map(Vec::as_slice).unwrap_or(&[]);
        der::score(reference, hyp, self.uems.get(id).map(Vec::as_slice), 0)
    }
}

/// A DER and its parts, in per cent: `12.34 % (miss ..., false alarm ..., confusion ...)`.
pub(crate) fn rates(b: &DerBreakdown) -> String {
    let t = b.total.max(1) as f64;
    format!(
        "{:.2} % (miss {:.2} %, false alarm {:.2} %, confusion {:.2} %)",
        100.0 * b.der(),
        100.0 * b.miss as f64 / t,
        100.0 * b.false_alarm as f64 / t,
        100.0 * b.confusion as f64 / t
    )
}
