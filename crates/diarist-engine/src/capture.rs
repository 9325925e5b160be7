//! A microphone as a live stream: the device's audio, resampled to 16 kHz off the audio
//! callback, through the streaming engine until the caller says stop, a deadline passes or the
//! device fails. Every wait is a wake-up: an event, the stop signal, the device's error or the
//! deadline.

use std::thread::JoinHandle;
use std::time::Instant;

use diarist_audio::{Capture, CaptureError, CaptureInfo, audio_ring, forward_resampled};

use crate::EngineError;
use crate::stream::{Engine, Event, Stream, StreamOptions, Summary};

/// The highest device rate the capture ring is sized for (Hz).
const MAX_DEVICE_RATE: usize = 192_000;

/// Why a microphone stream could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum MicError {
    /// The input device could not be opened, or its audio could not be resampled.
    #[error(transparent)]
    Device(#[from] CaptureError),
    /// The engine refused the stream or failed while running it.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The resampling thread panicked.
    #[error("the resampling thread panicked")]
    Resampler,
}

/// How a microphone stream ended.
#[derive(Debug)]
pub struct MicEnd {
    /// The stream's summary: everything heard up to the stop is final.
    pub summary: Summary,
    /// The device's error, when the device stopped the stream.
    pub device_error: Option<String>,
}

/// A microphone being diarized.
pub struct Microphone {
    capture: Capture,
    stream: Stream,
    resampling: JoinHandle<Result<(), CaptureError>>,
    failed: flume::Receiver<String>,
    stop: (flume::Sender<()>, flume::Receiver<()>),
}

/// Stops a [`Microphone`]'s run from any thread (a signal handler, a timer).
#[derive(Clone)]
pub struct StopHandle(flume::Sender<()>);

impl StopHandle {
    /// Asks the run to stop capturing and flush what was heard.
    pub fn stop(&self) {
        let _ = self.0.try_send(());
    }
}

impl Microphone {
    /// Opens the input device named `device` (the default one when `None`) and a stream on
    /// `engine` that its audio feeds, buffered for as long as the engine buffers a stream.
    pub fn open(
        engine: &Engine,
        device: Option<&str>,
        options: StreamOptions,
    ) -> Result<Self, MicError> {
        let (writer, stream) = engine.open(options)?;
        let ring_len =
            MAX_DEVICE_RATE * engine.buffer_samples() / diarist_core::SAMPLE_RATE as usize;
        let (dev_writer, dev_reader) = audio_ring(ring_len);
        let (fail_tx, failed) = flume::bounded(1);
        let capture = Capture::start(device, dev_writer, move |reason| {
            let _ = fail_tx.try_send(reason.to_owned());
        })?;
        let rate = capture.info().rate;
        let resampling = std::thread::Builder::new()
            .name("diarist-mic-resampler".into())
            .spawn(move || forward_resampled(dev_reader, rate, writer))
            .map_err(|e| EngineError::Thread(e.to_string()))?;
        Ok(Self {
            capture,
            stream,
            resampling,
            failed,
            stop: flume::bounded(1),
        })
    }

    /// A handle that stops [`Microphone::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.0.clone())
    }

    /// The device and the format it delivers.
    pub fn info(&self) -> &CaptureInfo {
        self.capture.info()
    }

    /// Passes the stream's events to `on_event` until a [`StopHandle`] stops it, `deadline`
    /// passes or the device fails; then stops capturing, so that what was heard is flushed as
    /// final turns, and returns once the stream has ended.
    pub fn run(
        self,
        deadline: Option<Instant>,
        mut on_event: impl FnMut(&Event),
    ) -> Result<MicEnd, MicError> {
        let Self {
            capture,
            stream,
            resampling,
            failed,
            stop: (_, stop),
        } = self;
        let mut device_error = None;
        loop {
            let selector = flume::Selector::new()
                .recv(stream.events(), |e| {
                    e.map(Wake::Event).unwrap_or(Wake::Ended)
                })
                .recv(&stop, |_| Wake::Stop)
                .recv(&failed, |e| e.map(Wake::Failed).unwrap_or(Wake::Stop));
            let wake = match deadline {
                Some(d) => selector.wait_deadline(d).unwrap_or(Wake::Stop),
                None => selector.wait(),
            };
            match wake {
                Wake::Event(e) => on_event(&e),
                Wake::Ended => break,
                Wake::Failed(reason) => {
                    device_error = Some(reason);
                    break;
                }
                Wake::Stop => break,
            }
        }
        // Stopping the capture ends the stream: what was heard is flushed as final turns.
        drop(capture);
        while let Ok(e) = stream.events().recv() {
            on_event(&e);
        }
        let summary = stream.wait()?;
        resampling.join().map_err(|_| MicError::Resampler)??;
        Ok(MicEnd {
            summary,
            device_error,
        })
    }
}

/// What woke a microphone stream's loop.
enum Wake {
    Event(Event),
    Ended,
    Stop,
    Failed(String),
}
