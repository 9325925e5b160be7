//! `diarist diarize`: offline diarization of files and directories, in parallel.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use diarist_audio::{AudioStream, Shortfall};
use diarist_core::reconstruct::SpeakerTurn;
use diarist_core::rttm::{self, file_id, speaker_label};
use diarist_engine::batch::diarize_files;
use diarist_engine::offline::{Diarization, SAMPLE_RATE};
use indicatif::{ProgressBar, ProgressStyle};
use walkdir::WalkDir;

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
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory for one output file per input; standard output when absent.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "rttm")]
    pub format: Format,
    /// Skip inputs whose output file already exists (resume an interrupted batch).
    #[arg(long)]
    pub skip_existing: bool,
    /// Files diarized in parallel (default: the configuration's workers, 0 = one per core).
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

/// File extensions picked up when walking a directory.
const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "flac", "mp3", "ogg", "oga", "m4a", "mp4", "aac", "wave",
];

/// Lists the input files: named files as they are, directories walked for audio files (sorted
/// by name). Symbolic links are followed, but never into a directory already walked, so a link
/// loop ends; a file reached twice (named twice, or through a link) is listed once; fifos,
/// sockets and devices met in a directory are skipped. Two inputs with the same file id (its name
/// without the extension: `a/x.wav` and `b/x.wav`, `x.wav` and `x.flac`) are refused, before any
/// work, because they would write the same output file and the same RTTM file id.
pub fn collect_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut walk = Walk::default();
    for input in inputs {
        if input.is_dir() {
            walk.dir(input)
                .with_context(|| format!("reading directory {}", input.display()))?;
        } else {
            walk.file(input.clone());
        }
    }
    refuse_shared_ids(&walk.files)?;
    Ok(walk.files)
}

/// The state of a walk over the inputs: the files found, and what was already seen (by canonical
/// path) of files and directories.
#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    seen_files: HashSet<PathBuf>,
    seen_dirs: HashSet<PathBuf>,
}

impl Walk {
    /// Lists `path` unless the same file was listed already; a path that does not resolve (a
    /// missing file, a dangling link) is listed as it is and reported when it is opened.
    fn file(&mut self, path: PathBuf) {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if self.seen_files.insert(key) {
            self.files.push(path);
        }
    }

    /// Walks `dir` (following links) for audio files, sorted by name within each directory.
    fn dir(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut entries = WalkDir::new(dir)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = entries.next() {
            match entry {
                Ok(e) if e.file_type().is_dir() => {
                    if !self.enter(e.path())? {
                        entries.skip_current_dir();
                    }
                }
                // fifos, sockets and devices
                Ok(e) if !e.file_type().is_file() => {}
                Ok(e) if is_audio(e.path()) => self.file(e.into_path()),
                Ok(_) => {}
                // A link back to a directory being walked: walkdir reports it, this says so.
                Err(e) if e.loop_ancestor().is_some() => {
                    if let Some(path) = e.path() {
                        self.enter(path)?;
                    }
                }
                Err(e) => self.unreadable(e)?,
            }
        }
        Ok(())
    }

    /// Whether to walk the directory `dir`: not when it was walked already (through another
    /// link or input), which is noted.
    fn enter(&mut self, dir: &Path) -> std::io::Result<bool> {
        let canonical = std::fs::canonicalize(dir)?;
        if self.seen_dirs.insert(canonical.clone()) {
            return Ok(true);
        }
        eprintln!(
            "diarist: not walking {} again (it is {}, already walked)",
            dir.display(),
            canonical.display()
        );
        Ok(false)
    }

    /// An entry of a walked directory that could not be read: a directory that cannot be listed
    /// fails the walk; anything else (a dangling link) is listed if it is named as audio, and
    /// reported when it is opened.
    fn unreadable(&mut self, e: walkdir::Error) -> std::io::Result<()> {
        match e.path() {
            Some(path) if !path.is_dir() => {
                if is_audio(path) {
                    self.file(path.to_path_buf());
                }
                Ok(())
            }
            _ => Err(e.into_io_error().unwrap_or_else(|| {
                std::io::Error::other("a directory walk failed with no reason given")
            })),
        }
    }
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Fails, naming every clash, if two files share a file id.
fn refuse_shared_ids(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut by_id: BTreeMap<String, Vec<&Path>> = BTreeMap::new();
    for f in files {
        by_id.entry(file_id(f)).or_default().push(f);
    }
    let clashes: Vec<String> = by_id
        .iter()
        .filter(|(_, paths)| paths.len() > 1)
        .map(|(id, paths)| {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            format!("`{id}`: {}", names.join(", "))
        })
        .collect();
    anyhow::ensure!(
        clashes.is_empty(),
        "inputs share a file id, so they would write the same output file: {}; rename them or \
         diarize them in separate runs with separate output directories",
        clashes.join("; ")
    );
    Ok(())
}

/// Renders one recording's result in `format`.
pub fn render(id: &str, d: &Diarization, format: Format) -> String {
    match format {
        Format::Rttm => rttm::write(id, &rttm::to_rttm_turns(&d.turns)),
        Format::Json => {
            let secs = |s: usize| (s as f64 / SAMPLE_RATE as f64 * 1000.0).round() / 1000.0;
            let turns = |ts: &[SpeakerTurn]| {
                ts.iter()
                    .map(|t| serde_json::json!({"start": secs(t.start), "end": secs(t.end), "speaker": speaker_label(t.speaker)}))
                    .collect::<Vec<_>>()
            };
            let value = serde_json::json!({
                "file_id": id,
                "duration": secs(d.samples),
                "speakers": (0..d.speakers).map(speaker_label).collect::<Vec<_>>(),
                "turns": turns(&d.turns),
                "exclusive_turns": turns(&d.exclusive_turns),
            });
            let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Text | Format::Srt | Format::Vtt => {
            let clock = |samples: usize| {
                let centis = (samples as u64 * 100).div_ceil(SAMPLE_RATE as u64);
                format!(
                    "{:02}:{:02}.{:02}",
                    centis / 6000,
                    centis / 100 % 60,
                    centis % 100
                )
            };
            let mut s = format!("{id}: {} speakers in {}\n", d.speakers, clock(d.samples));
            for t in &d.turns {
                s.push_str(&format!(
                    "  {} - {}  {}\n",
                    clock(t.start),
                    clock(t.end),
                    speaker_label(t.speaker)
                ));
            }
            s
        }
    }
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, then a rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Runs `diarist diarize`.
pub fn run(args: &DiarizeArgs) -> anyhow::Result<ExitCode> {
    let mut config = settings::load(&args.common, &args.offline)?;
    if let Some(w) = args.workers {
        config.runtime.workers = w;
    }
    args.pii.apply(&mut config);
    let files = collect_inputs(&args.inputs)?;
    if let Some(dir) = &args.output {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let ext = match args.format {
        Format::Rttm => "rttm",
        Format::Json => "json",
        Format::Text => "txt",
        Format::Srt => "srt",
        Format::Vtt => "vtt",
    };
    if let Some(path) = &args.transcript {
        let [file] = files.as_slice() else {
            anyhow::bail!(
                "--transcript goes with exactly one audio file, not {}",
                files.len()
            );
        };
        let segments = crate::attribute::read_transcript(path)?;
        let text = crate::attribute::run(
            &config,
            file,
            &file_id(file),
            segments,
            args.format,
            args.keep_pii,
        )?;
        match args
            .output
            .as_ref()
            .map(|d| d.join(format!("{}.{ext}", file_id(file))))
        {
            Some(p) => {
                write_atomic(&p, &text).with_context(|| format!("writing {}", p.display()))?
            }
            None => std::io::stdout()
                .write_all(text.as_bytes())
                .context("writing to standard output")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::ensure!(
        !matches!(args.format, Format::Srt | Format::Vtt),
        "srt and vtt output is for a transcript: add --transcript FILE"
    );
    run_batch(args, &config, &files, ext)
}

/// Opens every input before any model loads, reading only its headers: a file the decoder
/// refuses (not audio, an absurd sample rate or channel count) is reported at once and added to
/// `failures`. Returns the files to diarize, and those among them whose header claims more audio
/// than the file holds (what they hold is diarized; the summary says they were cut short).
fn check_inputs(
    files: &[PathBuf],
    failures: &Mutex<Vec<(PathBuf, String)>>,
) -> (Vec<PathBuf>, Vec<(PathBuf, Shortfall)>) {
    let mut ok = Vec::with_capacity(files.len());
    let mut short = Vec::new();
    for f in files {
        match AudioStream::open(f) {
            Ok(stream) => {
                if let Some(shortfall) = stream.info().shortfall {
                    short.push((f.clone(), shortfall));
                }
                ok.push(f.clone());
            }
            Err(e) => {
                eprintln!("diarist: skipped {}: {e}", f.display());
                failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((f.clone(), e.to_string()));
            }
        }
    }
    (ok, short)
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

/// Diarizes `files` in parallel into the output directory or standard output, reporting every
/// failure; exits non-zero if any file failed.
fn run_batch(
    args: &DiarizeArgs,
    config: &diarist_engine::Config,
    files: &[PathBuf],
    ext: &str,
) -> anyhow::Result<ExitCode> {
    let out_path = |f: &Path| {
        args.output
            .as_ref()
            .map(|d| d.join(format!("{}.{ext}", file_id(f))))
    };
    let todo: Vec<PathBuf> = files
        .iter()
        .filter(|f| !(args.skip_existing && out_path(f).is_some_and(|p| p.exists())))
        .cloned()
        .collect();
    let skipped = files.len() - todo.len();
    let failures: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
    let (ready, short) = check_inputs(&todo, &failures);
    let workers = settings::workers(config, ready.len());

    let started = Instant::now();
    let bar = progress_bar(todo.len());
    bar.inc((todo.len() - ready.len()) as u64);
    let audio_samples = AtomicUsize::new(0);
    let stdout = Mutex::new(());
    // No models are loaded when nothing is left to diarize.
    if !ready.is_empty() {
        diarize_files(config, &ready, workers, |f, result| {
            let result = result.map_err(anyhow::Error::from).and_then(|d| {
                audio_samples.fetch_add(d.samples, Ordering::Relaxed);
                let text = render(&file_id(f), &d, args.format);
                match out_path(f) {
                    Some(p) => {
                        write_atomic(&p, &text).with_context(|| format!("writing {}", p.display()))
                    }
                    None => {
                        let _guard = stdout.lock().unwrap_or_else(|p| p.into_inner());
                        std::io::stdout()
                            .write_all(text.as_bytes())
                            .context("writing to standard output")
                    }
                }
            });
            if let Err(e) = result {
                bar.suspend(|| eprintln!("diarist: skipped {}: {e:#}", f.display()));
                failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((f.to_path_buf(), format!("{e:#}")));
            }
            bar.set_message(file_id(f));
            bar.inc(1);
        });
    }
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let audio_secs = audio_samples.load(Ordering::Relaxed) as f64 / SAMPLE_RATE as f64;
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "diarist: {} files ({} skipped as existing), {:.3} h of audio in {:.2} s wall, {:.1}x real time, {} workers, {} failed",
        todo.len(),
        skipped,
        audio_secs / 3600.0,
        wall,
        if wall > 0.0 { audio_secs / wall } else { 0.0 },
        workers,
        failures.len()
    );
    for (f, why) in &failures {
        eprintln!("diarist: failed: {}: {why}", f.display());
    }
    for (f, shortfall) in short
        .iter()
        .filter(|(f, _)| !failures.iter().any(|(g, _)| g == f))
    {
        eprintln!(
            "diarist: cut short: {}: {shortfall}; what it holds was diarized",
            f.display()
        );
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
