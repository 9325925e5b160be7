//! `diarist stream`: recordings replayed as live streams through the streaming engine.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use diarist_core::rttm::file_id;
use diarist_engine::source::{self, Pace};
use diarist_engine::stats::Stats;
use diarist_engine::stream::{TentativeTurn, TurnState};
use diarist_engine::{Engine, Event, FinalTurns, StreamOptions, Summary, Voiceprint};

use crate::diarize::write_atomic;
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

/// Shows one stream's events (a live view on a terminal, JSON lines otherwise) and keeps its
/// final turns.
pub struct EventSink {
    view: Option<LiveView>,
    /// The final turns seen so far.
    pub turns: FinalTurns,
}

impl EventSink {
    /// A sink printing JSON lines when `json` or when standard output is not a terminal.
    pub fn new(json: bool) -> Self {
        let live = std::io::stdout().is_terminal() && !json;
        Self {
            view: live.then(LiveView::new),
            turns: FinalTurns::default(),
        }
    }

    /// Shows and records one event.
    pub fn handle(&mut self, e: &Event) {
        self.turns.observe(e);
        match &mut self.view {
            Some(view) => view.show(e),
            None => {
                if let Ok(line) = serde_json::to_string(e) {
                    let _ = writeln!(std::io::stdout().lock(), "{line}");
                }
            }
        }
    }

    /// Writes the final turns as RTTM for `id` to `path`.
    pub fn write_rttm(&self, path: &Path, id: &str) -> anyhow::Result<()> {
        write_atomic(path, &self.turns.rttm(id))
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Reads voiceprint files (`{"name": ..., "embedding": [...]}`).
pub fn load_voiceprints(paths: &[PathBuf]) -> anyhow::Result<Vec<Voiceprint>> {
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a voiceprint", p.display()))
        })
        .collect()
}

fn secs(samples: u64) -> String {
    let s = samples as f64 / 16_000.0;
    format!("{:02}:{:05.2}", (s / 60.0).floor() as u64, s % 60.0)
}

/// A readable live view on a terminal: final turns as lines, the tentative tail on a status line.
struct LiveView {
    status: bool,
}

impl LiveView {
    fn new() -> Self {
        Self { status: false }
    }

    fn show(&mut self, e: &Event) {
        let mut err = std::io::stderr().lock();
        if self.status {
            let _ = write!(err, "\r\x1b[2K");
            self.status = false;
        }
        match e {
            Event::Speaker { speaker, enrolled } => {
                let _ = writeln!(
                    err,
                    "  new speaker {speaker}{}",
                    if *enrolled { " (enrolled)" } else { "" }
                );
            }
            Event::Turn {
                status: TurnState::Ended,
                speaker,
                start,
                end,
                ..
            } => {
                let _ = writeln!(err, "{} – {}  {speaker}", secs(*start), secs(*end));
            }
            Event::Turn { .. } => {}
            Event::Tentative {
                from, to, turns, ..
            } => {
                let now: Vec<String> = turns
                    .iter()
                    .filter(|t: &&TentativeTurn| t.end >= *to)
                    .map(|t| t.speaker.clone().unwrap_or_else(|| "?".into()))
                    .collect();
                let _ = write!(
                    err,
                    "  [{} final, {} heard] speaking now: {}",
                    secs(*from),
                    secs(*to),
                    if now.is_empty() {
                        "nobody".into()
                    } else {
                        now.join(", ")
                    }
                );
                self.status = true;
            }
            Event::Overload { at, samples } => {
                let _ = writeln!(
                    err,
                    "  overload: {} of audio lost at {}",
                    secs(*samples),
                    secs(*at)
                );
            }
            Event::Summary(s) => {
                let _ = writeln!(
                    err,
                    "{} of audio, {} final, {} lost; speakers: {}",
                    secs(s.samples_in),
                    secs(s.samples_final),
                    secs(s.samples_lost),
                    s.speakers.join(", ")
                );
            }
        }
        let _ = err.flush();
    }
}

/// Runs one stream over `path`, handing every event to `on_event`.
pub fn run_stream(
    engine: &Engine,
    path: &Path,
    pace: Pace,
    options: StreamOptions,
    mut on_event: impl FnMut(&Event),
) -> anyhow::Result<Summary> {
    let (writer, stream) = engine.open(options)?;
    let path_owned = path.to_path_buf();
    let source = std::thread::spawn(move || source::replay_file(&path_owned, writer, pace, None));
    for e in stream.events() {
        on_event(&e);
    }
    let summary = stream.wait()?;
    source
        .join()
        .map_err(|_| anyhow::anyhow!("the replay thread panicked"))?
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(summary)
}

/// Prints p50/p95/p99/max of every stage.
pub fn print_stats(stats: &Arc<Stats>) {
    eprintln!(
        "{:<14} {:>8} {:>9} {:>9} {:>9} {:>9}  unit",
        "stage", "count", "p50", "p95", "p99", "max"
    );
    for s in stats.summary() {
        eprintln!(
            "{:<14} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
            s.stage, s.count, s.p50, s.p95, s.p99, s.max, s.unit
        );
    }
}

/// Runs `diarist stream`.
pub fn run(args: &StreamArgs) -> anyhow::Result<ExitCode> {
    let config = settings::load_streaming(&args.common, &args.streaming)?;
    if args.files.len() > 1 && args.output.is_none() {
        anyhow::bail!("several recordings stream at once only with -o DIR");
    }
    let known = load_voiceprints(&args.live.known)?;
    let engine = Engine::start(&config)?;
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
        run_stream(&engine, file, pace, options, |e| sink.handle(e))?;
        let id = file_id(file);
        if let Some(path) = &args.live.rttm {
            sink.write_rttm(path, &id)?;
        }
        if let Some(dir) = &args.output {
            std::fs::create_dir_all(dir)?;
            sink.write_rttm(&dir.join(format!("{id}.rttm")), &id)?;
        }
    } else {
        let dir = args.output.as_ref().expect("checked above");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::thread::scope(|scope| {
            let handles: Vec<_> = args
                .files
                .iter()
                .map(|file| {
                    let engine = &engine;
                    let options = options.clone();
                    scope.spawn(move || -> anyhow::Result<Summary> {
                        let mut turns = FinalTurns::default();
                        let summary =
                            run_stream(engine, file, pace, options, |e| turns.observe(e))?;
                        let id = file_id(file);
                        write_atomic(&dir.join(format!("{id}.rttm")), &turns.rttm(&id))?;
                        Ok(summary)
                    })
                })
                .collect();
            for (file, h) in args.files.iter().zip(handles) {
                match h.join() {
                    Ok(Ok(s)) => eprintln!(
                        "{}: {} final, {} lost, {} speakers",
                        file.display(),
                        secs(s.samples_final),
                        secs(s.samples_lost),
                        s.speakers.len()
                    ),
                    Ok(Err(e)) => {
                        failed = true;
                        eprintln!("{}: error: {e:#}", file.display());
                    }
                    Err(_) => {
                        failed = true;
                        eprintln!("{}: error: the stream panicked", file.display());
                    }
                }
            }
        });
    }
    if args.live.stats {
        print_stats(engine.stats());
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
