//! Sources that feed a stream: a recording replayed as if it were live, on its own or beside
//! others.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diarist_audio::{AudioStream, AudioWriter};

use crate::output::write_atomic;
use crate::stream::{Engine, Event, StreamOptions, Summary};
use crate::{EngineError, FinalTurns};
use diarist_core::SAMPLE_RATE;
use diarist_core::rttm::file_id;

/// How a recording is fed to a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// As fast as the engine takes it: the source waits whenever the stream's buffer is full.
    Fastest,
    /// At `speed` times real time, like a live source: pushes are never held up, and audio
    /// that does not fit is lost and reported as an overload.
    Live {
        /// 1.0 is real time.
        speed: f64,
    },
}

/// Audio is pushed in chunks of this many samples (20 ms), as a sound card would.
const CHUNK: usize = 320;

/// Replays the recording at `path` (its first `max_samples` samples, when given) into `writer`
/// at `pace`, then drops the writer (ending the stream). Returns the samples pushed.
pub fn replay_file(
    path: &Path,
    writer: AudioWriter,
    pace: Pace,
    max_samples: Option<u64>,
) -> Result<u64, EngineError> {
    let mut audio = AudioStream::open(path)?;
    replay(
        |buf| audio.read(buf).map_err(EngineError::from),
        writer,
        pace,
        max_samples.unwrap_or(u64::MAX),
    )
}

/// Why a replayed recording's stream failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The stream could not open, or it failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The recording could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The recording.
        path: PathBuf,
        /// Why.
        #[source]
        source: EngineError,
    },
    /// A thread of the replay (`replay thread`, `stream`) panicked.
    #[error("the {0} panicked")]
    Panicked(&'static str),
    /// The final turns could not be written.
    #[error(transparent)]
    Write(#[from] std::io::Error),
}

/// Replays the recording at `path` at `pace` into a new stream of `engine`, handing each event to
/// `on_event` as it comes; the stream's summary once it has ended.
pub fn stream_file(
    engine: &Engine,
    path: &Path,
    pace: Pace,
    options: StreamOptions,
    mut on_event: impl FnMut(&Event),
) -> Result<Summary, ReplayError> {
    let (writer, stream) = engine.open(options)?;
    let owned = path.to_path_buf();
    let source = std::thread::spawn(move || replay_file(&owned, writer, pace, None));
    for e in stream.events() {
        on_event(&e);
    }
    let summary = stream.wait()?;
    source
        .join()
        .map_err(|_| ReplayError::Panicked("replay thread"))?
        .map_err(|source| ReplayError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(summary)
}

/// Replays `files` at once at `pace`, each as its own stream of `engine` on its own thread, and
/// writes each one's final turns as RTTM to `<dir>/<file id>.rttm` (atomically); for each file,
/// in order, its stream's summary, or why it failed.
pub fn stream_files(
    engine: &Engine,
    files: &[PathBuf],
    pace: Pace,
    options: &StreamOptions,
    dir: &Path,
) -> Vec<Result<Summary, ReplayError>> {
    std::thread::scope(|scope| {
        let streams: Vec<_> = files
            .iter()
            .map(|file| {
                scope.spawn(move || {
                    let mut turns = FinalTurns::default();
                    let summary =
                        stream_file(engine, file, pace, options.clone(), |e| turns.observe(e))?;
                    let id = file_id(file);
                    write_atomic(&dir.join(format!("{id}.rttm")), &turns.rttm(&id))?;
                    Ok(summary)
                })
            })
            .collect();
        streams
            .into_iter()
            .map(|s| s.join().unwrap_or(Err(ReplayError::Panicked("stream"))))
            .collect()
    })
}

/// Replays up to `limit` samples from `read` (as [`AudioStream::read`]: appends, 0 at the end).
fn replay(
    mut read: impl FnMut(&mut Vec<f32>) -> Result<usize, EngineError>,
    mut writer: AudioWriter,
    pace: Pace,
    limit: u64,
) -> Result<u64, EngineError> {
    let started = Instant::now();
    let mut buf: Vec<f32> = Vec::new();
    let mut pushed = 0u64;
    let mut done = false;
    loop {
        while !done && buf.len() < CHUNK {
            done = read(&mut buf)? == 0;
        }
        if buf.is_empty() || pushed >= limit {
            break;
        }
        let take = buf.len().min(CHUNK).min((limit - pushed) as usize);
        match pace {
            Pace::Fastest => {
                if writer.push_wait(&buf[..take]).is_err() {
                    break;
                }
            }
            Pace::Live { speed } => {
                let due = started
                    + Duration::from_secs_f64(
                        (pushed + take as u64) as f64 / SAMPLE_RATE as f64 / speed.max(1e-3),
                    );
                if let Some(d) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                if writer.reader_gone() {
                    break;
                }
                writer.push_live(&buf[..take]);
            }
        }
        pushed += take as u64;
        buf.drain(..take);
    }
    Ok(pushed)
}
