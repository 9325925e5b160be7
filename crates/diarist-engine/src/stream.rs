//! Live diarization of many streams on one shared inference pool.
//!
//! A source writes 16 kHz mono samples into a stream's [`AudioWriter`] (a lock-free ring); the
//! stream's own thread cuts windows every hop, sends them to the shared [`InferencePool`], links
//! and names speakers with the online diarizer of `diarist-core`, and sends [`Event`]s. Every
//! sample that enters is accounted for: it is diarized, or it is part of an overload gap that is
//! reported with its exact place and length (and diarized as silence, so time stays exact).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use diarist_audio::{AudioWriter, audio_ring};
use diarist_core::SAMPLE_RATE;
pub use diarist_core::online::TurnStatus;
use diarist_core::online::{DiarizerState, OnlineParams};
use serde::{Deserialize, Serialize};

use crate::driver::Driver;
use crate::pool::{InferencePool, ModelInfo};
use crate::stats::Stats;
use crate::{EngineConfig, EngineError, frame_grid};

/// Why a wait on [`Stream::events`] with a timeout ended without an event.
pub use flume::RecvTimeoutError;

/// Where a stream left off, for another stream to go on from there ([`Event::Checkpoint`],
/// [`StreamOptions::resume`]); positions in samples (and frames) from its stream's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// The start of the first window it had not diarized.
    pub next_window: u64,
    /// Its online diarizer's state, every speaker named.
    pub diarizer: DiarizerState,
}

impl ResumeState {
    /// The same state for a stream starting `by` samples later (a multiple of the frame step);
    /// `None` when that moves it before that stream's start.
    pub fn moved(mut self, by: i64, frame_step: usize) -> Option<Self> {
        let frames = by / frame_step.max(1) as i64;
        self.next_window = u64::try_from(self.next_window as i64 - by).ok()?;
        self.diarizer.frontier = usize::try_from(self.diarizer.frontier as i64 - frames).ok()?;
        Some(self)
    }
}

/// An enrolled speaker: a name and an embedding of their voice (the embedding model's output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Voiceprint {
    /// Name reported for the speaker.
    pub name: String,
    /// Embedding of the speaker's voice.
    pub embedding: Vec<f32>,
}

/// Per-stream choices.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Most speakers (`None`: the configuration's bound).
    pub max_speakers: Option<usize>,
    /// Enrolled speakers to recognise by name.
    pub known_speakers: Vec<Voiceprint>,
    /// Delay after which audio is final, seconds (`None`: the configuration's).
    pub latency_secs: Option<f64>,
    /// Step between windows, seconds (`None`: the configuration's). A longer hop costs less
    /// compute per stream and gives coarser, less accurate turns.
    pub hop_secs: Option<f64>,
    /// Which window of every `backbone_every` runs the embedding backbone, counted from the
    /// stream's first window (taken modulo `backbone_every`). `None`: the phase fewest open
    /// streams use, so that streams which start together do not run their backbones together.
    pub backbone_phase: Option<usize>,
    /// Whether the stream reports [`Event::Checkpoint`]s (to resume it elsewhere).
    pub checkpoints: bool,
    /// Where an earlier stream left off ([`Event::Checkpoint`]), in this stream's samples: its
    /// audio from [`Engine::resume_from`] on is this stream's. The windows before the state's next
    /// window only warm the models up; from it on, the stream decides as the earlier one would
    /// have.
    pub resume: Option<ResumeState>,
}

/// A provisional turn in the stretch that is not final yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TentativeTurn {
    /// Speaker, `None` while the voice is not named yet.
    pub speaker: Option<String>,
    /// First sample.
    pub start: u64,
    /// One past the last sample.
    pub end: u64,
}

/// Totals of a finished stream. `samples_in == samples_received + samples_lost ==
/// samples_final`: every sample is accounted for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Sample rate of every position.
    pub sample_rate: u64,
    /// Samples the source produced (received or lost).
    pub samples_in: u64,
    /// Samples that reached the diarizer.
    pub samples_received: u64,
    /// Samples lost to overload (reported as overload events; diarized as silence).
    pub samples_lost: u64,
    /// Samples with a final label.
    pub samples_final: u64,
    /// Windows segmented.
    pub windows: u64,
    /// Embeddings computed.
    pub embeddings: u64,
    /// Speakers, in order of appearance.
    pub speakers: Vec<String>,
}

/// What a stream reports. Positions are stream samples at 16 kHz.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new speaker was heard (or an enrolled one for the first time).
    Speaker {
        /// Label used in turn events.
        speaker: String,
        /// Whether the speaker was enrolled (recognised by voiceprint).
        enrolled: bool,
    },
    /// A final statement about a speaker's turn: it never changes afterwards.
    Turn {
        /// Started, updated or ended.
        status: TurnStatus,
        /// Speaker label.
        speaker: String,
        /// First sample of the turn.
        start: u64,
        /// One past the last final sample.
        end: u64,
        /// Always true: turn events are final.
        #[serde(rename = "final")]
        is_final: bool,
    },
    /// The current guess for the stretch that is not final yet; each replaces the previous one.
    Tentative {
        /// Always false.
        #[serde(rename = "final")]
        is_final: bool,
        /// First sample not final yet.
        from: u64,
        /// One past the last sample diarized.
        to: u64,
        /// Provisional turns.
        turns: Vec<TentativeTurn>,
    },
    /// The source outran the engine: this stretch was lost (and is diarized as silence).
    Overload {
        /// First lost sample.
        at: u64,
        /// Samples lost.
        samples: u64,
    },
    /// How far the stream is final, and its state: enough to resume the stream in another one
    /// (see [`StreamOptions::resume`]), whose speakers keep their names.
    /// Reported after each window when [`StreamOptions::checkpoints`] asks for it.
    Checkpoint {
        /// Samples final (every turn up to here has been reported).
        samples_final: u64,
        /// What another stream needs to go on from here.
        state: ResumeState,
    },
    /// The stream has ended.
    Summary(Summary),
}

/// Length of the backbone run of a window whose previous run was `stride` samples earlier: at
/// least the stride plus one feature frame, on the stream's feature grid so the frames of one run
/// line up with those of the runs before it; 0 (the whole window) when that is no shorter than it.
fn short_run_length(info: &ModelInfo, requested: usize, stride: usize, window: usize) -> usize {
    let fstep = info.features.step.max(1);
    let least = (stride + info.features.length).div_ceil(fstep) * fstep;
    let backbone = (requested / fstep * fstep).max(least);
    if backbone + fstep <= window {
        backbone
    } else {
        0
    }
}

/// Settings of every stream, resolved against the models; everything that follows from the hop
/// is derived from it by the methods below, so a stream's own hop needs only [`Self::set_hop`].
#[derive(Debug, Clone)]
pub(crate) struct StreamPlan {
    pub(crate) window: usize,
    /// Samples the segmentation model hears before each window (a multiple of its frame step).
    pub(crate) context: usize,
    /// On the segmentation frame grid.
    pub(crate) hop: usize,
    /// The configured backbone run length, samples.
    backbone: usize,
    /// The configured number of windows per backbone run.
    backbone_every: usize,
    /// Windows whose index (from the stream's first) is this modulo the effective number of
    /// windows per run run the backbone.
    backbone_phase: usize,
    /// The configured bound on buffered audio, samples.
    buffer: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) params: OnlineParams,
    pub(crate) info: ModelInfo,
}

impl StreamPlan {
    /// Sets the hop to `samples` rounded to the segmentation frame grid.
    fn set_hop(&mut self, samples: f64) {
        let step = self.params.grid.step.max(1);
        self.hop = ((samples / step as f64).round() as usize).max(1) * step;
        self.params.hop_frames = self.hop / step;
    }

    /// Audio buffered per stream: the configured bound, but at least a window and a hop.
    fn buffer_samples(&self) -> usize {
        self.buffer.max(self.window + self.hop)
    }

    /// Windows per backbone run: `backbone_every`, or 1 when that many hops do not fit in a
    /// window.
    fn windows_per_run(&self) -> usize {
        if self.hop * self.backbone_every <= self.window {
            self.backbone_every
        } else {
            1
        }
    }

    /// Samples between backbone runs (`windows_per_run` hops), and the length of a run that
    /// follows another (0: every window runs the backbone over all of itself).
    fn backbone_stride(&self) -> (usize, usize) {
        let stride = self.hop * self.windows_per_run();
        (
            stride,
            short_run_length(&self.info, self.backbone, stride, self.window),
        )
    }

    /// The samples of the window starting at `start`, holding `real` samples of audio, that
    /// the backbone runs over, on the stream's feature grid, and whether they are all of it:
    /// none while the window that ran it last (`last_run`, in an unbroken chain of windows a hop
    /// apart) is less than a stride back and the window is not in the stream's backbone phase,
    /// else the newest run length; with no such chain, all of the real audio the grid allows
    /// (zero padding would shift the run's feature normalisation), or none when that is under a
    /// second (the frames of earlier runs serve).
    pub(crate) fn backbone_run(
        &self,
        start: u64,
        last_run: Option<u64>,
        real: usize,
    ) -> (Range<usize>, bool) {
        let step = self.info.features.step.max(1);
        let s = start as usize;
        let (stride, run) = self.backbone_stride();
        let end = (s + real.min(self.window)) / step * step;
        let from = s.div_ceil(step) * step;
        let in_phase = (s / self.hop) % self.windows_per_run() == self.backbone_phase;
        match last_run.and_then(|r| start.checked_sub(r)) {
            Some(d) if run > 0 && d < stride as u64 && !in_phase => (end - s..end - s, false),
            Some(d) if run > 0 && d <= stride as u64 => (end - run - s..end - s, false),
            _ if real < self.window && end < from + SAMPLE_RATE as usize => {
                let at = end.max(from) - s;
                (at..at, false)
            }
            _ => (from - s..end - s, true),
        }
    }
}

/// The streaming engine: one shared inference pool serving any number of streams.
pub struct Engine {
    pool: InferencePool,
    plan: StreamPlan,
    /// Open streams per backbone phase.
    phases: Arc<Mutex<Vec<usize>>>,
}

/// A stream's place in [`Engine::phases`], given back when the stream ends.
pub(crate) struct PhaseLease {
    phases: Arc<Mutex<Vec<usize>>>,
    phase: usize,
}

impl PhaseLease {
    /// Takes `wanted` (modulo `every`), or else the phase below `every` with the fewest streams.
    fn take(phases: &Arc<Mutex<Vec<usize>>>, every: usize, wanted: Option<usize>) -> Self {
        let mut load = phases.lock().unwrap_or_else(|e| e.into_inner());
        // The engine's table has a slot per configured phase, at least one.
        let every = every.min(load.len()).max(1);
        let phase = match wanted {
            Some(p) => p % every,
            None => (0..every).min_by_key(|&p| (load[p], p)).unwrap_or(0),
        };
        load[phase] += 1;
        Self {
            phases: phases.clone(),
            phase,
        }
    }
}

impl Drop for PhaseLease {
    fn drop(&mut self) {
        let mut load = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        load[self.phase] = load[self.phase].saturating_sub(1);
    }
}

/// One live stream: its events, and its thread.
pub struct Stream {
    events: flume::Receiver<Event>,
    cancelled: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Summary, EngineError>>>,
    backbone_phase: usize,
}

impl Engine {
    /// Loads the models on `config.streaming.workers` workers (0: one per core).
    pub fn start(config: &EngineConfig) -> Result<Self, EngineError> {
        let s = &config.streaming;
        let secs = |v: f64| (v * SAMPLE_RATE as f64).round() as usize;
        let workers = if s.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            s.workers
        };
        let window = secs(s.window_secs);
        let pool = InferencePool::start(config, workers, window)?;
        let info = pool.info().clone();
        let grid = frame_grid(info.frames);
        let step = grid.step.max(1);
        let window_frames = info.frames.frames(window);
        let frames_of = |v: f64| (secs(v) as f64 / step as f64).round() as usize;
        let params = OnlineParams {
            grid,
            feature_grid: frame_grid(info.features),
            feature_dim: info.feature_dim,
            window_frames,
            hop_frames: 0,
            tentative_frames: frames_of(s.latency_secs),
            match_threshold: s.match_threshold,
            new_speaker_frames: frames_of(s.new_speaker_secs),
            update_frames: frames_of(s.update_speech_secs),
            min_active_frames: frames_of(s.min_speech_secs).max(1),
            max_speakers: (s.max_speakers > 0).then_some(s.max_speakers),
            merge_threshold: s.merge_threshold,
            confirm_new_speakers: s.confirm_new_speakers,
        };
        let context = (secs(s.context_secs) as f64 / step as f64).round() as usize * step;
        let mut plan = StreamPlan {
            window,
            context,
            hop: 0,
            backbone: secs(s.backbone_secs),
            backbone_every: s.backbone_every.max(1),
            backbone_phase: 0,
            buffer: secs(s.buffer_secs),
            max_in_flight: s.max_in_flight.max(1),
            params,
            info,
        };
        plan.set_hop(s.hop_secs * SAMPLE_RATE as f64);
        let phases = Arc::new(Mutex::new(vec![0; plan.backbone_every]));
        Ok(Self { plan, pool, phases })
    }

    /// Where a stream resumed at `next_window` (a [`ResumeState`]'s) should hear its audio again
    /// from: far enough back that the windows before it warm up the backbone's features as they
    /// were (a window and its context, and a backbone run's stride), on the stream's grid of
    /// backbone runs (its hop, or `hop_secs` when given, times the windows per run), so that
    /// its windows are the very windows the stream cut (16 kHz samples from the stream's start).
    pub fn resume_from(&self, hop_secs: Option<f64>, next_window: u64) -> u64 {
        let mut plan = self.plan.clone();
        if let Some(h) = hop_secs.filter(|h| h.is_finite() && *h > 0.0) {
            plan.set_hop((h * SAMPLE_RATE as f64).min(plan.window as f64));
        }
        let stride = (plan.hop * plan.windows_per_run()).max(1) as u64;
        let back = next_window.saturating_sub((plan.context + plan.window) as u64 + stride);
        back / stride * stride
    }

    /// Samples per segmentation frame: positions in a [`ResumeState`] move by multiples of it.
    pub fn frame_step(&self) -> usize {
        self.plan.params.grid.step
    }

    /// How much audio a stream buffers ahead of its analysis (16 kHz samples).
    pub fn buffer_samples(&self) -> usize {
        self.plan.buffer
    }

    /// Latency histograms of every stage, over all streams.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.pool.stats
    }

    /// Opens a stream: write its audio into the returned writer (drop the writer to end the
    /// stream) and read its events from the returned [`Stream`].
    pub fn open(&self, options: StreamOptions) -> Result<(AudioWriter, Stream), EngineError> {
        let dim = self.plan.info.dimension;
        for v in &options.known_speakers {
            if v.embedding.len() != dim || !v.embedding.iter().all(|x| x.is_finite()) {
                return Err(EngineError::Config(format!(
                    "the voiceprint of `{}` is not {dim} finite values (the embedding model's size)",
                    v.name
                )));
            }
        }
        if let Some(r) = &options.resume {
            (r.diarizer.check(dim))
                .map_err(|e| EngineError::Config(format!("the stream cannot resume: {e}")))?;
        }
        let mut plan = self.plan.clone();
        if let Some(m) = options.max_speakers {
            plan.params.max_speakers = (m > 0).then_some(m);
        }
        if let Some(h) = options.hop_secs {
            let samples = h * SAMPLE_RATE as f64;
            if !(samples.is_finite()
                && samples >= 0.1 * SAMPLE_RATE as f64
                && samples <= plan.window as f64)
            {
                return Err(EngineError::Config(format!(
                    "hop must be between 0.1 s and the window ({} s)",
                    plan.window as f64 / SAMPLE_RATE as f64
                )));
            }
            plan.set_hop(samples);
            if options.latency_secs.is_none() {
                // the configured latency, but never shorter than the hop
                let least = plan.params.hop_frames;
                plan.params.tentative_frames = plan.params.tentative_frames.max(least);
            }
        }
        if let Some(l) = options.latency_secs {
            let (hop, window) = (plan.hop as f64, plan.window as f64);
            let samples = l * SAMPLE_RATE as f64;
            if !(samples.is_finite() && samples >= hop && samples <= window) {
                return Err(EngineError::Config(format!(
                    "latency must be between the hop ({} s) and the window ({} s)",
                    hop / SAMPLE_RATE as f64,
                    window / SAMPLE_RATE as f64
                )));
            }
            plan.params.tentative_frames =
                (samples / plan.params.grid.step as f64).round() as usize;
        }
        let lease = PhaseLease::take(&self.phases, plan.windows_per_run(), options.backbone_phase);
        plan.backbone_phase = lease.phase;
        let backbone_phase = lease.phase;
        let (writer, reader) = audio_ring(plan.buffer_samples());
        let (tx, rx) = flume::unbounded();
        let cancelled = Arc::new(AtomicBool::new(false));
        let driver = Driver {
            _lease: lease,
            plan,
            client: self.pool.client(),
            stats: self.pool.stats.clone(),
            cancelled: cancelled.clone(),
            events: tx,
        };
        let thread = std::thread::Builder::new()
            .name("diarist-stream".into())
            .spawn(move || driver.run(reader, options))
            .map_err(|e| EngineError::Thread(format!("cannot start a stream: {e}")))?;
        Ok((
            writer,
            Stream {
                events: rx,
                cancelled,
                thread: Some(thread),
                backbone_phase,
            },
        ))
    }
}

impl Stream {
    /// Which window of every backbone run's windows runs the backbone for this stream (a
    /// stream resumed elsewhere asks for the same, in [`StreamOptions::backbone_phase`], to
    /// analyse its audio as this one would).
    pub fn backbone_phase(&self) -> usize {
        self.backbone_phase
    }

    /// The stream's events, in order; the channel closes after the summary. It can be read
    /// from threads (`iter`, `recv`) and from async tasks (`recv_async`).
    pub fn events(&self) -> &flume::Receiver<Event> {
        &self.events
    }

    /// Waits for the stream to end (its writer dropped and everything diarized).
    pub fn wait(mut self) -> Result<Summary, EngineError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            _ => Err(EngineError::Thread("the stream thread panicked".into())),
        }
    }
}

impl Drop for Stream {
    /// A stream dropped before it ended is cancelled: its thread stops at its next step.
    fn drop(&mut self) {
        if let Some(t) = &self.thread {
            self.cancelled.store(true, Ordering::Relaxed);
            t.thread().unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diarist_core::activity::ScoreKind;
    use diarist_core::online::OnlineParams;
    use diarist_models::FrameGeometry;

    use super::{PhaseLease, StreamPlan, frame_grid};
    use crate::pool::ModelInfo;

    /// The default plan's geometry: 3 s windows every second, a 2.5 s backbone run for every
    /// other window, on segmentation-3.0's and CAM++'s frame grids.
    fn plan(phase: usize) -> StreamPlan {
        let frames = FrameGeometry {
            step: 270,
            length: 991,
            offset: 320,
        };
        let features = FrameGeometry {
            step: 320,
            length: 400,
            offset: 0,
        };
        let mut plan = StreamPlan {
            window: 48_000,
            context: 0,
            hop: 0,
            backbone: 40_000,
            backbone_every: 2,
            backbone_phase: phase,
            buffer: 160_000,
            max_in_flight: 4,
            params: OnlineParams {
                grid: frame_grid(frames),
                feature_grid: frame_grid(features),
                feature_dim: 512,
                window_frames: 175,
                hop_frames: 0,
                tentative_frames: 175,
                match_threshold: 0.7,
                new_speaker_frames: 30,
                update_frames: 18,
                min_active_frames: 18,
                max_speakers: None,
                merge_threshold: 0.4,
                confirm_new_speakers: true,
            },
            info: ModelInfo {
                frames,
                kind: ScoreKind::Powerset {
                    classes: Vec::new(),
                },
                speakers: 3,
                features,
                feature_dim: 512,
                dimension: 192,
            },
        };
        plan.set_hop(16_000.0);
        plan
    }

    #[test]
    fn a_stream_runs_the_backbone_for_the_windows_of_its_phase_and_never_falls_behind() {
        for phase in 0..2 {
            let plan = plan(phase);
            let (stride, run) = plan.backbone_stride();
            assert!(run > 0 && run <= plan.window);
            let mut last_run: Option<u64> = None;
            for w in 0..12u64 {
                let start = w * plan.hop as u64;
                let (span, whole) = plan.backbone_run(start, last_run, plan.window);
                if w == 0 {
                    assert!(
                        whole && span.len() > plan.window - 320,
                        "the first window runs whole"
                    );
                } else {
                    assert!(!whole);
                    let ran = !span.is_empty();
                    assert_eq!(ran, w as usize % 2 == phase, "phase {phase}, window {w}");
                    if ran {
                        assert_eq!(span.len(), run, "phase {phase}, window {w}");
                    }
                }
                if !span.is_empty() {
                    last_run = Some(start);
                }
                // Whatever the phase, the newest run is never more than a stride old.
                assert!(start - last_run.unwrap() <= stride as u64 - plan.hop as u64);
            }
        }
    }

    #[test]
    fn new_streams_take_the_least_used_phase_and_give_it_back() {
        let phases = Arc::new(Mutex::new(vec![0; 2]));
        let a = PhaseLease::take(&phases, 2, None);
        let b = PhaseLease::take(&phases, 2, None);
        let c = PhaseLease::take(&phases, 2, None);
        assert_eq!((a.phase, b.phase, c.phase), (0, 1, 0));
        drop(b);
        assert_eq!(*phases.lock().unwrap(), vec![2, 0]);
        assert_eq!(PhaseLease::take(&phases, 2, None).phase, 1);
        // An asked-for phase is taken modulo the windows per run; one window per run has one.
        assert_eq!(PhaseLease::take(&phases, 2, Some(3)).phase, 1);
        assert_eq!(PhaseLease::take(&phases, 1, None).phase, 0);
        drop((a, c));
        assert_eq!(*phases.lock().unwrap(), vec![0, 0]);
    }
}
