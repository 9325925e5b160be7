//! `diarist`: who spoke when, from the command line.
//!
//! A thin layer over the library crates: argument parsing, file handling and printing.

mod bench;
mod diarize;
mod enroll;
mod eval;
mod redact;
mod serve;
mod settings;
mod stream;

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
    /// Diarize audio files or directories of audio files; writes RTTM or JSON.
    Diarize(diarize::DiarizeArgs),
    /// Replay recordings as live streams: speaker turns as they become final.
    Stream(stream::StreamArgs),
    /// Compute a speaker's voiceprint from sample audio, for `--known`.
    Enroll(enroll::EnrollArgs),
    /// Diarize a microphone live; Ctrl-C flushes the final turns.
    Mic(stream::MicArgs),
    /// Serve live diarization over WebSockets (protocol v1, docs/PROTOCOL.md).
    Serve(serve::ServeArgs),
    /// Stream a recording to a diarist server; its messages as JSON lines.
    Client(serve::ClientArgs),
    /// Find and hide personal data (names, numbers, places) in transcript text.
    Redact(redact::RedactArgs),
    /// Score hypothesis RTTM against reference RTTM (diarization error rate).
    Eval(eval::EvalArgs),
    /// Measure model load time, per-window latency and offline speed.
    Bench(bench::BenchArgs),
    /// Print the effective configuration, and the files, models and library it came from.
    Config(ConfigArgs),
}

/// Arguments of `diarist config`.
#[derive(clap::Args)]
struct ConfigArgs {
    /// Print the `diarist serve` configuration instead (`--config` then names its file).
    #[arg(long)]
    server: bool,
    #[command(flatten)]
    offline: settings::OfflineArgs,
    #[command(flatten)]
    common: settings::CommonArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Diarize(args) => diarize::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Stream(args) => stream::run(args),
        Command::Mic(args) => stream::mic(args),
        Command::Enroll(args) => enroll::run(args),
        Command::Serve(args) => serve::serve(args),
        Command::Client(args) => serve::client(args),
        Command::Redact(args) => redact::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Config(args) => settings::print_config(&args.common, &args.offline, args.server),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("diarist: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
