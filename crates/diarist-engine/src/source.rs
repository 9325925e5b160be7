//! Sources that feed a stream: a recording replayed as if it were live.

use std::path::Path;
use std::time::{Duration, Instant};

use diarist_audio::{AudioStream, AudioWriter};

use crate::EngineError;
use crate::stream::SAMPLE_RATE;

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
