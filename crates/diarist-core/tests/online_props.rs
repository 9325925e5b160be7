//! "A final label never changes", as a property of `OnlineDiarizer` over random streams: random
//! local activity, voices and geometry, windows cut as the streaming engine cuts them (a full
//! window every hop, then short ones at the end), a deterministic pooler (the weighted mean of
//! each speaker's features). On the events: a final turn's start never changes, its end never
//! goes back, a speaker's turns do not overlap, and nothing is final past the samples pushed.

use diarist_core::activity::LocalActivity;
use diarist_core::online::{
    OnlineDiarizer, OnlineParams, TurnEvent, TurnStatus, WindowObservation,
};
use diarist_core::reconstruct::FrameGrid;
use proptest::prelude::*;

/// Samples between frames.
const STEP: usize = 10;
/// Samples one frame hears: longer than the step, as with every real model, so that a frame's
/// output span (a step around the instant it describes, up to `offset` past its centre) lies
/// inside what it hears and so inside its window.
const LENGTH: usize = 2 * STEP;
/// Local speaker slots per window.
const SLOTS: usize = 2;
/// Voices: 2-d directions, far enough apart to be told apart, close enough to be confused.
const VOICES: [[f32; 2]; 3] = [[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]];

/// One random stream and the diarizer's settings for it.
#[derive(Debug, Clone)]
struct Case {
    window: usize,
    hop: usize,
    tentative: usize,
    offset: usize,
    threshold: f32,
    new_speaker_frames: usize,
    max_speakers: Option<usize>,
    /// Stream length in samples.
    total: usize,
    /// Per stream frame: active slots (bits) and voice.
    frames: Vec<(u8, usize)>,
    /// Per window: context frames asked for, and how many feature frames reach.
    windows: Vec<(usize, usize)>,
}

fn case() -> impl Strategy<Value = Case> {
    (4usize..9, 1usize..4, 0..=LENGTH / 4, 1usize..400)
        .prop_flat_map(|(window, hop, offset, total)| {
            let hop = hop.min(window - 1);
            let frames = total.div_ceil(STEP) + window;
            (
                Just((window, hop, offset, total)),
                hop..=window,
                0.05f32..0.9,
                1usize..4,
                prop::option::of(1usize..4),
                prop::collection::vec((0u8..4, 0usize..VOICES.len()), frames),
                prop::collection::vec((0usize..3, 0usize..=window + 2), frames / hop + 1),
            )
        })
        .prop_map(
            |((window, hop, offset, total), tentative, threshold, new, max, frames, windows)| {
                Case {
                    window,
                    hop,
                    tentative,
                    offset,
                    threshold,
                    new_speaker_frames: new,
                    max_speakers: max,
                    total,
                    frames,
                    windows,
                }
            },
        )
}

fn params(c: &Case) -> OnlineParams {
    OnlineParams {
        grid: FrameGrid {
            step: STEP,
            length: LENGTH,
            offset: c.offset,
        },
        feature_grid: FrameGrid {
            step: STEP,
            length: STEP,
            offset: 0,
        },
        feature_dim: 2,
        window_frames: c.window,
        hop_frames: c.hop,
        tentative_frames: c.tentative,
        match_threshold: c.threshold,
        new_speaker_frames: c.new_speaker_frames,
        update_frames: 1,
        min_active_frames: 1,
        max_speakers: c.max_speakers,
        merge_threshold: 0.2,
        confirm_new_speakers: true,
    }
}

/// Weighted mean of the 2-d features per speaker.
fn mean(features: &[f32], weights: &[f32], speakers: usize) -> Result<Vec<Vec<f32>>, ()> {
    let frames = features.len() / 2;
    Ok((0..speakers)
        .map(|s| {
            let mut m = vec![0f32; 2];
            for (r, row) in features.chunks(2).enumerate() {
                m[0] += weights[s * frames + r] * row[0];
                m[1] += weights[s * frames + r] * row[1];
            }
            m
        })
        .collect())
}

/// The activity and features of the stream frames `from..from + n`.
fn slice(c: &Case, from: usize, n: usize, features: usize) -> (LocalActivity, Vec<f32>) {
    let mut active = Vec::with_capacity(n * SLOTS);
    let mut feats = Vec::with_capacity(n * 2);
    for &(bits, voice) in &c.frames[from..from + n] {
        active.extend((0..SLOTS).map(|s| (bits >> s) & 1));
        feats.extend(VOICES[voice]);
    }
    feats.truncate(features.min(n) * 2);
    let activity = LocalActivity {
        frames: n,
        speakers: SLOTS,
        active,
    };
    (activity, feats)
}

/// What the events said so far about each speaker: its open turn (start, end so far) and where
/// its last turn ended.
#[derive(Default, Clone)]
struct Ledger {
    open: Option<(usize, usize)>,
    last_end: usize,
}

/// Checks one event against what came before, and against the samples pushed so far.
fn check(e: &TurnEvent, ledgers: &mut Vec<Ledger>, pushed: usize) -> Result<(), TestCaseError> {
    prop_assert!(e.start <= e.end && e.end <= pushed, "{e:?} past {pushed}");
    if ledgers.len() <= e.speaker {
        ledgers.resize(e.speaker + 1, Ledger::default());
    }
    let l = &mut ledgers[e.speaker];
    match (e.status, l.open) {
        (TurnStatus::Started, None) => {
            prop_assert!(e.start >= l.last_end, "{e:?} overlaps the turn before");
            l.open = Some((e.start, e.end));
        }
        (TurnStatus::Updated | TurnStatus::Ended, Some((start, end))) => {
            prop_assert_eq!(e.start, start, "a final start changed: {:?}", e);
            prop_assert!(e.end >= end, "a final end went back: {e:?} after {end}");
            l.open = Some((start, e.end));
            if e.status == TurnStatus::Ended {
                l.open = None;
                l.last_end = e.end;
            }
        }
        (status, open) => prop_assert!(false, "{status:?} with open turn {open:?}"),
    }
    Ok(())
}

/// Feeds the case's windows as the streaming engine cuts them, then finishes; checks every event
/// and returns how many there were.
fn run(c: &Case) -> Result<usize, TestCaseError> {
    let p = params(c);
    let grid = p.grid;
    let mut d = OnlineDiarizer::new(p);
    let mut ledgers = Vec::new();
    let (mut last_final, mut events) = (0, 0);
    // Samples of a window whose model output has `window` frames.
    let window_samples = (c.window - 1) * STEP + LENGTH;
    for (w, &(context, features)) in c.windows.iter().enumerate() {
        let first = w * c.hop;
        let ahead = c.total.saturating_sub(first * STEP);
        // The engine's windower: full windows while the audio lasts, then short ones until the
        // audio is covered.
        if ahead == 0 || (w > 0 && ahead <= window_samples - c.hop * STEP) {
            break;
        }
        let valid_samples = ahead.min(window_samples);
        // As the engine does: frames whose span ends inside the real audio may become final.
        let valid_frames = if valid_samples == window_samples {
            c.window
        } else {
            grid.frames_covering(valid_samples)
        };
        let final_frames = grid.frames_within(valid_samples);
        let context = context.min(first);
        let (activity, feats) = slice(c, first - context, context + c.window, features);
        let obs = WindowObservation {
            start: (first - context) * STEP,
            context_frames: context,
            activity: &activity,
            valid_frames,
            final_frames,
            features: &feats,
            features_offset: 0,
        };
        let pushed = first * STEP + valid_samples;
        for e in d.push_window(&obs, &mut mean).unwrap() {
            check(&e, &mut ledgers, pushed)?;
            events += 1;
        }
        let now = d.final_samples();
        prop_assert!(
            now >= last_final && now <= pushed,
            "final {now} of {pushed}"
        );
        last_final = now;
    }
    for e in d.finish(c.total) {
        check(&e, &mut ledgers, c.total)?;
        events += 1;
    }
    prop_assert_eq!(d.final_samples(), c.total);
    prop_assert!(ledgers.iter().all(|l| l.open.is_none()), "a turn left open");
    Ok(events)
}

/// The harness drives the diarizer for real: one voice talking throughout gives turns.
#[test]
fn one_voice_throughout_gives_turns() {
    let c = Case {
        window: 6,
        hop: 2,
        tentative: 4,
        offset: 2,
        threshold: 0.3,
        new_speaker_frames: 2,
        max_speakers: None,
        total: 300,
        frames: vec![(1, 0); 40],
        windows: vec![(2, 8); 20],
    };
    let events = run(&c).unwrap();
    assert!(events >= 2, "{events} events");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_final_label_never_changes(c in case()) {
        run(&c)?;
    }
}
