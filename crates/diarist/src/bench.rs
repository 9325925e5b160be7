//! `diarist bench`: the arguments of the benchmarks and load tests in `diarist-bench`, and which
//! one runs.

use std::path::PathBuf;
use std::process::ExitCode;

use diarist_bench::Reference;

use crate::diarize::revisit;
use crate::settings::{self, CommonArgs, OfflineArgs};

/// Arguments of `diarist bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Audio files or directories [default: the AMI excerpts in ../shared/eval/ami or audio-fixtures].
    pub inputs: Vec<PathBuf>,
    /// Directory (or file) of reference RTTM: scores DER (collar 0, overlap scored, pooled).
    #[arg(long = "ref")]
    pub reference: Option<PathBuf>,
    /// Concurrent real-time streams to try, e.g. `10,20,30`: runs the streaming load test instead
    /// of the model and offline benchmarks (with --ref, also streaming DER beside offline DER).
    #[arg(long, value_delimiter = ',')]
    pub streams: Vec<usize>,
    /// Concurrent real-time WebSocket clients to try, e.g. `20,35,50`: runs the service load
    /// test (an in-process server on 127.0.0.1) instead of the model benchmarks.
    #[arg(long, value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// With --clients: the hop every client asks for in its `start` (seconds).
    #[arg(long)]
    pub client_hop: Option<f64>,
    /// Seconds of audio per stream in the streaming load test.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// A JSON-lines file of reference sentences (`{"text", "entities"}`): benchmarks the PII
    /// tagger (latency, throughput, span scores) instead of the audio models.
    #[arg(long)]
    pub pii: Option<PathBuf>,
    #[command(flatten)]
    pub pii_model: crate::redact::PiiArgs,
    /// Windows timed per model and window length (utterances per length with --pii).
    #[arg(long, default_value_t = 50)]
    pub windows: usize,
    #[command(flatten)]
    pub offline: OfflineArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `diarist bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let mut config = settings::load(&args.common, &args.offline)?;
    if let Some(path) = &args.pii {
        args.pii_model.apply(&mut config);
        diarist_bench::pii::run(&config, path, args.windows.max(100))?;
        return Ok(ExitCode::SUCCESS);
    }
    let inputs = if args.inputs.is_empty() {
        vec![PathBuf::from("../shared/eval/ami")]
    } else {
        args.inputs.clone()
    };
    let files = diarist_engine::inputs::collect_inputs(&inputs, revisit)?;
    anyhow::ensure!(!files.is_empty(), "no audio files to benchmark");
    if !args.clients.is_empty() {
        let (server, _) = diarist_config::load_server(None)?;
        diarist_bench::clients::run(
            &config.engine,
            server,
            &files,
            &args.clients,
            args.duration,
            args.client_hop,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let reference = args.reference.as_deref().map(Reference::read).transpose()?;
    let workers = diarist_engine::batch::workers(&config.engine);
    if args.streams.is_empty() {
        diarist_bench::models::run(
            &config.engine,
            &files,
            args.windows,
            workers,
            reference.as_ref(),
        )?;
    } else {
        diarist_bench::streams::run(
            &config.engine,
            &files,
            &args.streams,
            args.duration,
            reference.as_ref(),
            workers,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
