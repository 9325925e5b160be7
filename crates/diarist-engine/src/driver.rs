//! A stream's own thread: takes audio from the stream's ring into windows, hands them to the
//! shared inference pool, diarizes the answers in order and sends the stream's events.
//!
//! It never polls. When there is nothing to do it parks: the ring's writer unparks it once the
//! next window's audio is there (or the source ends), the pool unparks it when an answer arrives,
//! and dropping the [`crate::Stream`] unparks it to cancel.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use diarist_audio::{Arrival, AudioReader, Read, WindowCut, Windower};
use diarist_core::SAMPLE_RATE;
use diarist_core::activity::{self, LocalActivity};
use diarist_core::online::{OnlineDiarizer, WindowObservation};

use crate::EngineError;
use crate::pool::{PoolClient, ReplyTo, WindowOutput, WindowReply};
use crate::stats::{Stage, Stats};
use crate::stream::{
    Event, PhaseLease, ResumeState, StreamOptions, StreamPlan, Summary, TentativeTurn,
};

/// What a stream's thread owns besides its state.
pub(crate) struct Driver {
    /// Held while the stream runs.
    pub(crate) _lease: PhaseLease,
    pub(crate) plan: StreamPlan,
    pub(crate) client: PoolClient,
    pub(crate) stats: Arc<Stats>,
    pub(crate) cancelled: Arc<AtomicBool>,
    pub(crate) events: flume::Sender<Event>,
}

/// Where a window's model output stands.
enum Outcome {
    /// With the models.
    Pending,
    /// Wholly inside audio lost to overload: nobody speaks, no model run needed.
    Lost,
    /// The models' answer.
    Done(Result<WindowOutput, String>),
}

/// A window taken from the windower, waiting for its turn to be diarized.
struct InFlight {
    start: u64,
    /// Samples of context before the window that the models heard.
    context: usize,
    valid_samples: usize,
    /// Stream sample where its backbone run started, and whether the run covered all of it.
    backbone_at: usize,
    whole: bool,
    outcome: Outcome,
}

/// Backbone feature frames of the stream's newest window and its context, on the stream's
/// feature grid (frame `k` starts at sample `k * step`), built from the runs of that window and
/// the ones before it.
pub(crate) struct FeatureCache {
    /// Stream-wide index of the first frame held.
    pub(crate) first: usize,
    /// `[frames, dim]` row-major.
    pub(crate) data: Vec<f32>,
    pub(crate) dim: usize,
    pub(crate) step: usize,
}

impl FeatureCache {
    /// Takes in the run that started at stream sample `at` (on the grid) for the window whose
    /// context starts at `start`: a run over the whole window replaces what is held, a short run
    /// adds the frames past the held ones, an empty one (the backbone did not run) adds nothing.
    /// Keeps the frames from `start` on only.
    pub(crate) fn update(&mut self, start: usize, at: usize, whole: bool, run: Vec<f32>) {
        let run_first = at / self.step;
        let end = self.first + self.data.len() / self.dim.max(1);
        if run.is_empty() && !whole {
            // No run this window: the frames held go on serving it.
        } else if whole || self.data.is_empty() || end < run_first {
            self.first = run_first;
            self.data = run;
        } else {
            let skip = (end - run_first) * self.dim;
            self.data.extend_from_slice(&run[skip.min(run.len())..]);
        }
        let window_first = start.div_ceil(self.step);
        if window_first > self.first {
            let n = ((window_first - self.first) * self.dim).min(self.data.len());
            self.data.drain(..n);
            self.first = window_first;
        }
    }

    /// Samples from `start` to the first frame held.
    pub(crate) fn offset(&self, start: usize) -> usize {
        (self.first * self.step).saturating_sub(start)
    }
}

/// Everything a running stream keeps between wake-ups.
struct State {
    reader: AudioReader,
    windower: Windower,
    diarizer: OnlineDiarizer,
    /// Label of each global speaker, in order of appearance.
    names: Vec<String>,
    replies: Receiver<WindowReply>,
    reply_to: ReplyTo,
    /// The window being cut (after its context), and the buffer reads go through.
    window_audio: Vec<f32>,
    scratch: Vec<f32>,
    in_flight: BTreeMap<u64, InFlight>,
    next_seq: u64,
    arrivals: VecDeque<Arrival>,
    received: u64,
    lost: u64,
    /// Lost samples not yet given to the windower as silence.
    pending_silence: u64,
    /// Stretches lost to overload: windows wholly inside one are silence, not worth a model run.
    gaps: VecDeque<(u64, u64)>,
    /// The writer is gone and everything it wrote has been read.
    closed: bool,
    /// The windows covering the last partial stretch have been submitted.
    tail_sent: bool,
    windows: u64,
    cache: FeatureCache,
    /// Starts of the last window handed to the models and of the last one whose backbone ran:
    /// a window that follows them runs a short backbone, or none.
    last_submitted: Option<u64>,
    last_run: Option<u64>,
    /// Whether to report a checkpoint after each window.
    checkpoints: bool,
    /// Windows starting before this only warm the backbone up (a resumed stream's state holds
    /// what they decided).
    warm_until: u64,
}

impl State {
    /// A stream's state: resumed from `options.resume` (a state that does not fit these models
    /// is refused), with `options.known_speakers` enrolled.
    fn new(
        plan: &StreamPlan,
        reader: AudioReader,
        options: &StreamOptions,
    ) -> Result<Self, EngineError> {
        let mut diarizer = OnlineDiarizer::new(plan.params.clone());
        if let Some(r) = &options.resume {
            (diarizer.restore(&r.diarizer, plan.info.dimension))
                .map_err(|e| EngineError::Config(format!("the stream cannot resume: {e}")))?;
        }
        for v in &options.known_speakers {
            diarizer.enroll(&v.name, &v.embedding);
        }
        let (tx, replies) = mpsc::channel();
        Ok(Self {
            reader,
            windower: Windower::new(plan.window, plan.hop, plan.context),
            diarizer,
            names: Vec::new(),
            replies,
            reply_to: ReplyTo::new(tx, std::thread::current()),
            window_audio: Vec::with_capacity(plan.context + plan.window),
            scratch: vec![0f32; plan.hop.max(4096)],
            in_flight: BTreeMap::new(),
            next_seq: 0,
            arrivals: VecDeque::new(),
            received: 0,
            lost: 0,
            pending_silence: 0,
            gaps: VecDeque::new(),
            closed: false,
            tail_sent: false,
            windows: 0,
            cache: FeatureCache {
                first: 0,
                data: Vec::new(),
                dim: plan.info.feature_dim,
                step: plan.info.features.step.max(1),
            },
            last_submitted: None,
            last_run: None,
            checkpoints: options.checkpoints,
            warm_until: options.resume.as_ref().map_or(0, |r| r.next_window),
        })
    }

    /// Marks the windows whose answers arrived; returns whether any did.
    fn collect_replies(&mut self) -> bool {
        let mut any = false;
        for (seq, out) in self.replies.try_iter() {
            if let Some(w) = self.in_flight.get_mut(&seq) {
                w.outcome = Outcome::Done(out);
            }
            any = true;
        }
        any
    }
}

impl Driver {
    fn emit(&self, e: Event) {
        // A reader that went away only loses its own events; the stream still finishes.
        let _ = self.events.send(e);
    }

    /// Runs the stream until its writer is gone and everything it wrote is diarized.
    pub(crate) fn run(
        self,
        reader: AudioReader,
        options: StreamOptions,
    ) -> Result<Summary, EngineError> {
        let mut st = State::new(&self.plan, reader, &options)?;
        self.announce(&st.diarizer, &mut st.names);
        loop {
            if self.cancelled.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            let mut progress = self.take_audio(&mut st)?;
            progress |= self.submit_tail(&mut st)?;
            if st.tail_sent && st.in_flight.is_empty() {
                break;
            }
            progress |= st.collect_replies();
            progress |= self.diarize_ready(&mut st)?;
            if !progress {
                self.park(&st);
            }
        }
        Ok(self.finish(st))
    }

    /// Parks the thread until something can move: the audio of the next window (when the
    /// models have room for it), an answer from the pool, or cancellation.
    fn park(&self, st: &State) {
        let wants_audio =
            !st.closed && st.pending_silence == 0 && st.in_flight.len() < self.plan.max_in_flight;
        if wants_audio && st.reader.wake_when_readable(st.windower.missing()) {
            return;
        }
        std::thread::park();
    }

    /// Takes in audio while the models have room for more windows, submitting each window that
    /// is complete; returns whether anything moved.
    fn take_audio(&self, st: &mut State) -> Result<bool, EngineError> {
        let plan = &self.plan;
        let mut progress = false;
        while st.in_flight.len() < plan.max_in_flight {
            if let Some(cut) = st.windower.next_window(&mut st.window_audio) {
                self.submit_window(st, cut)?;
                progress = true;
                continue;
            }
            let missing = st.windower.missing().min(st.scratch.len());
            if st.pending_silence > 0 {
                let n = st.pending_silence.min(missing as u64);
                st.windower.push_silence(n as usize);
                st.pending_silence -= n;
                progress = true;
                continue;
            }
            if st.closed {
                break;
            }
            match st.reader.read(&mut st.scratch[..missing]) {
                Read::Samples(n) => {
                    // Live sources are not trusted: non-finite samples become silence.
                    for x in &mut st.scratch[..n] {
                        if !x.is_finite() {
                            *x = 0.0;
                        }
                    }
                    st.windower.push(&st.scratch[..n]);
                    st.received += n as u64;
                }
                Read::Gap(gap) => {
                    self.emit(Event::Overload {
                        at: gap.at,
                        samples: gap.len,
                    });
                    st.lost += gap.len;
                    st.pending_silence += gap.len;
                    st.gaps.push_back((gap.at, gap.at + gap.len));
                }
                Read::Empty => break,
                Read::Closed => st.closed = true,
            }
            progress = true;
        }
        let State {
            reader, arrivals, ..
        } = st;
        reader.arrivals(|a| arrivals.push_back(a));
        Ok(progress)
    }

    /// Hands a complete window to the models, or marks it lost when it lies inside a gap.
    fn submit_window(&self, st: &mut State, cut: WindowCut) -> Result<(), EngineError> {
        let plan = &self.plan;
        let start = cut.start;
        while st.gaps.front().is_some_and(|g| g.1 <= start) {
            st.gaps.pop_front();
        }
        let end = start + plan.window as u64;
        let lost_window = st.gaps.front().is_some_and(|g| g.0 <= start && end <= g.1);
        let follows = start
            .checked_sub(plan.hop as u64)
            .is_some_and(|p| st.last_submitted == Some(p));
        let chain = if follows { st.last_run } else { None };
        let (run, whole) = plan.backbone_run(start, chain, plan.window);
        let outcome = if lost_window {
            (st.last_submitted, st.last_run) = (None, None);
            Outcome::Lost
        } else {
            st.last_submitted = Some(start);
            if !run.is_empty() {
                st.last_run = Some(start);
            }
            self.submit(st, cut.context, run.clone())?
        };
        let backbone_at = start as usize + run.start;
        self.queue(st, cut, plan.window, backbone_at, whole, outcome);
        Ok(())
    }

    /// At the end of the audio, submits the windows that cover the last partial stretch;
    /// returns whether it did.
    fn submit_tail(&self, st: &mut State) -> Result<bool, EngineError> {
        if !st.closed || st.pending_silence > 0 || st.tail_sent || st.windower.missing() == 0 {
            return Ok(false);
        }
        while let Some(cut) = st.windower.next_partial(&mut st.window_audio) {
            let (run, whole) = self.plan.backbone_run(cut.start, None, cut.real);
            let at = cut.start as usize + run.start;
            let outcome = self.submit(st, cut.context, run)?;
            self.queue(st, cut, cut.real, at, whole, outcome);
        }
        st.tail_sent = true;
        Ok(true)
    }

    /// Records a window as in flight under the next sequence number.
    fn queue(
        &self,
        st: &mut State,
        cut: WindowCut,
        valid_samples: usize,
        backbone_at: usize,
        whole: bool,
        outcome: Outcome,
    ) {
        st.in_flight.insert(
            st.next_seq,
            InFlight {
                start: cut.start,
                context: cut.context,
                valid_samples,
                backbone_at,
                whole,
                outcome,
            },
        );
        st.next_seq += 1;
    }

    /// Hands the window in `st.window_audio` (after `context` samples of the audio before it)
    /// to the models.
    fn submit(
        &self,
        st: &State,
        context: usize,
        backbone: Range<usize>,
    ) -> Result<Outcome, EngineError> {
        self.client.submit_window(
            st.next_seq,
            st.window_audio.clone(),
            context,
            backbone,
            st.reply_to.clone(),
            self.cancelled.clone(),
        )?;
        Ok(Outcome::Pending)
    }

    /// Diarizes the windows whose answers are in, in order; returns whether it did any.
    fn diarize_ready(&self, st: &mut State) -> Result<bool, EngineError> {
        let mut any = false;
        while let Some(entry) = st.in_flight.first_entry() {
            if matches!(entry.get().outcome, Outcome::Pending) {
                break;
            }
            let w = entry.remove();
            self.diarize(st, w)?;
            any = true;
        }
        Ok(any)
    }

    /// One window through the online diarizer: its final turns and the tentative rest out.
    fn diarize(&self, st: &mut State, w: InFlight) -> Result<(), EngineError> {
        let plan = &self.plan;
        let t = Instant::now();
        let before = st.diarizer.final_samples() as u64;
        // Only frames whose span ends inside the window's real audio may become final now (all
        // of a full window's, for the shipped models).
        let grid = plan.params.grid;
        let real = w.valid_samples.min(plan.window);
        let valid_frames = if real == plan.window {
            plan.params.window_frames
        } else {
            grid.frames_covering(real)
        };
        let (act, context, features) = self.activity(w.outcome, w.context)?;
        let from = w.start as usize - context;
        let has_features = features.is_some();
        if let Some(f) = features {
            st.cache.update(from, w.backbone_at, w.whole, f);
        }
        if w.start < st.warm_until {
            return Ok(());
        }
        let obs = WindowObservation {
            start: from,
            context_frames: context / grid.step,
            activity: &act,
            valid_frames,
            final_frames: grid.frames_within(real),
            features: if has_features { &st.cache.data } else { &[] },
            features_offset: st.cache.offset(from),
        };
        let dim = plan.info.feature_dim;
        let client = &self.client;
        let mut embed =
            |f: &[f32], w: &[f32], n: usize| client.embed(f.to_vec(), dim, w.to_vec(), n);
        let turns = st.diarizer.push_window(&obs, &mut embed)?;
        st.windows += 1;
        self.announce(&st.diarizer, &mut st.names);
        for t in turns {
            self.emit(turn_event(&t, &st.names));
        }
        let after = st.diarizer.final_samples() as u64;
        self.record_latency(&mut st.arrivals, before, after);
        let end = w.start + w.valid_samples as u64;
        self.emit(tentative_event(st, after, end));
        if st.checkpoints {
            self.emit(checkpoint_event(st, after, w.start + plan.hop as u64));
        }
        self.stats.record_duration(Stage::Clustering, t.elapsed());
        Ok(())
    }

    /// The local activity of a window's context and the window, how much context it has, and
    /// its backbone features; a lost window is silent, with no context and no features.
    fn activity(
        &self,
        outcome: Outcome,
        context: usize,
    ) -> Result<(LocalActivity, usize, Option<Vec<f32>>), EngineError> {
        let info = &self.plan.info;
        match outcome {
            Outcome::Done(out) => {
                let out = out.map_err(EngineError::Inference)?;
                let act = activity::decode(&out.scores, out.frames, info.speakers, &info.kind);
                Ok((act, context, Some(out.features)))
            }
            // (Pending windows are never diarized.)
            Outcome::Lost | Outcome::Pending => {
                let frames = self.plan.params.window_frames;
                let act = LocalActivity {
                    frames,
                    speakers: info.speakers,
                    active: vec![0; frames * info.speakers],
                };
                Ok((act, 0, None))
            }
        }
    }

    /// Finalises what is left once the audio has ended and every window is diarized.
    fn finish(&self, mut st: State) -> Summary {
        let total = st.received + st.lost;
        let before = st.diarizer.final_samples() as u64;
        let turns = st.diarizer.finish(total as usize);
        self.announce(&st.diarizer, &mut st.names);
        for t in turns {
            self.emit(turn_event(&t, &st.names));
        }
        let State {
            reader, arrivals, ..
        } = &mut st;
        reader.arrivals(|a| arrivals.push_back(a));
        self.record_latency(&mut st.arrivals, before, total);
        let summary = Summary {
            sample_rate: u64::from(SAMPLE_RATE),
            samples_in: total,
            samples_received: st.received,
            samples_lost: st.lost,
            samples_final: st.diarizer.final_samples() as u64,
            windows: st.windows,
            embeddings: st.diarizer.embeddings() as u64,
            speakers: st.names,
        };
        self.emit(Event::Summary(summary.clone()));
        summary
    }

    /// Names new speakers and announces them.
    fn announce(&self, d: &OnlineDiarizer, names: &mut Vec<String>) {
        if names.len() == d.speaker_count() {
            return;
        }
        let speakers = d.speaker_names();
        while names.len() < speakers.len() {
            let i = names.len();
            let enrolled = speakers[i].is_some();
            let name = match &speakers[i] {
                Some(n) => n.clone(),
                None => next_label(names),
            };
            names.push(name.clone());
            self.emit(Event::Speaker {
                speaker: name,
                enrolled,
            });
        }
    }

    /// End-to-end latency of the samples that just became final, one value per frame step.
    fn record_latency(&self, arrivals: &mut VecDeque<Arrival>, from: u64, to: u64) {
        let now = Instant::now();
        let step = self.plan.params.grid.step as u64;
        let mut values = Vec::new();
        let mut pos = from;
        while pos < to {
            while arrivals.front().is_some_and(|a| a.end <= pos) {
                arrivals.pop_front();
            }
            if let Some(a) = arrivals.front() {
                values.push(now.duration_since(a.at).as_micros() as u64);
            }
            pos += step;
        }
        self.stats.record_many(Stage::EndToEnd, values);
    }
}

/// The stream's checkpoint at `samples_final`: its speakers' names and voiceprints.
/// The checkpoint after a window, `next_window` being the start of the one after it.
fn checkpoint_event(st: &State, samples_final: u64, next_window: u64) -> Event {
    Event::Checkpoint {
        samples_final,
        state: ResumeState {
            next_window,
            diarizer: st.diarizer.state(&st.names),
        },
    }
}

/// The label of the next speaker found in the stream: `S` and one more than the highest such
/// number among `names` (so a resumed stream's enrolled `S1`, `S2` are followed by `S3`).
fn next_label(names: &[String]) -> String {
    let highest = (names.iter())
        .filter_map(|n| n.strip_prefix('S')?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    format!("S{}", highest + 1)
}

fn turn_event(t: &diarist_core::online::TurnEvent, names: &[String]) -> Event {
    Event::Turn {
        status: t.status,
        speaker: names.get(t.speaker).cloned().unwrap_or_default(),
        start: t.start as u64,
        end: t.end as u64,
        is_final: true,
    }
}

/// The provisional turns of the stretch from `from` (the first sample not final) to `end`.
fn tentative_event(st: &State, from: u64, end: u64) -> Event {
    Event::Tentative {
        is_final: false,
        from,
        to: end,
        turns: st
            .diarizer
            .tentative(end as usize)
            .into_iter()
            .map(|t| TentativeTurn {
                speaker: st.names.get(t.speaker).cloned(),
                start: t.start as u64,
                end: t.end as u64,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::FeatureCache;

    /// A run over stream samples `[at, end)` of a backbone whose frame `k` (on the stream grid)
    /// holds the value `k`: what the cache keeps must be every frame of the window, in order.
    fn run(at: usize, end: usize, step: usize, length: usize) -> Vec<f32> {
        let first = at / step;
        (0..(end - at - length) / step + 1)
            .map(|j| (first + j) as f32)
            .collect()
    }

    #[test]
    fn short_runs_extend_the_window_frames_of_earlier_runs_without_gap_or_repeat() {
        let (step, length, window, hop, backbone) = (320, 400, 48_000, 8_100, 24_000);
        let mut cache = FeatureCache {
            first: 0,
            data: Vec::new(),
            dim: 1,
            step,
        };
        for w in 0..40 {
            let start = w * hop;
            let end = (start + window) / step * step;
            // Every seventh window runs whole, as after audio lost to overload.
            let whole = w % 7 == 0;
            let at = if whole {
                start.div_ceil(step) * step
            } else {
                end - backbone
            };
            cache.update(start, at, whole, run(at, end, step, length));
            let first = start.div_ceil(step);
            let expected: Vec<f32> = (first..(end - length) / step + 1)
                .map(|k| k as f32)
                .collect();
            assert_eq!(cache.data, expected, "window {w}");
            assert_eq!(cache.offset(start), first * step - start);
            assert!(cache.offset(start) < step);
        }
    }

    #[test]
    fn windows_between_runs_keep_the_frames_the_last_run_reached() {
        let (step, length, window, hop, backbone) = (320, 400, 48_000, 8_100, 32_000);
        let mut cache = FeatureCache {
            first: 0,
            data: Vec::new(),
            dim: 1,
            step,
        };
        let mut reached = 0;
        for w in 0..40 {
            let start = w * hop;
            let end = (start + window) / step * step;
            // The backbone runs for every other window; the first runs over all of itself.
            let (at, stop) = match w {
                0 => (0, end),
                _ if w % 2 == 0 => (end - backbone, end),
                _ => (end, end),
            };
            let frames = if stop > at {
                run(at, stop, step, length)
            } else {
                Vec::new()
            };
            cache.update(start, at, w == 0, frames);
            if stop > at {
                reached = (stop - length) / step + 1;
            }
            let first = start.div_ceil(step);
            let expected: Vec<f32> = (first..reached).map(|k| k as f32).collect();
            assert_eq!(cache.data, expected, "window {w}");
        }
    }
}
