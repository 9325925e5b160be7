//! Samples handed over from Python (the bytes of a 1-D array, or of a 2-D one of frames by
//! channels) turned into what the engine hears, the way a decoded file is: integers scaled to
//! [-1, 1) as the decoder scales them, channels averaged and clipped
//! ([`diarist_audio::mix_down`]), other rates resampled to 16 kHz ([`Resampler`]).

use diarist_audio::{MAX_CHANNELS, MAX_RATE, MIN_RATE, Resampler, TARGET_RATE, mix_down};

/// The sample types an array may hold, native-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 16-bit signed integer (PCM), scaled by 1/32768.
    I16,
}

impl Format {
    /// The format a name (`f32`, `f64`, `i16`) stands for.
    pub(crate) fn parse(name: &str) -> Result<Self, String> {
        match name {
            "f32" => Ok(Self::F32),
            "f64" => Ok(Self::F64),
            "i16" => Ok(Self::I16),
            _ => Err(format!(
                "sample format {name:?}: the formats are f32, f64 and i16"
            )),
        }
    }

    /// Bytes per sample.
    fn width(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
            Self::I16 => 2,
        }
    }

    /// One sample from its bytes (exactly [`Format::width`] of them).
    fn sample(self, b: &[u8]) -> f32 {
        match self {
            Self::F32 => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            Self::F64 => {
                f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            // as symphonia turns 16-bit PCM into f32
            Self::I16 => f32::from(i16::from_ne_bytes([b[0], b[1]])) / 32_768.0,
        }
    }
}

/// Checks a sample rate against the decoder's limits.
pub(crate) fn check_rate(rate: u32) -> Result<(), String> {
    if (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(format!(
            "sample rate {rate} Hz is outside the {MIN_RATE}-{MAX_RATE} Hz diarist accepts"
        ))
    }
}

/// The mono mix of `bytes`, interleaved samples of `format` in `channels` channels, at their
/// own rate. Refuses a channel count outside 1..=[`MAX_CHANNELS`], a length that is not whole
/// frames, and any NaN or infinite sample (naming the first).
pub(crate) fn mono(bytes: &[u8], format: Format, channels: usize) -> Result<Vec<f32>, String> {
    if channels == 0 || channels as u64 > MAX_CHANNELS {
        return Err(format!(
            "{channels} channels: diarist takes 1 to {MAX_CHANNELS} (a 2-D array is frames by \
             channels; transpose one that is channels by frames)"
        ));
    }
    let frame = format.width() * channels;
    if !bytes.len().is_multiple_of(frame) {
        return Err(format!(
            "{} bytes are not whole frames of {channels} {format:?} samples",
            bytes.len()
        ));
    }
    let samples: Vec<f32> = bytes
        .chunks_exact(format.width())
        .map(|b| format.sample(b))
        .collect();
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(format!(
            "sample {} of channel {} is {} (NaN and infinite samples are refused)",
            i / channels,
            i % channels,
            samples[i]
        ));
    }
    let mut out = Vec::with_capacity(samples.len() / channels);
    mix_down(&samples, channels, &mut out);
    Ok(out)
}

/// Mono samples at `rate` Hz on their way to 16 kHz: passed through, or resampled as the
/// decoder resamples a file.
pub(crate) struct To16k(Option<Resampler>);

impl To16k {
    /// A converter from `rate` Hz (checked).
    pub(crate) fn new(rate: u32) -> Result<Self, String> {
        check_rate(rate)?;
        Ok(Self(if rate == TARGET_RATE {
            None
        } else {
            Some(Resampler::new(rate, TARGET_RATE)?)
        }))
    }

    /// Appends the 16 kHz samples `mono` makes ready to `out`.
    pub(crate) fn push(&mut self, mono: &[f32], out: &mut Vec<f32>) {
        match &mut self.0 {
            Some(r) => r.push(mono, out),
            None => out.extend_from_slice(mono),
        }
    }

    /// Appends the samples still owed at the end of the audio to `out`.
    pub(crate) fn finish(&mut self, out: &mut Vec<f32>) {
        if let Some(r) = &mut self.0 {
            r.finish(out);
        }
    }
}

/// A whole recording handed over at once, as 16 kHz mono samples.
pub(crate) fn recording(
    bytes: &[u8],
    format: Format,
    channels: usize,
    rate: u32,
) -> Result<Vec<f32>, String> {
    let mut convert = To16k::new(rate)?;
    let mono = mono(bytes, format, channels)?;
    let mut out = Vec::new();
    convert.push(&mono, &mut out);
    convert.finish(&mut out);
    Ok(out)
}
