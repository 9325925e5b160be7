//! A small pool of taggers shared by many callers: each worker thread owns one [`Tagger`] and
//! takes texts from one bounded queue, so a long text occupies one worker while the others go on
//! serving, and nothing holds a lock while a model runs.

use std::panic::AssertUnwindSafe;
use std::thread::JoinHandle;

use diarist_models::{Runtime, SessionOptions};

use crate::{Entity, PiiConfig, PiiError, Tagger};

/// What a worker answers: the text and what it found in it.
type Answer = Result<(String, Vec<Entity>), PiiError>;

/// One text to tag and where its answer goes.
struct Job {
    text: String,
    reply: flume::Sender<Answer>,
}

/// Why a pooled call got no entities.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The tagger failed on the text.
    #[error(transparent)]
    Tagger(#[from] PiiError),
    /// The worker stopped (its tagger panicked on this text) or the pool is gone.
    #[error("the tagger worker stopped")]
    Stopped,
}

/// Taggers on worker threads behind one bounded queue.
pub struct TaggerPool {
    jobs: Option<flume::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    queue: usize,
}

impl TaggerPool {
    /// Starts one worker thread per tagger; at most `queue` texts wait for a free worker.
    pub fn new(taggers: Vec<Tagger>, queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = flume::bounded::<Job>(queue.max(1));
        let workers = taggers
            .into_iter()
            .enumerate()
            .map(|(i, tagger)| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("diarist-pii-{i}"))
                    .spawn(move || work(tagger, rx))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self {
            jobs: Some(jobs),
            workers,
            queue: queue.max(1),
        })
    }

    /// Loads `workers` taggers of the model and settings `config` names, each with its own
    /// session, behind a queue of `queue` texts.
    pub fn from_config(
        runtime: &Runtime,
        config: &PiiConfig,
        session: SessionOptions,
        workers: usize,
        queue: usize,
    ) -> Result<Self, PiiError> {
        let taggers = (0..workers.max(1))
            .map(|_| Tagger::from_config(runtime, config, session))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(taggers, queue).map_err(|e| PiiError::Config(format!("tagger threads: {e}")))
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Tags `text` on the next free worker, waiting for a place in the queue while it is full;
    /// returns the text with the entities found in it.
    pub async fn tag(&self, text: String) -> Result<(String, Vec<Entity>), PoolError> {
        let jobs = self.jobs.as_ref().ok_or(PoolError::Stopped)?;
        let (reply, answer) = flume::bounded(1);
        jobs.send_async(Job { text, reply })
            .await
            .map_err(|_| PoolError::Stopped)?;
        match answer.recv_async().await {
            Ok(found) => Ok(found?),
            Err(_) => Err(PoolError::Stopped),
        }
    }

    /// Texts that may wait for a free worker.
    pub fn queue(&self) -> usize {
        self.queue
    }
}

impl Drop for TaggerPool {
    fn drop(&mut self) {
        // Closing the queue ends every worker once it has finished its text.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A worker: tags texts until the queue closes. A tagger that panics on a text drops that
/// text's answer (the caller sees [`PoolError::Stopped`]) and the worker goes on.
fn work(mut tagger: Tagger, jobs: flume::Receiver<Job>) {
    for job in jobs.iter() {
        let Job { text, reply } = job;
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| tagger.tag(&text)));
        if let Ok(found) = result {
            let _ = reply.send(found.map(|entities| (text, entities)));
        }
    }
}
