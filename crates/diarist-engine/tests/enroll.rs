//! Enrollment on real speech with the real models: a voiceprint computed from a clip of one
//! speaker makes a stream of the whole recording report that speaker by name.

use std::path::PathBuf;

use diarist_core::rttm;
use diarist_engine::enroll::enroll;
use diarist_engine::offline::Models;
use diarist_engine::source::{self, Pace};
use diarist_engine::stream::TurnStatus;
use diarist_engine::{Engine, EngineConfig, EngineError, Event, StreamOptions, Voiceprint};

const RATE: f64 = 16_000.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config() -> EngineConfig {
    let mut c = diarist_config::Settings::from_toml_str("").unwrap();
    c.resolve_paths(&root().join("models"), &root().join(".ort"));
    c.engine.streaming.workers = 2;
    c.engine
}

fn secs(s: f64) -> usize {
    (s * RATE) as usize
}

/// Per sample of a `samples`-long recording: whether one of `turns` by `speaker` covers it.
fn mask(turns: &[rttm::Turn], speaker: &str, samples: usize) -> Vec<bool> {
    let mut m = vec![false; samples];
    for t in turns.iter().filter(|t| t.speaker == speaker) {
        let end = (t.end as usize).min(samples);
        m[(t.start as usize).min(end)..end].fill(true);
    }
    m
}

#[test]
fn an_enrolled_speaker_is_recognised_by_name_in_a_stream() {
    let config = config();
    let wav = root().join("audio-fixtures/pyannote_sample.wav");
    let audio = diarist_audio::decode_all(&wav).unwrap();
    // The clip: two turns of speaker91 and, as a distraction, two seconds of speaker90.
    let mut clip = Vec::new();
    for (a, b) in [(14.5, 17.9), (11.0, 13.0), (21.8, 27.8)] {
        clip.extend_from_slice(&audio[secs(a)..secs(b)]);
    }
    let mut models = Models::load(&config).unwrap();
    let e = enroll(&mut models, &config, &clip).unwrap();
    assert_eq!(e.voiceprint.len(), 192);
    let norm: f32 = e.voiceprint.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "unit length: {norm}");
    assert!(e.share > 0.6, "the main speaker is chosen: {e:?}");
    assert!(e.windows >= 2, "{e:?}");

    let engine = Engine::start(&config).unwrap();
    let options = StreamOptions {
        known_speakers: vec![Voiceprint {
            name: "ana".into(),
            embedding: e.voiceprint.clone(),
        }],
        ..Default::default()
    };
    let (writer, stream) = engine.open(options).unwrap();
    let feeder =
        std::thread::spawn(move || source::replay_file(&wav, writer, Pace::Fastest, None).unwrap());
    let events: Vec<Event> = stream.events().iter().collect();
    stream.wait().unwrap();
    feeder.join().unwrap();
    assert!(
        events.iter().any(|e| matches!(e,
            Event::Speaker { speaker, enrolled: true } if speaker == "ana")),
        "the enrolled speaker is announced as such"
    );
    let turns: Vec<rttm::Turn> = events
        .iter()
        .filter_map(|e| match e {
            Event::Turn {
                status: TurnStatus::Ended,
                speaker,
                start,
                end,
                ..
            } => Some(rttm::Turn {
                start: *start,
                end: *end,
                speaker: speaker.clone(),
            }),
            _ => None,
        })
        .collect();
    let reference = rttm::parse(
        &std::fs::read_to_string(root().join("audio-fixtures/pyannote_sample.rttm")).unwrap(),
    )
    .unwrap();
    let n = audio.len();
    let ana = mask(&turns, "ana", n);
    let own = mask(&reference["pyannote_sample"], "speaker91", n);
    let other = mask(&reference["pyannote_sample"], "speaker90", n);
    let count = |f: &dyn Fn(usize) -> bool| (0..n).filter(|&i| f(i)).count() as u64;
    let named = count(&|i| ana[i]);
    let own_total = count(&|i| own[i]);
    let hit = count(&|i| ana[i] && own[i]);
    // Named where only the other speaker talks.
    let wrong = count(&|i| ana[i] && other[i] && !own[i]);
    eprintln!(
        "ana: {:.1} s named, {:.1} s of speaker91's {:.1} s, {:.1} s where only speaker90 talks",
        named as f64 / RATE,
        hit as f64 / RATE,
        own_total as f64 / RATE,
        wrong as f64 / RATE
    );
    assert!(
        hit as f64 >= 0.7 * own_total as f64,
        "most of the enrolled speaker's speech carries their name"
    );
    assert!(
        (wrong as f64) < 0.25 * named as f64,
        "little of the other speaker's speech carries it"
    );
}

#[test]
fn enrolling_silence_or_a_wrong_voiceprint_is_a_clear_error() {
    let config = config();
    let mut models = Models::load(&config).unwrap();
    let silence = vec![0f32; secs(5.0)];
    let err = enroll(&mut models, &config, &silence).unwrap_err();
    assert!(matches!(err, EngineError::NoSpeech(_)), "{err}");
    assert!(matches!(
        enroll(&mut models, &config, &[]).unwrap_err(),
        EngineError::NoSpeech(_)
    ));

    let engine = Engine::start(&config).unwrap();
    for embedding in [vec![0.1; 10], vec![f32::NAN; 192]] {
        let options = StreamOptions {
            known_speakers: vec![Voiceprint {
                name: "x".into(),
                embedding,
            }],
            ..Default::default()
        };
        let err = engine.open(options).err().expect("refused");
        assert!(matches!(err, EngineError::Config(_)), "{err}");
    }
}
