//! Headers that claim what cannot be processed sanely are refused with a typed error, and ones
//! that claim more audio than their file holds are decoded as far as the file goes, by every entry
//! point and in well under a second. The crafted fixtures are one second of `s16_16k_mono.wav`
//! under a patched header (`audio-fixtures/LICENSES.md`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use diarist_audio::{AudioError, AudioStream, MAX_CHANNELS, Shortfall, decode_all};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../audio-fixtures/formats")
        .join(name)
}

/// A 16-bit PCM WAV header for `rate` Hz and `channels`, claiming `data_len` bytes, then `data`.
fn wav(rate: u32, channels: u16, data_len: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(44 + data.len());
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&rate.wrapping_mul(2 * u32::from(channels)).to_le_bytes());
    b.extend_from_slice(&(2 * channels).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// Decodes everything through `open` (and so `decode_all`) and `from_bytes`, checks that both
/// agree, and returns the outcome with the slower one's time.
fn decode_both(name: &str) -> (Result<Vec<f32>, AudioError>, Duration) {
    let path = fixture(name);
    let started = Instant::now();
    let from_file = decode_all(&path);
    let file_time = started.elapsed();
    let started = Instant::now();
    let from_bytes = AudioStream::from_bytes(std::fs::read(&path).unwrap()).and_then(|mut s| {
        let mut out = Vec::new();
        while s.read(&mut out)? > 0 {}
        Ok(out)
    });
    let bytes_time = started.elapsed();
    assert_eq!(
        format!("{from_file:?}"),
        format!("{from_bytes:?}"),
        "{name}: open and from_bytes disagree"
    );
    (from_file, file_time.max(bytes_time))
}

#[test]
fn absurd_sample_rates_are_refused_at_once() {
    for (name, rate) in [
        ("rate_0hz.wav", 0),
        ("rate_1hz.wav", 1),
        ("rate_7hz.wav", 7),
        ("rate_4000000007hz.wav", 4_000_000_007),
    ] {
        let (result, took) = decode_both(name);
        match result {
            Err(e @ AudioError::SampleRate(r)) if r == rate => {
                assert!(e.to_string().contains(&format!("{rate} Hz")), "{e}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(took < Duration::from_secs(1), "{name}: {took:?}");
    }
}

#[test]
fn absurd_channel_counts_are_refused_at_once() {
    let (result, took) = decode_both("channels_65535.wav");
    assert!(
        matches!(result, Err(AudioError::Channels(65_535))),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
    // One past the limit, and none at all.
    for channels in [MAX_CHANNELS as u16 + 1, 0] {
        let bytes = wav(16_000, channels, 0, &[]);
        assert!(
            matches!(AudioStream::from_bytes(bytes), Err(AudioError::Channels(c)) if c == u64::from(channels)),
            "{channels} channels"
        );
    }
}

#[test]
fn a_data_chunk_larger_than_the_file_is_decoded_as_far_as_the_file_goes() {
    let started = Instant::now();
    let mut stream = AudioStream::open(&fixture("data_beyond_eof.wav")).unwrap();
    let shortfall = Shortfall {
        claimed_bytes: 64_000_000,
        held_bytes: 32_000,
    };
    assert_eq!(stream.info().shortfall, Some(shortfall));
    assert_eq!(
        shortfall.to_string(),
        "the header claims 64000000 bytes of audio data, the file holds 32000"
    );
    let mut out = Vec::new();
    while stream.read(&mut out).unwrap() > 0 {}
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(stream.stats().truncated);
    // Every sample the file holds, the last partial packet included.
    let original = decode_all(&fixture("s16_16k_mono.wav")).unwrap();
    assert_eq!(out, original[..16_000]);
}

#[test]
fn a_header_claiming_audio_the_file_does_not_hold_is_an_error() {
    // The data chunk claims a second, the file ends inside the first sample.
    let bytes = wav(16_000, 1, 32_000, &[7]);
    let err = AudioStream::from_bytes(bytes)
        .and_then(|mut s| s.read(&mut Vec::new()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            AudioError::Missing(Shortfall {
                claimed_bytes: 32_000,
                held_bytes: 1
            })
        ),
        "{err:?}"
    );
    // An honest empty file is not an error.
    assert!(decode_all(&fixture("zero_length.wav")).unwrap().is_empty());
}

#[test]
fn a_stream_written_without_sizes_decodes_to_its_end() {
    // Recorders writing to a pipe leave both sizes at their maximum.
    let pcm: Vec<u8> = (0..8_000i16)
        .flat_map(|i| (i % 200 * 50).to_le_bytes())
        .collect();
    let mut bytes = wav(16_000, 1, u32::MAX, &pcm);
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut stream = AudioStream::from_bytes(bytes).unwrap();
    assert_eq!(stream.info().shortfall.unwrap().held_bytes, 16_000);
    let mut out = Vec::new();
    while stream.read(&mut out).unwrap() > 0 {}
    assert_eq!(out.len(), 8_000);
}

#[test]
fn rates_at_and_near_the_limits_decode_quickly() {
    // The extremes, and primes next to them (no common factor with 16 kHz: the largest
    // resampler FFTs a rate can ask for).
    for rate in [1_000u32, 1_009, 383_987, 384_000] {
        let pcm: Vec<u8> = (0..rate)
            .flat_map(|i| ((i % 97) as i16 * 100).to_le_bytes())
            .collect();
        let started = Instant::now();
        let mut stream = AudioStream::from_bytes(wav(rate, 1, rate * 2, &pcm)).unwrap();
        let mut out = Vec::new();
        while stream.read(&mut out).unwrap() > 0 {}
        let took = started.elapsed();
        assert_eq!(out.len(), 16_000, "{rate} Hz");
        assert!(took < Duration::from_secs(1), "{rate} Hz: {took:?}");
    }
    for rate in [999, 384_001] {
        assert!(matches!(
            AudioStream::from_bytes(wav(rate, 1, 0, &[])),
            Err(AudioError::SampleRate(r)) if r == rate
        ));
    }
}

#[test]
fn a_wav_header_after_other_bytes_is_checked_too() {
    // The probe finds a container anywhere in its first megabyte (after an ID3 tag, after junk):
    // the header is checked where it is found.
    let crafted = std::fs::read(fixture("rate_0hz.wav")).unwrap();
    let mut bytes = vec![0u8; 1000];
    bytes.extend_from_slice(&crafted);
    assert!(matches!(
        AudioStream::from_bytes(bytes),
        Err(AudioError::SampleRate(0))
    ));
}

/// Whether `bytes` are refused for a header length that cannot fit, naming `what`.
fn refused_for(bytes: Vec<u8>, what: &str) -> bool {
    let started = Instant::now();
    let result = AudioStream::from_bytes(bytes);
    assert!(started.elapsed() < Duration::from_secs(1));
    matches!(&result, Err(AudioError::Header(m)) if m.contains(what))
}

#[test]
fn lengths_a_file_cannot_hold_are_refused_before_anything_is_allocated() {
    // A FLAC comment claiming 3 GB (symphonia would allocate it first).
    let mut flac = std::fs::read(fixture("flac_22k_mono.flac")).unwrap();
    assert_eq!(flac[64] & 0x7f, 4, "the fixture's comment block");
    flac[68..72].copy_from_slice(&0xC000_0000u32.to_le_bytes());
    assert!(refused_for(flac, "FLAC metadata block 4"));
    // An MP4 sample-size table claiming 4 294 967 295 entries in a 0.3 kB atom.
    let mut m4a = std::fs::read(fixture("aac_44k_mono.m4a")).unwrap();
    assert_eq!(&m4a[25_130..25_134], b"stsz");
    m4a[25_142..25_146].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(refused_for(m4a, "MP4 atom `stsz` with 4294967295 entries"));
    // ... or one sample of 4 GB (symphonia would allocate it when it reads that sample).
    let mut m4a = std::fs::read(fixture("aac_44k_mono.m4a")).unwrap();
    m4a[25_146..25_150].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(refused_for(m4a, "claims a sample of 4294967295 bytes"));
    // A WAV metadata chunk before the data claiming 4 GB.
    let mut wav_bytes = wav(16_000, 1, 100, &[0; 100])[..36].to_vec();
    wav_bytes.extend_from_slice(b"LIST");
    wav_bytes.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    wav_bytes.extend_from_slice(b"INFOISFT");
    assert!(refused_for(
        wav_bytes,
        "WAV chunk `LIST` claims 4294967280 bytes"
    ));
}

#[test]
fn id3_frames_claiming_more_than_their_tag_are_refused() {
    // The MP3 fixture's ID3v2.4 tag with its first frame's size raised past the tag (2.3: plain
    // 32-bit sizes up to 4 GB, which symphonia would allocate).
    let mp3 = std::fs::read(fixture("mp3_44k_stereo.mp3")).unwrap();
    assert_eq!(&mp3[..3], b"ID3");
    let mut v23 = mp3.clone();
    v23[3] = 3;
    v23[14..18].copy_from_slice(&0xFFFF_FF00u32.to_be_bytes());
    assert!(refused_for(
        v23,
        "ID3v2 frame `TSSE` claims 4294967040 bytes"
    ));
    // The tag as it is passes.
    assert!(decode_all(&fixture("mp3_44k_stereo.mp3")).unwrap().len() > 40_000);
}
