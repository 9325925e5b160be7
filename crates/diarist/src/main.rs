//! `diarist`: who spoke when, from the command line.
//!
//! A thin layer over the library crates: argument parsing, file handling and printing.

mod eval;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Who spoke when: speaker diarization of recordings.
#[derive(Parser)]
#[command(name = "diarist", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score hypothesis RTTM against reference RTTM (diarization error rate).
    Eval(eval::EvalArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Eval(args) => eval::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("diarist: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
