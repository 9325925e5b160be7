//! Diarizing many files in parallel: every input checked before any model loads, a fixed number
//! of workers, each with its own models, taking files from a shared queue, and an account of
//! the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diarist_audio::{AudioError, AudioStream, Shortfall};
use diarist_core::SAMPLE_RATE;

use diarist_core::rttm::file_id;

use crate::offline::{Diarization, Models, Plan, Shape, State};
use crate::output::{Destination, OutputFormat, render};
use crate::spans::{self, Span};
use crate::{EngineConfig, EngineError};

/// Worker threads for a batch: the configuration's `offline.workers` (0: one per core), at
/// least one. Every worker serves every file (a long recording is spread over all of them).
pub fn workers(config: &EngineConfig) -> usize {
    match config.offline.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// A batch's inputs, each opened (its headers read) before any model loads.
#[derive(Debug, Default)]
pub struct Checked {
    /// Inputs skipped because their output exists.
    pub skipped: usize,
    /// The files to diarize.
    pub ready: Vec<PathBuf>,
    /// Those among them whose header claims more audio than the file holds (what they hold is
    /// diarized).
    pub short: Vec<(PathBuf, Shortfall)>,
    /// The files the decoder refuses (not audio, an absurd sample rate or channel count).
    pub refused: Vec<(PathBuf, AudioError)>,
}

impl Checked {
    /// Inputs to take: those to diarize and those refused.
    pub fn len(&self) -> usize {
        self.ready.len() + self.refused.len()
    }

    /// Whether there is no input to take.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Opens every file of `files` but those whose output `exists` (they are skipped), reading only
/// its headers.
pub fn check_inputs(files: &[PathBuf], exists: impl Fn(&Path) -> bool) -> Checked {
    let mut checked = Checked::default();
    for f in files {
        if exists(f) {
            checked.skipped += 1;
            continue;
        }
        match AudioStream::open(f) {
            Ok(stream) => {
                if let Some(shortfall) = stream.info().shortfall {
                    checked.short.push((f.clone(), shortfall));
                }
                checked.ready.push(f.clone());
            }
            Err(e) => checked.refused.push((f.clone(), e)),
        }
    }
    checked
}

/// What a batch run came to.
#[derive(Debug, Clone)]
pub struct Report {
    /// Inputs taken (diarized or failed).
    pub files: usize,
    /// Inputs skipped because their output existed.
    pub skipped: usize,
    /// Samples of audio diarized.
    pub audio_samples: usize,
    /// Wall time from the first model load to the last result.
    pub wall: Duration,
    /// Worker threads.
    pub workers: usize,
    /// The files that failed, and why, refused ones first, then in the order they failed.
    pub failures: Vec<(PathBuf, String)>,
    /// The files diarized as far as they go, their headers claiming more.
    pub short: Vec<(PathBuf, Shortfall)>,
}

impl Report {
    /// The run in lines: files, audio, speed, workers and failures, then each failure with its
    /// reason and each file that was cut short (and did not fail).
    pub fn lines(&self) -> Vec<String> {
        let wall = self.wall.as_secs_f64();
        let audio_secs = self.audio_samples as f64 / SAMPLE_RATE as f64;
        let mut lines = vec![format!(
            "{} files ({} skipped as existing), {:.3} h of audio in {:.2} s wall, {:.1}x real time, {} workers, {} failed",
            self.files,
            self.skipped,
            audio_secs / 3600.0,
            wall,
            if wall > 0.0 { audio_secs / wall } else { 0.0 },
            self.workers,
            self.failures.len()
        )];
        for (f, why) in &self.failures {
            lines.push(format!("failed: {}: {why}", f.display()));
        }
        for (f, shortfall) in &self.short {
            if !self.failures.iter().any(|(g, _)| g == f) {
                lines.push(format!(
                    "cut short: {}: {shortfall}; what it holds was diarized",
                    f.display()
                ));
            }
        }
        lines
    }
}

/// Diarizes the `checked` files on [`workers`] threads and hands each outcome to `done` as soon
/// as it is ready (from the worker's thread, in completion order); a file fails with the reason
/// `done` returns. Loads no models when no file is ready.
pub fn run<F>(config: &EngineConfig, checked: Checked, done: F) -> Report
where
    F: Fn(&Path, Result<Diarization, EngineError>) -> Result<(), String> + Sync,
{
    let Checked {
        skipped,
        ready,
        short,
        refused,
    } = checked;
    let workers = workers(config);
    let started = Instant::now();
    let files = ready.len() + refused.len();
    let failures = Mutex::new(
        refused
            .into_iter()
            .map(|(f, e)| (f, e.to_string()))
            .collect::<Vec<_>>(),
    );
    let audio_samples = AtomicUsize::new(0);
    if !ready.is_empty() {
        diarize_files(config, &ready, workers, |f, result| {
            if let Ok(d) = &result {
                audio_samples.fetch_add(d.samples, Ordering::Relaxed);
            }
            if let Err(why) = done(f, result) {
                let mut failures = failures.lock().unwrap_or_else(|p| p.into_inner());
                failures.push((f.to_path_buf(), why));
            }
        });
    }
    Report {
        files,
        skipped,
        audio_samples: audio_samples.into_inner(),
        wall: started.elapsed(),
        workers,
        failures: failures.into_inner().unwrap_or_else(|p| p.into_inner()),
        short,
    }
}

/// What became of one input of [`write_all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Its output existed, so it was not taken.
    Skipped,
    /// Diarized and written.
    Written,
    /// Refused, failed or not written, and why.
    Failed(&'a str),
}

/// Diarizes `files` (those whose output exists skipped when `skip_existing`) and writes each
/// diarization to `dest` in `format`; `progress` hears what became of every input, skipped and
/// refused ones first.
pub fn write_all(
    config: &EngineConfig,
    files: &[PathBuf],
    dest: &Destination,
    format: OutputFormat,
    skip_existing: bool,
    progress: impl Fn(&Path, Outcome) + Sync,
) -> Report {
    let exists = |f: &Path| skip_existing && dest.exists(f);
    files
        .iter()
        .filter(|f| exists(f))
        .for_each(|f| progress(f, Outcome::Skipped));
    let checked = check_inputs(files, exists);
    for (f, e) in &checked.refused {
        progress(f, Outcome::Failed(&e.to_string()));
    }
    run(config, checked, |f, result| {
        let result = result
            .map_err(|e| e.to_string())
            .and_then(|d| dest.write(f, &render(&file_id(f), &d, format)));
        progress(
            f,
            result
                .as_ref()
                .map_or_else(|why| Outcome::Failed(why), |_| Outcome::Written),
        );
        result
    })
}

/// Diarizes `files` on `workers` threads, each with its own models, and hands each outcome to
/// `done` as soon as it is ready (in completion order). Up to `workers` files are read at once
/// and cut into spans that any worker analyses, so one long recording runs on every worker, with
/// the result one worker would give. When no worker's models load, every file fails with why.
pub fn diarize_files<F>(config: &EngineConfig, files: &[PathBuf], workers: usize, done: F)
where
    F: Fn(&Path, Result<Diarization, EngineError>) + Sync,
{
    let workers = workers.max(1);
    // One span waits for a worker; the others are being analysed: memory does not grow with
    // the recording.
    let (jobs, queue) = flume::bounded::<Job>(1);
    let (loaded, shapes) = flume::unbounded();
    let next = AtomicUsize::new(0);
    let take = || files.get(next.fetch_add(1, Ordering::SeqCst));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, loaded) = (queue.clone(), loaded.clone());
            scope.spawn(move || work(config, queue, loaded));
        }
        drop((queue, loaded));
        // The first worker whose models load tells the readers what the models are.
        let shape = first_shape(&shapes);
        std::thread::scope(|readers| {
            for _ in 0..workers.min(files.len()) {
                let (jobs, shape, done, take) = (&jobs, &shape, &done, &take);
                readers.spawn(move || {
                    while let Some(f) = take() {
                        let result = match shape {
                            Ok(shape) => read_file(config, shape, f, jobs),
                            Err(why) => Err(EngineError::ModelsUnavailable(why.clone())),
                        };
                        done(f, result);
                    }
                });
            }
        });
        // The readers are done: the queue closes and the workers end.
        drop(jobs);
    });
}

/// Diarizes one recording on every worker ([`workers`]).
pub fn diarize_one(config: &EngineConfig, file: &Path) -> Result<Diarization, EngineError> {
    let result = Mutex::new(None);
    diarize_files(config, &[file.to_path_buf()], workers(config), |_, r| {
        *result.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    });
    (result.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_else(|| Err(EngineError::ModelsUnavailable("no worker ran".into())))
}

/// One span of one recording for any worker, and where its analysis goes.
struct Job {
    plan: Arc<Plan>,
    span: Span,
    reply: flume::Sender<(usize, Result<State, EngineError>)>,
}

/// A worker: loads its models (saying what they are, or why they failed), then analyses spans
/// until the queue closes.
fn work(
    config: &EngineConfig,
    queue: flume::Receiver<Job>,
    loaded: flume::Sender<Result<Shape, String>>,
) {
    let mut models = match Models::load(config) {
        Ok(m) => m,
        Err(e) => {
            let _ = loaded.send(Err(e.to_string()));
            return;
        }
    };
    let _ = loaded.send(Ok(models.shape()));
    drop(loaded);
    for job in queue.iter() {
        let result = spans::analyse(&mut models, &job.plan, &job.span);
        let _ = job.reply.send((job.span.index, result));
    }
}

/// The first shape a worker reports, or the first failure when none loads.
fn first_shape(shapes: &flume::Receiver<Result<Shape, String>>) -> Result<Shape, String> {
    let mut failure = None;
    for reported in shapes.iter() {
        match reported {
            Ok(shape) => return Ok(shape),
            Err(why) => {
                failure.get_or_insert(why);
            }
        }
    }
    Err(failure.unwrap_or_else(|| "no worker started".into()))
}

/// Reads `file`, queues its spans for the workers, and joins their analyses in order.
fn read_file(
    config: &EngineConfig,
    shape: &Shape,
    file: &Path,
    jobs: &flume::Sender<Job>,
) -> Result<Diarization, EngineError> {
    let plan = Arc::new(Plan::new(shape, &config.offline)?);
    let mut audio = AudioStream::open(file)?;
    let (reply, replies) = flume::unbounded();
    let mut queued = 0;
    let total = spans::cut(
        &plan,
        |buf| audio.read(buf),
        |span| {
            queued += 1;
            let job = Job {
                plan: plan.clone(),
                span,
                reply: reply.clone(),
            };
            (jobs.send(job))
                .map_err(|_| EngineError::ModelsUnavailable("every worker stopped".into()))
        },
    )?;
    drop(reply);
    let mut state = State::new(plan.dimension);
    let (mut held, mut joined) = (BTreeMap::new(), 0);
    for (index, analysed) in replies.iter().take(queued) {
        held.insert(index, analysed);
        while let Some(analysed) = held.remove(&joined) {
            state.append(analysed?);
            joined += 1;
        }
    }
    if joined < queued {
        return Err(EngineError::ModelsUnavailable(
            "the workers stopped before every span was analysed".into(),
        ));
    }
    Ok(state.finish(&plan, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped configuration's engine sections (this crate's own type, which the
    /// dev-dependency on diarist-config does not give).
    fn config(workers: usize) -> EngineConfig {
        let mut table: toml::Table = toml::from_str(diarist_config::DEFAULTS).unwrap();
        table.remove("pii");
        let mut config: EngineConfig = table.try_into().unwrap();
        config.offline.workers = workers;
        config
    }

    #[test]
    fn workers_follow_the_configuration() {
        assert_eq!(workers(&config(4)), 4);
        assert_eq!(workers(&config(1)), 1);
        assert!(workers(&config(0)) >= 1);
    }

    #[test]
    fn files_the_decoder_refuses_fail_before_any_model_loads() {
        let dir = std::env::temp_dir().join(format!("diarist-batch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.wav");
        std::fs::write(&bad, b"not audio").unwrap();
        let done = dir.join("done.wav");
        let checked = check_inputs(&[bad.clone(), done.clone(), dir.join("missing.wav")], |f| {
            f == done
        });
        assert!(checked.ready.is_empty() && checked.short.is_empty());
        assert_eq!(
            (checked.refused.len(), checked.skipped, checked.len()),
            (2, 1, 2)
        );
        // nothing is ready, so the (unloadable) models are never asked for
        let report = run(&config(2), checked, |_, _| unreachable!());
        assert_eq!((report.files, report.skipped, report.workers), (2, 1, 2));
        let lines = report.lines();
        assert!(
            lines[0].starts_with("2 files (1 skipped as existing), 0.000 h of audio in "),
            "{lines:?}"
        );
        assert!(lines[0].ends_with(", 2 workers, 2 failed"), "{lines:?}");
        assert!(lines[1].starts_with(&format!("failed: {}: ", bad.display())));
        assert_eq!(lines.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
