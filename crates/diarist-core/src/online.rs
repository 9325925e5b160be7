//! Online diarization of a stream: stable global speakers from overlapping short windows.
//!
//! Each window's local speakers are embedded (one backbone pass per window, pooled per speaker
//! over the frames where that speaker talks alone) and assigned to the stream's global speakers
//! by optimal assignment under a cosine-distance threshold, two local speakers of one window never
//! sharing a speaker; an unmatched local speaker with enough clean speech opens a new speaker, and
//! every confident assignment refines that speaker's voiceprint. Per frame, activity is
//! aggregated over every window that covers it, weighted towards windows that see the frame near
//! their centre; once no further window can cover a frame (or the configured latency has passed)
//! it is final, and the speakers reported for it never change.
//!
//! The caller runs the models: it hands in each window's local activity and the embedding
//! backbone's frame features, and pools features into embeddings through a closure.

use std::collections::VecDeque;
use std::ops::Range;

use crate::activity::LocalActivity;
use crate::assignment::max_weight_matching;
use crate::cluster::dot;
use crate::reconstruct::FrameGrid;

/// Settings of an online diarizer, in frames of the segmentation grid unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineParams {
    /// The segmentation model's frame grid.
    pub grid: FrameGrid,
    /// The embedding backbone's feature-frame grid (relative to each window's first sample).
    pub feature_grid: FrameGrid,
    /// Values per backbone feature frame.
    pub feature_dim: usize,
    /// Frames per window.
    pub window_frames: usize,
    /// Frames between window starts.
    pub hop_frames: usize,
    /// Frames of a window that stay tentative after it is processed (between `hop_frames`, when
    /// every frame is final as soon as one window saw it, and `window_frames`, when a frame is
    /// final once the last window covering it is done).
    pub tentative_frames: usize,
    /// A local speaker joins the closest free speaker when their cosine distance is below this.
    pub match_threshold: f32,
    /// Clean frames an unmatched local speaker needs to open a new speaker.
    pub new_speaker_frames: usize,
    /// Clean frames a matched local speaker needs to refine its speaker's voiceprint.
    pub update_frames: usize,
    /// Active frames a local speaker needs to be considered at all.
    pub min_active_frames: usize,
    /// Most global speakers (`None`: no bound).
    pub max_speakers: Option<usize>,
    /// Two speakers whose voiceprints come closer than this cosine distance are one voice: the
    /// newer joins the older (an enrolled one keeps its name) for every frame not final yet; 0
    /// never merges.
    pub merge_threshold: f32,
    /// A new speaker is tentative until a later window hears it again; if its first frames must
    /// become final before that, it is withdrawn and its frames go to the closest other speaker.
    pub confirm_new_speakers: bool,
}

/// One processed window, seen by the models after some context (the audio before it).
#[derive(Debug, Clone, Copy)]
pub struct WindowObservation<'a> {
    /// Stream sample of the context's first sample (the window's when there is no context; a
    /// multiple of the frame step).
    pub start: usize,
    /// Frames of context before the window's own first frame.
    pub context_frames: usize,
    /// Hard local activity of the context and the window (`context_frames +
    /// params.window_frames` frames): a local speaker keeps its slot across both.
    pub activity: &'a LocalActivity,
    /// Frames of the window holding real audio (fewer than `window_frames` for a zero-padded
    /// last window).
    pub valid_frames: usize,
    /// Frames of the window that may become final now: those whose span ends inside its real
    /// audio (the next window or the end of the stream finalises the rest), so that no final
    /// turn reaches past the audio received.
    pub final_frames: usize,
    /// Backbone features of the context and the window, `[frames, dimension]` row-major.
    pub features: &'a [f32],
    /// Samples from `start` to the start of the first feature frame.
    pub features_offset: usize,
}

/// Pools a window's features: `(features [frames, dim], weights [speakers, frames], speakers)`
/// to one embedding per speaker.
pub trait Pooler<E>: FnMut(&[f32], &[f32], usize) -> Result<Vec<Vec<f32>>, E> {}
impl<E, F: FnMut(&[f32], &[f32], usize) -> Result<Vec<Vec<f32>>, E>> Pooler<E> for F {}

/// What a turn event says about a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// The speaker started talking at `start`.
    Started,
    /// The turn is still going on; it is final up to `end`.
    Updated,
    /// The turn is over.
    Ended,
}

/// A final event about one speaker's turn, in stream samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnEvent {
    /// What happened.
    pub status: TurnStatus,
    /// Global speaker.
    pub speaker: usize,
    /// First sample of the turn.
    pub start: usize,
    /// One past the last final sample of the turn.
    pub end: usize,
}

/// A provisional turn in the stretch that is not final yet, by global speaker index (the engine
/// names it in its `tentative` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProvisionalTurn {
    /// Global speaker.
    pub speaker: usize,
    /// First sample.
    pub start: usize,
    /// One past the last sample.
    pub end: usize,
}

/// A global speaker of the stream.
#[derive(Debug, Clone)]
pub struct Speaker {
    /// Name of an enrolled speaker, `None` for one found in the stream.
    pub name: Option<String>,
    /// Sum of the embeddings assigned to it (its direction is the voiceprint).
    sum: Vec<f32>,
    /// How many unit embeddings the sum holds (an enrolled voiceprint counts as 20).
    count: f32,
    /// Enrolled (it never merges with another enrolled speaker).
    enrolled: bool,
    /// Heard by more than one window (or enrolled, or the stream's first speaker).
    confirmed: bool,
    /// The speaker it has become part of, when it was merged or withdrawn.
    joined: Option<usize>,
}

impl Speaker {
    fn found(sum: Vec<f32>, confirmed: bool) -> Self {
        Self {
            name: None,
            sum,
            count: 1.0,
            enrolled: false,
            confirmed,
            joined: None,
        }
    }

    fn live(&self) -> bool {
        self.joined.is_none()
    }

    /// Average cosine distance between this speaker's embeddings and `other`'s (average
    /// linkage, as the offline clustering measures it).
    fn distance(&self, other: &Speaker) -> f32 {
        let n = self.count * other.count;
        if n > 0.0 {
            1.0 - dot(&self.sum, &other.sum) / n
        } else {
            2.0
        }
    }
}

#[derive(Debug, Default, Clone)]
struct FrameAcc {
    /// Sum of window weights.
    weight: f32,
    /// Weighted sum of local speaker counts.
    count: f32,
    /// (speaker, weighted activity)
    speakers: Vec<(usize, f32)>,
}

impl FrameAcc {
    /// Adds `weight` to `speaker`'s activity.
    fn add(&mut self, speaker: usize, weight: f32) {
        match self.speakers.iter_mut().find(|(x, _)| *x == speaker) {
            Some((_, v)) => *v += weight,
            None => self.speakers.push((speaker, weight)),
        }
    }
}

/// A window's local speakers that are embedded, and what their assignment needs to know.
struct Voices {
    /// The local speakers embedded, in order (a voice is an index into this).
    local: Vec<usize>,
    /// Per local speaker of the window: heard in the window itself, not only in its context.
    in_window: Vec<bool>,
    /// Per local speaker of the window: frames where it talks alone, within the stretch it is
    /// judged on (the window, or the context when it is heard only there).
    clean: Vec<usize>,
    /// Pooling weights on the backbone frames, `[local, frames]` row-major.
    weights: Vec<f32>,
}

/// Online diarizer of one stream. See the module documentation.
#[derive(Debug)]
pub struct OnlineDiarizer {
    p: OnlineParams,
    speakers: Vec<Speaker>,
    /// Aggregated activity of the frames from `frontier` on.
    buffer: VecDeque<FrameAcc>,
    /// First frame that is not final.
    frontier: usize,
    /// Open final turn per speaker: its start sample.
    open: Vec<Option<usize>>,
    /// Weight of a window's frame by its position (a Hann-like taper that never reaches 0).
    taper: Vec<f32>,
    embeddings: usize,
    /// Stream length once finished.
    finished: Option<usize>,
}

/// Everything an online diarizer's later decisions depend on: with it, a diarizer in another
/// stream that is given the same windows from then on gives the same final turns
/// ([`OnlineDiarizer::state`], [`OnlineDiarizer::restore`]). Turns open at that point are
/// reported again from `frontier` on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiarizerState {
    /// Every speaker, in order: its name and the sum of its embeddings (its voiceprint's
    /// direction, and how much has been heard of it).
    pub speakers: Vec<SpeakerState>,
    /// The first frame that is not final.
    pub frontier: usize,
    /// The tallies of the frames from `frontier` on.
    pub frames: Vec<FrameState>,
}

impl DiarizerState {
    /// Whether a diarizer of `dimension`-sized embeddings can take this state up: finite
    /// voiceprints of that size, frames naming only its speakers.
    pub fn check(&self, dimension: usize) -> Result<(), StateError> {
        let n = self.speakers.len();
        for s in &self.speakers {
            if s.sum.len() != dimension || !s.sum.iter().all(|x| x.is_finite()) {
                return Err(StateError::Voiceprint(s.name.clone(), dimension));
            }
        }
        if let Some(j) = self
            .speakers
            .iter()
            .filter_map(|s| s.joined)
            .find(|&j| j >= n)
        {
            return Err(StateError::Speaker(j, n));
        }
        match (self.frames.iter().flat_map(|f| &f.speakers)).find(|(s, _)| *s >= n) {
            Some(&(s, _)) => Err(StateError::Speaker(s, n)),
            None => Ok(()),
        }
    }
}

/// One speaker of a [`DiarizerState`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpeakerState {
    /// Its name in the stream.
    pub name: String,
    /// The sum of the embeddings assigned to it.
    pub sum: Vec<f32>,
    /// How many unit embeddings `sum` holds (by default, its length: as if they all agreed).
    #[serde(default)]
    pub count: Option<f32>,
    /// Whether it was enrolled.
    #[serde(default)]
    pub enrolled: bool,
    /// Whether a second window has heard it (see [`OnlineParams::confirm_new_speakers`]).
    #[serde(default = "yes")]
    pub confirmed: bool,
    /// The speaker it has become part of, when merged or withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined: Option<usize>,
}

fn yes() -> bool {
    true
}

/// One frame's tally in a [`DiarizerState`]: summed window weights, weighted local speaker
/// counts, and each speaker's weighted activity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameState {
    /// Sum of the weights of the windows that saw it.
    pub weight: f32,
    /// Weighted sum of their local speaker counts.
    pub count: f32,
    /// (speaker, weighted activity).
    pub speakers: Vec<(usize, f32)>,
}

/// Why a [`DiarizerState`] cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A voiceprint of another size than the embeddings, or not finite.
    #[error("speaker `{0}` has a voiceprint that is not {1} finite values")]
    Voiceprint(String, usize),
    /// A frame names a speaker the state does not have.
    #[error("a frame names speaker {0} of {1}")]
    Speaker(usize, usize),
    /// The diarizer has speakers already.
    #[error("a state is restored into a diarizer with no speakers")]
    NotEmpty,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let n = (dot(a, a) * dot(b, b)).sqrt();
    if n > 0.0 && n.is_finite() {
        dot(a, b) / n
    } else {
        -1.0
    }
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = dot(v, v).sqrt();
    if n > 0.0 && n.is_finite() {
        v.iter().map(|x| x / n).collect()
    } else {
        vec![0.0; v.len()]
    }
}

impl OnlineDiarizer {
    /// A diarizer with no speakers yet.
    pub fn new(params: OnlineParams) -> Self {
        let n = params.window_frames.max(1);
        let taper = (0..n)
            .map(|f| {
                let x = (f as f32 + 0.5) / n as f32;
                0.01 + 0.99 * (std::f32::consts::PI * x).sin().powi(2)
            })
            .collect();
        Self {
            p: params,
            speakers: Vec::new(),
            buffer: VecDeque::new(),
            frontier: 0,
            open: Vec::new(),
            taper,
            embeddings: 0,
            finished: None,
        }
    }

    /// Adds an enrolled speaker with its voiceprint; returns its index. Local speakers that match
    /// it are reported as this speaker.
    pub fn enroll(&mut self, name: &str, voiceprint: &[f32]) -> usize {
        // An enrolled voiceprint weighs as much as 20 window embeddings heard in the stream.
        let sum = normalised(voiceprint).iter().map(|x| 20.0 * x).collect();
        self.speakers.push(Speaker {
            name: Some(name.to_string()),
            sum,
            count: 20.0,
            enrolled: true,
            confirmed: true,
            joined: None,
        });
        self.open.push(None);
        self.speakers.len() - 1
    }

    /// Number of global speakers so far.
    pub fn speaker_count(&self) -> usize {
        self.speakers.len()
    }

    /// Names of the global speakers so far (`None` for speakers found in the stream).
    pub fn speaker_names(&self) -> Vec<Option<String>> {
        self.speakers.iter().map(|s| s.name.clone()).collect()
    }

    /// The voiceprint (unit length) of every global speaker so far, in order.
    pub fn voiceprints(&self) -> Vec<Vec<f32>> {
        self.speakers.iter().map(|s| normalised(&s.sum)).collect()
    }

    /// Its state, its speakers named by `names` (in order; `S{n}` past their end).
    pub fn state(&self, names: &[String]) -> DiarizerState {
        let name = |i: usize| {
            names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("S{}", i + 1))
        };
        DiarizerState {
            speakers: (self.speakers.iter().enumerate())
                .map(|(i, s)| SpeakerState {
                    name: name(i),
                    sum: s.sum.clone(),
                    count: Some(s.count),
                    enrolled: s.enrolled,
                    confirmed: s.confirmed,
                    joined: s.joined,
                })
                .collect(),
            frontier: self.frontier,
            frames: (self.buffer.iter())
                .map(|f| FrameState {
                    weight: f.weight,
                    count: f.count,
                    speakers: f.speakers.clone(),
                })
                .collect(),
        }
    }

    /// Takes up `state` (of `dimension`-sized embeddings) in a diarizer with no speakers yet:
    /// its speakers (named), its frontier and its frames' tallies. Its next window must be the
    /// one that followed the state's last.
    pub fn restore(&mut self, state: &DiarizerState, dimension: usize) -> Result<(), StateError> {
        if !self.speakers.is_empty() {
            return Err(StateError::NotEmpty);
        }
        state.check(dimension)?;
        let n = state.speakers.len();
        self.speakers = (state.speakers.iter())
            .map(|s| Speaker {
                name: Some(s.name.clone()),
                sum: s.sum.clone(),
                count: (s.count).unwrap_or_else(|| dot(&s.sum, &s.sum).sqrt()),
                enrolled: s.enrolled,
                confirmed: s.confirmed,
                joined: s.joined,
            })
            .collect();
        self.open = vec![None; n];
        self.frontier = state.frontier;
        self.buffer = (state.frames.iter())
            .map(|f| FrameAcc {
                weight: f.weight,
                count: f.count,
                speakers: f.speakers.clone(),
            })
            .collect();
        Ok(())
    }

    /// Embeddings computed so far.
    pub fn embeddings(&self) -> usize {
        self.embeddings
    }

    /// First sample that is not final yet.
    pub fn final_samples(&self) -> usize {
        self.finished
            .unwrap_or_else(|| self.frame_start(self.frontier))
    }

    fn frame_start(&self, g: usize) -> usize {
        if g == 0 {
            0
        } else {
            self.p.grid.centre(g) - self.p.grid.step / 2
        }
    }

    /// Takes in one window (windows must come in order, `hop_frames` apart) and returns the turn
    /// events of the frames that became final.
    pub fn push_window<E>(
        &mut self,
        obs: &WindowObservation,
        pool: &mut impl Pooler<E>,
    ) -> Result<Vec<TurnEvent>, E> {
        let own = obs.context_frames.min(obs.activity.frames);
        let first = obs.start / self.p.grid.step + own;
        let valid = obs.valid_frames.min(obs.activity.frames - own);
        let labels = self.assign(obs, own + valid, pool)?;
        self.aggregate(first, obs.activity, own, valid, &labels);
        let tentative = self
            .p
            .tentative_frames
            .clamp(self.p.hop_frames, self.p.window_frames);
        let upto = (first + self.p.window_frames + self.p.hop_frames)
            .saturating_sub(tentative)
            .min(first + valid.min(obs.final_frames));
        if self.p.confirm_new_speakers {
            self.withdraw_unconfirmed(upto);
        }
        let mut events = Vec::new();
        self.finalise(upto, None, &mut events);
        Ok(events)
    }

    /// Finalises everything left at the end of a stream of `total_samples` samples and closes
    /// every open turn there.
    pub fn finish(&mut self, total_samples: usize) -> Vec<TurnEvent> {
        let frames = self.p.grid.frames_covering(total_samples);
        if self.p.confirm_new_speakers {
            self.withdraw_unconfirmed(frames);
        }
        let mut events = Vec::new();
        self.finalise(frames, Some(total_samples), &mut events);
        for (s, open) in self.open.iter_mut().enumerate() {
            if let Some(start) = open.take() {
                events.push(TurnEvent {
                    status: TurnStatus::Ended,
                    speaker: s,
                    start,
                    end: total_samples,
                });
            }
        }
        self.buffer.clear();
        self.finished = Some(total_samples);
        events
    }

    /// Global speaker of each local speaker of the window, judged on the window's frames; a
    /// local speaker heard only in the context (the first `valid` frames of the activity are
    /// context and window) is judged there and only claims its speaker, so that a new voice in
    /// the window, which the segmentation told apart from it, cannot take that speaker.
    fn assign<E>(
        &mut self,
        obs: &WindowObservation,
        valid: usize,
        pool: &mut impl Pooler<E>,
    ) -> Result<Vec<Option<usize>>, E> {
        let mut labels = vec![None; obs.activity.speakers];
        let Some(voices) = self.voices(obs, valid) else {
            return Ok(labels);
        };
        let embeddings = pool(obs.features, &voices.weights, voices.local.len())?;
        self.embeddings += voices.local.len();
        let scores = self.similarities(&embeddings, voices.local.len());
        let (used, unmatched) = self.match_known(&voices, &embeddings, &scores, &mut labels);
        self.place_unmatched(&voices, &embeddings, &scores, used, unmatched, &mut labels);
        self.merge_close_voiceprints(&mut labels);
        Ok(labels)
    }

    /// Merges every pair of live speakers whose voiceprints are closer than the merge threshold,
    /// closest first: the newer found speaker joins the other (its voiceprint is added), in this
    /// window's `labels` and in every frame not final yet. Two enrolled speakers never merge.
    fn merge_close_voiceprints(&mut self, labels: &mut [Option<usize>]) {
        if self.p.merge_threshold <= 0.0 {
            return;
        }
        loop {
            let n = self.speakers.len();
            let mut closest: Option<(usize, usize, f32)> = None;
            for a in 0..n {
                for b in a + 1..n {
                    let (x, y) = (&self.speakers[a], &self.speakers[b]);
                    if !x.live() || !y.live() || (x.enrolled && y.enrolled) {
                        continue;
                    }
                    let d = x.distance(y);
                    if d < self.p.merge_threshold && closest.is_none_or(|c| d < c.2) {
                        closest = Some((a, b, d));
                    }
                }
            }
            let Some((a, b, _)) = closest else { return };
            // The enrolled one keeps its name; else the older one stays.
            let (keep, gone) = if self.speakers[b].enrolled {
                (b, a)
            } else {
                (a, b)
            };
            let sum = self.speakers[gone].sum.clone();
            (self.speakers[keep].sum.iter_mut().zip(&sum)).for_each(|(k, g)| *k += g);
            self.speakers[keep].count += self.speakers[gone].count;
            self.speakers[keep].confirmed |= self.speakers[gone].confirmed;
            self.join(gone, keep);
            for l in labels.iter_mut().filter(|l| **l == Some(gone)) {
                *l = Some(keep);
            }
        }
    }

    /// Gives the frames before `upto` of each new speaker that no second window has confirmed
    /// yet to the live confirmed speaker with the closest voiceprint (or confirms it, when there
    /// is none): they are about to be final. The speaker stays tentative for later frames.
    fn withdraw_unconfirmed(&mut self, upto: usize) {
        let due = upto.saturating_sub(self.frontier).min(self.buffer.len());
        for s in 0..self.speakers.len() {
            let sp = &self.speakers[s];
            if sp.confirmed || !sp.live() {
                continue;
            }
            let heard = (self.buffer.iter().take(due))
                .any(|acc| acc.speakers.iter().any(|&(x, w)| x == s && w > 0.0));
            if !heard {
                continue;
            }
            let closest = (0..self.speakers.len())
                .filter(|&j| j != s && self.speakers[j].live() && self.speakers[j].confirmed)
                .max_by(|&a, &b| {
                    let sim = |j: usize| cosine(&self.speakers[s].sum, &self.speakers[j].sum);
                    sim(a).total_cmp(&sim(b))
                });
            match closest {
                Some(j) => self.move_frames(s, j, due),
                None => self.speakers[s].confirmed = true,
            }
        }
    }

    /// Makes speaker `gone` part of `keep` from the oldest frame not final on.
    fn join(&mut self, gone: usize, keep: usize) {
        self.speakers[gone].joined = Some(keep);
        self.move_frames(gone, keep, self.buffer.len());
    }

    /// Gives speaker `from`'s activity in the first `frames` frames not final to speaker `to`.
    fn move_frames(&mut self, from: usize, to: usize, frames: usize) {
        for acc in self.buffer.iter_mut().take(frames) {
            if let Some(i) = acc.speakers.iter().position(|x| x.0 == from) {
                let (_, moved) = acc.speakers.swap_remove(i);
                acc.add(to, moved);
            }
        }
    }

    /// Centre of the window's backbone feature frame `r`, in samples from the observation's start.
    fn feature_centre(&self, obs: &WindowObservation, r: usize) -> f64 {
        let fg = self.p.feature_grid;
        (obs.features_offset + r * fg.step + fg.length / 2) as f64
    }

    /// The window's local speakers worth embedding (enough activity, and some backbone frames
    /// to pool), judged on the first `valid` frames; `None` when there are none.
    fn voices(&self, obs: &WindowObservation, valid: usize) -> Option<Voices> {
        let act = obs.activity;
        let frames = obs
            .features
            .len()
            .checked_div(self.p.feature_dim)
            .unwrap_or(0);
        if frames == 0 {
            return None;
        }
        // Only the frames the features reach count (a window whose backbone did not run has
        // none for its newest stretch): speech there is judged by a later window.
        let valid = valid.min(self.p.grid.nearest(self.feature_centre(obs, frames - 1)) + 1);
        let own = obs.context_frames.min(valid);
        let in_window: Vec<bool> = (0..act.speakers)
            .map(|s| (own..valid).any(|f| act.is_active(f, s)))
            .collect();
        let spans: Vec<Range<usize>> = in_window
            .iter()
            .map(|&w| if w { own..valid } else { 0..own })
            .collect();
        let active = |s: usize| spans[s].clone().filter(|&f| act.is_active(f, s)).count();
        let clean: Vec<usize> = (0..act.speakers)
            .map(|s| {
                spans[s]
                    .clone()
                    .filter(|&f| act.is_active(f, s) && act.count(f) == 1)
                    .count()
            })
            .collect();
        let mut local: Vec<usize> = (0..act.speakers)
            .filter(|&s| active(s) >= self.p.min_active_frames.max(1))
            .collect();
        let weights = self.pooling_weights(obs, frames, &spans, &clean, &mut local);
        (!local.is_empty()).then_some(Voices {
            local,
            in_window,
            clean,
            weights,
        })
    }

    /// Weights on the `frames` backbone frames for each of the `local` speakers (`[local,
    /// frames]`): where the speaker is alone within its span, or where it is active when it is
    /// never alone. A speaker left with no weight is dropped from `local`.
    fn pooling_weights(
        &self,
        obs: &WindowObservation,
        frames: usize,
        spans: &[Range<usize>],
        clean: &[usize],
        local: &mut Vec<usize>,
    ) -> Vec<f32> {
        let act = obs.activity;
        let mut weights = Vec::with_capacity(local.len() * frames);
        local.retain(|&s| {
            let alone = clean[s] > 0;
            let row = weights.len();
            let span = &spans[s];
            weights.extend((0..frames).map(|r| {
                let f = self.p.grid.nearest(self.feature_centre(obs, r));
                let on = span.contains(&f) && act.is_active(f, s) && (!alone || act.count(f) == 1);
                if on { 1.0 } else { 0.0 }
            }));
            let any = weights[row..].iter().any(|&w| w > 0.0);
            if !any {
                weights.truncate(row);
            }
            any
        });
        weights
    }

    /// Cosine similarity of each of the first `n` embeddings to every speaker's voiceprint.
    fn similarities(&self, embeddings: &[Vec<f32>], n: usize) -> Vec<Vec<f64>> {
        embeddings[..n]
            .iter()
            .map(|e| {
                (self.speakers.iter())
                    // A speaker merged into another is never matched again.
                    .map(|sp| {
                        if sp.live() {
                            cosine(e, &sp.sum) as f64
                        } else {
                            f64::NEG_INFINITY
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Matches the voices to the speakers (optimal assignment on `scores`, accepted under the
    /// match threshold) into `labels`, refining the voiceprint of a speaker matched by a voice
    /// with enough clean speech in the window itself. Returns which speakers are taken, and the
    /// voices (indices into `voices.local`) heard in the window that found none.
    fn match_known(
        &mut self,
        voices: &Voices,
        embeddings: &[Vec<f32>],
        scores: &[Vec<f64>],
        labels: &mut [Option<usize>],
    ) -> (Vec<bool>, Vec<usize>) {
        let matched = if self.speakers.is_empty() {
            vec![None; voices.local.len()]
        } else {
            max_weight_matching(scores)
        };
        let mut used: Vec<bool> = self.speakers.iter().map(|s| !s.live()).collect();
        let mut unmatched = Vec::new();
        for (i, &s) in voices.local.iter().enumerate() {
            match matched[i] {
                Some(j) if 1.0 - scores[i][j] < self.p.match_threshold as f64 => {
                    labels[s] = Some(j);
                    used[j] = true;
                    if voices.in_window[s] {
                        self.speakers[j].confirmed = true;
                    }
                    if voices.in_window[s] && voices.clean[s] >= self.p.update_frames {
                        let e = normalised(&embeddings[i]);
                        let sp = &mut self.speakers[j];
                        sp.sum.iter_mut().zip(&e).for_each(|(a, b)| *a += b);
                        sp.count += 1.0;
                    }
                }
                _ if voices.in_window[s] => unmatched.push(i),
                // Heard only in the context: it has had its say there.
                _ => {}
            }
        }
        (used, unmatched)
    }

    /// Places the `unmatched` voices into `labels`, longest clean speech first: a voice with
    /// enough opens a new speaker (while there is room); a shorter one joins the closest
    /// speaker not already `used` in this window.
    fn place_unmatched(
        &mut self,
        voices: &Voices,
        embeddings: &[Vec<f32>],
        scores: &[Vec<f64>],
        mut used: Vec<bool>,
        mut unmatched: Vec<usize>,
        labels: &mut [Option<usize>],
    ) {
        unmatched.sort_by_key(|&i| std::cmp::Reverse(voices.clean[voices.local[i]]));
        for i in unmatched {
            let s = voices.local[i];
            let live = self.speakers.iter().filter(|s| s.live()).count();
            let room = self.p.max_speakers.is_none_or(|m| live < m);
            if voices.clean[s] >= self.p.new_speaker_frames && room {
                let first = !self.speakers.iter().any(Speaker::live);
                let confirmed = first || !self.p.confirm_new_speakers;
                self.speakers
                    .push(Speaker::found(normalised(&embeddings[i]), confirmed));
                self.open.push(None);
                used.push(true);
                labels[s] = Some(self.speakers.len() - 1);
            } else if let Some(j) = (0..scores[i].len())
                .filter(|&j| !used[j])
                .max_by(|&a, &b| scores[i][a].total_cmp(&scores[i][b]))
            {
                used[j] = true;
                labels[s] = Some(j);
            }
        }
    }

    /// Adds `valid` frames of the window (activity frames from `own` on, recording frames from
    /// `first` on) to the frames' tallies.
    fn aggregate(
        &mut self,
        first: usize,
        act: &LocalActivity,
        own: usize,
        valid: usize,
        labels: &[Option<usize>],
    ) {
        for w in 0..valid {
            let (g, f) = (first + w, own + w);
            if g < self.frontier {
                continue;
            }
            let i = g - self.frontier;
            if self.buffer.len() <= i {
                self.buffer.resize(i + 1, FrameAcc::default());
            }
            let weight = self.taper[w.min(self.taper.len() - 1)];
            let acc = &mut self.buffer[i];
            acc.weight += weight;
            acc.count += weight * act.count(f) as f32;
            for (s, label) in labels.iter().enumerate() {
                if let Some(l) = *label
                    && act.is_active(f, s)
                {
                    acc.add(l, weight);
                }
            }
        }
    }

    /// Speakers of one frame: the `count` speakers with the most weighted activity.
    fn frame_speakers(acc: &FrameAcc) -> Vec<usize> {
        if acc.weight <= 0.0 {
            return Vec::new();
        }
        let count = (acc.count / acc.weight).round() as usize;
        let mut order = acc.speakers.clone();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        order.into_iter().take(count).map(|(s, _)| s).collect()
    }

    fn finalise(&mut self, upto: usize, total: Option<usize>, events: &mut Vec<TurnEvent>) {
        if upto <= self.frontier {
            return;
        }
        let n = (upto - self.frontier).min(self.buffer.len());
        self.open.resize(self.speakers.len(), None);
        let mut extended = vec![false; self.speakers.len()];
        for i in 0..(upto - self.frontier) {
            let g = self.frontier + i;
            let active = self
                .buffer
                .get(i)
                .map(Self::frame_speakers)
                .unwrap_or_default();
            // At the end of the audio no boundary lies past its last sample.
            let clamp = |x: usize| total.map_or(x, |t| x.min(t));
            let start = clamp(self.frame_start(g));
            if total.is_some_and(|t| start >= t) {
                break;
            }
            let next = match total {
                Some(t) if g + 1 >= upto => t,
                _ => clamp(self.frame_start(g + 1)),
            };
            for (s, ext) in extended.iter_mut().enumerate() {
                match (self.open[s], active.contains(&s)) {
                    (None, true) => {
                        self.open[s] = Some(start);
                        events.push(TurnEvent {
                            status: TurnStatus::Started,
                            speaker: s,
                            start,
                            end: next,
                        });
                    }
                    (Some(begin), false) => {
                        self.open[s] = None;
                        *ext = false;
                        events.push(TurnEvent {
                            status: TurnStatus::Ended,
                            speaker: s,
                            start: begin,
                            end: start,
                        });
                    }
                    (Some(_), true) => *ext = true,
                    (None, false) => {}
                }
            }
        }
        let end = match total {
            Some(t) => t,
            None => self.frame_start(upto),
        };
        for (s, ext) in extended.iter().enumerate() {
            if *ext && let Some(start) = self.open[s] {
                events.push(TurnEvent {
                    status: TurnStatus::Updated,
                    speaker: s,
                    start,
                    end,
                });
            }
        }
        self.buffer.drain(..n);
        self.frontier = upto;
    }

    /// The provisional turns of the stretch that is not final yet, up to `end_samples`.
    pub fn tentative(&self, end_samples: usize) -> Vec<ProvisionalTurn> {
        let mut out: Vec<ProvisionalTurn> = Vec::new();
        let mut open: Vec<(usize, usize)> = Vec::new();
        for (i, acc) in self.buffer.iter().enumerate() {
            let start = self.frame_start(self.frontier + i).min(end_samples);
            let active = Self::frame_speakers(acc);
            open.retain(|&(s, begin)| {
                let keep = active.contains(&s);
                if !keep {
                    out.push(ProvisionalTurn {
                        speaker: s,
                        start: begin,
                        end: start,
                    });
                }
                keep
            });
            for s in active {
                if !open.iter().any(|o| o.0 == s) {
                    open.push((s, start));
                }
            }
        }
        let end = self
            .frame_start(self.frontier + self.buffer.len())
            .min(end_samples);
        out.extend(open.into_iter().map(|(s, begin)| ProvisionalTurn {
            speaker: s,
            start: begin,
            end,
        }));
        out.retain(|t| t.start < t.end);
        out.sort_by_key(|t| (t.start, t.speaker));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> OnlineParams {
        OnlineParams {
            grid: FrameGrid {
                step: 10,
                length: 10,
                offset: 0,
            },
            feature_grid: FrameGrid {
                step: 10,
                length: 10,
                offset: 0,
            },
            feature_dim: 2,
            window_frames: 6,
            hop_frames: 2,
            tentative_frames: 6,
            match_threshold: 0.3,
            new_speaker_frames: 2,
            update_frames: 1,
            min_active_frames: 1,
            max_speakers: None,
            merge_threshold: 0.0,
            confirm_new_speakers: false,
        }
    }

    /// A window where `who[f]` is the local slot speaking in frame f (or none), with features
    /// that carry each frame's true voice as a 2-d direction.
    fn window(who: &[Option<usize>], voice: &[[f32; 2]]) -> (LocalActivity, Vec<f32>) {
        let mut active = vec![0u8; who.len() * 2];
        let mut features = Vec::new();
        for (f, w) in who.iter().enumerate() {
            if let Some(s) = w {
                active[f * 2 + s] = 1;
            }
            features.extend(voice[f]);
        }
        (
            LocalActivity {
                frames: who.len(),
                speakers: 2,
                active,
            },
            features,
        )
    }

    /// A window of 6 valid frames starting (context included) at sample `start`, its features
    /// beginning there.
    fn observe<'a>(
        start: usize,
        context_frames: usize,
        activity: &'a LocalActivity,
        features: &'a [f32],
    ) -> WindowObservation<'a> {
        WindowObservation {
            start,
            context_frames,
            activity,
            valid_frames: 6,
            final_frames: 6,
            features,
            features_offset: 0,
        }
    }

    /// Weighted mean of the 2-d features per speaker.
    fn mean(features: &[f32], weights: &[f32], speakers: usize) -> Result<Vec<Vec<f32>>, ()> {
        let frames = features.len() / 2;
        Ok((0..speakers)
            .map(|s| {
                let mut m = vec![0f32; 2];
                for (r, row) in features.chunks(2).enumerate() {
                    let w = weights[s * frames + r];
                    m[0] += w * row[0];
                    m[1] += w * row[1];
                }
                m
            })
            .collect())
    }

    /// Two voices alternating in 4-frame turns: A = (1,0), B = (0,1). Each window labels its
    /// voices in order of appearance, so local slots swap meaning between windows.
    #[test]
    fn alternating_voices_get_two_stable_speakers() {
        let truth = |g: usize| (g / 4) % 2; // 0 = A, 1 = B
        let voice = |v: usize| if v == 0 { [1.0, 0.0] } else { [0.0, 1.0] };
        let mut d = OnlineDiarizer::new(params());
        let mut events = Vec::new();
        let total_frames = 40;
        for w in 0..((total_frames - 6) / 2 + 1) {
            let first = w * 2;
            let frames: Vec<usize> = (first..first + 6).collect();
            let mut order: Vec<usize> = Vec::new();
            let who: Vec<Option<usize>> = frames
                .iter()
                .map(|&g| {
                    let v = truth(g);
                    if !order.contains(&v) {
                        order.push(v);
                    }
                    Some(order.iter().position(|&o| o == v).unwrap())
                })
                .collect();
            let voices: Vec<[f32; 2]> = frames.iter().map(|&g| voice(truth(g))).collect();
            let (act, feats) = window(&who, &voices);
            let obs = observe(first * 10, 0, &act, &feats);
            events.extend(d.push_window(&obs, &mut mean).unwrap());
        }
        events.extend(d.finish(total_frames * 10));
        assert_eq!(d.speaker_names().len(), 2);
        // Every ended turn has one true voice throughout, and each voice keeps one speaker.
        let mut speaker_of = [None, None];
        let ended: Vec<&TurnEvent> = events
            .iter()
            .filter(|e| e.status == TurnStatus::Ended)
            .collect();
        assert!(ended.len() >= 9, "{ended:?}");
        for e in ended {
            let mid = (e.start + e.end) / 2 / 10;
            let v = truth(mid);
            assert_eq!(*speaker_of[v].get_or_insert(e.speaker), e.speaker, "{e:?}");
        }
        assert_ne!(speaker_of[0], speaker_of[1]);
    }

    /// Runs one voice per frame, `voice(g)` (its local slot and 2-d direction, or silence when
    /// `None`), through a diarizer with `params` in 6-frame windows `hop_frames` apart; returns
    /// the final turns' speakers with their start frames, in order.
    fn single_voice_turns(
        params: OnlineParams,
        total_frames: usize,
        voice: impl Fn(usize) -> Option<(usize, [f32; 2])>,
    ) -> (OnlineDiarizer, Vec<(usize, usize)>) {
        let hop = params.hop_frames;
        let mut d = OnlineDiarizer::new(params);
        let mut events = Vec::new();
        for w in 0..((total_frames - 6) / hop + 1) {
            let first = w * hop;
            let frames = first..first + 6;
            let who: Vec<Option<usize>> = frames.clone().map(|g| voice(g).map(|v| v.0)).collect();
            let voices: Vec<[f32; 2]> =
                (frames.map(|g| voice(g).map_or([0.0, 0.0], |v| v.1))).collect();
            let (act, feats) = window(&who, &voices);
            let obs = observe(first * 10, 0, &act, &feats);
            events.extend(d.push_window(&obs, &mut mean).unwrap());
        }
        events.extend(d.finish(total_frames * 10));
        let starts = (events.iter())
            .filter(|e| e.status == TurnStatus::Started)
            .map(|e| (e.speaker, e.start / 10))
            .collect();
        (d, starts)
    }

    /// One voice that, after a pause longer than a window, sounds 40 degrees off: far enough to
    /// open a second speaker (cosine distance 0.23 > 0.2), close enough that the two are one
    /// voice by average linkage under 0.3.
    fn drifting_voice(g: usize) -> Option<(usize, [f32; 2])> {
        let angle: f32 = match g {
            0..14 => 0.0,
            14..22 => return None,
            _ => 40f32.to_radians(),
        };
        Some((0, [angle.cos(), angle.sin()]))
    }

    #[test]
    fn a_voice_split_in_two_joins_up_for_later_turns() {
        let split = OnlineParams {
            match_threshold: 0.2,
            ..params()
        };
        let (d, turns) = single_voice_turns(split.clone(), 40, drifting_voice);
        assert_eq!(d.speaker_count(), 2);
        assert!(turns.iter().any(|t| t.0 == 1), "{turns:?}");
        let merged = OnlineParams {
            merge_threshold: 0.3,
            ..split
        };
        let (d, turns) = single_voice_turns(merged, 40, drifting_voice);
        assert_eq!(
            d.speaker_count(),
            2,
            "the second speaker was opened, then merged"
        );
        assert!(turns.iter().all(|t| t.0 == 0), "{turns:?}");
        assert!(turns.iter().any(|t| t.1 >= 22), "{turns:?}");
        // The merged speaker is no longer matched: a state taken now says so.
        let state = d.state(&[]);
        assert_eq!(state.speakers[1].joined, Some(0));
        // Every window's embedding went into one voiceprint or the other, now all in the first.
        assert_eq!(state.speakers[0].count, Some(d.embeddings() as f32));
        let json = serde_json::to_string(&state).unwrap();
        let back: DiarizerState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn a_new_voice_heard_by_one_window_only_is_withdrawn() {
        // A voice that a single window hears (frames 14-15), between long turns of another.
        let blip = |g: usize| match g {
            14 | 15 => Some((1, [0.0, 1.0])),
            _ if g % 10 == 9 => None,
            _ => Some((0, [1.0, 0.0])),
        };
        let hop4 = OnlineParams {
            hop_frames: 4,
            tentative_frames: 4,
            ..params()
        };
        let (_, turns) = single_voice_turns(hop4.clone(), 40, blip);
        assert!(turns.iter().any(|t| t.0 == 1), "{turns:?}");
        let confirming = OnlineParams {
            confirm_new_speakers: true,
            ..hop4
        };
        let (d, turns) = single_voice_turns(confirming, 40, blip);
        assert!(turns.iter().all(|t| t.0 == 0), "{turns:?}");
        assert!(!d.state(&[]).speakers[1].confirmed);
    }

    #[test]
    fn enrolled_speaker_is_recognised() {
        let mut d = OnlineDiarizer::new(params());
        let bob = d.enroll("bob", &[0.0, 2.0]);
        let who = vec![Some(0); 6];
        let (act, feats) = window(&who, &[[0.1, 1.0]; 6]);
        let obs = observe(0, 0, &act, &feats);
        let mut events = d.push_window(&obs, &mut mean).unwrap();
        events.extend(d.finish(60));
        assert_eq!(d.speaker_names(), [Some("bob".to_string())]);
        assert!(events.iter().all(|e| e.speaker == bob));
        let last = events.last().unwrap();
        assert_eq!(
            (last.status, last.start, last.end),
            (TurnStatus::Ended, 0, 60)
        );
    }

    #[test]
    fn silence_gives_no_turns_and_everything_becomes_final() {
        let mut d = OnlineDiarizer::new(params());
        let (act, feats) = window(&[None; 6], &[[0.0, 0.0]; 6]);
        for w in 0..3 {
            let obs = observe(w * 20, 0, &act, &feats);
            assert!(d.push_window(&obs, &mut mean).unwrap().is_empty());
        }
        assert!(d.finish(100).is_empty());
        assert_eq!(d.final_samples(), 100);
        assert!(d.tentative(100).is_empty());
    }

    /// A voice close to a known speaker joins it, unless the context shows the segmentation
    /// telling it apart from that speaker's own voice: then it opens a new speaker.
    #[test]
    fn a_voice_told_apart_in_the_context_does_not_take_the_context_voice_speaker() {
        let a = [1.0, 0.0];
        let b = [0.8, 0.6]; // cosine distance 0.2 to A, under the 0.3 threshold
        for with_context in [false, true] {
            let mut d = OnlineDiarizer::new(params());
            let (act, feats) = window(&[Some(0); 6], &[a; 6]);
            let obs = observe(0, 0, &act, &feats);
            d.push_window(&obs, &mut mean).unwrap();
            // The next window (frames 2..8), alone or after two frames of context in which slot
            // 0 is voice A; in the window itself only slot 1 talks, with voice B.
            let context = if with_context { 2 } else { 0 };
            let mut who = vec![Some(0); context];
            who.extend([Some(1); 6]);
            let mut voices = vec![a; context];
            voices.extend([b; 6]);
            let (act, feats) = window(&who, &voices);
            let obs = observe((2 - context) * 10, context, &act, &feats);
            d.push_window(&obs, &mut mean).unwrap();
            let expected = if with_context { 2 } else { 1 };
            assert_eq!(d.speaker_count(), expected, "context: {with_context}");
        }
    }

    /// A window whose features stop short (the backbone did not run for it) judges only the
    /// speech they reach: a voice heard only past them neither opens a speaker nor is pooled
    /// over frames without features.
    #[test]
    fn speech_past_the_features_waits_for_a_later_window() {
        let mut d = OnlineDiarizer::new(params());
        let who = [Some(0), Some(0), Some(0), Some(0), Some(1), Some(1)];
        let (act, feats) = window(&who, &[[1.0, 0.0]; 6]);
        let mut pooled = Vec::new();
        let mut pool = |f: &[f32], w: &[f32], n: usize| {
            pooled.push((f.len() / 2, n, w.to_vec()));
            mean(f, w, n)
        };
        let obs = observe(0, 0, &act, &feats[..4 * 2]);
        d.push_window(&obs, &mut pool).unwrap();
        assert_eq!(
            d.speaker_names().len(),
            1,
            "only the voice the features reach"
        );
        assert_eq!(pooled, [(4, 1, vec![1.0; 4])]);
        // With no features at all nothing is judged.
        let obs = observe(20, 0, &act, &[]);
        d.push_window(&obs, &mut mean).unwrap();
        assert_eq!(d.speaker_names().len(), 1);
    }
}
