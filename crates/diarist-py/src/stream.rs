//! A live stream on the pipeline's streaming engine: audio pushed in chunks (waiting for the
//! engine when it is behind, so nothing is lost), events handed back as the JSON objects
//! `diarist stream` prints, and the final turns they add up to.

use std::sync::{Arc, Mutex, PoisonError};

use diarist_audio::AudioWriter;
use diarist_core::rttm::samples_to_secs;
use diarist_engine::{Engine, Event, FinalTurns, StreamOptions};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{self, InputError};
use crate::samples::{self, Format, To16k};

/// One live stream.
#[pyclass(module = "diarist._native", frozen)]
pub struct Stream {
    state: Mutex<State>,
}

/// What a stream holds while it runs.
struct State {
    /// Keeps the engine running while the stream does.
    _engine: Arc<Engine>,
    /// The stream's audio input, `None` once closed.
    writer: Option<AudioWriter>,
    /// Its events and thread, `None` once closed.
    stream: Option<diarist_engine::Stream>,
    convert: To16k,
    turns: FinalTurns,
}

impl Stream {
    /// Opens a stream of audio at `rate` Hz on `engine`.
    pub(crate) fn open(engine: Arc<Engine>, options: StreamOptions, rate: u32) -> PyResult<Self> {
        let convert = To16k::new(rate).map_err(InputError::new_err)?;
        let (writer, stream) = engine.open(options).map_err(errors::engine)?;
        Ok(Self {
            state: Mutex::new(State {
                _engine: engine,
                writer: Some(writer),
                stream: Some(stream),
                convert,
                turns: FinalTurns::default(),
            }),
        })
    }

    /// Runs `f` on the state without the GIL.
    fn with_state<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut State) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner)))
    }
}

impl State {
    /// Writes 16 kHz samples; when the stream has stopped, ends it to raise its error.
    fn write(&mut self, samples: &[f32]) -> PyResult<()> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| InputError::new_err("the stream is closed"))?;
        if writer.push_wait(samples).is_err() {
            self.close()?;
            return Err(errors::DiaristError::new_err("the stream stopped"));
        }
        Ok(())
    }

    /// The events available now, as JSON.
    fn drain(&mut self) -> Vec<String> {
        let events: Vec<Event> = match &self.stream {
            Some(s) => s.events().try_iter().collect(),
            None => Vec::new(),
        };
        self.observe(events)
    }

    /// Notes `events` in the final turns and returns them as JSON.
    fn observe(&mut self, events: Vec<Event>) -> Vec<String> {
        events
            .into_iter()
            .map(|e| {
                self.turns.observe(&e);
                serde_json::to_string(&e).expect("events serialise")
            })
            .collect()
    }

    /// Ends the stream: the samples the resampler still owes, then every event left (the last
    /// is the summary); the stream's error, if it failed. Nothing once closed.
    fn close(&mut self) -> PyResult<Vec<String>> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(Vec::new());
        };
        let mut tail = Vec::new();
        self.convert.finish(&mut tail);
        // A stream that stopped reports why below.
        let _ = writer.push_wait(&tail);
        drop(writer);
        let Some(stream) = self.stream.take() else {
            return Ok(Vec::new());
        };
        let events: Vec<Event> = stream.events().iter().collect();
        let result = stream.wait();
        let events = self.observe(events);
        result.map_err(errors::engine)?;
        Ok(events)
    }
}

#[pymethods]
impl Stream {
    /// Adds samples (as [`crate::pipeline::Pipeline`]'s `diarize_samples` takes them) and
    /// returns the events available so far, as JSON.
    fn push(
        &self,
        py: Python<'_>,
        samples: &Bound<'_, PyBytes>,
        format: &str,
        channels: usize,
    ) -> PyResult<Vec<String>> {
        let format = Format::parse(format).map_err(InputError::new_err)?;
        let bytes = samples.as_bytes();
        self.with_state(py, |s| {
            let mono = samples::mono(bytes, format, channels).map_err(InputError::new_err)?;
            let mut audio = Vec::with_capacity(mono.len());
            s.convert.push(&mono, &mut audio);
            s.write(&audio)?;
            Ok(s.drain())
        })
    }

    /// Ends the stream and returns the remaining events, as JSON, waiting for the engine to
    /// diarize everything pushed.
    fn close(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with_state(py, State::close)
    }

    /// The final turns that have ended, `(start, end, speaker)` in seconds, in order of start.
    fn turns(&self, py: Python<'_>) -> PyResult<Vec<(f64, f64, String)>> {
        self.with_state(py, |s| {
            let mut turns = s.turns.closed().to_vec();
            turns.sort_by_key(|t| (t.start, t.end));
            Ok(turns
                .into_iter()
                .map(|t| (samples_to_secs(t.start), samples_to_secs(t.end), t.speaker))
                .collect())
        })
    }

    /// RTTM text of the final turns that have ended, under `file_id`.
    fn rttm(&self, py: Python<'_>, file_id: &str) -> PyResult<String> {
        self.with_state(py, |s| Ok(s.turns.rttm(file_id)))
    }
}
