//! From per-window local activity and a local→global speaker mapping to recording-level output:
//! per-frame speaker count, overlap-aware speaker activity, an exclusive (one speaker at a time)
//! activity, and speaker turns in samples.
//!
//! All windows share one frame grid: recording frame `g` hears samples `[g·step, g·step+length)`
//! and describes the instant `g·step + length/2 + offset`, and a window starting at sample
//! `first_frame·step` maps its frame `f` to recording frame `first_frame + f`.

use crate::activity::LocalActivity;

/// Geometry of the recording-wide frame grid, in samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameGrid {
    /// Samples between frames.
    pub step: usize,
    /// Samples covered by one frame.
    pub length: usize,
    /// Samples from a frame's receptive-field centre to the instant it describes (a model whose
    /// labels lag or lead its receptive field; 0 for most).
    pub offset: usize,
}

impl FrameGrid {
    /// The instant frame `g` describes, in samples.
    pub fn centre(&self, g: usize) -> usize {
        g * self.step + self.length / 2 + self.offset
    }

    /// Number of grid frames needed to cover `samples` samples (frames whose receptive-field
    /// centre lies inside).
    pub fn frames_covering(&self, samples: usize) -> usize {
        let centre = self.length / 2;
        if samples <= centre {
            usize::from(samples > 0)
        } else {
            (samples - centre).div_ceil(self.step)
        }
    }

    /// Number of leading frames whose output span (a step around the instant each describes) ends
    /// within the first `samples` samples.
    pub fn frames_within(&self, samples: usize) -> usize {
        let reach = self.length / 2 + self.offset + self.step - self.step / 2;
        if samples < reach {
            0
        } else {
            (samples - reach) / self.step + 1
        }
    }

    /// The frame that describes the instant nearest to sample position `centre`.
    pub fn nearest(&self, centre: f64) -> usize {
        ((centre - (self.length / 2 + self.offset) as f64) / self.step as f64)
            .round()
            .max(0.0) as usize
    }

    /// Sample range `[start, end)` that frame `g` stands for in the output: a `step`-long span
    /// around its centre, widened to the recording's edges at the first and last frame.
    pub fn span(&self, g: usize, frames: usize, total_samples: usize) -> (usize, usize) {
        let centre = self.centre(g);
        let start = if g == 0 {
            0
        } else {
            centre.saturating_sub(self.step / 2)
        };
        let end = if g + 1 >= frames {
            total_samples
        } else {
            centre + self.step - self.step / 2
        };
        (start.min(total_samples), end.min(total_samples))
    }
}

/// One window's activity placed on the recording grid, with the global speaker of each local slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedWindow {
    /// Recording frame of the window's first frame.
    pub first_frame: usize,
    /// Frames of the window that hold real audio (the rest is padding past the end).
    pub valid_frames: usize,
    /// Hard local activity.
    pub activity: LocalActivity,
    /// Global speaker of each local slot; `None` for slots not assigned (dropped).
    pub speakers: Vec<Option<usize>>,
}

/// Recording-level activity, `[frames, speakers]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Frames on the recording grid.
    pub frames: usize,
    /// Global speakers.
    pub speakers: usize,
    /// 1 where a speaker is active.
    pub active: Vec<u8>,
}

/// Per-frame number of speakers: the mean over covering windows of their local count, rounded.
pub fn speaker_count(windows: &[PlacedWindow], frames: usize) -> Vec<u8> {
    let mut sum = vec![0f32; frames];
    let mut hits = vec![0u32; frames];
    for w in windows {
        for f in 0..w.valid_frames.min(w.activity.frames) {
            let g = w.first_frame + f;
            if g < frames {
                sum[g] += w.activity.count(f) as f32;
                hits[g] += 1;
            }
        }
    }
    sum.iter()
        .zip(&hits)
        .map(|(&s, &h)| {
            if h == 0 {
                0
            } else {
                (s / h as f32).round() as u8
            }
        })
        .collect()
}

/// Overlap-aware and exclusive activity of `speakers` global speakers.
///
/// Each frame keeps the `count[g]` global speakers with the highest mean activity over the windows
/// covering it (only speakers active in at least one of those windows qualify); the exclusive
/// output keeps only the highest one.
pub fn reconstruct(
    windows: &[PlacedWindow],
    count: &[u8],
    speakers: usize,
) -> (Activity, Activity) {
    let frames = count.len();
    let mut score = vec![0f32; frames * speakers];
    let mut hits = vec![0u32; frames];
    for w in windows {
        for f in 0..w.valid_frames.min(w.activity.frames) {
            let g = w.first_frame + f;
            if g >= frames {
                break;
            }
            hits[g] += 1;
            for (s, k) in w.speakers.iter().enumerate() {
                if let Some(k) = *k
                    && k < speakers
                    && w.activity.is_active(f, s)
                {
                    score[g * speakers + k] += 1.0;
                }
            }
        }
    }
    let mut overlap = vec![0u8; frames * speakers];
    let mut exclusive = vec![0u8; frames * speakers];
    let mut order: Vec<usize> = Vec::with_capacity(speakers);
    for g in 0..frames {
        if hits[g] == 0 || count[g] == 0 {
            continue;
        }
        let row = &score[g * speakers..(g + 1) * speakers];
        order.clear();
        order.extend((0..speakers).filter(|&k| row[k] > 0.0));
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for (rank, &k) in order.iter().take(count[g] as usize).enumerate() {
            overlap[g * speakers + k] = 1;
            if rank == 0 {
                exclusive[g * speakers + k] = 1;
            }
        }
    }
    (
        Activity {
            frames,
            speakers,
            active: overlap,
        },
        Activity {
            frames,
            speakers,
            active: exclusive,
        },
    )
}

/// A speaker turn in samples, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerTurn {
    /// First sample.
    pub start: usize,
    /// One past the last sample.
    pub end: usize,
    /// Global speaker index.
    pub speaker: usize,
}

/// How runs of active frames become turns, in samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnRules {
    /// Drop turns shorter than this.
    pub min_on: usize,
    /// Fill gaps shorter than this between turns of one speaker.
    pub min_off: usize,
    /// Start every turn this much earlier.
    pub pad_onset: usize,
    /// End every turn this much later.
    pub pad_offset: usize,
}

/// Turns from frame activity: runs of active frames become turns, widened by the pads (within the
/// recording); turns of one speaker that then overlap or sit closer than `min_off` merge, and
/// turns shorter than `min_on` are dropped. Sorted by start, then speaker.
pub fn turns(
    activity: &Activity,
    grid: FrameGrid,
    total_samples: usize,
    rules: TurnRules,
) -> Vec<SpeakerTurn> {
    let mut out = Vec::new();
    for k in 0..activity.speakers {
        let mut mine: Vec<SpeakerTurn> = Vec::new();
        let mut run_start: Option<usize> = None;
        for g in 0..=activity.frames {
            let on = g < activity.frames && activity.active[g * activity.speakers + k] != 0;
            match (on, run_start) {
                (true, None) => run_start = Some(g),
                (false, Some(s)) => {
                    let start = grid
                        .span(s, activity.frames, total_samples)
                        .0
                        .saturating_sub(rules.pad_onset);
                    let end = (grid.span(g - 1, activity.frames, total_samples).1
                        + rules.pad_offset)
                        .min(total_samples);
                    match mine.last_mut() {
                        Some(prev) if start <= prev.end || start - prev.end < rules.min_off => {
                            prev.end = prev.end.max(end)
                        }
                        _ if end > start => mine.push(SpeakerTurn {
                            start,
                            end,
                            speaker: k,
                        }),
                        _ => {}
                    }
                    run_start = None;
                }
                _ => {}
            }
        }
        out.extend(mine.into_iter().filter(|t| t.end - t.start >= rules.min_on));
    }
    out.sort_by_key(|t| (t.start, t.speaker));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(first: usize, rows: &[[u8; 2]], speakers: Vec<Option<usize>>) -> PlacedWindow {
        PlacedWindow {
            first_frame: first,
            valid_frames: rows.len(),
            activity: LocalActivity {
                frames: rows.len(),
                speakers: 2,
                active: rows.iter().flatten().copied().collect(),
            },
            speakers,
        }
    }

    #[test]
    fn count_is_the_rounded_mean_over_covering_windows() {
        let a = window(0, &[[1, 0], [1, 1], [1, 1], [0, 0]], vec![Some(0), Some(1)]);
        let b = window(2, &[[1, 0], [0, 0], [1, 0]], vec![Some(0), Some(1)]);
        // frame 2: (2 + 1) / 2 = 1.5 -> 2; frame 3: (0 + 0)/2 = 0; frame 4: 1.
        assert_eq!(speaker_count(&[a, b], 6), vec![1, 2, 2, 0, 1, 0]);
    }

    #[test]
    fn reconstruction_keeps_the_top_count_speakers_and_maps_locals() {
        // Window b's slot 0 is global speaker 1: slots carry no identity across windows.
        let a = window(0, &[[1, 0], [1, 1], [0, 1]], vec![Some(0), Some(1)]);
        let b = window(1, &[[1, 0], [1, 0], [0, 1]], vec![Some(1), Some(0)]);
        let windows = [a, b];
        let count = speaker_count(&windows, 4);
        assert_eq!(count, vec![1, 2, 1, 1]);
        let (overlap, exclusive) = reconstruct(&windows, &count, 2);
        assert_eq!(overlap.active, vec![1, 0, 1, 1, 0, 1, 1, 0]);
        assert_eq!(exclusive.active.iter().map(|&v| v as u32).sum::<u32>(), 4);
        for g in 0..4 {
            assert!(exclusive.active[g * 2..g * 2 + 2].iter().sum::<u8>() <= 1);
        }
    }

    #[test]
    fn dropped_slots_and_padding_frames_are_ignored() {
        let mut a = window(0, &[[1, 1], [1, 1]], vec![Some(0), None]);
        a.valid_frames = 1;
        let count = speaker_count(std::slice::from_ref(&a), 2);
        assert_eq!(count, vec![2, 0]);
        let (overlap, _) = reconstruct(&[a], &count, 1);
        assert_eq!(overlap.active, vec![1, 0]);
    }

    /// Speaker 0: frames 0-2 on, 3 off, 4-5 on; speaker 1: frame 7 on; 10-sample frames.
    fn gap_fixture() -> (Activity, FrameGrid) {
        let grid = FrameGrid {
            step: 10,
            length: 30,
            offset: 0,
        };
        let rows: [[u8; 2]; 8] = [
            [1, 0],
            [1, 0],
            [1, 0],
            [0, 0],
            [1, 0],
            [1, 0],
            [0, 0],
            [0, 1],
        ];
        let act = Activity {
            frames: 8,
            speakers: 2,
            active: rows.iter().flatten().copied().collect(),
        };
        (act, grid)
    }

    /// A turn of `speaker` over samples `start..end`.
    fn turn(start: usize, end: usize, speaker: usize) -> SpeakerTurn {
        SpeakerTurn {
            start,
            end,
            speaker,
        }
    }

    #[test]
    fn turns_fill_short_gaps_and_drop_short_turns() {
        let (act, grid) = gap_fixture();
        let total = 100;
        let t = turns(&act, grid, total, TurnRules::default());
        assert_eq!(t, vec![turn(0, 40, 0), turn(50, 70, 0), turn(80, 100, 1),]);
        let filled = turns(
            &act,
            grid,
            total,
            TurnRules {
                min_off: 11,
                ..Default::default()
            },
        );
        assert_eq!(filled[0], turn(0, 70, 0));
        let long_only = turns(
            &act,
            grid,
            total,
            TurnRules {
                min_on: 25,
                ..Default::default()
            },
        );
        assert_eq!(long_only, vec![turn(0, 40, 0)]);
        // Padding widens turns within the recording and merges those that then touch.
        let padded = turns(
            &act,
            grid,
            total,
            TurnRules {
                pad_onset: 5,
                pad_offset: 6,
                ..Default::default()
            },
        );
        assert_eq!(padded, vec![turn(0, 76, 0), turn(75, 100, 1),]);
    }

    #[test]
    fn grid_covers_the_recording() {
        let grid = FrameGrid {
            step: 270,
            length: 991,
            offset: 0,
        };
        assert_eq!(grid.frames_covering(0), 0);
        assert_eq!(grid.frames_covering(100), 1);
        let n = grid.frames_covering(160_000);
        assert_eq!(grid.span(n - 1, n, 160_000).1, 160_000);
        assert!((n - 1) * 270 + 495 < 160_000 && n * 270 + 495 >= 160_000);
    }

    #[test]
    fn an_offset_moves_the_instants_frames_describe_but_not_their_count() {
        let plain = FrameGrid {
            step: 270,
            length: 991,
            offset: 0,
        };
        let late = FrameGrid {
            offset: 320,
            ..plain
        };
        assert_eq!(
            late.frames_covering(160_000),
            plain.frames_covering(160_000)
        );
        assert_eq!(late.centre(10), plain.centre(10) + 320);
        let (a, b) = plain.span(10, 100, 160_000);
        assert_eq!(late.span(10, 100, 160_000), (a + 320, b + 320));
        // The first and last frames still reach the recording's edges.
        assert_eq!(late.span(0, 100, 160_000).0, 0);
        assert_eq!(late.span(99, 100, 160_000).1, 160_000);
        assert_eq!(late.nearest(late.centre(42) as f64), 42);
        assert_eq!(plain.nearest(late.centre(42) as f64), 43);
        // The frames whose span ends inside a stretch of audio: later with the offset.
        for samples in [0, 949, 950, 48_000, 48_269, 48_270] {
            let n = late.frames_within(samples);
            if n > 0 {
                assert!(late.span(n - 1, 1000, 1 << 30).1 <= samples, "{samples}");
            }
            assert!(late.span(n, 1000, 1 << 30).1 > samples, "{samples}");
        }
        assert!(late.frames_within(48_000) < plain.frames_within(48_000));
    }
}
