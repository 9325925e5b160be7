//! The process-wide ONNX Runtime environment, loaded from a shared library path at run time.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use crate::ModelError;

static ENVIRONMENT: OnceLock<(Environment, PathBuf)> = OnceLock::new();

/// Where model runs happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// The CUDA provider on GPU `device` (needs the `cuda` cargo feature and a CUDA build of ONNX
    /// Runtime); when it cannot be registered, sessions run on the CPU and a log line says so.
    Cuda,
}

/// Threading and placement of one inference session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// Threads inside one operator (1 = run on the caller's thread only).
    pub intra_threads: usize,
    /// Execution provider asked for.
    pub provider: Provider,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            intra_threads: 1,
            provider: Provider::Cpu,
        }
    }
}

/// Says once per process which provider runs the models.
fn announce(line: String) {
    static SAID: OnceLock<()> = OnceLock::new();
    SAID.get_or_init(|| eprintln!("diarist: {line}"));
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

    /// Builds a session from an in-memory ONNX model on the provider `opts` asks for, falling
    /// back to the CPU (with a log line) when that provider cannot run here.
    pub fn session(&self, model: &[u8], opts: SessionOptions) -> Result<Session, ModelError> {
        let builder = Session::builder(self.env)?;
        let builder = match opts.provider {
            Provider::Cpu => builder,
            Provider::Cuda => with_cuda(builder)?,
        };
        // Extended, not all, optimisations: the shipped graphs come pre-optimised and gain
        // nothing from the layout transforms, which would also make CAM++'s per-window time
        // mean depend on the other windows in a batch again (tools/onnx_edits.py).
        let session = builder
            .with_optimization_level(GraphOptimizationLevel::Level2)
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

#[cfg(feature = "cuda")]
fn with_cuda(
    builder: ort::session::builder::SessionBuilder,
) -> Result<ort::session::builder::SessionBuilder, ModelError> {
    let cuda = ort::ep::CUDA::default().build().error_on_failure();
    match builder.with_execution_providers([cuda]) {
        Ok(b) => {
            announce("models run on the CUDA execution provider".into());
            Ok(b)
        }
        Err(e) => {
            announce(format!(
                "the CUDA execution provider is not available ({e}); models run on the CPU"
            ));
            Ok(e.recover())
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(
    builder: ort::session::builder::SessionBuilder,
) -> Result<ort::session::builder::SessionBuilder, ModelError> {
    announce(
        "provider \"cuda\" was asked for, but this build lacks the `cuda` feature; models run on the CPU"
            .into(),
    );
    Ok(builder)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
