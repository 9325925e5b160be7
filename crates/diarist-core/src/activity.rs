//! Decoding a segmentation model's frame scores into per-frame local speaker activity.
//!
//! A window's "local" speakers are the model's output slots; they carry no identity across
//! windows (clustering links them). Activity is hard (0 or 1) per frame and speaker.

/// How frame scores map to speakers.
#[derive(Debug, Clone, PartialEq)]
pub enum ScoreKind {
    /// One score per powerset class; `classes[c]` lists the speakers active in class `c`. The
    /// decoded class is the arg-max, whatever the activation (log-softmax, softmax or logits).
    Powerset {
        /// Speakers of each class.
        classes: Vec<Vec<usize>>,
    },
    /// One independent probability per speaker; active when above `threshold`.
    Multilabel {
        /// Activation threshold on probabilities.
        threshold: f32,
        /// Whether scores are logits (sigmoid is applied before thresholding).
        logits: bool,
    },
}

/// Hard local speaker activity of one window, `[frames, speakers]` row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalActivity {
    /// Frames in the window.
    pub frames: usize,
    /// Local speaker slots.
    pub speakers: usize,
    /// 1 where the speaker is active.
    pub active: Vec<u8>,
}

impl LocalActivity {
    /// Whether speaker `s` is active in frame `f`.
    pub fn is_active(&self, f: usize, s: usize) -> bool {
        self.active[f * self.speakers + s] != 0
    }

    /// Number of speakers active in frame `f`.
    pub fn count(&self, f: usize) -> usize {
        self.active[f * self.speakers..(f + 1) * self.speakers]
            .iter()
            .map(|&a| a as usize)
            .sum()
    }

    /// Number of frames where speaker `s` is active.
    pub fn frames_active(&self, s: usize) -> usize {
        (0..self.frames).filter(|&f| self.is_active(f, s)).count()
    }

    /// Number of frames where speaker `s` is the only active speaker.
    pub fn frames_alone(&self, s: usize) -> usize {
        (0..self.frames)
            .filter(|&f| self.is_active(f, s) && self.count(f) == 1)
            .count()
    }
}

/// Decodes `[frames, classes]` scores (`scores.len() == frames * width`) into hard activity for
/// `speakers` local speakers. Non-finite scores never win a class and never activate a speaker.
pub fn decode(scores: &[f32], frames: usize, speakers: usize, kind: &ScoreKind) -> LocalActivity {
    let width = scores.len().checked_div(frames).unwrap_or(0);
    let mut active = vec![0u8; frames * speakers];
    for f in 0..frames {
        let row = &scores[f * width..(f + 1) * width];
        let out = &mut active[f * speakers..(f + 1) * speakers];
        match kind {
            ScoreKind::Powerset { classes } => {
                let best = row
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(c, _)| c);
                if let Some(c) = best {
                    for &s in classes.get(c).map(Vec::as_slice).unwrap_or(&[]) {
                        if s < speakers {
                            out[s] = 1;
                        }
                    }
                }
            }
            ScoreKind::Multilabel { threshold, logits } => {
                for (s, &v) in row.iter().take(speakers).enumerate() {
                    let p = if *logits { 1.0 / (1.0 + (-v).exp()) } else { v };
                    if p.is_finite() && p > *threshold {
                        out[s] = 1;
                    }
                }
            }
        }
    }
    LocalActivity {
        frames,
        speakers,
        active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn powerset() -> ScoreKind {
        ScoreKind::Powerset {
            classes: vec![
                vec![],
                vec![0],
                vec![1],
                vec![2],
                vec![0, 1],
                vec![0, 2],
                vec![1, 2],
            ],
        }
    }

    #[test]
    fn powerset_argmax_picks_the_class_speakers() {
        let mut scores = vec![-9.0f32; 4 * 7];
        scores[0] = -0.1; // frame 0: silence
        scores[7 + 1] = -0.1; // frame 1: {0}
        scores[14 + 6] = -0.1; // frame 2: {1, 2}
        scores[21 + 4] = -0.1; // frame 3: {0, 1}
        let a = decode(&scores, 4, 3, &powerset());
        assert_eq!(a.active, vec![0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0]);
        assert_eq!(a.count(2), 2);
        assert_eq!(a.frames_active(1), 2);
        assert_eq!(a.frames_alone(0), 1);
    }

    #[test]
    fn nan_scores_never_win() {
        let mut scores = vec![-5.0f32; 7];
        scores[3] = f32::NAN;
        scores[2] = -1.0;
        let a = decode(&scores, 1, 3, &powerset());
        assert_eq!(a.active, vec![0, 1, 0]);
        let all_nan = vec![f32::NAN; 7];
        assert_eq!(decode(&all_nan, 1, 3, &powerset()).active, vec![0, 0, 0]);
    }

    #[test]
    fn multilabel_thresholds_probabilities_and_logits() {
        let probs = [0.9, 0.2, 0.51, f32::NAN, 0.0, 1.0];
        let a = decode(
            &probs,
            2,
            3,
            &ScoreKind::Multilabel {
                threshold: 0.5,
                logits: false,
            },
        );
        assert_eq!(a.active, vec![1, 0, 1, 0, 0, 1]);
        let logits = [2.0, -2.0, 0.1];
        let b = decode(
            &logits,
            1,
            3,
            &ScoreKind::Multilabel {
                threshold: 0.5,
                logits: true,
            },
        );
        assert_eq!(b.active, vec![1, 0, 1]);
    }

    #[test]
    fn empty_input_decodes_to_nothing() {
        let a = decode(&[], 0, 3, &powerset());
        assert_eq!(a.frames, 0);
        assert!(a.active.is_empty());
    }
}
