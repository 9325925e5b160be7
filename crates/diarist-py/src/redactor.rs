//! Personal data in text: the PII tagger a configuration names, and its redaction policy.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use diarist_pii::{PiiConfig, Tagger, redact};
use pyo3::prelude::*;

use crate::errors;
use crate::pipeline::load_settings;

/// An entity as Python receives it: `(start, end, label, score)`, offsets in characters.
type Found = (usize, usize, &'static str, f32);

/// A PII tagger and the `[pii]` policy that says what to hide.
#[pyclass(module = "diarist._native", frozen)]
pub struct Redactor {
    tagger: Mutex<Tagger>,
    policy: PiiConfig,
}

#[pymethods]
impl Redactor {
    /// Loads the tagger of the settings (as `Pipeline` loads them).
    #[new]
    fn new(
        py: Python<'_>,
        config: Option<PathBuf>,
        models_dir: PathBuf,
        onnxruntime_dir: PathBuf,
    ) -> PyResult<Self> {
        let settings = load_settings(config.as_deref(), &models_dir, &onnxruntime_dir)?;
        let tagger = py
            .detach(|| settings.load_tagger())
            .map_err(errors::config)?;
        Ok(Self {
            tagger: Mutex::new(tagger),
            policy: settings.pii,
        })
    }

    /// `text` with what the policy hides replaced, and every entity found.
    fn redact(&self, py: Python<'_>, text: &str) -> PyResult<(String, Vec<Found>)> {
        let entities = py
            .detach(|| {
                let mut tagger = self.tagger.lock().unwrap_or_else(PoisonError::into_inner);
                tagger.tag(text)
            })
            .map_err(errors::pii)?;
        let found = entities
            .iter()
            .map(|e| (e.start, e.end, e.label.name(), e.score))
            .collect();
        Ok((redact(text, &entities, &self.policy), found))
    }
}
