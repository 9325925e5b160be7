//! Microphone capture with cpal, at the device's own rate and sample format.
//!
//! The device callback converts each buffer to mono `f32` in a scratch buffer sized at start and
//! hands it to an [`AudioWriter`] with [`AudioWriter::push_live`]: it never allocates, locks or
//! blocks, and audio that does not fit is reported as a gap. Resampling to 16 kHz happens on the
//! reading side.

use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use crate::{AudioReader, AudioWriter, Read, Resampler, TARGET_RATE};

/// Why capture could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No input device has this name (or there is none at all).
    #[error("no input device {0}")]
    NoDevice(String),
    /// The device refused to open or start.
    #[error("cannot capture from {device}: {reason}")]
    Device {
        /// Device name.
        device: String,
        /// What went wrong.
        reason: String,
    },
}

/// What is being captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureInfo {
    /// Device name.
    pub device: String,
    /// The device's sample rate.
    pub rate: u32,
    /// The device's channels (averaged to mono).
    pub channels: u16,
    /// The device's sample format.
    pub format: String,
}

/// Names of the input devices the audio host lists.
pub fn input_devices() -> Result<Vec<String>, CaptureError> {
    let host = cpal::default_host();
    let devices = host.input_devices().map_err(|e| CaptureError::Device {
        device: "(host)".into(),
        reason: e.to_string(),
    })?;
    Ok(devices.filter_map(|d| d.name().ok()).collect())
}

/// A running capture; capture stops when it is dropped (which also drops the writer, ending the
/// stream it feeds).
pub struct Capture {
    _stream: cpal::Stream,
    info: CaptureInfo,
    error: Arc<Mutex<Option<String>>>,
}

impl Capture {
    /// Starts capturing from the device named `device` (the default input device when `None`)
    /// into `writer`, which receives mono samples at [`CaptureInfo::rate`]; `failed` is called
    /// (from the device's thread) when the device stops with an error.
    pub fn start(
        device: Option<&str>,
        writer: AudioWriter,
        failed: impl Fn(&str) + Send + 'static,
    ) -> Result<Self, CaptureError> {
        let host = cpal::default_host();
        let dev = match device {
            Some(name) => host
                .input_devices()
                .map_err(|e| CaptureError::Device {
                    device: name.into(),
                    reason: e.to_string(),
                })?
                .find(|d| d.name().is_ok_and(|n| n == name))
                .ok_or_else(|| CaptureError::NoDevice(name.into()))?,
            None => host
                .default_input_device()
                .ok_or_else(|| CaptureError::NoDevice("(default)".into()))?,
        };
        let name = dev.name().unwrap_or_else(|_| "(unnamed)".into());
        let fail = |reason: String| CaptureError::Device {
            device: name.clone(),
            reason,
        };
        let config = dev
            .default_input_config()
            .map_err(|e| fail(e.to_string()))?;
        let info = CaptureInfo {
            device: name.clone(),
            rate: config.sample_rate().0,
            channels: config.channels(),
            format: format!("{:?}", config.sample_format()),
        };
        let error = Arc::new(Mutex::new(None));
        let err_slot = error.clone();
        let on_error = move |e: cpal::StreamError| {
            let reason = e.to_string();
            if let Ok(mut slot) = err_slot.lock() {
                slot.get_or_insert(reason.clone());
            }
            failed(&reason);
        };
        let stream_config: cpal::StreamConfig = config.clone().into();
        let channels = config.channels() as usize;
        let stream = match config.sample_format() {
            SampleFormat::F32 => build::<f32>(&dev, &stream_config, channels, writer, on_error),
            SampleFormat::I16 => build::<i16>(&dev, &stream_config, channels, writer, on_error),
            SampleFormat::I32 => build::<i32>(&dev, &stream_config, channels, writer, on_error),
            SampleFormat::U16 => build::<u16>(&dev, &stream_config, channels, writer, on_error),
            SampleFormat::U8 => build::<u8>(&dev, &stream_config, channels, writer, on_error),
            SampleFormat::I8 => build::<i8>(&dev, &stream_config, channels, writer, on_error),
            SampleFormat::F64 => build::<f64>(&dev, &stream_config, channels, writer, on_error),
            other => return Err(fail(format!("unsupported sample format {other:?}"))),
        }
        .map_err(|e| fail(e.to_string()))?;
        stream.play().map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            _stream: stream,
            info,
            error,
        })
    }

    /// What is being captured.
    pub fn info(&self) -> &CaptureInfo {
        &self.info
    }

    /// The error that stopped the device, if one did (for example, it was unplugged).
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }
}

fn build<T>(
    dev: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    mut writer: AudioWriter,
    on_error: impl FnMut(cpal::StreamError) + Send + 'static,
) -> Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = channels.max(1);
    // Sized once here; a callback buffer larger than this is converted in pieces.
    let mut mono = vec![0f32; 8192];
    dev.build_input_stream(
        config,
        move |data: &[T], _| {
            for frames in data.chunks(mono.len() * channels) {
                let n = frames.len() / channels;
                for (out, frame) in mono.iter_mut().zip(frames.chunks_exact(channels)) {
                    let sum: f32 = frame.iter().map(|s| s.to_sample::<f32>()).sum();
                    *out = sum / channels as f32;
                }
                writer.push_live(&mono[..n]);
            }
        },
        on_error,
        None,
    )
}

/// Moves captured audio at `rate` from `reader` (fed by a [`Capture`]) into `writer` at 16 kHz,
/// off the audio callback: samples are resampled, lost stretches are passed on as losses of the
/// same duration. Returns when the capture has ended and everything is handed over.
pub fn forward_resampled(
    mut reader: AudioReader,
    rate: u32,
    mut writer: AudioWriter,
) -> Result<(), CaptureError> {
    let mut resampler = if rate == TARGET_RATE {
        None
    } else {
        Some(
            Resampler::new(rate, TARGET_RATE).map_err(|reason| CaptureError::Device {
                device: format!("({rate} Hz)"),
                reason,
            })?,
        )
    };
    let mut buf = vec![0f32; 4096];
    let mut out = Vec::new();
    loop {
        out.clear();
        match reader.read(&mut buf) {
            Read::Samples(n) => match &mut resampler {
                Some(r) => r.push(&buf[..n], &mut out),
                None => out.extend_from_slice(&buf[..n]),
            },
            Read::Gap(g) => {
                writer.lose((g.len * u64::from(TARGET_RATE) / u64::from(rate)) as usize)
            }
            // Parked until the capture callback writes again (or stops).
            Read::Empty => reader.wait_readable(1),
            Read::Closed => break,
        }
        if !out.is_empty() {
            writer.push_live(&out);
        }
    }
    if let Some(r) = &mut resampler {
        out.clear();
        r.finish(&mut out);
        writer.push_live(&out);
    }
    Ok(())
}
