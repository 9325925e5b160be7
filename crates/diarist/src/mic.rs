//! `diarist mic`: live diarization of a microphone.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use diarist_audio::{Capture, audio_ring, forward_resampled, input_devices};
use diarist_engine::stream::RecvTimeoutError;
use diarist_engine::{Engine, StreamOptions};

use crate::settings::{self, CommonArgs, StreamingArgs};
use crate::stream::{EventSink, LiveArgs, load_voiceprints, print_stats};

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
pub fn run(args: &MicArgs) -> anyhow::Result<ExitCode> {
    if args.list_devices {
        for name in input_devices()? {
            println!("{name}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = settings::load_streaming(&args.common, &args.streaming)?;
    let known = load_voiceprints(&args.live.known)?;
    let engine = Engine::start(&config)?;
    let (writer, stream) = engine.open(StreamOptions {
        max_speakers: args.streaming.max_speakers,
        known_speakers: known,
        ..Default::default()
    })?;
    // The device's own rate, up to 192 kHz, buffered for as long as the stream buffers.
    let (dev_writer, dev_reader) = audio_ring((192_000.0 * config.streaming.buffer_secs) as usize);
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
    let resampling = std::thread::spawn(move || forward_resampled(dev_reader, rate, writer));

    let mut sink = EventSink::new(args.live.json);
    let started = Instant::now();
    let mut capture = Some(capture);
    let mut device_error = None;
    loop {
        match stream.events().recv_timeout(Duration::from_millis(100)) {
            Ok(e) => sink.handle(&e),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
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
    let summary = stream.wait()?;
    resampling
        .join()
        .map_err(|_| anyhow::anyhow!("the resampling thread panicked"))??;
    if let Some(path) = &args.live.rttm {
        sink.write_rttm(path, "mic")?;
    }
    if args.live.stats {
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
