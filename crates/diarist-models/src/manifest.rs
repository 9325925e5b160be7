//! Model manifests: `models/<name>/manifest.toml` says what a model file is and how to feed it.
//!
//! A new segmentation or embedding model plugs in by writing a manifest, never by editing code:
//! the manifest names the tensors, the input layout, the frame geometry and the output kind.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::ModelError;

/// What a model computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Frame-level speaker activity for a window of audio.
    Segmentation,
    /// A fixed-size speaker embedding per (window, speaker).
    Embedding,
}

/// How the waveform tensor is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `[batch, 1, samples]`.
    BatchChannelSamples,
    /// `[batch, samples]`.
    BatchSamples,
}

/// What the graph expects as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrontEnd {
    /// Raw samples in [-1, 1].
    Waveform,
    /// Raw samples in [-1, 1]; the filter-bank features are computed inside the graph.
    FbankInGraph,
}

/// How to read the output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// One score per powerset class per frame; `classes` lists the speakers of each class.
    Powerset,
    /// One independent score per speaker per frame.
    Multilabel,
    /// One embedding vector per (item, speaker).
    Embedding,
}

/// The nonlinearity already applied to the output scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Log-probabilities over classes.
    LogSoftmax,
    /// Independent probabilities in [0, 1].
    Sigmoid,
    /// Raw scores before any nonlinearity.
    Logits,
    /// Not a score (embeddings).
    None,
}

/// The `[model]` table: identity, provenance and integrity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Free-text identifier.
    pub name: String,
    /// What the model computes.
    pub task: Task,
    /// ONNX file, relative to the manifest.
    pub file: String,
    /// Hex sha256 of `file`.
    pub sha256: String,
    /// SPDX licence identifier.
    pub licence: String,
    /// Licence text, relative to the manifest.
    pub licence_file: String,
    /// Where the weights came from.
    pub source: String,
    /// The script that produced the ONNX file.
    pub produced_by: String,
    /// Sample rate of the waveform input.
    pub sample_rate: u32,
}

/// The `[input]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    /// Name of the waveform input tensor.
    pub waveform: String,
    /// Shape of the waveform input tensor.
    pub layout: Layout,
    /// Shortest input, in samples, the model accepts.
    pub min_samples: usize,
    /// Whether features are computed inside the graph.
    pub front_end: FrontEnd,
    /// Embedding models: name of the per-speaker frame-weights input `[B, S, T]`.
    pub weights: Option<String>,
    /// Embedding models: samples between weight frames.
    pub weights_frame_step: Option<usize>,
    /// Embedding models: samples covered by one weight frame.
    pub weights_frame_length: Option<usize>,
}

/// The `[output]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Name of the output tensor.
    pub name: String,
    /// How to read the output.
    pub kind: OutputKind,
    /// Nonlinearity already applied.
    pub activation: Activation,
    /// Segmentation: samples between output frames.
    pub frame_step: Option<usize>,
    /// Segmentation: receptive field of one output frame, in samples.
    pub frame_length: Option<usize>,
    /// Segmentation: samples from an output frame's receptive-field centre to the instant its
    /// labels describe (0 when absent), as measured against reference annotation.
    pub frame_offset: Option<usize>,
    /// Segmentation: speakers per window.
    pub max_speakers: Option<usize>,
    /// Powerset: the speakers active in each class.
    pub classes: Option<Vec<Vec<usize>>>,
    /// Embedding: vector dimension.
    pub dimension: Option<usize>,
}

/// The `[front_end]` table: documents the in-graph feature extraction.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontEndSection {
    /// Mel bins.
    pub num_mel_bins: u32,
    /// Analysis frame length.
    pub frame_length_ms: f32,
    /// Analysis frame shift.
    pub frame_shift_ms: f32,
    /// Window function.
    pub window: String,
    /// Pre-emphasis coefficient.
    pub preemphasis: f32,
    /// Dither amplitude.
    pub dither: f32,
    /// Mean normalisation scope.
    pub mean_normalisation: String,
}

/// The `[split]` table: an embedding model also shipped as two graphs, a backbone run once over
/// any stretch of audio and a pooling head run per window and speaker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSection {
    /// Backbone graph: waveform in, frame features `[B, T, C]` out.
    pub frames_file: String,
    /// Hex sha256 of `frames_file`.
    pub frames_sha256: String,
    /// Name of the features tensor (backbone output, head input).
    pub features: String,
    /// Samples between feature frames.
    pub feature_step: usize,
    /// Samples covered by one feature frame (frame `k` is centred on `k·step + length/2`).
    pub feature_length: usize,
    /// Pooling head graph: features and per-speaker weights `[B, S, T]` in, embeddings out.
    pub pool_file: String,
    /// Hex sha256 of `pool_file`.
    pub pool_sha256: String,
}

/// Another file of the same model (e.g. INT8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// ONNX file, relative to the manifest.
    pub file: String,
    /// Hex sha256 of `file`.
    pub sha256: String,
    /// Split models: this variant's backbone graph (the pooling head is shared).
    pub frames_file: Option<String>,
    /// Hex sha256 of `frames_file`.
    pub frames_sha256: Option<String>,
}

/// A parsed `manifest.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Identity and provenance.
    pub model: ModelSection,
    /// Input tensors.
    pub input: InputSection,
    /// Output tensor.
    pub output: OutputSection,
    /// In-graph feature extraction, when any.
    pub front_end: Option<FrontEndSection>,
    /// The model as backbone and pooling head, when shipped so.
    pub split: Option<SplitSection>,
    /// Other files of the same model, by name.
    #[serde(default)]
    pub variants: std::collections::BTreeMap<String, Variant>,
}

/// Frame geometry of a segmentation model's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameGeometry {
    /// Samples between frames.
    pub step: usize,
    /// Samples covered by one frame.
    pub length: usize,
    /// Samples from a frame's receptive-field centre to the instant it describes.
    pub offset: usize,
}

impl FrameGeometry {
    /// Number of output frames for an input of `samples` samples.
    pub fn frames(&self, samples: usize) -> usize {
        if samples < self.length {
            0
        } else {
            1 + (samples - self.length) / self.step
        }
    }
}

/// A manifest together with the directory it was read from and the chosen model file.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// Directory holding the manifest.
    pub dir: PathBuf,
    /// Path of the ONNX file to load (the main file or a variant).
    pub onnx: PathBuf,
    /// Expected sha256 of `onnx`.
    pub sha256: String,
    /// Variant name, `None` for the main file.
    pub variant: Option<String>,
}

impl ModelSpec {
    /// Reads `dir/manifest.toml` (or a manifest file path), validates it, and selects `variant`
    /// (`None` or `"fp32"` for the main file).
    pub fn load(path: &Path, variant: Option<&str>) -> Result<Self, ModelError> {
        let manifest_path = if path.is_dir() {
            path.join("manifest.toml")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&manifest_path).map_err(|error| ModelError::Io {
            path: manifest_path.clone(),
            error,
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| ModelError::Manifest {
            path: manifest_path.clone(),
            reason: e.to_string(),
        })?;
        let dir = manifest_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        manifest.validate().map_err(|reason| ModelError::Manifest {
            path: manifest_path.clone(),
            reason,
        })?;
        let (file, sha256, variant) = match variant {
            None | Some("fp32") => (
                manifest.model.file.clone(),
                manifest.model.sha256.clone(),
                None,
            ),
            Some(name) => {
                let v = manifest
                    .variants
                    .get(name)
                    .ok_or_else(|| ModelError::Manifest {
                        path: manifest_path.clone(),
                        reason: format!(
                            "no variant `{name}` (known: fp32{})",
                            manifest
                                .variants
                                .keys()
                                .map(|k| format!(", {k}"))
                                .collect::<String>()
                        ),
                    })?;
                (v.file.clone(), v.sha256.clone(), Some(name.to_string()))
            }
        };
        Ok(Self {
            onnx: dir.join(file),
            dir,
            manifest,
            sha256,
            variant,
        })
    }

    /// Reads the ONNX file and checks its sha256 against the manifest.
    pub fn read_verified(&self) -> Result<Vec<u8>, ModelError> {
        read_verified(&self.onnx, &self.sha256)
    }

    /// Reads a file named relative to the manifest and checks its sha256.
    pub fn read_sibling(&self, file: &str, sha256: &str) -> Result<Vec<u8>, ModelError> {
        read_verified(&self.dir.join(file), sha256)
    }

    /// Frame geometry of a segmentation model.
    pub fn frames(&self) -> FrameGeometry {
        let o = &self.manifest.output;
        FrameGeometry {
            step: o.frame_step.unwrap_or(1),
            length: o.frame_length.unwrap_or(1),
            offset: o.frame_offset.unwrap_or(0),
        }
    }
}

impl Manifest {
    /// Checks that the fields each task and output kind needs are present and consistent.
    fn validate(&self) -> Result<(), String> {
        let (m, i, o) = (&self.model, &self.input, &self.output);
        if m.sample_rate != 16_000 {
            return Err(format!(
                "sample_rate {} is not supported (16000 only)",
                m.sample_rate
            ));
        }
        match m.task {
            Task::Segmentation => {
                let need = |v: Option<usize>, what: &str| match v {
                    Some(x) if x > 0 => Ok(x),
                    _ => Err(format!("segmentation models need a positive output.{what}")),
                };
                need(o.frame_step, "frame_step")?;
                let length = need(o.frame_length, "frame_length")?;
                if o.frame_offset.unwrap_or(0) >= length / 2 {
                    return Err("output.frame_offset must lie within half a frame_length".into());
                }
                let speakers = need(o.max_speakers, "max_speakers")?;
                match o.kind {
                    OutputKind::Powerset => {
                        let classes = o.classes.as_ref().ok_or("powerset output needs classes")?;
                        if classes.iter().flatten().any(|&s| s >= speakers) {
                            return Err("a powerset class names a speaker >= max_speakers".into());
                        }
                        if o.activation == Activation::None {
                            return Err("powerset output needs an activation".into());
                        }
                    }
                    OutputKind::Multilabel => {
                        if o.activation == Activation::None
                            || o.activation == Activation::LogSoftmax
                        {
                            return Err("multilabel output needs sigmoid or logits".into());
                        }
                    }
                    OutputKind::Embedding => {
                        return Err("a segmentation model cannot have an embedding output".into());
                    }
                }
            }
            Task::Embedding => {
                if o.kind != OutputKind::Embedding {
                    return Err("an embedding model needs output.kind = \"embedding\"".into());
                }
                if o.dimension.unwrap_or(0) == 0 {
                    return Err("embedding models need a positive output.dimension".into());
                }
                if i.weights.is_none()
                    || i.weights_frame_step.unwrap_or(0) == 0
                    || i.weights_frame_length.unwrap_or(0) == 0
                {
                    return Err("embedding models need input.weights, weights_frame_step and weights_frame_length".into());
                }
            }
        }
        if let Some(split) = &self.split
            && (m.task != Task::Embedding || split.feature_step == 0 || split.feature_length == 0)
        {
            return Err(
                "[split] is for embedding models, with positive feature_step and feature_length"
                    .into(),
            );
        }
        if i.front_end == FrontEnd::FbankInGraph && self.front_end.is_none() {
            return Err("front_end = \"fbank-in-graph\" needs a [front_end] table".into());
        }
        Ok(())
    }
}

/// Reads `path` and checks its sha256 (hex) against `expected`.
pub fn read_verified(path: &Path, expected: &str) -> Result<Vec<u8>, ModelError> {
    let bytes = std::fs::read(path).map_err(|error| ModelError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let actual = hex(&Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(ModelError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
