//! The pipeline: settings composed as the binary composes them, a set of offline models per
//! thread diarizing at once, and the streaming engine, started with the first stream.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use diarist_config::{Layer, Settings};
use diarist_core::SAMPLE_RATE;
use diarist_core::reconstruct::SpeakerTurn;
use diarist_core::rttm::{file_id, speaker_label};
use diarist_engine::config::OfflineConfig;
use diarist_engine::offline::{self, Models};
use diarist_engine::output::{OutputFormat, render};
use diarist_engine::{Engine, EngineError, StreamOptions};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{self, InputError};
use crate::samples::{self, Format};
use crate::stream::Stream;

/// Samples handed to the offline diarizer per read.
const CHUNK: usize = SAMPLE_RATE as usize;

/// The compiled-in defaults with the file `config` (only the keys it changes) merged over them;
/// model and library names resolved in `models` and `onnxruntime_dir`.
pub(crate) fn load_settings(
    config: Option<&Path>,
    models: &Path,
    onnxruntime_dir: &Path,
) -> PyResult<Settings> {
    let layers = match config {
        Some(file) => vec![Layer::read(file).map_err(|e| {
            errors::ConfigError::new_err(format!("cannot read {}: {e}", file.display()))
        })?],
        None => Vec::new(),
    };
    let mut settings = Settings::from_layers(&layers).map_err(errors::config)?;
    settings.resolve_paths(models, onnxruntime_dir);
    Ok(settings)
}

/// Offline and live diarization with the models one configuration names.
#[pyclass(module = "diarist._native", frozen)]
pub struct Pipeline {
    settings: Settings,
    /// Offline models not in use: a call takes a set (loading one when none is free) and puts it
    /// back, so that calls on several threads run at once.
    idle: Mutex<Vec<Models>>,
    /// The streaming engine, once a stream has been opened.
    engine: Mutex<Option<Arc<Engine>>>,
}

#[pymethods]
impl Pipeline {
    /// Loads the settings and one set of offline models (see [`load_settings`]).
    #[new]
    fn new(
        py: Python<'_>,
        config: Option<PathBuf>,
        models_dir: PathBuf,
        onnxruntime_dir: PathBuf,
    ) -> PyResult<Self> {
        let settings = load_settings(config.as_deref(), &models_dir, &onnxruntime_dir)?;
        let models = py
            .detach(|| Models::load(&settings.engine))
            .map_err(errors::engine)?;
        Ok(Self {
            settings,
            idle: Mutex::new(vec![models]),
            engine: Mutex::new(None),
        })
    }

    /// The effective configuration as TOML.
    fn config_toml(&self) -> String {
        self.settings.to_toml()
    }

    /// Diarizes an audio file of any supported format.
    #[pyo3(signature = (path, num_speakers=None, min_speakers=None, max_speakers=None))]
    fn diarize_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        num_speakers: Option<usize>,
        min_speakers: Option<usize>,
        max_speakers: Option<usize>,
    ) -> PyResult<Diarization> {
        let cfg = self.offline_config([num_speakers, min_speakers, max_speakers])?;
        let d = py
            .detach(|| self.with_models(|m| offline::diarize_file(m, &cfg, &path)))
            .map_err(errors::engine)?;
        Ok(Diarization {
            inner: d,
            file_id: file_id(&path),
        })
    }

    /// Diarizes samples: `samples` holds interleaved frames of `channels` channels in `format`
    /// (`f32`, `f64` or `i16`, native-endian) at `sample_rate` Hz.
    #[pyo3(signature = (samples, format, channels, sample_rate, num_speakers=None, min_speakers=None, max_speakers=None))]
    #[allow(clippy::too_many_arguments)]
    fn diarize_samples(
        &self,
        py: Python<'_>,
        samples: &Bound<'_, PyBytes>,
        format: &str,
        channels: usize,
        sample_rate: u32,
        num_speakers: Option<usize>,
        min_speakers: Option<usize>,
        max_speakers: Option<usize>,
    ) -> PyResult<Diarization> {
        let cfg = self.offline_config([num_speakers, min_speakers, max_speakers])?;
        let format = Format::parse(format).map_err(InputError::new_err)?;
        let bytes = samples.as_bytes();
        let d = py.detach(|| {
            let audio = samples::recording(bytes, format, channels, sample_rate)
                .map_err(InputError::new_err)?;
            let mut chunks = audio.chunks(CHUNK);
            self.with_models(|m| {
                offline::diarize(m, &cfg, |buf: &mut Vec<f32>| {
                    let chunk = chunks.next().unwrap_or_default();
                    buf.extend_from_slice(chunk);
                    Ok::<_, EngineError>(chunk.len())
                })
            })
            .map_err(errors::engine)
        })?;
        Ok(Diarization {
            inner: d,
            file_id: "audio".into(),
        })
    }

    /// Opens a live stream of audio at `sample_rate` Hz; `None` options take the configuration's.
    #[pyo3(signature = (sample_rate, max_speakers=None, latency=None, hop=None))]
    fn stream(
        &self,
        py: Python<'_>,
        sample_rate: u32,
        max_speakers: Option<usize>,
        latency: Option<f64>,
        hop: Option<f64>,
    ) -> PyResult<Stream> {
        let options = StreamOptions {
            max_speakers,
            latency_secs: latency,
            hop_secs: hop,
            ..StreamOptions::default()
        };
        let engine = py.detach(|| self.engine()).map_err(errors::engine)?;
        Stream::open(engine, options, sample_rate)
    }
}

impl Pipeline {
    /// The offline settings with the speaker counts given (`[num, min, max]`) in place of the
    /// configuration's, checked.
    fn offline_config(&self, counts: [Option<usize>; 3]) -> PyResult<OfflineConfig> {
        let mut engine = self.settings.engine.clone();
        let o = &mut engine.offline;
        for (given, field) in counts.into_iter().zip([
            &mut o.num_speakers,
            &mut o.min_speakers,
            &mut o.max_speakers,
        ]) {
            *field = given.unwrap_or(*field);
        }
        engine.validate().map_err(errors::engine)?;
        Ok(engine.offline)
    }

    /// Runs `f` with a set of offline models not in use by another call.
    fn with_models<T>(
        &self,
        f: impl FnOnce(&mut Models) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let lock = || self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let free = lock().pop();
        let mut models = match free {
            Some(m) => m,
            None => Models::load(&self.settings.engine)?,
        };
        let out = f(&mut models);
        lock().push(models);
        out
    }

    /// The streaming engine, started on first use.
    fn engine(&self) -> Result<Arc<Engine>, EngineError> {
        let mut slot = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = &*slot {
            return Ok(e.clone());
        }
        let engine = Arc::new(Engine::start(&self.settings.engine)?);
        *slot = Some(engine.clone());
        Ok(engine)
    }
}

/// The outcome of diarizing one recording.
#[pyclass(module = "diarist._native", frozen)]
pub struct Diarization {
    inner: offline::Diarization,
    /// The RTTM file id the command line would give it: the file's name without its extension,
    /// `audio` for samples.
    file_id: String,
}

/// Turns as `(start, end, speaker)`, seconds and labels.
fn turn_tuples(turns: &[SpeakerTurn]) -> Vec<(f64, f64, String)> {
    let secs = |s: usize| s as f64 / f64::from(SAMPLE_RATE);
    turns
        .iter()
        .map(|t| (secs(t.start), secs(t.end), speaker_label(t.speaker)))
        .collect()
}

#[pymethods]
impl Diarization {
    /// Overlap-aware turns, `(start, end, speaker)` in seconds.
    fn turns(&self) -> Vec<(f64, f64, String)> {
        turn_tuples(&self.inner.turns)
    }

    /// Turns with at most one speaker at a time, `(start, end, speaker)` in seconds.
    fn exclusive_turns(&self) -> Vec<(f64, f64, String)> {
        turn_tuples(&self.inner.exclusive_turns)
    }

    /// The speakers' labels, in order.
    fn speakers(&self) -> Vec<String> {
        (0..self.inner.speakers).map(speaker_label).collect()
    }

    /// Seconds of audio diarized.
    fn duration(&self) -> f64 {
        self.inner.samples as f64 / f64::from(SAMPLE_RATE)
    }

    /// The default RTTM file id.
    fn file_id(&self) -> String {
        self.file_id.clone()
    }

    /// RTTM text under `file_id`, as `diarist diarize --format rttm` writes it.
    fn rttm(&self, file_id: &str) -> String {
        render(file_id, &self.inner, OutputFormat::Rttm)
    }

    /// JSON text under `file_id`, as `diarist diarize --format json` writes it.
    fn json(&self, file_id: &str) -> String {
        render(file_id, &self.inner, OutputFormat::Json)
    }
}
