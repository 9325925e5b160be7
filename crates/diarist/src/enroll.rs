//! `diarist enroll`: a voiceprint from sample audio of one speaker, for `--known`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::settings::{self, CommonArgs, OfflineArgs};
use anyhow::Context;
use diarist_engine::Voiceprint;
use diarist_engine::enroll::enroll_file;
use diarist_engine::offline::Models;
use diarist_engine::output::emit;

/// Arguments of `diarist enroll`.
#[derive(clap::Args)]
pub struct EnrollArgs {
    /// Sample audio of the speaker (any supported format; if other voices are heard too, the
    /// speaker with the most speech is enrolled).
    pub file: PathBuf,
    /// Name reported when this speaker is recognised.
    #[arg(long)]
    pub name: String,
    /// Write the voiceprint here (JSON) instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `diarist enroll`.
pub fn run(args: &EnrollArgs) -> anyhow::Result<ExitCode> {
    if args.name.trim().is_empty() {
        anyhow::bail!("--name must not be empty");
    }
    let config = settings::load(&args.common, &OfflineArgs::default())?;
    let mut models = Models::load(&config.engine)?;
    let e = enroll_file(&mut models, &config.engine, &args.file)
        .with_context(|| format!("enrolling from {}", args.file.display()))?;
    eprintln!("diarist: {}", e.describe(&args.name));
    if let Some(w) = e.warning() {
        eprintln!("diarist: warning: {w}");
    }
    let print = Voiceprint {
        name: args.name.clone(),
        embedding: e.voiceprint,
    };
    let out = args.output.as_deref();
    emit(out, &print.to_json_line()).context("writing the voiceprint")?;
    Ok(ExitCode::SUCCESS)
}
