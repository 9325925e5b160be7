//! Inference sessions for the two model roles. Each wraps one ONNX Runtime session; a session is
//! used by one thread at a time, so worker pools hold one per worker.

use ort::session::Session;
use ort::value::TensorRef;

use crate::manifest::{FrameGeometry, Layout, ModelSpec, Task};
use crate::{ModelError, Runtime, SessionOptions};

/// Frame-level scores of a batch of windows, `[windows, frames, classes]` row-major.
#[derive(Debug, Clone, Default)]
pub struct FrameScores {
    /// Number of windows in the batch.
    pub windows: usize,
    /// Frames per window.
    pub frames: usize,
    /// Scores per frame (powerset classes or speakers).
    pub classes: usize,
    /// The scores.
    pub data: Vec<f32>,
}

impl FrameScores {
    /// The `[frames, classes]` scores of window `w`.
    pub fn window(&self, w: usize) -> &[f32] {
        let n = self.frames * self.classes;
        &self.data[w * n..(w + 1) * n]
    }
}

/// Embeddings of a batch, `[items, speakers, dimension]` row-major.
#[derive(Debug, Clone, Default)]
pub struct Embeddings {
    /// Number of items (windows) in the batch.
    pub items: usize,
    /// Speakers per item.
    pub speakers: usize,
    /// Vector dimension.
    pub dimension: usize,
    /// The vectors.
    pub data: Vec<f32>,
}

impl Embeddings {
    /// The embedding of speaker `s` of item `i`.
    pub fn get(&self, i: usize, s: usize) -> &[f32] {
        let at = (i * self.speakers + s) * self.dimension;
        &self.data[at..at + self.dimension]
    }
}

fn open(
    runtime: &Runtime,
    spec: &ModelSpec,
    task: Task,
    opts: SessionOptions,
) -> Result<Session, ModelError> {
    let m = &spec.manifest;
    if m.model.task != task {
        return Err(ModelError::Mismatch {
            model: m.model.name.clone(),
            reason: format!(
                "manifest says task {:?}, but a {task:?} model was asked for",
                m.model.task
            ),
        });
    }
    let bytes = spec.read_verified()?;
    let session = runtime.session(&bytes, opts)?;
    let mut wanted = vec![m.input.waveform.as_str()];
    wanted.extend(m.input.weights.as_deref());
    for name in wanted {
        if !session.inputs().iter().any(|o| o.name() == name) {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!("the graph has no input `{name}` named in the manifest"),
            });
        }
    }
    if !session.outputs().iter().any(|o| o.name() == m.output.name) {
        return Err(ModelError::Mismatch {
            model: m.model.name.clone(),
            reason: format!(
                "the graph has no output `{}` named in the manifest",
                m.output.name
            ),
        });
    }
    Ok(session)
}

fn waveform_shape(layout: Layout, batch: usize, samples: usize) -> Vec<i64> {
    match layout {
        Layout::BatchChannelSamples => vec![batch as i64, 1, samples as i64],
        Layout::BatchSamples => vec![batch as i64, samples as i64],
    }
}

fn check_batch(spec: &ModelSpec, batch: &[f32], window: usize) -> Result<usize, ModelError> {
    let name = &spec.manifest.model.name;
    let min = spec.manifest.input.min_samples;
    if window < min {
        return Err(ModelError::Mismatch {
            model: name.clone(),
            reason: format!("input of {window} samples is shorter than the model's minimum {min}"),
        });
    }
    if batch.is_empty() || !batch.len().is_multiple_of(window) {
        return Err(ModelError::Mismatch {
            model: name.clone(),
            reason: format!(
                "batch of {} samples is not a whole number of {window}-sample windows",
                batch.len()
            ),
        });
    }
    Ok(batch.len() / window)
}

/// A speaker segmentation model: a window of audio in, per-frame scores out.
pub struct SegmentationModel {
    session: Session,
    spec: ModelSpec,
}

impl SegmentationModel {
    /// Loads and verifies the model described by `spec`.
    pub fn load(
        runtime: &Runtime,
        spec: &ModelSpec,
        opts: SessionOptions,
    ) -> Result<Self, ModelError> {
        let session = open(runtime, spec, Task::Segmentation, opts)?;
        Ok(Self {
            session,
            spec: spec.clone(),
        })
    }

    /// The manifest this model was loaded from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Output frame geometry.
    pub fn geometry(&self) -> FrameGeometry {
        self.spec.frames()
    }

    /// Runs a batch of equal-length windows laid end to end in `batch`.
    pub fn run(&mut self, batch: &[f32], window: usize) -> Result<FrameScores, ModelError> {
        let n = check_batch(&self.spec, batch, window)?;
        let m = &self.spec.manifest;
        let shape = waveform_shape(m.input.layout, n, window);
        let input = TensorRef::from_array_view((shape, batch))?;
        let outputs = self
            .session
            .run(ort::inputs![m.input.waveform.as_str() => input])?;
        let (shape, data) = outputs[m.output.name.as_str()].try_extract_tensor::<f32>()?;
        if shape.len() != 3 || shape[0] as usize != n {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!("expected output [batch, frames, classes], got {shape:?}"),
            });
        }
        let expected_frames = self.spec.frames().frames(window);
        if shape[1] as usize != expected_frames {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!(
                    "{window} samples gave {} frames; the manifest's frame geometry says {expected_frames}",
                    shape[1]
                ),
            });
        }
        Ok(FrameScores {
            windows: n,
            frames: shape[1] as usize,
            classes: shape[2] as usize,
            data: data.to_vec(),
        })
    }
}

/// Frame features from an embedding model's backbone, `[frames, dimension]` row-major.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Number of frames.
    pub frames: usize,
    /// Values per frame.
    pub dimension: usize,
    /// The features.
    pub data: Vec<f32>,
}

enum Graphs {
    /// One graph: waveform and weights in, embeddings out.
    Whole(Session),
    /// Backbone and pooling head.
    Split { frames: Session, pool: Session },
}

/// A speaker embedding model: a window of audio and per-speaker frame weights in, one embedding
/// per speaker out. When the manifest ships the model split in two, the backbone can also run
/// once over a long stretch of audio ([`EmbeddingModel::features`]) and be pooled per window and
/// speaker ([`EmbeddingModel::pool`]).
pub struct EmbeddingModel {
    graphs: Graphs,
    spec: ModelSpec,
}

fn check_names(
    session: &Session,
    model: &str,
    inputs: &[&str],
    output: &str,
) -> Result<(), ModelError> {
    for name in inputs {
        if !session.inputs().iter().any(|o| o.name() == *name) {
            return Err(ModelError::Mismatch {
                model: model.into(),
                reason: format!("a graph has no input `{name}`"),
            });
        }
    }
    if !session.outputs().iter().any(|o| o.name() == output) {
        return Err(ModelError::Mismatch {
            model: model.into(),
            reason: format!("a graph has no output `{output}`"),
        });
    }
    Ok(())
}

impl EmbeddingModel {
    /// Loads and verifies the model described by `spec` (its split graphs when it has them).
    pub fn load(
        runtime: &Runtime,
        spec: &ModelSpec,
        opts: SessionOptions,
    ) -> Result<Self, ModelError> {
        let m = &spec.manifest;
        if m.model.task != Task::Embedding {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!(
                    "manifest says task {:?}, but an embedding model was asked for",
                    m.model.task
                ),
            });
        }
        // The split graphs, with the variant's backbone when it has one of its own.
        let backbone = match &spec.variant {
            None => m
                .split
                .as_ref()
                .map(|s| (s.frames_file.as_str(), s.frames_sha256.as_str())),
            Some(v) => m
                .variants
                .get(v)
                .and_then(|v| v.frames_file.as_deref().zip(v.frames_sha256.as_deref())),
        };
        let graphs = match (&m.split, backbone) {
            (Some(split), Some((frames_file, frames_sha256))) => {
                let frames =
                    runtime.session(&spec.read_sibling(frames_file, frames_sha256)?, opts)?;
                let pool = runtime.session(
                    &spec.read_sibling(&split.pool_file, &split.pool_sha256)?,
                    opts,
                )?;
                let weights = m.input.weights.as_deref().unwrap_or("weights");
                check_names(
                    &frames,
                    &m.model.name,
                    &[&m.input.waveform],
                    &split.features,
                )?;
                check_names(
                    &pool,
                    &m.model.name,
                    &[&split.features, weights],
                    &m.output.name,
                )?;
                Graphs::Split { frames, pool }
            }
            _ => Graphs::Whole(open(runtime, spec, Task::Embedding, opts)?),
        };
        Ok(Self {
            graphs,
            spec: spec.clone(),
        })
    }

    /// The manifest this model was loaded from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Embedding dimension.
    pub fn dimension(&self) -> usize {
        self.spec.manifest.output.dimension.unwrap_or(0)
    }

    /// Geometry of the weight frames [`EmbeddingModel::run`] expects.
    pub fn weight_geometry(&self) -> FrameGeometry {
        let i = &self.spec.manifest.input;
        FrameGeometry {
            step: i.weights_frame_step.unwrap_or(1),
            length: i.weights_frame_length.unwrap_or(1),
            offset: 0,
        }
    }

    /// Geometry of backbone feature frames, when the model is split.
    pub fn feature_geometry(&self) -> Option<FrameGeometry> {
        match (&self.graphs, &self.spec.manifest.split) {
            (Graphs::Split { .. }, Some(s)) => Some(FrameGeometry {
                step: s.feature_step,
                length: s.feature_length,
                offset: 0,
            }),
            _ => None,
        }
    }

    /// Shortest input in samples.
    pub fn min_samples(&self) -> usize {
        self.spec.manifest.input.min_samples
    }

    fn mismatch(&self, reason: String) -> ModelError {
        ModelError::Mismatch {
            model: self.spec.manifest.model.name.clone(),
            reason,
        }
    }

    /// Runs a batch of equal-length windows laid end to end in `batch`, with `weights` of shape
    /// `[windows, speakers, weight_frames(window)]`.
    pub fn run(
        &mut self,
        batch: &[f32],
        window: usize,
        weights: &[f32],
        speakers: usize,
    ) -> Result<Embeddings, ModelError> {
        let n = check_batch(&self.spec, batch, window)?;
        let frames = self.weight_geometry().frames(window);
        if speakers == 0 || weights.len() != n * speakers * frames {
            return Err(self.mismatch(format!(
                "weights hold {} values; [{n} windows, {speakers} speakers, {frames} frames] expected",
                weights.len()
            )));
        }
        if let Some(fg) = self.feature_geometry() {
            // Backbone per window, then weights moved to the feature frames and pooled.
            let wg = self.weight_geometry();
            let mut out = Embeddings {
                items: n,
                speakers,
                dimension: self.dimension(),
                data: Vec::new(),
            };
            for (i, audio) in batch.chunks_exact(window).enumerate() {
                let f = self.features(audio)?;
                let mut w = Vec::with_capacity(speakers * f.frames);
                for s in 0..speakers {
                    let row =
                        &weights[(i * speakers + s) * frames..(i * speakers + s + 1) * frames];
                    w.extend((0..f.frames).map(|k| {
                        let centre = (k * fg.step + fg.length / 2) as f64;
                        let j = ((centre - (wg.length / 2) as f64) / wg.step as f64)
                            .round()
                            .max(0.0) as usize;
                        row[j.min(frames - 1)]
                    }));
                }
                out.data
                    .extend(self.pool(&f.data, f.dimension, &w, speakers)?.data);
            }
            return Ok(out);
        }
        let m = &self.spec.manifest;
        let Graphs::Whole(session) = &mut self.graphs else {
            unreachable!("split graphs are handled above")
        };
        let wave = TensorRef::from_array_view((waveform_shape(m.input.layout, n, window), batch))?;
        let w =
            TensorRef::from_array_view((vec![n as i64, speakers as i64, frames as i64], weights))?;
        let weights_name = m.input.weights.as_deref().unwrap_or("weights");
        let dim = m.output.dimension.unwrap_or(0);
        let outputs =
            session.run(ort::inputs![m.input.waveform.as_str() => wave, weights_name => w])?;
        let (shape, data) = outputs[m.output.name.as_str()].try_extract_tensor::<f32>()?;
        if shape.len() != 3
            || shape[0] as usize != n
            || shape[1] as usize != speakers
            || shape[2] as usize != dim
        {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!("expected output [{n}, {speakers}, {dim}], got {shape:?}"),
            });
        }
        Ok(Embeddings {
            items: n,
            speakers,
            dimension: dim,
            data: data.to_vec(),
        })
    }

    /// Runs the backbone over `audio` (split models only).
    pub fn features(&mut self, audio: &[f32]) -> Result<Features, ModelError> {
        let mut out = self.features_batch(audio, audio.len())?;
        Ok(out.pop().unwrap_or_default())
    }

    /// Runs the backbone over a batch of equal-length windows laid end to end in `batch`, one
    /// [`Features`] per window (split models only).
    pub fn features_batch(
        &mut self,
        batch: &[f32],
        window: usize,
    ) -> Result<Vec<Features>, ModelError> {
        let n = check_batch(&self.spec, batch, window)?;
        let m = &self.spec.manifest;
        let (Graphs::Split { frames, .. }, Some(split)) = (&mut self.graphs, &m.split) else {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: "the model is not split".into(),
            });
        };
        let wave = TensorRef::from_array_view((waveform_shape(m.input.layout, n, window), batch))?;
        let outputs = frames.run(ort::inputs![m.input.waveform.as_str() => wave])?;
        let (shape, data) = outputs[split.features.as_str()].try_extract_tensor::<f32>()?;
        if shape.len() != 3 || shape[0] as usize != n {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!("expected features [{n}, frames, dimension], got {shape:?}"),
            });
        }
        let (frames, dimension) = (shape[1] as usize, shape[2] as usize);
        Ok(data
            .chunks_exact(frames * dimension)
            .map(|d| Features {
                frames,
                dimension,
                data: d.to_vec(),
            })
            .collect())
    }

    /// Pools `features` (`[frames, dimension]` row-major, e.g. a stretch of
    /// [`EmbeddingModel::features`]) with `weights` `[speakers, frames]` (split models only).
    pub fn pool(
        &mut self,
        features: &[f32],
        dimension: usize,
        weights: &[f32],
        speakers: usize,
    ) -> Result<Embeddings, ModelError> {
        let frames = features.len().checked_div(dimension).unwrap_or(0);
        if speakers == 0
            || frames == 0
            || frames * dimension != features.len()
            || weights.len() != speakers * frames
        {
            return Err(self.mismatch(format!(
                "{} feature values of dimension {dimension} with {} weights for {speakers} speakers",
                features.len(),
                weights.len(),
            )));
        }
        let m = &self.spec.manifest;
        let dim = m.output.dimension.unwrap_or(0);
        let (Graphs::Split { pool, .. }, Some(split)) = (&mut self.graphs, &m.split) else {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: "the model is not split".into(),
            });
        };
        let f = TensorRef::from_array_view((vec![1, frames as i64, dimension as i64], features))?;
        let w = TensorRef::from_array_view((vec![1, speakers as i64, frames as i64], weights))?;
        let weights_name = m.input.weights.as_deref().unwrap_or("weights");
        let outputs = pool.run(ort::inputs![split.features.as_str() => f, weights_name => w])?;
        let (shape, data) = outputs[m.output.name.as_str()].try_extract_tensor::<f32>()?;
        if shape.len() != 3 || shape[1] as usize != speakers || shape[2] as usize != dim {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!("expected output [1, {speakers}, {dim}], got {shape:?}"),
            });
        }
        Ok(Embeddings {
            items: 1,
            speakers,
            dimension: dim,
            data: data.to_vec(),
        })
    }
}
