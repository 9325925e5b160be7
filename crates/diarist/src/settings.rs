//! Finding the configuration file and applying command-line overrides to it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use diarist_engine::Config;

/// Options every model-running command shares.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Configuration file [default: $DIARIST_CONFIG, else configs/diarist.toml of the install].
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Segmentation model variant ("fp32", "int8", ...), overriding the configuration.
    #[arg(long, global = true)]
    pub variant: Option<String>,
    /// Segmentation model directory (holding manifest.toml), overriding the configuration.
    #[arg(long, global = true)]
    pub segmentation_model: Option<PathBuf>,
}

/// Speaker-count and windowing overrides for offline diarization.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OfflineArgs {
    /// Exact number of speakers, when known.
    #[arg(long)]
    pub num_speakers: Option<usize>,
    /// Least number of speakers.
    #[arg(long)]
    pub min_speakers: Option<usize>,
    /// Most speakers.
    #[arg(long)]
    pub max_speakers: Option<usize>,
    /// Analysis window, seconds.
    #[arg(long)]
    pub window: Option<f64>,
    /// Step between windows, seconds.
    #[arg(long)]
    pub step: Option<f64>,
    /// Clustering threshold (cosine distance).
    #[arg(long)]
    pub threshold: Option<f32>,
}

/// The repository this binary was built from: the default home of configs/ and models/.
fn build_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Loads the configuration the arguments point at and applies the overrides.
pub fn load(common: &CommonArgs, offline: &OfflineArgs) -> anyhow::Result<Config> {
    let path = common
        .config
        .clone()
        .or_else(|| std::env::var_os("DIARIST_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| build_root().join("configs/diarist.toml"));
    let mut config = Config::load(&path).with_context(|| format!("loading {}", path.display()))?;
    if let Some(lib) = std::env::var_os("DIARIST_ORT_LIB") {
        config.runtime.onnxruntime = PathBuf::from(lib);
    }
    if let Some(m) = &common.segmentation_model {
        // Another model's variants are its own: start from its main file.
        config.models.segmentation = m.clone();
        config.models.segmentation_variant = "fp32".into();
    }
    if let Some(v) = &common.variant {
        config.models.segmentation_variant = v.clone();
    }
    let o = &mut config.offline;
    if let Some(v) = offline.num_speakers {
        o.num_speakers = v;
    }
    if let Some(v) = offline.min_speakers {
        o.min_speakers = v;
    }
    if let Some(v) = offline.max_speakers {
        o.max_speakers = v;
    }
    if let Some(v) = offline.window {
        o.window_secs = v;
    }
    if let Some(v) = offline.step {
        o.step_secs = v;
    }
    if let Some(v) = offline.threshold {
        o.cluster_threshold = v;
    }
    config.validate()?;
    Ok(config)
}

/// Worker threads for a batch of `jobs` items.
pub fn workers(config: &Config, jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if config.runtime.workers == 0 {
        cores
    } else {
        config.runtime.workers
    };
    wanted.clamp(1, jobs.max(1))
}

/// Overrides of the streaming settings.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StreamingArgs {
    /// Step between windows, seconds.
    #[arg(long)]
    pub hop: Option<f64>,
    /// Delay after which audio is final, seconds.
    #[arg(long)]
    pub latency: Option<f64>,
    /// Cosine distance under which a voice joins a known speaker.
    #[arg(long)]
    pub match_threshold: Option<f32>,
    /// Most speakers per stream.
    #[arg(long)]
    pub max_speakers: Option<usize>,
    /// Inference workers shared by all streams (0: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// Loads the configuration with streaming overrides applied.
pub fn load_streaming(common: &CommonArgs, args: &StreamingArgs) -> anyhow::Result<Config> {
    let mut config = load(common, &OfflineArgs::default())?;
    let s = &mut config.streaming;
    if let Some(v) = args.hop {
        s.hop_secs = v;
    }
    if let Some(v) = args.latency {
        s.latency_secs = v;
    }
    if let Some(v) = args.match_threshold {
        s.match_threshold = v;
    }
    if let Some(v) = args.max_speakers {
        s.max_speakers = v;
    }
    if let Some(v) = args.workers {
        s.workers = v;
    }
    config.validate()?;
    Ok(config)
}
