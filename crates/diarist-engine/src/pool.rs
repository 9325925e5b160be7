//! Shared inference for every stream: a fixed pool of workers, each with its own model sessions,
//! fed by one batcher that groups windows from many streams into one model run.
//!
//! The batcher is a background thread that owns the whole queue state: streams send it jobs over
//! a channel, workers tell it when they are idle, and it hands an idle worker up to `max_batch`
//! windows once the batch is full or its oldest window has waited `max_wait`. Jobs of streams
//! that have gone are dropped before they run. One intra-op thread per run and parallelism
//! across workers is the default (measured faster on small CPUs than threaded single runs).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diarist_core::activity::ScoreKind;
use diarist_models::FrameGeometry;

use crate::offline::{Models, score_kind};
use crate::stats::{Stage, Stats};
use crate::{EngineConfig, EngineError};

/// Segmentation scores and backbone features of one window.
#[derive(Debug)]
pub struct WindowOutput {
    /// `[frames, classes]` segmentation scores of the window's context and the window.
    pub scores: Vec<f32>,
    /// Segmentation frames.
    pub frames: usize,
    /// Scores per frame.
    pub classes: usize,
    /// `[feature_frames, dimension]` backbone features of the job's `backbone` stretch.
    pub features: Vec<f32>,
}

/// The answer to a window job: its sequence number and output.
pub type WindowReply = (u64, Result<WindowOutput, String>);

/// Where the answers to a stream's window jobs go: the stream's channel, and its thread, which
/// is unparked when an answer arrives (it parks while it waits).
#[derive(Clone)]
pub struct ReplyTo {
    tx: Sender<WindowReply>,
    wake: std::thread::Thread,
}

impl ReplyTo {
    /// Answers go to `tx`, and `wake` is unparked after each.
    pub fn new(tx: Sender<WindowReply>, wake: std::thread::Thread) -> Self {
        Self { tx, wake }
    }

    fn send(&self, reply: WindowReply) {
        let _ = self.tx.send(reply);
        self.wake.unpark();
    }
}

enum Job {
    Window {
        seq: u64,
        audio: Vec<f32>,
        context: usize,
        backbone: Range<usize>,
        reply: ReplyTo,
        cancelled: Arc<AtomicBool>,
        queued: Instant,
    },
    Embed {
        features: Vec<f32>,
        dimension: usize,
        weights: Vec<f32>,
        speakers: usize,
        reply: Sender<Result<Vec<Vec<f32>>, String>>,
        queued: Instant,
    },
}

enum Msg {
    Submit(Job),
    Idle(usize),
    Stop,
}

/// Handle on the pool; cheap to clone, one per stream.
#[derive(Clone)]
pub struct PoolClient {
    tx: Sender<Msg>,
}

/// Geometry of the loaded models that streams need.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Segmentation frame grid.
    pub frames: FrameGeometry,
    /// How segmentation scores map to local speakers.
    pub kind: ScoreKind,
    /// Local speakers per window.
    pub speakers: usize,
    /// Backbone feature-frame grid.
    pub features: FrameGeometry,
    /// Values per backbone feature frame.
    pub feature_dim: usize,
    /// Values per speaker embedding.
    pub dimension: usize,
}

/// The worker pool and its batcher.
pub struct InferencePool {
    client: PoolClient,
    info: ModelInfo,
    batcher: Option<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    /// Per-stage latency histograms shared with the streams.
    pub stats: Arc<Stats>,
}

impl InferencePool {
    /// Loads the models once per worker and starts the batcher. `window` is the length, in
    /// samples, of every window the streams will send (not counting the context before it).
    pub fn start(
        config: &EngineConfig,
        workers: usize,
        window: usize,
    ) -> Result<Self, EngineError> {
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut handles = Vec::new();
        let mut senders = Vec::new();
        let mut info = None;
        for w in 0..workers.max(1) {
            let mut models = Models::load(config)?;
            if models.embedding.feature_geometry().is_none() {
                return Err(EngineError::Config(
                    "streaming needs an embedding model shipped split into backbone and pooling"
                        .into(),
                ));
            }
            if info.is_none() {
                info = Some(model_info(&mut models, config)?);
            }
            let (wtx, wrx) = mpsc::channel::<Vec<Job>>();
            senders.push(wtx);
            let idle = tx.clone();
            let stats = stats.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("diarist-worker-{w}"))
                    .spawn(move || work(w, models, window, wrx, idle, stats))
                    .map_err(|e| EngineError::Thread(format!("cannot start a worker: {e}")))?,
            );
        }
        let max_batch = config.streaming.max_batch.max(1);
        let max_wait = Duration::from_millis(config.streaming.max_wait_ms);
        let bstats = stats.clone();
        let batcher = std::thread::Builder::new()
            .name("diarist-batcher".into())
            .spawn(move || batch(rx, senders, max_batch, max_wait, bstats))
            .map_err(|e| EngineError::Thread(format!("cannot start the batcher: {e}")))?;
        Ok(Self {
            client: PoolClient { tx },
            info: info.expect("at least one worker"),
            batcher: Some(batcher),
            workers: handles,
            stats,
        })
    }

    /// A handle for a stream.
    pub fn client(&self) -> PoolClient {
        self.client.clone()
    }

    /// Geometry of the models.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }
}

impl Drop for InferencePool {
    fn drop(&mut self) {
        let _ = self.client.tx.send(Msg::Stop);
        if let Some(b) = self.batcher.take() {
            let _ = b.join();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn model_info(models: &mut Models, config: &EngineConfig) -> Result<ModelInfo, EngineError> {
    let spec = models.segmentation.spec();
    let features = models
        .embedding
        .feature_geometry()
        .expect("checked by the caller");
    // One short run tells the backbone's output width.
    let probe = models.embedding.features(&vec![0.0; 16_000])?;
    Ok(ModelInfo {
        frames: spec.frames(),
        kind: score_kind(spec, config.offline.multilabel_threshold)?,
        speakers: spec.manifest.output.max_speakers.unwrap_or(0),
        features,
        feature_dim: probe.dimension,
        dimension: models.embedding.dimension(),
    })
}

impl PoolClient {
    /// Queues a window for segmentation, and backbone features of its samples `backbone`; the
    /// answer goes to `reply`. `audio` holds `context` samples of the audio before the window
    /// (the backbone range is relative to the window's start); segmentation runs over all of it.
    pub fn submit_window(
        &self,
        seq: u64,
        audio: Vec<f32>,
        context: usize,
        backbone: Range<usize>,
        reply: ReplyTo,
        cancelled: Arc<AtomicBool>,
    ) -> Result<(), EngineError> {
        self.tx
            .send(Msg::Submit(Job::Window {
                seq,
                audio,
                context,
                backbone,
                reply,
                cancelled,
                queued: Instant::now(),
            }))
            .map_err(|_| EngineError::Inference("the inference pool has stopped".into()))
    }

    /// Pools `[frames, dimension]` backbone features with `[speakers, frames]` weights into one
    /// embedding per speaker (blocking).
    pub fn embed(
        &self,
        features: Vec<f32>,
        dimension: usize,
        weights: Vec<f32>,
        speakers: usize,
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let (tx, rx) = mpsc::channel();
        let gone = || EngineError::Inference("the inference pool has stopped".into());
        self.tx
            .send(Msg::Submit(Job::Embed {
                features,
                dimension,
                weights,
                speakers,
                reply: tx,
                queued: Instant::now(),
            }))
            .map_err(|_| gone())?;
        rx.recv()
            .map_err(|_| gone())?
            .map_err(EngineError::Inference)
    }
}

/// The batcher: owns the queue and the list of idle workers.
fn batch(
    rx: Receiver<Msg>,
    workers: Vec<Sender<Vec<Job>>>,
    max_batch: usize,
    max_wait: Duration,
    stats: Arc<Stats>,
) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut idle: Vec<usize> = (0..workers.len()).collect();
    loop {
        // A batch may become due by time alone only while a worker is idle to take it; with every
        // worker busy, the next message (a worker coming back, a new job) is what changes things.
        let oldest = queue.iter().find_map(|j| match j {
            Job::Window { queued, .. } => Some(*queued),
            Job::Embed { .. } => None,
        });
        let timeout = match oldest {
            Some(oldest) if !idle.is_empty() => {
                (oldest + max_wait).saturating_duration_since(Instant::now())
            }
            _ => Duration::from_secs(3600),
        };
        match rx.recv_timeout(timeout) {
            Ok(Msg::Submit(job)) => queue.push_back(job),
            Ok(Msg::Idle(w)) => idle.push(w),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        // Drain whatever else is waiting without blocking.
        loop {
            match rx.try_recv() {
                Ok(Msg::Submit(job)) => queue.push_back(job),
                Ok(Msg::Idle(w)) => idle.push(w),
                Ok(Msg::Stop) => return,
                Err(_) => break,
            }
        }
        queue.retain(|j| match j {
            Job::Window { cancelled, .. } => !cancelled.load(Ordering::Relaxed),
            Job::Embed { .. } => true,
        });
        stats.record(Stage::QueueDepth, queue.len() as u64);
        while let Some(&w) = idle.last() {
            // Embedding requests are small and block a stream: they go first, alone.
            if let Some(i) = queue.iter().position(|j| matches!(j, Job::Embed { .. })) {
                let job = queue.remove(i).expect("index from position");
                idle.pop();
                let _ = workers[w].send(vec![job]);
                continue;
            }
            let ready = match queue.front() {
                Some(Job::Window { queued, .. }) => {
                    queue.len() >= max_batch || queued.elapsed() >= max_wait
                }
                _ => false,
            };
            if !ready {
                break;
            }
            idle.pop();
            let n = queue.len().min(max_batch);
            let jobs: Vec<Job> = queue.drain(..n).collect();
            stats.record(Stage::BatchSize, jobs.len() as u64);
            let _ = workers[w].send(jobs);
        }
        stats.set_queued(queue.len() as u64);
    }
}

/// A window job as a worker runs it: its sequence number, its audio, the stretch of it the
/// backbone runs over, and where the answer goes.
type WindowRun = (u64, Vec<f32>, Range<usize>, ReplyTo);

/// A worker: runs whatever batches the batcher hands it.
fn work(
    id: usize,
    mut models: Models,
    window: usize,
    rx: Receiver<Vec<Job>>,
    idle: Sender<Msg>,
    stats: Arc<Stats>,
) {
    let mut audio: Vec<f32> = Vec::new();
    while let Ok(jobs) = rx.recv() {
        let mut windows: Vec<WindowRun> = Vec::new();
        for job in jobs {
            match job {
                Job::Embed {
                    features,
                    dimension,
                    weights,
                    speakers,
                    reply,
                    queued,
                } => {
                    stats.record_duration(Stage::QueueWait, queued.elapsed());
                    let t = Instant::now();
                    let r = models
                        .embedding
                        .pool(&features, dimension, &weights, speakers)
                        .map(|e| (0..speakers).map(|s| e.get(0, s).to_vec()).collect())
                        .map_err(|e| e.to_string());
                    stats.record_duration(Stage::Pooling, t.elapsed());
                    let _ = reply.send(r);
                }
                Job::Window {
                    seq,
                    audio: a,
                    context,
                    backbone,
                    reply,
                    queued,
                    ..
                } => {
                    stats.record_duration(Stage::QueueWait, queued.elapsed());
                    let context = context.min(a.len().saturating_sub(window));
                    let end = backbone.end.min(window);
                    let run = context + backbone.start.min(end)..context + end;
                    windows.push((seq, a, run, reply));
                }
            }
        }
        if !windows.is_empty() {
            run_windows(&mut models, windows, &mut audio, &stats);
        }
        if idle.send(Msg::Idle(id)).is_err() {
            break;
        }
    }
}

/// Segments every window of a batch and runs the backbone over their backbone stretches, then
/// answers each window's stream.
fn run_windows(models: &mut Models, windows: Vec<WindowRun>, audio: &mut Vec<f32>, stats: &Stats) {
    let t = Instant::now();
    // Segmentation runs window by window: its INT8 variant quantises activations per run, so a
    // batch would make one stream's result depend on the others in the batch. It runs over each
    // window's context and the window.
    let scores: Vec<_> = windows
        .iter()
        .map(|(_, a, _, _)| models.segmentation.run(a, a.len()))
        .collect();
    let seg = t.elapsed() / windows.len() as u32;
    let features = backbone_features(models, &windows, audio, stats, seg);
    for (((seq, _, _, reply), scores), features) in windows.into_iter().zip(scores).zip(features) {
        let out = match (scores, features) {
            (Ok(scores), Ok(features)) => Ok(WindowOutput {
                scores: scores.data,
                frames: scores.frames,
                classes: scores.classes,
                features,
            }),
            (Err(e), _) => Err(e.to_string()),
            (_, Err(e)) => Err(e),
        };
        reply.send((seq, out));
    }
}

/// Backbone features of every window's backbone stretch, batched by stretch length (empty for
/// the windows between backbone runs); records each window's segmentation time `seg` and its
/// share of the backbone run.
fn backbone_features(
    models: &mut Models,
    windows: &[WindowRun],
    audio: &mut Vec<f32>,
    stats: &Stats,
    seg: Duration,
) -> Vec<Result<Vec<f32>, String>> {
    let mut features: Vec<Option<Result<Vec<f32>, String>>> = vec![None; windows.len()];
    let mut lengths: Vec<usize> = windows.iter().map(|w| w.2.len()).collect();
    lengths.sort_unstable();
    lengths.dedup();
    for len in lengths {
        let group: Vec<usize> = (0..windows.len())
            .filter(|&i| windows[i].2.len() == len)
            .collect();
        if len == 0 {
            // Windows between backbone runs.
            for &i in &group {
                stats.record_duration(Stage::Segmentation, seg);
                features[i] = Some(Ok(Vec::new()));
            }
            continue;
        }
        audio.clear();
        for &i in &group {
            audio.extend_from_slice(&windows[i].1[windows[i].2.clone()]);
        }
        let t = Instant::now();
        let out = models.embedding.features_batch(audio, len);
        let per = t.elapsed() / group.len() as u32;
        for _ in &group {
            stats.record_duration(Stage::Segmentation, seg);
            stats.record_duration(Stage::Embedding, per);
        }
        match out {
            Ok(runs) => {
                for (&i, run) in group.iter().zip(runs) {
                    features[i] = Some(Ok(run.data));
                }
            }
            Err(e) => {
                for &i in &group {
                    features[i] = Some(Err(e.to_string()));
                }
            }
        }
    }
    features
        .into_iter()
        .map(|f| f.expect("every window is in a group"))
        .collect()
}
