//! The sample rates and channel counts the decoder accepts.
//!
//! Symphonia trusts a header's sample rate and channel count, and a claimed rate with no common
//! factor with 16 kHz makes the resampler build FFTs of that rate's size (gigabytes for
//! 4 000 000 007 Hz) or stretch one second of samples into hours (1 Hz). So every stream's rate
//! and channel count are checked against these limits before anything is decoded.

use crate::AudioError;

/// The lowest sample rate accepted, in Hz. Nothing below carries speech (telephone audio is
/// 8 kHz), and a rate far below 16 kHz turns each source sample into many output samples: a
/// header lying about it would inflate a small file into hours of audio.
pub const MIN_RATE: u32 = 1_000;

/// The highest sample rate accepted, in Hz: 384 kHz is the highest rate audio hardware records.
/// The resampler's memory and time grow with the rate.
pub const MAX_RATE: u32 = 384_000;

/// The most channels accepted. Real layouts have far fewer (22.2 surround has 24,
/// seventh-order ambisonics 64), and every channel is decoded and averaged, so decoding time and
/// packet memory grow with the count a header claims.
pub const MAX_CHANNELS: u64 = 64;

/// Refuses a sample rate or channel count outside the limits.
pub(crate) fn check_format(rate: u32, channels: u64) -> Result<(), AudioError> {
    if !(MIN_RATE..=MAX_RATE).contains(&rate) {
        return Err(AudioError::SampleRate(rate));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(AudioError::Channels(channels));
    }
    Ok(())
}
