//! `diarist diarize`: offline diarization of files and directories, in parallel; with
//! `--transcript`, a recogniser's transcript of one recording attributed segment by segment to the
//! diarized speakers, with personal data redacted.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use diarist_config::Settings;
use diarist_core::rttm::{file_id, to_rttm_turns};
use diarist_core::transcript::Segment;
use diarist_engine::batch::{self, Outcome};
use diarist_engine::inputs::{Shard, collect_batch};
use diarist_engine::output::{Destination, OutputFormat, summary_json};
use diarist_pii::transcript::{TranscriptFormat, attribute_redacted, read_transcript};
use indicatif::{ProgressBar, ProgressStyle};

use crate::settings::{self, CommonArgs, OfflineArgs};

/// Output format of `diarist diarize`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// NIST RTTM, one SPEAKER line per turn.
    Rttm,
    /// JSON with overlap-aware and exclusive turns.
    Json,
    /// A readable timeline: one line per turn (per transcript segment with --transcript).
    Text,
    /// SubRip subtitles of the transcript, speaker first (with --transcript).
    Srt,
    /// WebVTT subtitles of the transcript, speakers as voice tags (with --transcript).
    Vtt,
}

/// Arguments of `diarist diarize`.
#[derive(clap::Args)]
pub struct DiarizeArgs {
    /// Audio files, or directories searched recursively for audio files.
    #[arg(required_unless_present = "manifest")]
    pub inputs: Vec<PathBuf>,
    /// A file listing inputs, one per line (files or directories; relative to the list's
    /// directory; blank lines and `#` comments skipped), in addition to any given here.
    #[arg(long, value_name = "LIST")]
    pub manifest: Option<PathBuf>,
    /// Diarize only shard K of N (K from 0) of the inputs: a stable split in which every input
    /// is in exactly one shard, for fanning a batch out over a scheduler's jobs (every job
    /// given the same inputs and its own K).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Directory for one output file per input; standard output when absent.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "rttm")]
    pub format: Format,
    /// Skip inputs whose output file already exists (resume an interrupted batch).
    #[arg(long)]
    pub skip_existing: bool,
    /// Worker threads, each with its own models; a long recording is spread over all of them
    /// (default: the configuration's workers, 0 = one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// A recogniser's transcript of the one input (.stm, .srt, .vtt or .json): each segment is
    /// attributed to the speaker who talks most during it and its personal data is redacted;
    /// written as json, srt, vtt or text.
    #[arg(long)]
    pub transcript: Option<PathBuf>,
    /// With --transcript: leave personal data in the text.
    #[arg(long, requires = "transcript")]
    pub keep_pii: bool,
    #[command(flatten)]
    pub pii: crate::redact::PiiArgs,
    #[command(flatten)]
    pub offline: OfflineArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Says that the directory `dir` is not walked again (it resolves to one already walked).
pub fn revisit(dir: &Path, canonical: &Path) {
    let (dir, canonical) = (dir.display(), canonical.display());
    eprintln!("diarist: not walking {dir} again (it is {canonical}, already walked)");
}

/// The inputs of this run: those named and listed in the manifest, of the shard asked for.
fn select_inputs(args: &DiarizeArgs) -> anyhow::Result<Vec<PathBuf>> {
    let (files, all) = collect_batch(&args.inputs, args.manifest.as_deref(), args.shard, revisit)?;
    if let Some(s) = args.shard {
        eprintln!("diarist: shard {s}: {} of {all} inputs", files.len());
    }
    Ok(files)
}

/// Runs `diarist diarize`.
pub fn run(args: &DiarizeArgs) -> anyhow::Result<ExitCode> {
    let mut config = settings::load(&args.common, &args.offline)?;
    if let Some(w) = args.workers {
        config.engine.offline.workers = w;
    }
    args.pii.apply(&mut config);
    let files = select_inputs(args)?;
    if let Some(dir) = &args.output {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let dest = Destination {
        dir: args.output.clone(),
        ext: match args.format {
            Format::Rttm => "rttm",
            Format::Json => "json",
            Format::Text => "txt",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
        },
    };
    if let Some(path) = &args.transcript {
        let [file] = files.as_slice() else {
            anyhow::bail!(
                "--transcript goes with exactly one audio file, not {}",
                files.len()
            );
        };
        let segments = read_transcript(path)?;
        let text = attribute(&config, file, segments, args.format, args.keep_pii)?;
        dest.write(file, &text).map_err(anyhow::Error::msg)?;
        return Ok(ExitCode::SUCCESS);
    }
    let format = match args.format {
        Format::Rttm => OutputFormat::Rttm,
        Format::Json => OutputFormat::Json,
        Format::Text => OutputFormat::Text,
        Format::Srt | Format::Vtt => {
            anyhow::bail!("srt and vtt output is for a transcript: add --transcript FILE")
        }
    };
    let bar = progress_bar(files.len());
    let report = batch::write_all(
        &config.engine,
        &files,
        &dest,
        format,
        args.skip_existing,
        |f, outcome| {
            if let Outcome::Failed(why) = outcome {
                bar.suspend(|| eprintln!("diarist: skipped {}: {why}", f.display()));
            }
            bar.set_message(file_id(f));
            bar.inc(1);
        },
    );
    bar.finish_and_clear();
    for line in report.lines() {
        eprintln!("diarist: {line}");
    }
    Ok(ExitCode::from(u8::from(!report.failures.is_empty())))
}

/// A progress bar over `len` files on a terminal, else a hidden one.
fn progress_bar(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Diarizes `file`, attributes and (unless `keep_pii`) redacts `segments`, renders in `format`.
fn attribute(
    config: &Settings,
    file: &Path,
    segments: Vec<Segment>,
    format: Format,
    keep_pii: bool,
) -> anyhow::Result<String> {
    let format = match format {
        Format::Json => TranscriptFormat::Json,
        Format::Srt => TranscriptFormat::Srt,
        Format::Vtt => TranscriptFormat::Vtt,
        Format::Text => TranscriptFormat::Text,
        Format::Rttm => {
            bail!("an attributed transcript is written as json, srt, vtt or text, not rttm")
        }
    };
    let d = diarist_engine::batch::diarize_one(&config.engine, file)
        .with_context(|| format!("diarizing {}", file.display()))?;
    let mut tagger = (!keep_pii).then(|| config.load_tagger()).transpose()?;
    let (turns, fields) = (to_rttm_turns(&d.turns), summary_json(&file_id(file), &d));
    let policy = &config.pii;
    Ok(attribute_redacted(
        tagger.as_mut(),
        policy,
        &turns,
        segments,
        format,
        fields,
    )?)
}
