//! The offline engine on real audio with the real models: every sample is accounted for, audio fed
//! in any chunking gives the same result, and long streams work window by window.

use std::path::PathBuf;

use diarist_engine::offline::{Models, diarize};
use diarist_engine::{EngineConfig, EngineError};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config() -> EngineConfig {
    let mut c = diarist_config::Settings::from_toml_str("").unwrap();
    c.resolve_paths(&root().join("models"), &root().join(".ort"));
    c.engine
}

fn sample() -> Vec<f32> {
    diarist_audio::decode_all(&root().join("audio-fixtures/pyannote_sample.wav")).unwrap()
}

/// Feeds `audio` in chunks of `chunk` samples.
fn feeder(
    audio: &[f32],
    chunk: usize,
) -> impl FnMut(&mut Vec<f32>) -> Result<usize, EngineError> + '_ {
    let mut at = 0;
    move |buf: &mut Vec<f32>| {
        let n = chunk.min(audio.len() - at);
        buf.extend_from_slice(&audio[at..at + n]);
        at += n;
        Ok(n)
    }
}

#[test]
fn the_shipped_configuration_loads_and_bad_values_are_refused() {
    let c = config();
    assert!(c.runtime.onnxruntime.is_absolute());
    assert!(c.models.segmentation.join("manifest.toml").is_file());
    let mut bad = c.clone();
    bad.offline.step_secs = 0.0;
    assert!(bad.validate().is_err());
    let mut bad = c.clone();
    bad.offline.min_speakers = 5;
    bad.offline.max_speakers = 2;
    assert!(bad.validate().is_err());
    let mut bad = c;
    bad.offline.pad_onset_secs = f64::NAN;
    assert!(bad.validate().is_err());
    let text = diarist_config::DEFAULTS.replace("window_secs", "windw_secs");
    assert!(diarist_config::Settings::from_toml_str(&text).is_err());
}

#[test]
fn chunking_does_not_change_the_result_and_every_sample_is_counted() {
    let cfg = config();
    let mut models = Models::load(&cfg).unwrap();
    let audio = sample();
    let a = diarize(&mut models, &cfg.offline, feeder(&audio, 4_096)).unwrap();
    let b = diarize(&mut models, &cfg.offline, feeder(&audio, 160_000 + 17)).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.samples, audio.len());
    assert_eq!(a.speakers, 2);
    assert!(
        a.turns
            .iter()
            .all(|t| t.start < t.end && t.end <= audio.len())
    );
    // Windows every 59 frames (15 930 samples) while they fit, plus one ending at the end.
    assert_eq!(a.windows, 22);
}

#[test]
fn a_long_stream_is_diarized_window_by_window() {
    let mut cfg = config();
    cfg.offline.step_secs = 5.0;
    let mut models = Models::load(&cfg).unwrap();
    let once = sample();
    // Four minutes: the two-speaker call eight times over.
    let long: Vec<f32> = once.iter().copied().cycle().take(once.len() * 8).collect();
    let d = diarize(&mut models, &cfg.offline, feeder(&long, 16_000)).unwrap();
    assert_eq!(d.samples, long.len());
    assert_eq!(d.speakers, 2, "the same two voices repeat");
    assert!(d.windows >= 47);
    let last_end = d.turns.iter().map(|t| t.end).max().unwrap();
    assert!(
        last_end > long.len() - 16_000 * 2,
        "speech near the end is reported"
    );
}
