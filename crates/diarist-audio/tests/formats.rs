//! Every supported format decodes to 16 kHz mono that matches the original; damaged input gives a
//! typed error or a partial result, never a panic. Fixtures: `tools/make_format_fixtures.sh`.

use std::path::PathBuf;

use diarist_audio::{AudioError, AudioStream, Resampler, decode_all};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../audio-fixtures/formats")
        .join(name)
}

/// Normalised correlation of `a` and `b[offset..]` at the best lag within ±`max_lag` samples.
fn best_correlation(a: &[f32], b: &[f32], offset: usize, max_lag: usize) -> f64 {
    let mut best = f64::MIN;
    for lag in -(max_lag as isize)..=max_lag as isize {
        let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
        for (i, &x) in a.iter().enumerate() {
            let j = (i + offset) as isize + lag;
            if j < 0 || j as usize >= b.len() {
                continue;
            }
            let y = b[j as usize];
            ab += f64::from(x) * f64::from(y);
            aa += f64::from(x) * f64::from(x);
            bb += f64::from(y) * f64::from(y);
        }
        if aa > 0.0 && bb > 0.0 {
            best = best.max(ab / (aa * bb).sqrt());
        }
    }
    best
}

#[test]
fn every_format_decodes_to_the_original() {
    let original = decode_all(&fixture("s16_16k_mono.wav")).unwrap();
    assert_eq!(original.len(), 48_000);
    // (file, tolerated length difference in samples, least correlation with the original)
    let cases = [
        ("s24_44k_stereo.wav", 2, 0.99),
        ("s32_16k_mono.wav", 0, 0.999),
        ("f32_48k_mono.wav", 2, 0.99),
        ("s16_8k_mono.wav", 2, 0.8),
        ("flac_22k_mono.flac", 2, 0.99),
        ("mp3_44k_stereo.mp3", 2400, 0.9),
        ("vorbis_48k_mono.ogg", 2, 0.9),
        ("aac_44k_mono.m4a", 2400, 0.9),
    ];
    for (name, tolerance, least) in cases {
        let mut stream =
            AudioStream::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = Vec::new();
        while stream.read(&mut out).unwrap() > 0 {}
        assert!(
            out.len().abs_diff(48_000) <= tolerance,
            "{name}: {} samples at 16 kHz (codec {}, {} Hz)",
            out.len(),
            stream.info().codec,
            stream.info().sample_rate
        );
        let c = best_correlation(&original[4000..44000], &out, 4000, 1200);
        assert!(c >= least, "{name}: correlation {c:.3} < {least}");
        assert_eq!(stream.stats().output_samples, out.len() as u64);
        assert!(!stream.stats().truncated, "{name} reported as truncated");
    }
}

#[test]
fn resampled_lengths_follow_the_rate_ratio() {
    for rate in [8_000u32, 11_025, 22_050, 44_100, 48_000, 96_000] {
        for len in [1usize, 100, 4_410, 48_000, 123_457] {
            let input: Vec<f32> = (0..len).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
            let mut r = Resampler::new(rate, 16_000).unwrap();
            let mut out = Vec::new();
            // Feed in uneven pieces, as a decoder would.
            for piece in input.chunks(777) {
                r.push(piece, &mut out);
            }
            r.finish(&mut out);
            let expected = (len as f64 * 16_000.0 / f64::from(rate)).round() as usize;
            assert_eq!(out.len(), expected, "{rate} Hz, {len} samples");
        }
    }
}

#[test]
fn resampling_keeps_events_in_place() {
    // A click at 0.5 s in 44.1 kHz audio lands at 0.5 s (± 1 ms) at 16 kHz.
    let mut input = vec![0f32; 44_100];
    input[22_050] = 1.0;
    let mut r = Resampler::new(44_100, 16_000).unwrap();
    let mut out = Vec::new();
    r.push(&input, &mut out);
    r.finish(&mut out);
    let peak = out
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    assert!(peak.abs_diff(8_000) <= 16, "peak at sample {peak}");
}

#[test]
fn damaged_and_degenerate_inputs() {
    assert!(matches!(
        AudioStream::open(&fixture("empty.wav")),
        Err(AudioError::Unsupported(_))
    ));
    assert!(matches!(
        AudioStream::open(&fixture("garbage.wav")),
        Err(AudioError::Unsupported(_))
    ));
    assert!(matches!(
        AudioStream::open(&fixture("no-such-file.wav")),
        Err(AudioError::Io { .. })
    ));
    assert!(matches!(
        AudioStream::from_bytes(vec![1, 2, 3]),
        Err(AudioError::Unsupported(_))
    ));

    // Truncated files keep everything before the cut and say they were cut.
    for (name, least) in [
        ("truncated.wav", 23_000),
        ("truncated.flac", 12_000),
        ("truncated.mp3", 20_000),
    ] {
        let mut stream = AudioStream::open(&fixture(name)).unwrap();
        let mut out = Vec::new();
        while stream.read(&mut out).unwrap() > 0 {}
        assert!(
            out.len() >= least && out.len() < 48_000,
            "{name}: {} samples",
            out.len()
        );
        assert!(stream.stats().truncated, "{name} not reported as truncated");
    }
    assert!(decode_all(&fixture("zero_length.wav")).unwrap().is_empty());
    let silence = decode_all(&fixture("silence_5s.wav")).unwrap();
    assert_eq!(silence.len(), 80_000);
    assert!(silence.iter().all(|&s| s == 0.0));
    assert_eq!(decode_all(&fixture("clip_0.2s.wav")).unwrap().len(), 3_200);
}

#[test]
fn long_streams_come_in_bounded_chunks() {
    // 10 minutes of 48 kHz stereo float WAV, built in memory.
    let frames = 48_000 * 600;
    let mut wav = Vec::with_capacity(44 + frames * 8);
    let data_len = (frames * 8) as u32;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&48_000u32.to_le_bytes());
    wav.extend_from_slice(&(48_000u32 * 8).to_le_bytes());
    wav.extend_from_slice(&8u16.to_le_bytes());
    wav.extend_from_slice(&32u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let s = if i % 48_000 == 0 {
            f32::NAN
        } else {
            (i as f32 * 0.001).sin() * 0.3
        };
        wav.extend_from_slice(&s.to_le_bytes());
        wav.extend_from_slice(&s.to_le_bytes());
    }
    let mut stream = AudioStream::from_bytes(wav).unwrap();
    let mut chunk = Vec::new();
    let (mut total, mut largest) = (0usize, 0usize);
    loop {
        chunk.clear();
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        largest = largest.max(n);
    }
    assert_eq!(total, 16_000 * 600);
    assert!(largest <= 16_000, "a chunk of {largest} samples");
    assert_eq!(stream.stats().non_finite_samples, 600 * 2 / 2);
}
