//! `diarist mic`: live diarization of a microphone.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use diarist_audio::{Capture, Read, Resampler, audio_ring, input_devices};
use diarist_engine::{Engine, StreamOptions};

use crate::diarize::write_atomic;
use crate::settings::{self, CommonArgs, StreamingArgs};
use crate::stream::{FinalTurns, LiveView, load_voiceprints, print_stats};

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
    /// Print events as JSON lines even on a terminal.
    #[arg(long)]
    pub json: bool,
    /// Write the final turns as RTTM here when capture ends.
    #[arg(long)]
    pub rttm: Option<PathBuf>,
    /// Print per-stage latency percentiles at the end.
    #[arg(long)]
    pub stats: bool,
    /// Enrolled speakers (JSON written by `diarist enroll`) to recognise by name.
    #[arg(long)]
    pub known: Vec<PathBuf>,
    #[command(flatten)]
    pub streaming: StreamingArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `diarist mic`.
pub fn run(args: &MicArgs) -> anyhow::Result<ExitCode> {
    if args.list_devices {
        for name in input_devices()? {
            println!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = settings::load_streaming(&args.common, &args.streaming)?;
    let known = load_voiceprints(&args.known)?;
    let engine = Engine::start(&config)?;
    let (mut writer, stream) = engine.open(StreamOptions {
        max_speakers: args.streaming.max_speakers,
        known_speakers: known,
    })?;
    // The device's own rate, up to 192 kHz, buffered for as long as the stream buffers.
    let (dev_writer, mut dev_reader) =
        audio_ring((192_000.0 * config.streaming.buffer_secs) as usize);
    let capture = Capture::start(args.device.as_deref(), dev_writer)?;
    let info = capture.info().clone();
    eprintln!(
        "capturing from {} ({} Hz, {} channels, {}); Ctrl-C stops",
        info.device, info.rate, info.channels, info.format
    );
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;

    // Device rate to 16 kHz, off the audio callback.
    let rate = info.rate;
    let resampling = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut resampler = if rate == 16_000 {
            None
        } else {
            Some(Resampler::new(rate, 16_000).map_err(|e| anyhow::anyhow!(e))?)
        };
        let mut buf = vec![0f32; 4096];
        let mut out = Vec::new();
        loop {
            match dev_reader.read(&mut buf) {
                Read::Samples(n) => {
                    out.clear();
                    match &mut resampler {
                        Some(r) => r.push(&buf[..n], &mut out),
                        None => out.extend_from_slice(&buf[..n]),
                    }
                    writer.push_live(&out);
                }
                Read::Gap(g) => writer.lose((g.len * 16_000 / u64::from(rate)) as usize),
                Read::Empty => std::thread::sleep(Duration::from_millis(5)),
                Read::Closed => break,
            }
        }
        if let Some(r) = &mut resampler {
            out.clear();
            r.finish(&mut out);
            writer.push_live(&out);
        }
        Ok(())
    });

    let live = std::io::stdout().is_terminal() && !args.json;
    let mut view = LiveView::new();
    let mut turns = FinalTurns::default();
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let mut capture = Some(capture);
    let mut device_error = None;
    loop {
        match stream.events().recv_timeout(Duration::from_millis(100)) {
            Ok(e) => {
                turns.observe(&e);
                if live {
                    view.show(&e);
                } else if let Ok(line) = serde_json::to_string(&e) {
                    let _ = writeln!(out, "{line}");
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if let Some(c) = &capture {
            let timed_out = args
                .duration
                .is_some_and(|d| started.elapsed().as_secs_f64() >= d);
            if let Some(e) = c.error() {
                device_error = Some(e);
            }
            if stop.load(Ordering::SeqCst) || timed_out || device_error.is_some() {
                // Stopping capture ends the stream: what was heard is flushed as final turns.
                capture = None;
            }
        }
    }
    drop(out);
    let summary = stream.wait()?;
    resampling
        .join()
        .map_err(|_| anyhow::anyhow!("the resampling thread panicked"))??;
    if let Some(path) = &args.rttm {
        write_atomic(path, &turns.rttm("mic"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.stats {
        print_stats(engine.stats());
    }
    if let Some(e) = device_error {
        eprintln!(
            "diarist: error: the input device failed: {e}; kept {:.1} s of audio diarized up to then",
            summary.samples_final as f64 / 16_000.0
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
