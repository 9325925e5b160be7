//! Offline diarization of a whole recording.
//!
//! Audio streams through once: sliding windows are segmented and embedded as soon as they are
//! complete (a split embedding model runs its backbone once per block and each window pools the
//! frames it covers), and only the per-window activity (a few bytes per frame) and embeddings are
//! kept, so memory grows with the number of windows, not with the audio. At the end the
//! embeddings are clustered into global speakers (two local speakers of one window never share a
//! speaker), each window's centre is re-checked with a short-context embedding, and
//! recording-level activity is rebuilt with the per-frame speaker count.

use diarist_core::SAMPLE_RATE;
use diarist_core::activity::{self, LocalActivity, ScoreKind};
use diarist_core::assignment::max_weight_matching;
use diarist_core::cluster::{self, ClusterCount, EmbeddingMatrix};
use diarist_core::reconstruct::{self, Activity, FrameGrid, PlacedWindow, SpeakerTurn, TurnRules};
use std::ops::Range;
use std::path::Path;

use diarist_audio::AudioStream;
use diarist_models::{
    Activation, EmbeddingModel, Embeddings, FrameGeometry, ModelSpec, OutputKind, Runtime,
    SegmentationModel,
};

use crate::config::OfflineConfig;
use crate::{EngineConfig, EngineError, frame_grid};

/// The two models one worker runs.
pub struct Models {
    /// Frame-level speaker segmentation.
    pub segmentation: SegmentationModel,
    /// Speaker embedding with per-speaker frame weights.
    pub embedding: EmbeddingModel,
}

impl Models {
    /// Loads the models a configuration names, on the ONNX Runtime it names.
    pub fn load(config: &EngineConfig) -> Result<Self, EngineError> {
        let runtime = Runtime::load(&config.runtime.onnxruntime)?;
        let opts = config.runtime.session_options();
        let variant = |v: &str| {
            if v == "fp32" {
                None
            } else {
                Some(v.to_string())
            }
        };
        let seg = ModelSpec::load(
            &config.models.segmentation,
            variant(&config.models.segmentation_variant).as_deref(),
        )?;
        let emb = ModelSpec::load(
            &config.models.embedding,
            variant(&config.models.embedding_variant).as_deref(),
        )?;
        Ok(Self {
            segmentation: SegmentationModel::load(&runtime, &seg, opts)?,
            embedding: EmbeddingModel::load(&runtime, &emb, opts)?,
        })
    }
}

/// Diarizes an audio file of any supported format.
pub fn diarize_file(
    models: &mut Models,
    cfg: &OfflineConfig,
    path: &Path,
) -> Result<Diarization, EngineError> {
    let mut audio = AudioStream::open(path)?;
    diarize(models, cfg, |buf| audio.read(buf))
}

/// The outcome of diarizing one recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Diarization {
    /// Samples of audio diarized.
    pub samples: usize,
    /// Number of global speakers found.
    pub speakers: usize,
    /// Overlap-aware turns (several speakers may talk at once).
    pub turns: Vec<SpeakerTurn>,
    /// Exclusive turns: at most one speaker at a time, for aligning transcripts.
    pub exclusive_turns: Vec<SpeakerTurn>,
    /// Windows segmented.
    pub windows: usize,
    /// Embeddings computed.
    pub embeddings: usize,
}

/// Settings resolved against the loaded models, in samples and frames.
#[derive(Debug, Clone)]
struct Plan {
    window: usize,
    step: usize,
    grid: FrameGrid,
    speakers: usize,
    kind: ScoreKind,
    min_embed_frames: usize,
    min_cluster_frames: usize,
    count: ClusterCount,
    min_cluster_size: usize,
    max_cluster_embeddings: usize,
    block: usize,
    reseg_context: usize,
    reseg_margin: f32,
    rules: TurnRules,
}

impl Plan {
    fn new(models: &Models, cfg: &OfflineConfig) -> Result<Self, EngineError> {
        let spec = models.segmentation.spec();
        let out = &spec.manifest.output;
        let grid = frame_grid(spec.frames());
        let speakers = out.max_speakers.unwrap_or(0);
        let kind = score_kind(spec, cfg.multilabel_threshold)?;
        let secs = |s: f64| (s * SAMPLE_RATE as f64).round() as usize;
        let window = secs(cfg.window_secs).max(spec.manifest.input.min_samples);
        let step = (secs(cfg.step_secs) / grid.step).max(1) * grid.step;
        let frames_of = |s: f64| (secs(s) as f64 / grid.step as f64).round() as usize;
        let unbounded = |v: usize| if v == 0 { None } else { Some(v) };
        Ok(Self {
            window,
            step,
            grid,
            speakers,
            kind,
            min_embed_frames: frames_of(cfg.min_embedding_speech_secs).max(1),
            min_cluster_frames: frames_of(cfg.min_cluster_speech_secs).max(1),
            count: ClusterCount {
                threshold: cfg.cluster_threshold,
                num: unbounded(cfg.num_speakers),
                min: cfg.min_speakers.max(1),
                max: unbounded(cfg.max_speakers),
            },
            min_cluster_size: cfg.min_cluster_size.max(1),
            max_cluster_embeddings: cfg.max_cluster_embeddings,
            block: secs(cfg.embedding_block_secs),
            reseg_context: frames_of(cfg.resegment_context_secs),
            reseg_margin: cfg.resegment_margin,
            rules: TurnRules {
                min_on: secs(cfg.min_duration_on_secs),
                min_off: secs(cfg.min_duration_off_secs),
                pad_onset: secs(cfg.pad_onset_secs),
                pad_offset: secs(cfg.pad_offset_secs),
            },
        })
    }
}

/// How the segmentation model described by `spec` scores its frames.
pub(crate) fn score_kind(
    spec: &ModelSpec,
    multilabel_threshold: f32,
) -> Result<ScoreKind, EngineError> {
    let out = &spec.manifest.output;
    match out.kind {
        OutputKind::Powerset => Ok(ScoreKind::Powerset {
            classes: out.classes.clone().unwrap_or_default(),
        }),
        OutputKind::Multilabel => Ok(ScoreKind::Multilabel {
            threshold: multilabel_threshold,
            logits: out.activation == Activation::Logits,
        }),
        OutputKind::Embedding => Err(EngineError::Config(
            "the segmentation model has an embedding output".into(),
        )),
    }
}

/// One embedding and where it came from.
struct LocalEmbedding {
    window: usize,
    slot: usize,
    /// Frames the speaker is alone in the window: how trustworthy the embedding is.
    clean_frames: usize,
}

/// Backbone features of the stretch of the recording still needed, for split embedding models.
struct FeatureBuffer {
    /// Recording-wide index of the first stored frame.
    first: usize,
    /// Stored frames, `[frames, dim]` row-major.
    data: Vec<f32>,
    dim: usize,
}

impl FeatureBuffer {
    fn frames(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Drops frames before recording-wide frame `frame`.
    fn drop_before(&mut self, frame: usize) {
        let n = frame.saturating_sub(self.first).min(self.frames());
        self.data.drain(..n * self.dim);
        self.first += n;
    }
}

/// A short-context embedding of one local speaker around the centre of one window, used to
/// correct that stretch after clustering.
struct ChunkSource {
    window: usize,
    slot: usize,
    /// Window frames the chunk stands for.
    frames: Range<usize>,
}

/// Diarizes one recording read from `read`, which appends the next chunk of 16 kHz mono samples
/// to its argument and returns how many it appended (0 at the end).
pub fn diarize<E>(
    models: &mut Models,
    cfg: &OfflineConfig,
    mut read: impl FnMut(&mut Vec<f32>) -> Result<usize, E>,
) -> Result<Diarization, EngineError>
where
    EngineError: From<E>,
{
    let plan = Plan::new(models, cfg)?;
    let mut state = State::new(models.embedding.dimension());
    let features = models.embedding.feature_geometry();
    // Split embedding models run their backbone once per block of audio; each block is extended by
    // one feature frame so that consecutive blocks' frames tile the recording without a gap.
    let block = features.map_or(0, |g| (plan.block / g.step).max(1) * g.step);
    let min_embed = models.embedding.min_samples();
    let mut feats = FeatureBuffer {
        first: 0,
        data: Vec::new(),
        dim: 0,
    };
    let mut next_block = 0usize;
    // `buf` holds samples from `buf_start` on; windows start at multiples of `plan.step`.
    let mut buf: Vec<f32> =
        Vec::with_capacity(plan.window + plan.step + block + SAMPLE_RATE as usize);
    let mut buf_start = 0usize;
    let mut next_start = 0usize;
    let mut last_start: Option<usize> = None;
    loop {
        let eof = read(&mut buf)? == 0;
        let end = buf_start + buf.len();
        if let Some(g) = features {
            let blocks = Blocks {
                size: block,
                geometry: g,
                min_samples: min_embed,
            };
            next_block = blocks.run(models, &buf, buf_start, next_block, eof, &mut feats)?;
        }
        let ready = |start: usize| {
            start + plan.window <= end
                && (features.is_none() || eof || start + plan.window <= next_block)
        };
        while ready(next_start) {
            let at = next_start - buf_start;
            state.window(
                models,
                &plan,
                next_start,
                &buf[at..at + plan.window],
                &feats,
                false,
            )?;
            last_start = Some(next_start);
            next_start += plan.step;
            // Keep enough history for a final window aligned to the end of the recording.
            let history = next_start.saturating_sub(plan.step + plan.grid.step);
            if let Some(g) = features {
                feats.drop_before(history / g.step);
            }
            // Split models also keep the audio of the block still to be run.
            let keep_from = if features.is_some() {
                history.min(next_block)
            } else {
                history
            };
            let keep_from = keep_from.max(buf_start);
            buf.drain(..keep_from - buf_start);
            buf_start = keep_from;
        }
        if eof {
            break;
        }
    }
    let total = buf_start + buf.len();
    let tail = Tail {
        buf: &buf,
        buf_start,
        last_start,
    };
    tail.diarize(models, &plan, &mut state, &feats)?;
    Ok(state.finish(&plan, total))
}

/// How a split embedding model's backbone runs over a recording: blocks of `size` samples,
/// each extended by one feature frame so that consecutive blocks' frames tile the recording.
struct Blocks {
    size: usize,
    geometry: FrameGeometry,
    min_samples: usize,
}

impl Blocks {
    /// Runs the backbone over every block from `next` on that `buf` (which holds the recording
    /// from `buf_start` on) covers, all of what is left at the end (`eof`); appends the frames to
    /// `feats` and returns where the next block starts.
    fn run(
        &self,
        models: &mut Models,
        buf: &[f32],
        buf_start: usize,
        mut next: usize,
        eof: bool,
        feats: &mut FeatureBuffer,
    ) -> Result<usize, EngineError> {
        let (g, block) = (self.geometry, self.size);
        let end = buf_start + buf.len();
        while next < end && (eof || next + block + g.length <= end) {
            let stop = (next + block + g.length).min(end);
            if stop - next >= self.min_samples {
                let f = models
                    .embedding
                    .features(&buf[next - buf_start..stop - buf_start])?;
                let keep = f.frames.min(block / g.step);
                feats.dim = f.dimension;
                feats.data.extend_from_slice(&f.data[..keep * f.dimension]);
            }
            next += block;
        }
        Ok(next)
    }
}

/// The end of a recording: the audio kept in `buf` (from `buf_start` on), and the start of the
/// last window diarized.
struct Tail<'a> {
    buf: &'a [f32],
    buf_start: usize,
    last_start: Option<usize>,
}

impl Tail<'_> {
    /// Diarizes a last window ending at the recording's end, or, for a recording shorter than
    /// one window, the recording as one window of its own length.
    fn diarize(
        &self,
        models: &mut Models,
        plan: &Plan,
        state: &mut State,
        feats: &FeatureBuffer,
    ) -> Result<(), EngineError> {
        let total = self.buf_start + self.buf.len();
        let min_samples = models
            .segmentation
            .spec()
            .manifest
            .input
            .min_samples
            .max(models.embedding.min_samples());
        if total >= plan.window {
            // On the frame grid.
            let start = (total - plan.window) / plan.grid.step * plan.grid.step;
            if self.last_start.is_none_or(|s| start > s) && start >= self.buf_start {
                let at = start - self.buf_start;
                let audio = &self.buf[at..at + plan.window];
                state.window(models, plan, start, audio, feats, true)?;
            }
        } else if total >= min_samples {
            state.window(models, plan, 0, &self.buf[..total], feats, true)?;
        }
        Ok(())
    }
}

/// Everything kept between windows.
struct State {
    windows: Vec<PlacedWindow>,
    embeddings: EmbeddingMatrix,
    sources: Vec<LocalEmbedding>,
    chunks: EmbeddingMatrix,
    chunk_sources: Vec<ChunkSource>,
    weights: Vec<f32>,
}

/// Appends, for local speaker `s`, one weight per position in `centres` (sample offsets from the
/// window start): 1 where the segmentation frame nearest to it has the speaker active (and alone,
/// when `clean_only`; and within `only`, when given).
fn push_weights(
    out: &mut Vec<f32>,
    local: &LocalActivity,
    grid: FrameGrid,
    s: usize,
    clean_only: bool,
    only: Option<&Range<usize>>,
    centres: impl Iterator<Item = f64>,
) {
    for centre in centres {
        let f = grid.nearest(centre).min(local.frames.saturating_sub(1));
        let on = local.is_active(f, s)
            && (!clean_only || local.count(f) == 1)
            && only.is_none_or(|r| r.contains(&f));
        out.push(if on { 1.0 } else { 0.0 });
    }
}

impl State {
    fn new(dim: usize) -> Self {
        Self {
            windows: Vec::new(),
            embeddings: EmbeddingMatrix::new(dim),
            sources: Vec::new(),
            chunks: EmbeddingMatrix::new(dim),
            chunk_sources: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Segments and embeds the window starting at sample `start`.
    fn window(
        &mut self,
        models: &mut Models,
        plan: &Plan,
        start: usize,
        audio: &[f32],
        feats: &FeatureBuffer,
        last: bool,
    ) -> Result<(), EngineError> {
        let scores = models.segmentation.run(audio, audio.len())?;
        let local: LocalActivity =
            activity::decode(scores.window(0), scores.frames, plan.speakers, &plan.kind);
        // Which local speakers get an embedding: (slot, frames alone, embed from those frames only).
        let wanted: Vec<(usize, usize, bool)> = (0..plan.speakers)
            .filter(|&s| local.frames_active(s) >= plan.min_embed_frames)
            .map(|s| {
                let clean = local.frames_alone(s);
                (s, clean, clean >= plan.min_embed_frames)
            })
            .collect();
        // The window's own stretch: its central step (from the start for the first window and to
        // the end for the last), widened by the context for the chunk embeddings.
        let step_frames = plan.step / plan.grid.step;
        let mut centre =
            local.frames.saturating_sub(step_frames) / 2..(local.frames + step_frames) / 2;
        if start == 0 {
            centre.start = 0;
        }
        if last {
            centre.end = local.frames;
        }
        let context = centre.start.saturating_sub(plan.reseg_context)
            ..(centre.end + plan.reseg_context).min(local.frames);
        // Short-context embeddings need the backbone's frames: split embedding models only.
        let split = models.embedding.feature_geometry();
        let chunks: Vec<usize> = if plan.reseg_margin > 0.0 && split.is_some() {
            (0..plan.speakers)
                .filter(|&s| centre.clone().any(|f| local.is_active(f, s)))
                .filter(|&s| {
                    context.clone().filter(|&f| local.is_active(f, s)).count()
                        >= plan.min_embed_frames
                })
                .collect()
        } else {
            Vec::new()
        };
        if wanted.is_empty() && chunks.is_empty() {
            self.push_window(plan, start, local);
            return Ok(());
        }
        // One weight row per embedding: (slot, clean frames only, frames it may use).
        let rows: Vec<(usize, bool, Option<&Range<usize>>)> = wanted
            .iter()
            .map(|&(s, _, clean_only)| (s, clean_only, None))
            .chain(chunks.iter().map(|&s| (s, false, Some(&context))))
            .collect();
        let placed = (start, audio, &local);
        let Some(out) = self.embed_rows(models, plan, placed, feats, &rows)? else {
            self.push_window(plan, start, local);
            return Ok(());
        };
        let index = self.windows.len();
        for (i, &(slot, clean, _)) in wanted.iter().enumerate() {
            self.embeddings.push(out.get(0, i));
            self.sources.push(LocalEmbedding {
                window: index,
                slot,
                clean_frames: clean,
            });
        }
        for (i, &slot) in chunks.iter().enumerate() {
            self.chunks.push(out.get(0, wanted.len() + i));
            self.chunk_sources.push(ChunkSource {
                window: index,
                slot,
                frames: centre.clone(),
            });
        }
        self.push_window(plan, start, local);
        Ok(())
    }

    /// One embedding per weight row `(slot, clean_only, only)` of the window at sample `start`
    /// holding `audio` with activity `local`: pooled from the backbone frames whose centre lies
    /// in the window (split models; `None` when there are none), else a run of the whole model.
    fn embed_rows(
        &mut self,
        models: &mut Models,
        plan: &Plan,
        (start, audio, local): (usize, &[f32], &LocalActivity),
        feats: &FeatureBuffer,
        rows: &[(usize, bool, Option<&Range<usize>>)],
    ) -> Result<Option<Embeddings>, EngineError> {
        let Some(g) = models.embedding.feature_geometry() else {
            let g = models.embedding.weight_geometry();
            let centres: Vec<f64> = (0..g.frames(audio.len()))
                .map(|j| (j * g.step + g.length / 2) as f64)
                .collect();
            self.fill_weights(local, plan.grid, rows, &centres);
            let out = models
                .embedding
                .run(audio, audio.len(), &self.weights, rows.len())?;
            return Ok(Some(out));
        };
        let half = g.length / 2;
        let lo = start.saturating_sub(half).div_ceil(g.step).max(feats.first);
        let hi = ((start + audio.len()).saturating_sub(half + 1) / g.step + 1)
            .min(feats.first + feats.frames());
        if hi <= lo {
            return Ok(None);
        }
        let slice = &feats.data[(lo - feats.first) * feats.dim..(hi - feats.first) * feats.dim];
        let centres: Vec<f64> = (lo..hi)
            .map(|k| (k * g.step + half) as f64 - start as f64)
            .collect();
        self.fill_weights(local, plan.grid, rows, &centres);
        let out = models
            .embedding
            .pool(slice, feats.dim, &self.weights, rows.len())?;
        Ok(Some(out))
    }

    /// Fills `self.weights` with one row per `(slot, clean_only, only)` over `centres`.
    fn fill_weights(
        &mut self,
        local: &LocalActivity,
        grid: FrameGrid,
        rows: &[(usize, bool, Option<&Range<usize>>)],
        centres: &[f64],
    ) {
        self.weights.clear();
        for &(s, clean_only, only) in rows {
            push_weights(
                &mut self.weights,
                local,
                grid,
                s,
                clean_only,
                only,
                centres.iter().copied(),
            );
        }
    }

    /// Keeps a window's activity for clustering and reconstruction.
    fn push_window(&mut self, plan: &Plan, start: usize, local: LocalActivity) {
        self.windows.push(PlacedWindow {
            first_frame: start / plan.grid.step,
            valid_frames: local.frames,
            activity: local,
            speakers: vec![None; plan.speakers],
        });
    }

    /// Clusters the embeddings and rebuilds the recording's turns.
    fn finish(mut self, plan: &Plan, total: usize) -> Diarization {
        let centroids = self.cluster(plan);
        let k = centroids.len();
        let frames = plan.grid.frames_covering(total);
        let count = reconstruct::speaker_count(&self.windows, frames);
        let (mut overlap, mut exclusive) = reconstruct::reconstruct(&self.windows, &count, k);
        self.resegment(plan, &centroids, &mut overlap, &mut exclusive);
        let (overlap, exclusive, speakers) = renumber(overlap, exclusive);
        Diarization {
            samples: total,
            speakers,
            turns: reconstruct::turns(&overlap, plan.grid, total, plan.rules),
            exclusive_turns: reconstruct::turns(&exclusive, plan.grid, total, plan.rules),
            windows: self.windows.len(),
            embeddings: self.sources.len(),
        }
    }

    /// Moves each window's central stretch of a local speaker to the speaker its short-context
    /// embedding is closest to, when that beats the speaker clustering gave it by the margin:
    /// window-level embeddings blur two voices that segmentation put in one slot.
    fn resegment(
        &self,
        plan: &Plan,
        centroids: &EmbeddingMatrix,
        overlap: &mut Activity,
        exclusive: &mut Activity,
    ) {
        let k = centroids.len();
        for (i, c) in self.chunk_sources.iter().enumerate() {
            let Some(old) = self.windows[c.window].speakers[c.slot] else {
                continue;
            };
            let sims: Vec<f32> = (0..k)
                .map(|j| cluster::dot(self.chunks.row(i), centroids.row(j)))
                .collect();
            let Some(new) = (0..k).max_by(|&a, &b| sims[a].total_cmp(&sims[b])) else {
                continue;
            };
            if new == old || sims[new] - sims[old] <= plan.reseg_margin {
                continue;
            }
            let w = &self.windows[c.window];
            for f in c
                .frames
                .clone()
                .filter(|&f| w.activity.is_active(f, c.slot))
            {
                let g = w.first_frame + f;
                if g >= overlap.frames {
                    break;
                }
                for a in [&mut *overlap, &mut *exclusive] {
                    if a.active[g * k + old] != 0 && a.active[g * k + new] == 0 {
                        a.active[g * k + old] = 0;
                        a.active[g * k + new] = 1;
                    }
                }
            }
        }
    }

    /// Assigns a global speaker to every embedded local speaker; returns the cluster centroids.
    fn cluster(&mut self, plan: &Plan) -> EmbeddingMatrix {
        let n = self.sources.len();
        if n == 0 {
            return EmbeddingMatrix::new(self.embeddings.dim);
        }
        // Embeddings from enough clean speech shape the clusters (all of them if none qualify).
        let mut train: Vec<usize> = (0..n)
            .filter(|&i| self.sources[i].clean_frames >= plan.min_cluster_frames)
            .collect();
        if train.len() < 2 {
            train = (0..n).collect();
        }
        if train.len() > plan.max_cluster_embeddings {
            let stride = train.len() as f64 / plan.max_cluster_embeddings as f64;
            train = (0..plan.max_cluster_embeddings)
                .map(|i| train[(i as f64 * stride) as usize])
                .collect();
        }
        let mut x = EmbeddingMatrix::new(self.embeddings.dim);
        for &i in &train {
            x.data.extend_from_slice(self.embeddings.row(i));
        }
        let merges = cluster::average_linkage(&x);
        let applied = cluster::merges_to_apply(&merges, x.len(), &plan.count);
        let labels = cluster::cut(&merges, x.len(), applied);
        let k = labels.iter().max().map_or(0, |m| m + 1);
        let mut centroids = cluster::centroids(&x, &labels, k);
        // Fold clusters with too few members into the nearest large one (unless a speaker count
        // was asked for, which the fold could break).
        if plan.count.num.is_none() {
            let mut sizes = vec![0usize; k];
            for &l in &labels {
                sizes[l] += 1;
            }
            let large: Vec<usize> = (0..k)
                .filter(|&c| sizes[c] >= plan.min_cluster_size)
                .collect();
            let keep = large.len().max(plan.count.min.min(k));
            if !large.is_empty() && large.len() < k && keep == large.len() {
                let mut kept = EmbeddingMatrix::new(x.dim);
                for &c in &large {
                    kept.data.extend_from_slice(centroids.row(c));
                }
                centroids = kept;
            }
        }
        let k = centroids.len();
        // Per window, an optimal one-to-one assignment of local speakers to centroids.
        let mut i = 0;
        while i < n {
            let w = self.sources[i].window;
            let mut j = i;
            while j < n && self.sources[j].window == w {
                j += 1;
            }
            let scores: Vec<Vec<f64>> = (i..j)
                .map(|e| {
                    (0..k)
                        .map(|c| f64::from(cluster::dot(self.embeddings.row(e), centroids.row(c))))
                        .collect()
                })
                .collect();
            for (row, assigned) in max_weight_matching(&scores).into_iter().enumerate() {
                let slot = self.sources[i + row].slot;
                self.windows[w].speakers[slot] = assigned;
            }
            i = j;
        }
        centroids
    }
}

/// Drops speakers with no activity and renumbers the rest in order of first appearance.
fn renumber(overlap: Activity, exclusive: Activity) -> (Activity, Activity, usize) {
    let k = overlap.speakers;
    let first: Vec<usize> = (0..k)
        .map(|s| {
            (0..overlap.frames)
                .find(|&g| overlap.active[g * k + s] != 0)
                .unwrap_or(usize::MAX)
        })
        .collect();
    let mut order: Vec<usize> = (0..k).filter(|&s| first[s] != usize::MAX).collect();
    order.sort_by_key(|&s| first[s]);
    let remap = |a: &Activity| {
        let mut active = vec![0u8; a.frames * order.len()];
        for g in 0..a.frames {
            for (new, &old) in order.iter().enumerate() {
                active[g * order.len() + new] = a.active[g * k + old];
            }
        }
        Activity {
            frames: a.frames,
            speakers: order.len(),
            active,
        }
    };
    let (o, e) = (remap(&overlap), remap(&exclusive));
    (o, e, order.len())
}
