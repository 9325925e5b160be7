//! `diarist eval`: DER scoring of RTTM files.

use std::process::ExitCode;

/// Arguments of `diarist eval`.
#[derive(clap::Args)]
pub struct EvalArgs {}

/// Runs `diarist eval`.
pub fn run(_args: &EvalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not yet built")
}
