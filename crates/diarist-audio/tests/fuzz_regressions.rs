//! Inputs the `decode` fuzz target found (`fuzz/regressions/decode/`, see `fuzz/README.md`): each
//! is decoded to its end, or refused with a typed error, without a panic, to finite samples, in
//! well under a second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use diarist_audio::AudioStream;

/// Decodes `bytes` to the end; `None` if the decoder refused them.
fn decode(bytes: Vec<u8>) -> Option<Vec<f32>> {
    let mut stream = AudioStream::from_bytes(bytes).ok()?;
    let mut out = Vec::new();
    while stream.read(&mut out).ok()? > 0 {}
    Some(out)
}

#[test]
fn every_input_the_fuzzer_found_decodes_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let started = Instant::now();
        let out = decode(std::fs::read(&path).unwrap()).unwrap_or_default();
        let took = started.elapsed();
        assert!(out.iter().all(|s| s.is_finite()), "{}", path.display());
        assert!(
            took < Duration::from_secs(1),
            "{}: {took:?}",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 2, "regression inputs missing from {}", dir.display());
}

/// Float WAV samples may hold any value; ones near `f32::MAX` used to overflow the resampler's
/// arithmetic into infinities and NaN (the first input the fuzzer found).
#[test]
fn float_samples_far_out_of_range_are_clipped() {
    let samples: Vec<f32> = (0..4_800)
        .map(|i| match i % 3 {
            0 => 3.0e38,
            1 => -3.0e38,
            _ => 0.25,
        })
        .collect();
    let data_len = (samples.len() * 4) as u32;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&48_000u32.to_le_bytes());
    wav.extend_from_slice(&(48_000u32 * 4).to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&32u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for s in &samples {
        wav.extend_from_slice(&s.to_le_bytes());
    }
    let out = decode(wav).unwrap();
    assert_eq!(out.len(), 1_600);
    // Clipped to [-1, 1] before resampling (which may ring a little past it).
    assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.5));
    assert!(
        out.iter().any(|s| s.abs() > 0.1),
        "the clipped signal is kept"
    );
}
