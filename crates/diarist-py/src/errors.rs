//! The Rust errors as the Python exceptions of `diarist.errors`, each carrying the Rust error's
//! message: `ConfigError` (a configuration or setting), `InputError` (the audio or text given;
//! also a `ValueError`), `ModelError` (a model or ONNX Runtime), and their base `DiaristError`
//! for the rest.

use diarist_engine::EngineError;
use diarist_pii::PiiError;
use pyo3::PyErr;

pyo3::import_exception!(diarist.errors, DiaristError);
pyo3::import_exception!(diarist.errors, ConfigError);
pyo3::import_exception!(diarist.errors, InputError);
pyo3::import_exception!(diarist.errors, ModelError);

/// An engine error as the exception of its kind.
pub(crate) fn engine(e: EngineError) -> PyErr {
    let message = e.to_string();
    match e {
        EngineError::Config(_) => ConfigError::new_err(message),
        EngineError::Audio(_) | EngineError::NoSpeech(_) => InputError::new_err(message),
        EngineError::Model(_) | EngineError::ModelsUnavailable(_) => ModelError::new_err(message),
        EngineError::Inference(_) | EngineError::Cancelled | EngineError::Thread(_) => {
            DiaristError::new_err(message)
        }
    }
}

/// A PII tagger error as the exception of its kind.
pub(crate) fn pii(e: PiiError) -> PyErr {
    pii_kind(&e, e.to_string())
}

/// `message` as the exception of the kind of PII error `e`.
fn pii_kind(e: &PiiError, message: String) -> PyErr {
    match e {
        PiiError::Model(_) | PiiError::Ort(_) | PiiError::Manifest { .. } => {
            ModelError::new_err(message)
        }
        PiiError::Tokenizer(_) | PiiError::TooLong { .. } => InputError::new_err(message),
        PiiError::Config(_) => ConfigError::new_err(message),
    }
}

/// A configuration error: a tagger that did not load as its PII error's kind, every other one
/// a `ConfigError`.
pub(crate) fn config(e: diarist_config::ConfigError) -> PyErr {
    match &e {
        diarist_config::ConfigError::Tagger { source, .. } => pii_kind(source, e.to_string()),
        _ => ConfigError::new_err(e.to_string()),
    }
}
