//! The process-wide ONNX Runtime environment, loaded from a shared library path at run time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use crate::ModelError;

static ENVIRONMENT: OnceLock<(Environment, PathBuf)> = OnceLock::new();

/// Threading of one inference session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Threads inside one operator (1 = run on the caller's thread only).
    pub intra_threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self { intra_threads: 1 }
    }
}

/// A handle on the loaded ONNX Runtime; sessions are created through it.
#[derive(Debug, Clone, Copy)]
pub struct Runtime {
    env: &'static Environment,
}

impl Runtime {
    /// Loads the ONNX Runtime shared library at `library` once per process. Later calls return
    /// the same runtime (and fail if they name a different library).
    pub fn load(library: &Path) -> Result<Self, ModelError> {
        if let Some((env, path)) = ENVIRONMENT.get() {
            return if same_file(path, library) {
                Ok(Self { env })
            } else {
                Err(ModelError::Runtime {
                    path: library.to_path_buf(),
                    reason: format!("ONNX Runtime is already loaded from {}", path.display()),
                })
            };
        }
        let fail = |reason: String| ModelError::Runtime {
            path: library.to_path_buf(),
            reason,
        };
        if !library.is_file() {
            return Err(fail("no such file".into()));
        }
        let builder = ort::init_from(library).map_err(|e| fail(e.to_string()))?;
        let env = builder.with_name("diarist").with_telemetry(false).build()?;
        let (env, _) = ENVIRONMENT.get_or_init(|| (env, library.to_path_buf()));
        Ok(Self { env })
    }

    /// Builds a CPU session from an in-memory ONNX model.
    pub(crate) fn session(
        &self,
        model: &[u8],
        opts: SessionOptions,
    ) -> Result<Session, ModelError> {
        let session = Session::builder(self.env)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(ort::Error::from)?
            .with_intra_threads(opts.intra_threads.max(1))
            .map_err(ort::Error::from)?
            .with_inter_threads(1)
            .map_err(ort::Error::from)?
            .with_intra_op_spinning(opts.intra_threads > 1)
            .map_err(ort::Error::from)?
            .commit_from_memory(model)?;
        Ok(session)
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
