//! Diarizing many files in parallel: a fixed number of workers, each with its own models, taking
//! files from a shared queue.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::offline::{self, Diarization, Models};
use crate::{Config, EngineError};

/// Diarizes `files` on `workers` threads and hands each outcome to `done` as soon as it is ready
/// (from the worker's thread, in completion order). A worker whose models fail to load reports
/// that error for every file it takes.
pub fn diarize_files<F>(config: &Config, files: &[PathBuf], workers: usize, done: F)
where
    F: Fn(&Path, Result<Diarization, EngineError>) + Sync,
{
    let next = AtomicUsize::new(0);
    let take = || files.get(next.fetch_add(1, Ordering::SeqCst));
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, files.len().max(1)) {
            scope.spawn(|| match Models::load(config) {
                Ok(mut models) => {
                    while let Some(f) = take() {
                        done(f, offline::diarize_file(&mut models, &config.offline, f));
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    while let Some(f) = take() {
                        done(f, Err(EngineError::ModelsUnavailable(reason.clone())));
                    }
                }
            });
        }
    });
}
