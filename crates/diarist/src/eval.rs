//! `diarist eval`: DER of hypothesis RTTM against reference RTTM, per file and pooled.

use std::path::PathBuf;
use std::process::ExitCode;

use diarist_core::der;
use diarist_engine::inputs::{read_rttm_tree, read_uem_tree};

/// Arguments of `diarist eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Reference RTTM file, or a directory of *.rttm files.
    #[arg(long = "ref")]
    pub reference: PathBuf,
    /// Hypothesis RTTM file, or a directory of *.rttm files.
    #[arg(long = "hyp")]
    pub hypothesis: PathBuf,
    /// UEM file, or a directory of *.uem files: the scored regions (default: the extent of both).
    #[arg(long)]
    pub uem: Option<PathBuf>,
    /// Total collar in seconds removed around each reference boundary (half on each side).
    #[arg(long, default_value_t = 0.0)]
    pub collar: f64,
    /// Print a JSON report instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `diarist eval`.
pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.collar.is_finite() && args.collar >= 0.0,
        "--collar must be a non-negative number of seconds"
    );
    let refs = read_rttm_tree(&args.reference)?;
    let none = format!("no reference turns in {}", args.reference.display());
    anyhow::ensure!(!refs.is_empty(), none);
    let hyps = read_rttm_tree(&args.hypothesis)?;
    let uems = args.uem.as_deref().map(read_uem_tree).transpose()?;
    let report = der::score_all(&refs, &hyps, uems.as_ref(), args.collar);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.table());
    }
    Ok(ExitCode::SUCCESS)
}
