//! The engine's configuration: runtime, models, offline and streaming settings, the
//! `[runtime]`, `[models]`, `[offline]` and `[streaming]` sections of `configs/diarist.toml`
//! (which `diarist-config` composes with the other crates' sections). Paths are taken as they
//! are.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Where the ONNX Runtime library is and how sessions are threaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// ONNX Runtime shared library.
    pub onnxruntime: PathBuf,
    /// Threads inside one model run.
    pub intra_threads: usize,
    /// Execution provider: "cpu", or "cuda" (builds with the `cuda` feature; falls back to the
    /// CPU with a log line when no GPU can be used).
    pub provider: diarist_models::Provider,
}

impl RuntimeConfig {
    /// The options every model session of this configuration is opened with.
    pub fn session_options(&self) -> diarist_models::SessionOptions {
        diarist_models::SessionOptions {
            intra_threads: self.intra_threads,
            provider: self.provider,
        }
    }
}

/// Which models to load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// Directory of the segmentation model's manifest.
    pub segmentation: PathBuf,
    /// Directory of the embedding model's manifest.
    pub embedding: PathBuf,
    /// Variant of the segmentation model ("fp32" or a manifest variant).
    pub segmentation_variant: String,
    /// Variant of the embedding model ("fp32" or a manifest variant).
    pub embedding_variant: String,
}

/// How offline diarization clusters the embeddings into speakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clustering {
    /// Average-linkage agglomerative clustering cut at `cluster_threshold`.
    Ahc,
    /// Variational Bayes from an over-split agglomerative clustering, in a space whitened per
    /// recording ([`diarist_core::vbx`]).
    Vbx,
}

impl std::str::FromStr for Clustering {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ahc" => Ok(Self::Ahc),
            "vbx" => Ok(Self::Vbx),
            _ => Err(format!("unknown clustering `{s}` (ahc or vbx)")),
        }
    }
}

/// Offline (whole-recording) diarization settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineConfig {
    /// Recordings diarized at once, each with its own models; 0 = one per core.
    pub workers: usize,
    /// Analysis window length, seconds.
    pub window_secs: f64,
    /// Step between windows, seconds.
    pub step_secs: f64,
    /// Threshold for multilabel segmentation models.
    pub multilabel_threshold: f32,
    /// Least speech in a window for a local speaker to get an embedding, seconds.
    pub min_embedding_speech_secs: f64,
    /// Least speech for an embedding to shape the clusters, seconds.
    pub min_cluster_speech_secs: f64,
    /// How the embeddings are clustered into speakers.
    pub clustering: Clustering,
    /// Average-linkage stopping distance (cosine).
    pub cluster_threshold: f32,
    /// Clusters with fewer members are folded into the nearest larger one.
    pub min_cluster_size: usize,
    /// Exact number of speakers (0 = unknown).
    pub num_speakers: usize,
    /// Least number of speakers (0 = no bound).
    pub min_speakers: usize,
    /// Most speakers (0 = no bound).
    pub max_speakers: usize,
    /// Drop turns shorter than this, seconds.
    pub min_duration_on_secs: f64,
    /// Fill same-speaker gaps shorter than this, seconds.
    pub min_duration_off_secs: f64,
    /// Start every turn this much earlier, seconds.
    pub pad_onset_secs: f64,
    /// End every turn this much later, seconds.
    pub pad_offset_secs: f64,
    /// Most embeddings clustered directly; long recordings are subsampled, the rest assigned.
    pub max_cluster_embeddings: usize,
    /// Split embedding models: seconds of audio per backbone run.
    pub embedding_block_secs: f64,
    /// Context around each window's centre for the resegmentation embeddings, seconds.
    pub resegment_context_secs: f64,
    /// Move a window's centre to another speaker when its embedding is this much closer (cosine);
    /// 0 turns resegmentation off.
    pub resegment_margin: f32,
}

/// Everything the engine is configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// ONNX Runtime settings.
    pub runtime: RuntimeConfig,
    /// Model choice.
    pub models: ModelsConfig,
    /// Offline diarization.
    pub offline: OfflineConfig,
    /// Streaming diarization.
    pub streaming: StreamingConfig,
}

/// Streaming (live) diarization settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingConfig {
    /// Analysis window, seconds.
    pub window_secs: f64,
    /// Step between windows, seconds (rounded to the model's frame step).
    pub hop_secs: f64,
    /// Audio before each window that the segmentation model hears with it, seconds (rounded to
    /// the model's frame step): only the window's own frames are used, so latency is unchanged.
    pub context_secs: f64,
    /// Delay after which a stretch of audio is final, seconds (between the hop and the window).
    pub latency_secs: f64,
    /// The embedding backbone runs over the newest this many seconds of a window and keeps the
    /// frames past the previous run; the window's older frames come from earlier windows' runs.
    /// `window_secs` runs it over every whole window.
    pub backbone_secs: f64,
    /// The backbone runs for every this many windows (1: every window); the windows between
    /// runs are embedded from the frames the last run reached.
    pub backbone_every: usize,
    /// A local speaker joins the closest speaker below this cosine distance.
    pub match_threshold: f32,
    /// Clean speech an unmatched local speaker needs to open a new speaker, seconds.
    pub new_speaker_secs: f64,
    /// Clean speech a matched local speaker needs to refine its speaker's voiceprint, seconds.
    pub update_speech_secs: f64,
    /// Speech a local speaker needs in a window to be considered at all, seconds.
    pub min_speech_secs: f64,
    /// Most speakers per stream (0 = no bound).
    pub max_speakers: usize,
    /// Speakers whose voiceprints come closer than this cosine distance are merged (0: never).
    pub merge_threshold: f32,
    /// A new speaker waits for a second window to hear it before its first frames are final.
    pub confirm_new_speakers: bool,
    /// Audio buffered per stream before a live source overflows (a file source waits), seconds.
    pub buffer_secs: f64,
    /// Windows per stream handed to the models before their results come back.
    pub max_in_flight: usize,
    /// Shared inference: most windows in one model run.
    pub max_batch: usize,
    /// Shared inference: longest wait for a batch to fill, milliseconds.
    pub max_wait_ms: u64,
    /// Inference workers (each with its own models) shared by all streams; 0 = one per core.
    pub workers: usize,
}

impl EngineConfig {
    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), EngineError> {
        let o = &self.offline;
        let bad = |what: &str| Err(EngineError::Config(format!("offline.{what}")));
        if !(o.window_secs.is_finite() && o.window_secs >= 0.5 && o.window_secs <= 60.0) {
            return bad("window_secs must be between 0.5 and 60");
        }
        if !(o.step_secs.is_finite() && o.step_secs > 0.0 && o.step_secs <= o.window_secs) {
            return bad("step_secs must be positive and at most window_secs");
        }
        if !(o.cluster_threshold.is_finite() && (0.0..=2.0).contains(&o.cluster_threshold)) {
            return bad("cluster_threshold must be a cosine distance in [0, 2]");
        }
        for (v, what) in [
            (o.min_duration_on_secs, "min_duration_on_secs"),
            (o.min_duration_off_secs, "min_duration_off_secs"),
            (o.pad_onset_secs, "pad_onset_secs"),
            (o.pad_offset_secs, "pad_offset_secs"),
        ] {
            if !(v.is_finite() && (0.0..=10.0).contains(&v)) {
                return Err(EngineError::Config(format!(
                    "offline.{what} must be between 0 and 10 seconds"
                )));
            }
        }
        if o.max_speakers > 0 && o.min_speakers > o.max_speakers {
            return bad("min_speakers must not exceed max_speakers");
        }
        if !(o.embedding_block_secs.is_finite()
            && o.embedding_block_secs >= 1.0
            && o.embedding_block_secs <= 600.0)
        {
            return bad("embedding_block_secs must be between 1 and 600");
        }
        if !(o.resegment_context_secs.is_finite()
            && (0.0..=10.0).contains(&o.resegment_context_secs))
        {
            return bad("resegment_context_secs must be between 0 and 10");
        }
        if !(o.resegment_margin.is_finite() && (0.0..=2.0).contains(&o.resegment_margin)) {
            return bad("resegment_margin must be between 0 and 2");
        }
        if o.max_cluster_embeddings < 2 {
            return bad("max_cluster_embeddings must be at least 2");
        }
        let s = &self.streaming;
        let bad = |what: &str| Err(EngineError::Config(format!("streaming.{what}")));
        if !(s.window_secs.is_finite() && s.window_secs >= 0.5 && s.window_secs <= 30.0) {
            return bad("window_secs must be between 0.5 and 30");
        }
        if !(s.hop_secs.is_finite() && s.hop_secs > 0.0 && s.hop_secs <= s.window_secs) {
            return bad("hop_secs must be positive and at most window_secs");
        }
        if !(s.context_secs.is_finite() && (0.0..=30.0).contains(&s.context_secs)) {
            return bad("context_secs must be between 0 and 30");
        }
        if !(s.latency_secs.is_finite()
            && s.latency_secs >= s.hop_secs
            && s.latency_secs <= s.window_secs)
        {
            return bad("latency_secs must be between hop_secs and window_secs");
        }
        if !(s.backbone_secs.is_finite()
            && s.backbone_secs >= s.hop_secs
            && s.backbone_secs <= s.window_secs)
        {
            return bad("backbone_secs must be between hop_secs and window_secs");
        }
        if s.backbone_every == 0 || s.backbone_every as f64 * s.hop_secs > s.window_secs {
            return bad(
                "backbone_every must be at least 1, and backbone_every hops at most a window",
            );
        }
        if !(s.match_threshold.is_finite() && (0.0..=2.0).contains(&s.match_threshold)) {
            return bad("match_threshold must be a cosine distance in [0, 2]");
        }
        if !(s.merge_threshold.is_finite() && (0.0..=2.0).contains(&s.merge_threshold)) {
            return bad("merge_threshold must be a cosine distance in [0, 2]");
        }
        for (v, what) in [
            (s.new_speaker_secs, "new_speaker_secs"),
            (s.update_speech_secs, "update_speech_secs"),
            (s.min_speech_secs, "min_speech_secs"),
        ] {
            if !(v.is_finite() && v >= 0.0 && v <= s.window_secs) {
                return Err(EngineError::Config(format!(
                    "streaming.{what} must be between 0 and window_secs"
                )));
            }
        }
        if !(s.buffer_secs.is_finite() && s.buffer_secs >= s.window_secs && s.buffer_secs <= 3600.0)
        {
            return bad("buffer_secs must be between window_secs and 3600");
        }
        if s.max_in_flight == 0 || s.max_batch == 0 {
            return bad("max_in_flight and max_batch must be at least 1");
        }
        Ok(())
    }
}
