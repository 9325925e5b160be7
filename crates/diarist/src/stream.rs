//! `diarist stream` and `diarist mic`: recordings replayed as live streams, and a microphone,
//! through the streaming engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use diarist_audio::input_devices;
use diarist_core::rttm::file_id;
use diarist_engine::capture::Microphone;
use diarist_engine::source::{Pace, stream_file, stream_files};
use diarist_engine::view::{self, EventSink};
use diarist_engine::{Engine, StreamOptions, Voiceprint};

use crate::settings::{self, CommonArgs, StreamingArgs};

/// Arguments of `diarist stream`.
#[derive(clap::Args)]
pub struct StreamArgs {
    /// Recordings to replay; several run at once as concurrent streams (then `-o` is needed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Replay at real time, as a live source (audio the engine cannot keep up with is lost and
    /// reported); without it, replay as fast as the engine goes and never lose audio.
    #[arg(long)]
    pub realtime: bool,
    /// Replay speed with --realtime (2.0 = twice real time).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Directory for one RTTM per recording (several files).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Which window of every `backbone_every` runs the embedding backbone (every file uses
    /// the same, so that a file's result does not depend on which files run beside it).
    #[arg(long, default_value_t = 0)]
    pub backbone_phase: usize,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Output and speaker options shared by `diarist stream` and `diarist mic`.
#[derive(clap::Args)]
pub struct LiveArgs {
    /// Write the final turns as RTTM here (one stream).
    #[arg(long)]
    pub rttm: Option<PathBuf>,
    /// Print events as JSON lines even on a terminal.
    #[arg(long)]
    pub json: bool,
    /// Print per-stage latency percentiles at the end.
    #[arg(long)]
    pub stats: bool,
    /// Enrolled speakers to recognise by name: JSON files `{"name": ..., "embedding": [...]}`.
    #[arg(long)]
    pub known: Vec<PathBuf>,
}

/// Runs `diarist stream`.
pub fn run(args: &StreamArgs) -> anyhow::Result<ExitCode> {
    let config = settings::load_streaming(&args.common, &args.streaming)?;
    if args.files.len() > 1 && args.output.is_none() {
        anyhow::bail!("several recordings stream at once only with -o DIR");
    }
    let known = Voiceprint::read_all(&args.live.known)?;
    let engine = Engine::start(&config.engine)?;
    let pace = if args.realtime {
        Pace::Live { speed: args.speed }
    } else {
        Pace::Fastest
    };
    let options = StreamOptions {
        max_speakers: args.streaming.max_speakers,
        known_speakers: known,
        backbone_phase: Some(args.backbone_phase),
        ..Default::default()
    };
    let mut failed = false;
    if let [file] = args.files.as_slice() {
        let mut sink = EventSink::new(args.live.json);
        stream_file(&engine, file, pace, options, |e| sink.handle(e))?;
        let id = file_id(file);
        if let Some(dir) = &args.output {
            std::fs::create_dir_all(dir)?;
        }
        let in_dir = args.output.as_ref().map(|d| d.join(format!("{id}.rttm")));
        for path in args.live.rttm.iter().chain(&in_dir) {
            write_rttm(&sink, Some(path), &id)?;
        }
    } else {
        let dir = args.output.as_ref().expect("checked above");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let results = stream_files(&engine, &args.files, pace, &options, dir);
        for (file, result) in args.files.iter().zip(results) {
            failed |= result.is_err();
            eprintln!("{}: {}", file.display(), view::stream_result_line(&result));
        }
    }
    if args.live.stats {
        eprint!("{}", engine.stats().table());
    }
    Ok(ExitCode::from(u8::from(failed)))
}

/// Arguments of `diarist mic`.
#[derive(clap::Args)]
pub struct MicArgs {
    /// Input device name (as `--list-devices` prints it) [default: the system's default input].
    #[arg(long)]
    pub device: Option<String>,
    /// List the input devices and exit.
    #[arg(long)]
    pub list_devices: bool,
    /// Stop after this many seconds (default: at Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub streaming: StreamingArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `diarist mic`.
pub fn mic(args: &MicArgs) -> anyhow::Result<ExitCode> {
    if args.list_devices {
        for name in input_devices()? {
            println!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = settings::load_streaming(&args.common, &args.streaming)?;
    let engine = Engine::start(&config.engine)?;
    let options = StreamOptions {
        max_speakers: args.streaming.max_speakers,
        known_speakers: Voiceprint::read_all(&args.live.known)?,
        ..Default::default()
    };
    let mic = Microphone::open(&engine, args.device.as_deref(), options)?;
    let info = mic.info();
    eprintln!(
        "capturing from {} ({} Hz, {} channels, {}); Ctrl-C stops",
        info.device, info.rate, info.channels, info.format
    );
    let stop = mic.stop_handle();
    ctrlc::set_handler(move || stop.stop()).context("installing the Ctrl-C handler")?;
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut sink = EventSink::new(args.live.json);
    let end = mic.run(deadline, |e| sink.handle(e))?;
    write_rttm(&sink, args.live.rttm.as_deref(), "mic")?;
    if args.live.stats {
        eprint!("{}", engine.stats().table());
    }
    if let Some(e) = end.device_error {
        eprintln!(
            "diarist: error: the input device failed: {e}; kept {:.1} s of audio diarized up to then",
            end.summary.samples_final as f64 / f64::from(diarist_core::SAMPLE_RATE)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the sink's final turns as RTTM for `id` to `path`, when one is given.
fn write_rttm(sink: &EventSink, path: Option<&Path>, id: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => sink
            .write_rttm(p, id)
            .with_context(|| format!("writing {}", p.display())),
        None => Ok(()),
    }
}
