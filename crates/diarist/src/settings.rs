//! The configuration a command runs with: `diarist-config` composes it (compiled-in defaults,
//! the files found, the install's models and ONNX Runtime), and the flags here override it.

use std::path::PathBuf;
use std::process::ExitCode;

use diarist_config::{Effective, Install, Settings};
use diarist_engine::Clustering;

/// Options every model-running command shares.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Configuration file merged last over the others found (`diarist config` lists them).
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
    /// Clustering: "ahc" (average linkage) or "vbx" (variational Bayes from an over-split start).
    #[arg(long)]
    pub clustering: Option<Clustering>,
}

/// Loads the configuration the arguments point at and applies the overrides.
pub fn load(common: &CommonArgs, offline: &OfflineArgs) -> anyhow::Result<Settings> {
    Ok(load_effective(common, offline)?.settings)
}

/// Loads the configuration the arguments point at, applies the overrides, says where its parts
/// came from, and warns of a models or ONNX Runtime directory that is missing.
pub fn load_effective(common: &CommonArgs, offline: &OfflineArgs) -> anyhow::Result<Effective> {
    let mut e = diarist_config::load(common.config.as_deref())?;
    for w in e.warnings() {
        eprintln!("diarist: warning: {w}");
    }
    apply_overrides(&mut e.settings, common, offline);
    e.settings.validate()?;
    Ok(e)
}

/// Applies the command-line overrides of the offline settings and the models.
fn apply_overrides(settings: &mut Settings, common: &CommonArgs, offline: &OfflineArgs) {
    let config = &mut settings.engine;
    if let Some(m) = &common.segmentation_model {
        // Another model's variants are its own: start from its main file.
        config.models.segmentation = m.clone();
        config.models.segmentation_variant = "fp32".into();
    }
    if let Some(v) = &common.variant {
        config.models.segmentation_variant = v.clone();
    }
    let o = &mut config.offline;
    o.num_speakers = offline.num_speakers.unwrap_or(o.num_speakers);
    o.min_speakers = offline.min_speakers.unwrap_or(o.min_speakers);
    o.max_speakers = offline.max_speakers.unwrap_or(o.max_speakers);
    o.window_secs = offline.window.unwrap_or(o.window_secs);
    o.step_secs = offline.step.unwrap_or(o.step_secs);
    o.cluster_threshold = offline.threshold.unwrap_or(o.cluster_threshold);
    o.clustering = offline.clustering.unwrap_or(o.clustering);
}

/// The overriding flags given on the command line (all but `--config` and `--server`).
fn flags_given() -> Vec<String> {
    let name = |a: &str| a.split('=').next().unwrap_or_default().to_owned();
    (std::env::args()
        .skip(1)
        .filter(|a| a.starts_with("--"))
        .map(|a| name(&a)))
    .filter(|a| a != "--config" && a != "--server")
    .collect()
}

/// `diarist config`: the effective configuration as TOML, with where its parts came from as
/// comments at the top (`server`: the `diarist serve` configuration, `--config` naming its file).
pub fn print_config(
    common: &CommonArgs,
    offline: &OfflineArgs,
    server: bool,
) -> anyhow::Result<ExitCode> {
    let body = if server {
        let (config, sources) = diarist_config::load_server(common.config.as_deref())?;
        diarist_config::describe_server(&Install::current()?.exe, &config, &sources)
    } else {
        load_effective(common, offline)?.describe(&flags_given())
    };
    print!("{body}");
    Ok(ExitCode::SUCCESS)
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
pub fn load_streaming(common: &CommonArgs, args: &StreamingArgs) -> anyhow::Result<Settings> {
    let mut settings = load(common, &OfflineArgs::default())?;
    let s = &mut settings.engine.streaming;
    s.hop_secs = args.hop.unwrap_or(s.hop_secs);
    s.latency_secs = args.latency.unwrap_or(s.latency_secs);
    s.match_threshold = args.match_threshold.unwrap_or(s.match_threshold);
    s.max_speakers = args.max_speakers.unwrap_or(s.max_speakers);
    s.workers = args.workers.unwrap_or(s.workers);
    settings.validate()?;
    Ok(settings)
}
