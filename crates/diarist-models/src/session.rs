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

fn open(runtime: &Runtime, spec: &ModelSpec, task: Task, opts: SessionOptions) -> Result<Session, ModelError> {
    let m = &spec.manifest;
    if m.model.task != task {
        return Err(ModelError::Mismatch {
            model: m.model.name.clone(),
            reason: format!("manifest says task {:?}, but a {task:?} model was asked for", m.model.task),
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
            reason: format!("the graph has no output `{}` named in the manifest", m.output.name),
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
    if batch.is_empty() || batch.len() % window != 0 {
        return Err(ModelError::Mismatch {
            model: name.clone(),
            reason: format!("batch of {} samples is not a whole number of {window}-sample windows", batch.len()),
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
    pub fn load(runtime: &Runtime, spec: &ModelSpec, opts: SessionOptions) -> Result<Self, ModelError> {
        let session = open(runtime, spec, Task::Segmentation, opts)?;
        Ok(Self { session, spec: spec.clone() })
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
        let outputs = self.session.run(ort::inputs![m.input.waveform.as_str() => input])?;
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

/// A speaker embedding model: a window of audio and per-speaker frame weights in, one embedding
/// per speaker out.
pub struct EmbeddingModel {
    session: Session,
    spec: ModelSpec,
}

impl EmbeddingModel {
    /// Loads and verifies the model described by `spec`.
    pub fn load(runtime: &Runtime, spec: &ModelSpec, opts: SessionOptions) -> Result<Self, ModelError> {
        let session = open(runtime, spec, Task::Embedding, opts)?;
        Ok(Self { session, spec: spec.clone() })
    }

    /// The manifest this model was loaded from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Embedding dimension.
    pub fn dimension(&self) -> usize {
        self.spec.manifest.output.dimension.unwrap_or(0)
    }

    /// Geometry of the weight frames the model expects.
    pub fn weight_geometry(&self) -> FrameGeometry {
        let i = &self.spec.manifest.input;
        FrameGeometry {
            step: i.weights_frame_step.unwrap_or(1),
            length: i.weights_frame_length.unwrap_or(1),
        }
    }

    /// Shortest input in samples.
    pub fn min_samples(&self) -> usize {
        self.spec.manifest.input.min_samples
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
        let m = &self.spec.manifest;
        let frames = self.weight_geometry().frames(window);
        if speakers == 0 || weights.len() != n * speakers * frames {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!(
                    "weights hold {} values; [{n} windows, {speakers} speakers, {frames} frames] expected",
                    weights.len()
                ),
            });
        }
        let wave = TensorRef::from_array_view((waveform_shape(m.input.layout, n, window), batch))?;
        let w = TensorRef::from_array_view((vec![n as i64, speakers as i64, frames as i64], weights))?;
        let weights_name = m.input.weights.as_deref().unwrap_or("weights");
        let dim = m.output.dimension.unwrap_or(0);
        let outputs = self
            .session
            .run(ort::inputs![m.input.waveform.as_str() => wave, weights_name => w])?;
        let (shape, data) = outputs[m.output.name.as_str()].try_extract_tensor::<f32>()?;
        if shape.len() != 3 || shape[0] as usize != n || shape[1] as usize != speakers || shape[2] as usize != dim {
            return Err(ModelError::Mismatch {
                model: m.model.name.clone(),
                reason: format!("expected output [{n}, {speakers}, {dim}], got {shape:?}"),
            });
        }
        Ok(Embeddings { items: n, speakers, dimension: dim, data: data.to_vec() })
    }
}
