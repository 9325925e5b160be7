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
use diarist_core::vbx::{self, VbxParams};
use std::ops::Range;
use std::path::Path;

use diarist_audio::AudioStream;
use diarist_models::{
    Activation, EmbeddingModel, Embeddings, FrameGeometry, ModelSpec, OutputKind, Runtime,
    SegmentationModel,
};

use crate::config::{Clustering, OfflineConfig};
use crate::{EngineConfig, EngineError, frame_grid, spans};

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

/// What a plan needs to know of the models, for threads that hold none.
#[derive(Debug, Clone)]
pub struct Shape {
    segmentation: ModelSpec,
    features: Option<FrameGeometry>,
    dimension: usize,
    embed_min_samples: usize,
}

impl Models {
    /// What a plan needs to know of these models.
    pub fn shape(&self) -> Shape {
        Shape {
            segmentation: self.segmentation.spec().clone(),
            features: self.embedding.feature_geometry(),
            dimension: self.embedding.dimension(),
            embed_min_samples: self.embedding.min_samples(),
        }
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
pub(crate) struct Plan {
    pub(crate) window: usize,
    pub(crate) step: usize,
    pub(crate) grid: FrameGrid,
    /// Backbone feature frames of a split embedding model (`None`: not split).
    pub(crate) features: Option<FrameGeometry>,
    /// Embedding dimension.
    pub(crate) dimension: usize,
    /// Shortest audio the embedding model takes.
    pub(crate) embed_min_samples: usize,
    /// Shortest recording diarized (as one window of its own length).
    pub(crate) min_samples: usize,
    speakers: usize,
    kind: ScoreKind,
    min_embed_frames: usize,
    min_cluster_frames: usize,
    count: ClusterCount,
    clustering: Clustering,
    vbx: VbxParams,
    min_cluster_size: usize,
    max_cluster_embeddings: usize,
    /// Samples per backbone block (split models: a multiple of the feature step).
    pub(crate) block: usize,
    reseg_context: usize,
    reseg_margin: f32,
    rules: TurnRules,
}

impl Plan {
    /// Resolves `cfg` against the models' `shape`.
    pub(crate) fn new(shape: &Shape, cfg: &OfflineConfig) -> Result<Self, EngineError> {
        let spec = &shape.segmentation;
        let out = &spec.manifest.output;
        let grid = frame_grid(spec.frames());
        let speakers = out.max_speakers.unwrap_or(0);
        let kind = score_kind(spec, cfg.multilabel_threshold)?;
        let secs = |s: f64| (s * SAMPLE_RATE as f64).round() as usize;
        let window = secs(cfg.window_secs).max(spec.manifest.input.min_samples);
        let step = (secs(cfg.step_secs) / grid.step).max(1) * grid.step;
        let frames_of = |s: f64| (secs(s) as f64 / grid.step as f64).round() as usize;
        let unbounded = |v: usize| if v == 0 { None } else { Some(v) };
        // Split embedding models run their backbone once per block of audio; each block is
        // extended by one feature frame so that consecutive blocks' frames tile the recording.
        let block = shape.features.map_or(0, |g| {
            (secs(cfg.embedding_block_secs) / g.step).max(1) * g.step
        });
        Ok(Self {
            window,
            step,
            grid,
            features: shape.features,
            dimension: shape.dimension,
            embed_min_samples: shape.embed_min_samples,
            min_samples: spec.manifest.input.min_samples.max(shape.embed_min_samples),
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
            clustering: cfg.clustering,
            // Each second of audio is in `window / step` windows: their embeddings are not
            // independent evidence.
            vbx: VbxParams {
                fa: (step as f64 / window as f64).min(1.0),
                fb: 1.0,
                max_iters: 20,
            },
            min_cluster_size: cfg.min_cluster_size.max(1),
            max_cluster_embeddings: cfg.max_cluster_embeddings,
            block,
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
pub(crate) struct FeatureBuffer {
    /// Recording-wide index of the first stored frame.
    pub(crate) first: usize,
    /// Stored frames, `[frames, dim]` row-major.
    pub(crate) data: Vec<f32>,
    pub(crate) dim: usize,
}

impl FeatureBuffer {
    fn frames(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
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
/// to its argument and returns how many it appended (0 at the end), on these models alone.
/// [`crate::batch::diarize_files`] spreads one recording over several workers, with the same
/// result.
pub fn diarize<E>(
    models: &mut Models,
    cfg: &OfflineConfig,
    read: impl FnMut(&mut Vec<f32>) -> Result<usize, E>,
) -> Result<Diarization, EngineError>
where
    EngineError: From<E>,
{
    let plan = Plan::new(&models.shape(), cfg)?;
    let mut state = State::new(plan.dimension);
    let total = spans::cut(&plan, read, |span| {
        state.append(spans::analyse(models, &plan, &span)?);
        Ok(())
    })?;
    Ok(state.finish(&plan, total))
}

/// Everything kept between windows.
pub(crate) struct State {
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
    pub(crate) fn new(dim: usize) -> Self {
        Self {
            windows: Vec::new(),
            embeddings: EmbeddingMatrix::new(dim),
            sources: Vec::new(),
            chunks: EmbeddingMatrix::new(dim),
            chunk_sources: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Appends the windows of `later`, which come after this state's.
    pub(crate) fn append(&mut self, later: State) {
        let offset = self.windows.len();
        self.windows.extend(later.windows);
        self.embeddings.data.extend(later.embeddings.data);
        self.chunks.data.extend(later.chunks.data);
        self.sources.extend(later.sources.into_iter().map(|mut e| {
            e.window += offset;
            e
        }));
        self.chunk_sources
            .extend(later.chunk_sources.into_iter().map(|mut c| {
                c.window += offset;
                c
            }));
    }

    /// Segments and embeds the window starting at sample `start`.
    pub(crate) fn window(
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
    pub(crate) fn finish(mut self, plan: &Plan, total: usize) -> Diarization {
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
        let labels = speakers_of(&x, plan);
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

/// A speaker label `0..k` for every row of `x`, by the plan's clustering. VBx gives way to the
/// dendrogram's cut when a speaker count is set or its count falls outside the bounds.
fn speakers_of(x: &EmbeddingMatrix, plan: &Plan) -> Vec<usize> {
    let merges = cluster::average_linkage(x);
    let n = x.len();
    let labels = cluster::cut(
        &merges,
        n,
        cluster::merges_to_apply(&merges, n, &plan.count),
    );
    if plan.clustering == Clustering::Ahc || plan.count.num.is_some() {
        return labels;
    }
    // Start over-split: the dendrogram cut at half the threshold.
    let finer = ClusterCount {
        threshold: plan.count.threshold / 2.0,
        ..plan.count
    };
    let init = cluster::cut(&merges, n, cluster::merges_to_apply(&merges, n, &finer));
    let bayes = vbx::cluster(x, &init, &labels, &plan.vbx);
    let k = bayes.iter().max().map_or(0, |m| m + 1);
    let in_bounds = k >= plan.count.min.min(n) && plan.count.max.is_none_or(|m| k <= m);
    if in_bounds { bayes } else { labels }
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
