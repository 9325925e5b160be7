//! `diarist._native`, the compiled half of the `diarist` Python package (PyO3): a pipeline that
//! diarizes files and arrays and opens live streams, and a PII redactor, on the engine, audio and
//! PII crates, composed by `diarist-config` as the binary composes them.
//!
//! The pure-Python package around it (`python/diarist/`) is the public API: it checks arrays,
//! finds the models and ONNX Runtime bundled in the wheel and passes their paths here, and wraps
//! results in small Python classes. Every model run releases the GIL. Not for: engine logic.

mod errors;
mod pipeline;
mod redactor;
mod samples;
mod stream;

use pyo3::prelude::*;

/// The compiled module: its classes and the package version.
#[pymodule(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<pipeline::Pipeline>()?;
    m.add_class::<pipeline::Diarization>()?;
    m.add_class::<stream::Stream>()?;
    m.add_class::<redactor::Redactor>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
