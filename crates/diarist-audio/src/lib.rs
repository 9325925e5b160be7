//! Decode audio files of any common format (WAV, FLAC, MP3, OGG/Vorbis, AAC in MP4/M4A) as a
//! stream of 16 kHz mono `f32` samples: channels are averaged and other rates resampled.
//!
//! Memory does not grow with the file: [`AudioStream::read`] decodes one packet at a time. Bad
//! input never panics: unreadable or unrecognised files are typed errors, as are headers claiming
//! a sample rate or channel count outside the [`MIN_RATE`]..=[`MAX_RATE`] and [`MAX_CHANNELS`]
//! limits; a truncated file yields everything decodable before the damage (counted in
//! [`DecodeStats`]); samples are clipped to [-1, 1], and non-finite ones become silence (counted
//! too).
//!
//! A microphone is captured with cpal (`Capture`, with the `capture` feature). Live sources (microphones, sockets, files
//! replayed as streams) hand 16 kHz samples to the
//! diarizing thread through the lock-free [`audio_ring`], and a [`Windower`] cuts the analysis
//! windows. Not for: anything about models or speakers.

#[cfg(feature = "capture")]
mod capture;
mod claims;
mod limits;
mod probe;
mod resample;
mod ring;

use std::fs::File;
use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatReader;
use symphonia::core::io::{MediaSource, MediaSourceStream};

#[cfg(feature = "capture")]
pub use capture::{Capture, CaptureError, CaptureInfo, forward_resampled, input_devices};
pub use claims::Shortfall;
pub use limits::{MAX_CHANNELS, MAX_RATE, MIN_RATE};
pub use resample::Resampler;
pub use ring::{
    Arrival, AudioReader, AudioWriter, Gap, Read, ReaderGone, WindowCut, Windower, audio_ring,
};

/// The sample rate of every stream this crate produces.
pub const TARGET_RATE: u32 = 16_000;

/// Why audio could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The bytes are not a container or codec this build understands.
    #[error("unsupported or unrecognised audio format: {0}")]
    Unsupported(String),
    /// The container holds no decodable audio track.
    #[error("no audio track")]
    NoTrack,
    /// Decoding failed in a way that cannot be skipped.
    #[error("decoding failed at packet {packet} ({seconds:.3} s): {reason}")]
    Decode {
        /// Index of the failing packet.
        packet: u64,
        /// Source time of the failing packet.
        seconds: f64,
        /// The decoder's message.
        reason: String,
    },
    /// The stream's parameters are unusable (e.g. no sample rate).
    #[error("invalid stream: {0}")]
    Invalid(String),
    /// The header's sample rate is outside [`MIN_RATE`]..=[`MAX_RATE`].
    #[error("sample rate {0} Hz is outside the {MIN_RATE}-{MAX_RATE} Hz this decoder accepts")]
    SampleRate(u32),
    /// The header's channel count is 0 or above [`MAX_CHANNELS`].
    #[error("{0} channels: this decoder accepts 1 to {MAX_CHANNELS}")]
    Channels(u64),
    /// The container's header claims lengths its file cannot hold.
    #[error("damaged header: {0}")]
    Header(String),
    /// The decoder gave up on a malformed stream in a way it does not report as an error (a
    /// panic inside symphonia, caught at this crate's boundary).
    #[error("malformed stream: {0}")]
    Malformed(String),
    /// The header claims audio data the file does not hold, and none of it could be decoded.
    #[error("no audio to decode: {0}")]
    Missing(Shortfall),
}

/// What the source is.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Sample rate of the source.
    pub sample_rate: u32,
    /// Channels of the source.
    pub channels: usize,
    /// Codec short name.
    pub codec: String,
    /// Length in source frames, when the container says.
    pub frames: Option<u64>,
    /// A WAV header that claims more audio data than the file holds (a cut-off copy, or a
    /// recorder that never went back to write the real size). Everything the file holds is still
    /// decoded, and [`DecodeStats::truncated`] is set at its end: a caller reports this and keeps
    /// the audio, and only a file holding none of it is an error ([`AudioError::Missing`]).
    pub shortfall: Option<Shortfall>,
}

/// What happened while decoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Packets decoded.
    pub packets: u64,
    /// Packets skipped because they could not be decoded.
    pub skipped_packets: u64,
    /// Samples that came out NaN or infinite (after the channel average), replaced by 0.
    pub non_finite_samples: u64,
    /// The stream ended early (cut-off file); what came before was still delivered.
    pub truncated: bool,
    /// Samples delivered at 16 kHz.
    pub output_samples: u64,
}

/// A decoding stream of 16 kHz mono samples.
pub struct AudioStream {
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track: u32,
    info: SourceInfo,
    stats: DecodeStats,
    buffer: Option<SampleBuffer<f32>>,
    mono: Vec<f32>,
    resampler: Option<Resampler>,
    source_frames: u64,
    done: bool,
}

impl AudioStream {
    /// Opens a file: its content decides the format, not its extension.
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let file = File::open(path).map_err(|error| AudioError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_source(Box::new(file))
    }

    /// Decodes audio held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AudioError> {
        Self::from_source(Box::new(Cursor::new(bytes)))
    }

    fn from_source(source: Box<dyn MediaSource>) -> Result<Self, AudioError> {
        shielded(|| Self::open_source(source))
    }

    fn open_source(source: Box<dyn MediaSource>) -> Result<Self, AudioError> {
        let (reader, shortfall) = probe::probe(MediaSourceStream::new(source, Default::default()))?;
        let track = reader
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or(AudioError::NoTrack)?;
        let params = &track.codec_params;
        let sample_rate = params
            .sample_rate
            .ok_or_else(|| AudioError::Invalid("unknown sample rate".into()))?;
        let channels = params.channels.map_or(1, |c| c.count()).max(1);
        limits::check_format(sample_rate, channels as u64)?;
        let codec = symphonia::default::get_codecs()
            .get_codec(params.codec)
            .map_or_else(
                || format!("{:?}", params.codec),
                |d| d.short_name.to_string(),
            );
        let decoder = symphonia::default::get_codecs()
            .make(params, &DecoderOptions::default())
            .map_err(|e| AudioError::Unsupported(e.to_string()))?;
        let info = SourceInfo {
            sample_rate,
            channels,
            codec,
            frames: params.n_frames,
            shortfall,
        };
        let resampler = if sample_rate == TARGET_RATE {
            None
        } else {
            Some(Resampler::new(sample_rate, TARGET_RATE).map_err(AudioError::Invalid)?)
        };
        let track = track.id;
        Ok(Self {
            reader,
            decoder,
            track,
            info,
            stats: DecodeStats::default(),
            buffer: None,
            mono: Vec::new(),
            resampler,
            source_frames: 0,
            done: false,
        })
    }

    /// What the source is.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// What happened while decoding so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Appends the next samples (16 kHz mono) to `out` and returns how many; 0 means the end.
    pub fn read(&mut self, out: &mut Vec<f32>) -> Result<usize, AudioError> {
        let before = out.len();
        while out.len() == before && !self.done {
            let more = match shielded(|| self.next_mono()) {
                Ok(more) => more,
                // Audio already decoded is kept, as after any damage (see `next_mono`).
                Err(AudioError::Malformed(_)) if self.stats.packets > 0 => {
                    self.stats.truncated = true;
                    false
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            };
            match more {
                true => match &mut self.resampler {
                    Some(r) => r.push(&self.mono, out),
                    None => out.extend_from_slice(&self.mono),
                },
                false => {
                    self.done = true;
                    if let Some(r) = &mut self.resampler {
                        r.finish(out);
                    }
                }
            }
        }
        let n = out.len() - before;
        self.stats.output_samples += n as u64;
        Ok(n)
    }

    /// Decodes the next packet of the track into `self.mono`; false at the end of the stream.
    fn next_mono(&mut self) -> Result<bool, AudioError> {
        loop {
            let packet = match self.reader.next_packet() {
                Ok(p) => p,
                Err(SymphoniaError::IoError(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    // The normal end of most containers, and where a cut-off file stops.
                    if self.info.frames.is_some_and(|n| self.source_frames < n) {
                        self.stats.truncated = true;
                    }
                    return match self.info.shortfall {
                        Some(s) if self.source_frames == 0 => Err(AudioError::Missing(s)),
                        _ => Ok(false),
                    };
                }
                Err(SymphoniaError::ResetRequired) => return Ok(false),
                Err(SymphoniaError::IoError(e)) => {
                    self.stats.truncated = true;
                    if self.stats.packets == 0 {
                        return Err(AudioError::Decode {
                            packet: 0,
                            seconds: 0.0,
                            reason: e.to_string(),
                        });
                    }
                    return Ok(false);
                }
                Err(e) => {
                    // A damaged container after good audio: keep what was decoded.
                    if self.stats.packets > 0 {
                        self.stats.truncated = true;
                        return Ok(false);
                    }
                    return Err(AudioError::Decode {
                        packet: 0,
                        seconds: 0.0,
                        reason: e.to_string(),
                    });
                }
            };
            if packet.track_id() != self.track {
                continue;
            }
            let index = self.stats.packets + self.stats.skipped_packets;
            match self.decoder.decode(&packet) {
                Ok(decoded) => {
                    self.stats.packets += 1;
                    let spec = *decoded.spec();
                    let frames = decoded.frames();
                    if frames == 0 {
                        continue;
                    }
                    let buffer = match &mut self.buffer {
                        Some(b) if b.capacity() >= frames * spec.channels.count() => b,
                        slot => slot.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
                    };
                    buffer.copy_interleaved_ref(decoded);
                    self.source_frames += frames as u64;
                    let channels = spec.channels.count().max(1);
                    self.mono.clear();
                    self.stats.non_finite_samples +=
                        mix_down(buffer.samples(), channels, &mut self.mono);
                    return Ok(true);
                }
                Err(SymphoniaError::DecodeError(_)) => {
                    self.stats.skipped_packets += 1;
                }
                Err(SymphoniaError::IoError(_)) => {
                    self.stats.truncated = true;
                    return Ok(false);
                }
                Err(e) => {
                    return Err(AudioError::Decode {
                        packet: index,
                        seconds: packet.ts() as f64 / f64::from(self.info.sample_rate),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}

/// Appends the mono mix of interleaved `samples` of `channels` channels to `out`: each frame's
/// channels averaged, clipped to [-1, 1]; a frame whose average is NaN or infinite becomes
/// silence. Returns how many frames did. Every decoded file is mixed this way, and so are the
/// samples other front ends (Python arrays) hand over.
pub fn mix_down(samples: &[f32], channels: usize, out: &mut Vec<f32>) -> u64 {
    let channels = channels.max(1);
    let mut bad = 0u64;
    out.extend(samples.chunks_exact(channels).map(|frame| {
        let s = frame.iter().sum::<f32>() / channels as f32;
        if s.is_finite() {
            // Float formats may hold anything: a value far out of range would overflow the
            // resampler's arithmetic.
            s.clamp(-1.0, 1.0)
        } else {
            bad += 1;
            0.0
        }
    }));
    bad
}

/// Runs `f`, which calls into symphonia, turning a panic inside it into
/// [`AudioError::Malformed`]: symphonia 0.5 panics on some malformed streams (arithmetic
/// overflow, failed assertions), and a damaged file must never take its caller down. Nothing `f`
/// touched is used again except to end the stream.
fn shielded<T>(f: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the decoder panicked".into());
        Err(AudioError::Malformed(why))
    })
}

/// Decodes a whole file to 16 kHz mono samples (for short files and tests; long files should be
/// streamed with [`AudioStream::read`]).
pub fn decode_all(path: &Path) -> Result<Vec<f32>, AudioError> {
    let mut stream = AudioStream::open(path)?;
    let mut out = Vec::new();
    while stream.read(&mut out)? > 0 {}
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_averaged_clipped_and_non_finite_ones_silenced() {
        let mut out = vec![9.0];
        let stereo = [0.5, 0.25, 1.0, 3.0, f32::NAN, 0.0, -2.0, -2.0];
        assert_eq!(mix_down(&stereo, 2, &mut out), 1);
        assert_eq!(out, [9.0, 0.375, 1.0, 0.0, -1.0]);
        out.clear();
        assert_eq!(mix_down(&[0.1, -0.2], 1, &mut out), 0);
        assert_eq!(out, [0.1, -0.2]);
    }

    #[test]
    fn a_panic_inside_the_decoder_becomes_a_typed_error() {
        let r: Result<(), _> = shielded(|| panic!("attempt to multiply with overflow"));
        assert!(
            matches!(&r, Err(AudioError::Malformed(m)) if m == "attempt to multiply with overflow"),
            "{r:?}"
        );
        let r: Result<(), _> = shielded(|| panic!("{} of {}", 3, 4));
        assert!(
            matches!(&r, Err(AudioError::Malformed(m)) if m == "3 of 4"),
            "{r:?}"
        );
    }
}
