//! Voiceprints of known speakers, computed from sample audio of their voice.
//!
//! The sample is diarized offline first, so a clip with a second voice in it (an interviewer, a
//! greeting) still gives the main speaker's voiceprint: the speaker with the most speech is
//! chosen, and only the frames where they speak alone are used. Streams compare voiceprints with
//! embeddings of short windows, so the voiceprint is built the same way: the mean direction of
//! window-length embeddings of that speaker's clean speech.

use std::path::Path;

use diarist_core::reconstruct::SpeakerTurn;

use diarist_core::SAMPLE_RATE;

use crate::offline::{Models, diarize};
use crate::{EngineConfig, EngineError};

/// A voiceprint and what it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    /// Unit-length embedding of the chosen speaker's voice.
    pub voiceprint: Vec<f32>,
    /// Samples of clean speech of the chosen speaker that went into it.
    pub speech_samples: usize,
    /// Speakers heard in the sample audio (the one with the most speech is enrolled).
    pub speakers: usize,
    /// Window embeddings averaged.
    pub windows: usize,
    /// Samples of the chosen speaker's speech relative to all speech in the sample.
    pub share: f64,
}

impl Enrollment {
    /// One line saying what went into the voiceprint enrolled as `name`.
    pub fn describe(&self, name: &str) -> String {
        format!(
            "enrolled {name:?} from {:.1} s of clean speech in {} windows ({} speaker(s) heard, {:.0} % of the speech theirs)",
            self.speech_samples as f64 / f64::from(diarist_core::SAMPLE_RATE),
            self.windows,
            self.speakers,
            100.0 * self.share
        )
    }

    /// A warning when the sample held several voices and the enrolled one had little of it.
    pub fn warning(&self) -> Option<String> {
        (self.speakers > 1 && self.share < 0.6).then(|| {
            format!(
                "the sample holds several voices and the enrolled one has only {:.0} % of the speech",
                100.0 * self.share
            )
        })
    }
}

/// Computes the voiceprint of the main speaker of the audio file at `path`.
pub fn enroll_file(
    models: &mut Models,
    config: &EngineConfig,
    path: &Path,
) -> Result<Enrollment, EngineError> {
    enroll(models, config, &diarist_audio::decode_all(path)?)
}

/// Computes the voiceprint of the main speaker of `audio` (16 kHz mono).
pub fn enroll(
    models: &mut Models,
    config: &EngineConfig,
    audio: &[f32],
) -> Result<Enrollment, EngineError> {
    let mut rest = audio;
    let d = diarize(models, &config.offline, |buf: &mut Vec<f32>| {
        let n = rest.len().min(SAMPLE_RATE as usize * 10);
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        Ok::<_, EngineError>(n)
    })?;
    let mut speech = vec![0usize; d.speakers];
    for t in &d.turns {
        speech[t.speaker] += t.end - t.start;
    }
    let Some(chosen) = (0..d.speakers).max_by_key(|&s| speech[s]) else {
        return Err(EngineError::NoSpeech(
            "no speech was found in the sample audio".into(),
        ));
    };
    // Where the chosen speaker talks and nobody else does.
    let clean = clean_mask(&d.turns, chosen, audio.len());
    let secs = |v: f64| (v * SAMPLE_RATE as f64).round() as usize;
    let window = secs(config.streaming.window_secs).min(audio.len());
    let hop = (window / 2).max(1);
    let least = secs(config.streaming.new_speaker_secs);
    let g = models.embedding.weight_geometry();
    let frames = g.frames(window);
    let mut sum = vec![0f32; models.embedding.dimension()];
    let mut windows = 0;
    let mut start = 0;
    while window >= models.embedding.min_samples() && start + window <= audio.len() {
        let weights: Vec<f32> = (0..frames)
            .map(|j| {
                let centre = start + j * g.step + g.length / 2;
                f32::from(u8::from(clean.get(centre).copied().unwrap_or(false)))
            })
            .collect();
        let on = clean[start..start + window].iter().filter(|&&c| c).count();
        if on >= least {
            let e = models
                .embedding
                .run(&audio[start..start + window], window, &weights, 1)?;
            let v = e.get(0, 0);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            sum.iter_mut().zip(v).for_each(|(a, b)| *a += b / norm);
            windows += 1;
        }
        start += hop;
    }
    if windows == 0 {
        return Err(EngineError::NoSpeech(format!(
            "the main speaker never speaks alone for {:.1} s within one {:.1} s window",
            least as f64 / SAMPLE_RATE as f64,
            window as f64 / SAMPLE_RATE as f64
        )));
    }
    let norm = sum.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    sum.iter_mut().for_each(|x| *x /= norm);
    let total: usize = speech.iter().sum();
    Ok(Enrollment {
        voiceprint: sum,
        speech_samples: clean.iter().filter(|&&c| c).count(),
        speakers: d.speakers,
        windows,
        share: speech[chosen] as f64 / total.max(1) as f64,
    })
}

/// Per sample: whether `speaker` talks there and no other speaker does.
fn clean_mask(turns: &[SpeakerTurn], speaker: usize, samples: usize) -> Vec<bool> {
    let mut mine = vec![false; samples];
    let mut others = vec![false; samples];
    for t in turns {
        let target = if t.speaker == speaker {
            &mut mine
        } else {
            &mut others
        };
        let end = t.end.min(samples);
        target[t.start.min(end)..end].fill(true);
    }
    mine.iter().zip(&others).map(|(&m, &o)| m && !o).collect()
}
