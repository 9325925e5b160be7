//! Diarization error rate, computed the way pyannote.metrics computes it: overlapped speech
//! scored, a collar of total width `collar` removed around every reference turn boundary, both
//! sides cropped to the UEM (or to the extent of both when there is none), and the one-to-one
//! speaker mapping that maximises overlap (Hungarian).

use std::collections::BTreeMap;
use std::ops::AddAssign;

use crate::assignment::max_weight_matching;
use crate::rttm::{Turn, samples_to_secs, secs_to_samples};

/// The components of DER, in samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DerBreakdown {
    /// Reference speech, counting overlapped speech once per speaker.
    pub total: u64,
    /// Reference speech with no hypothesis speaker to match it.
    pub miss: u64,
    /// Hypothesis speech beyond the reference speakers present.
    pub false_alarm: u64,
    /// Speech attributed to the wrong (mapped) speaker.
    pub confusion: u64,
    /// Speech attributed to the right speaker.
    pub correct: u64,
    /// Miss and false alarm split by how many reference speakers talk (0, 1, 2, 3 or more).
    pub by_speakers: [CountSplit; 4],
}

/// Miss and false alarm where a given number of reference speakers talk, in samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountSplit {
    /// Time with that many reference speakers.
    pub time: u64,
    /// Reference speech there, counting overlapped speech once per speaker.
    pub speech: u64,
    /// Reference speech there with no hypothesis speaker to match it.
    pub miss: u64,
    /// Hypothesis speech there beyond the reference speakers.
    pub false_alarm: u64,
}

impl AddAssign for CountSplit {
    fn add_assign(&mut self, o: Self) {
        self.time += o.time;
        self.speech += o.speech;
        self.miss += o.miss;
        self.false_alarm += o.false_alarm;
    }
}

impl DerBreakdown {
    /// Diarization error rate: (miss + false alarm + confusion) / total. Zero reference speech
    /// gives 0 when there is no error and infinity otherwise.
    pub fn der(&self) -> f64 {
        let errors = self.miss + self.false_alarm + self.confusion;
        if self.total == 0 {
            if errors == 0 { 0.0 } else { f64::INFINITY }
        } else {
            errors as f64 / self.total as f64
        }
    }

    /// A component as a fraction of the reference speech.
    pub fn rate(&self, component: u64) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            component as f64 / self.total as f64
        }
    }
}

impl AddAssign for DerBreakdown {
    fn add_assign(&mut self, o: Self) {
        self.total += o.total;
        self.miss += o.miss;
        self.false_alarm += o.false_alarm;
        self.confusion += o.confusion;
        self.correct += o.correct;
        for (a, b) in self.by_speakers.iter_mut().zip(o.by_speakers) {
            *a += b;
        }
    }
}

/// Sorted, disjoint union of intervals.
fn union(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.retain(|&(s, e)| e > s);
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `a` minus `b`, both sorted and disjoint.
fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut s, e) in a {
        for &(bs, be) in b {
            if be <= s || bs >= e {
                continue;
            }
            if bs > s {
                out.push((s, bs));
            }
            s = s.max(be);
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

/// Index of each distinct speaker label, in order of first appearance.
fn label_index(turns: &[Turn]) -> BTreeMap<&str, usize> {
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for t in turns {
        let next = names.len();
        names.entry(t.speaker.as_str()).or_insert(next);
    }
    names
}

/// Scores `hypothesis` against `reference` (one recording). `uem` limits the scored regions;
/// `collar` is the total width removed around each reference boundary, in samples.
pub fn score(
    reference: &[Turn],
    hypothesis: &[Turn],
    uem: Option<&[(u64, u64)]>,
    collar: u64,
) -> DerBreakdown {
    let scored = scored_regions(reference, hypothesis, uem, collar);
    let (ref_names, hyp_names) = (label_index(reference), label_index(hypothesis));
    let (active, cooc) = segment_activity(reference, hypothesis, &scored, &ref_names, &hyp_names);
    let mapping: Vec<Option<usize>> = max_weight_matching(&cooc)
        .into_iter()
        .enumerate()
        .map(|(r, h)| h.filter(|&h| cooc[r][h] > 0.0))
        .collect();

    let mut out = DerBreakdown::default();
    for (dur, r, h) in active {
        let (n_ref, n_hyp) = (r.len() as u64, h.len() as u64);
        let correct = r
            .iter()
            .filter(|&&a| mapping[a].is_some_and(|b| h.contains(&b)))
            .count() as u64;
        let (miss, false_alarm) = (
            n_ref.saturating_sub(n_hyp) * dur,
            n_hyp.saturating_sub(n_ref) * dur,
        );
        out.total += n_ref * dur;
        out.miss += miss;
        out.false_alarm += false_alarm;
        out.by_speakers[r.len().min(3)] += CountSplit {
            time: dur,
            speech: n_ref * dur,
            miss,
            false_alarm,
        };
        out.confusion += (n_ref.min(n_hyp) - correct) * dur;
        out.correct += correct * dur;
    }
    out
}

/// The regions scored: the UEM's (else the extent of both turn lists), less a collar of
/// `collar` samples around every reference boundary.
fn scored_regions(
    reference: &[Turn],
    hypothesis: &[Turn],
    uem: Option<&[(u64, u64)]>,
    collar: u64,
) -> Vec<(u64, u64)> {
    let scored = match uem {
        Some(u) => union(u.to_vec()),
        None => {
            let all = reference.iter().chain(hypothesis).map(|t| (t.start, t.end));
            let lo = all.clone().map(|x| x.0).min();
            let hi = all.map(|x| x.1).max();
            match (lo, hi) {
                (Some(lo), Some(hi)) => vec![(lo, hi)],
                _ => Vec::new(),
            }
        }
    };
    if collar == 0 {
        return scored;
    }
    let half = collar / 2;
    let zones = reference
        .iter()
        .flat_map(|t| [t.start, t.end])
        .map(|b| (b.saturating_sub(half), b + (collar - half)))
        .collect();
    subtract(&scored, &union(zones))
}

/// One scored elementary segment: its length, and the reference and hypothesis speakers active
/// in it (label indices).
type Segment = (u64, Vec<usize>, Vec<usize>);

/// The scored elementary segments (between consecutive boundaries of any turn or scored
/// region) with who is active in each, and the time each reference speaker shares with each
/// hypothesis speaker (`[reference][hypothesis]`).
fn segment_activity(
    reference: &[Turn],
    hypothesis: &[Turn],
    scored: &[(u64, u64)],
    ref_names: &BTreeMap<&str, usize>,
    hyp_names: &BTreeMap<&str, usize>,
) -> (Vec<Segment>, Vec<Vec<f64>>) {
    let (nr, nh) = (ref_names.len(), hyp_names.len());
    let mut cuts: Vec<u64> = reference
        .iter()
        .chain(hypothesis)
        .flat_map(|t| [t.start, t.end])
        .chain(scored.iter().flat_map(|&(s, e)| [s, e]))
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    // Speaker activity per elementary segment, by sweeping with +1/-1 events per label.
    let index = |c: u64| cuts.binary_search(&c).unwrap_or(0);
    let segments = cuts.len().saturating_sub(1);
    let deltas = |turns: &[Turn], names: &BTreeMap<&str, usize>| {
        let mut delta = vec![vec![0i32; names.len()]; cuts.len()];
        for t in turns {
            let k = names[t.speaker.as_str()];
            delta[index(t.start)][k] += 1;
            delta[index(t.end)][k] -= 1;
        }
        delta
    };
    let (ref_delta, hyp_delta) = (deltas(reference, ref_names), deltas(hypothesis, hyp_names));
    let mut in_scored = vec![false; segments];
    for &(s, e) in scored {
        for flag in in_scored.iter_mut().take(index(e)).skip(index(s)) {
            *flag = true;
        }
    }
    let mut ref_on = vec![0i32; nr];
    let mut hyp_on = vec![0i32; nh];
    let mut active: Vec<Segment> = Vec::new();
    let mut cooc = vec![vec![0f64; nh]; nr];
    for i in 0..segments {
        for k in 0..nr {
            ref_on[k] += ref_delta[i][k];
        }
        for k in 0..nh {
            hyp_on[k] += hyp_delta[i][k];
        }
        if !in_scored[i] {
            continue;
        }
        let dur = cuts[i + 1] - cuts[i];
        let r: Vec<usize> = (0..nr).filter(|&k| ref_on[k] > 0).collect();
        let h: Vec<usize> = (0..nh).filter(|&k| hyp_on[k] > 0).collect();
        for &a in &r {
            for &b in &h {
                cooc[a][b] += dur as f64;
            }
        }
        active.push((dur, r, h));
    }
    (active, cooc)
}

/// One reference recording's score in a comparison of RTTM sets.
#[derive(Debug, Clone, PartialEq)]
pub struct FileScore {
    /// The recording's RTTM file id.
    pub file_id: String,
    /// Its DER components.
    pub breakdown: DerBreakdown,
    /// Whether the hypothesis holds the recording at all (else all its speech is missed).
    pub in_hypothesis: bool,
    /// Speakers who talk in the scored regions: in the reference, and in the hypothesis.
    pub speakers: (usize, usize),
}

/// How many speakers talk in `turns` within `uem` (everywhere when `None`).
pub fn speakers_in(turns: &[Turn], uem: Option<&[(u64, u64)]>) -> usize {
    let inside = |t: &Turn| uem.is_none_or(|u| u.iter().any(|&(a, b)| t.start < b && t.end > a));
    let names: std::collections::BTreeSet<&str> = (turns.iter())
        .filter(|t| t.end > t.start && inside(t))
        .map(|t| t.speaker.as_str())
        .collect();
    names.len()
}

/// How the classes of [`DerBreakdown::by_speakers`] are named.
pub const COUNT_NAMES: [&str; 4] = ["0", "1", "2", "3+"];

/// The DER of a set of recordings, per recording and pooled.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The total collar, seconds.
    pub collar_secs: f64,
    /// Every reference recording, by file id.
    pub files: Vec<FileScore>,
    /// The components of all recordings added up.
    pub pooled: DerBreakdown,
}

/// Scores every reference file id (`uems` by file id limit the scored regions; `collar_secs` is
/// the total collar); ids missing from the hypothesis are all missed.
pub fn score_all(
    refs: &BTreeMap<String, Vec<Turn>>,
    hyps: &BTreeMap<String, Vec<Turn>>,
    uems: Option<&BTreeMap<String, Vec<(u64, u64)>>>,
    collar_secs: f64,
) -> Report {
    let collar = secs_to_samples(collar_secs);
    let files: Vec<FileScore> = refs
        .iter()
        .map(|(id, reference)| {
            let hyp = hyps.get(id);
            let uem = uems.and_then(|u| u.get(id)).map(Vec::as_slice);
            let hyp_turns = hyp.map_or(&[][..], Vec::as_slice);
            FileScore {
                file_id: id.clone(),
                breakdown: score(reference, hyp_turns, uem, collar),
                in_hypothesis: hyp.is_some(),
                speakers: (speakers_in(reference, uem), speakers_in(hyp_turns, uem)),
            }
        })
        .collect();
    let mut pooled = DerBreakdown::default();
    for f in &files {
        pooled += f.breakdown;
    }
    Report {
        collar_secs,
        files,
        pooled,
    }
}

impl Report {
    /// Recordings whose hypothesis has as many speakers as their reference, of all of them.
    pub fn speaker_count_exact(&self) -> (usize, usize) {
        let exact = self.files.iter().filter(|f| f.speakers.0 == f.speakers.1);
        (exact.count(), self.files.len())
    }

    /// A table: the collar, a header, one line per recording (noting those the hypothesis
    /// lacks) with its speaker counts (reference / hypothesis), a `POOLED` line with the
    /// recordings counted exactly, and the pooled miss and false alarm by how many reference
    /// speakers talk; rates in percent, times in seconds.
    pub fn table(&self) -> String {
        let line = |id: &str, b: &DerBreakdown, speakers: &str, note: &str| {
            format!(
                "{:<32} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {speakers:>9}{note}\n",
                id,
                100.0 * b.der(),
                100.0 * b.rate(b.miss),
                100.0 * b.rate(b.false_alarm),
                100.0 * b.rate(b.confusion),
                samples_to_secs(b.total)
            )
        };
        let mut out = format!(
            "collar {:.3} s, overlap scored, optimal mapping\n{:<32} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}\n",
            self.collar_secs, "file", "DER%", "miss%", "FA%", "conf%", "speech s", "speakers"
        );
        for f in &self.files {
            let note = if f.in_hypothesis {
                ""
            } else {
                "  (no hypothesis)"
            };
            let speakers = format!("{} / {}", f.speakers.0, f.speakers.1);
            out.push_str(&line(&f.file_id, &f.breakdown, &speakers, note));
        }
        let (exact, of) = self.speaker_count_exact();
        let note = format!("  (speaker count exact in {exact} of {of})");
        out.push_str(&line("POOLED", &self.pooled, "", &note));
        out.push_str(&format!(
            "\npooled by reference speakers talking\n{:<12} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}\n",
            "speakers", "time s", "speech s", "miss s", "FA s", "miss%", "FA%"
        ));
        for (n, c) in self.pooled.by_speakers.iter().enumerate() {
            let pct = |v: u64| {
                if c.speech == 0 {
                    "-".to_string()
                } else {
                    format!("{:.2}", 100.0 * v as f64 / c.speech as f64)
                }
            };
            out.push_str(&format!(
                "{:<12} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>8} {:>8}\n",
                COUNT_NAMES[n],
                samples_to_secs(c.time),
                samples_to_secs(c.speech),
                samples_to_secs(c.miss),
                samples_to_secs(c.false_alarm),
                pct(c.miss),
                pct(c.false_alarm)
            ));
        }
        out
    }

    /// As JSON: `collar_secs`, `files` and `pooled`, each with its rates in percent (two
    /// decimals), reference speech in seconds and whether the hypothesis holds it; each file
    /// with its `reference_speakers` and `hypothesis_speakers`, and `speaker_count_exact`
    /// (`files`, `of`, `share` in percent); files and pooled with `by_reference_speakers`, the
    /// miss and false alarm where 0, 1, 2 or 3+ reference speakers talk, in seconds.
    pub fn to_json(&self) -> serde_json::Value {
        let pct = |v: f64| (v * 10000.0).round() / 100.0;
        let row = |id: &str, b: &DerBreakdown, found: bool| {
            let by: Vec<serde_json::Value> = (b.by_speakers.iter().enumerate())
                .map(|(n, c)| {
                    serde_json::json!({
                        "reference_speakers": COUNT_NAMES[n],
                        "time_secs": samples_to_secs(c.time),
                        "speech_secs": samples_to_secs(c.speech),
                        "miss_secs": samples_to_secs(c.miss),
                        "false_alarm_secs": samples_to_secs(c.false_alarm),
                    })
                })
                .collect();
            serde_json::json!({
                "file_id": id, "der": pct(b.der()), "miss": pct(b.rate(b.miss)),
                "false_alarm": pct(b.rate(b.false_alarm)), "confusion": pct(b.rate(b.confusion)),
                "reference_speech_secs": samples_to_secs(b.total), "in_hypothesis": found,
                "by_reference_speakers": by,
            })
        };
        let files: Vec<serde_json::Value> = (self.files.iter())
            .map(|f| {
                let mut r = row(&f.file_id, &f.breakdown, f.in_hypothesis);
                r["reference_speakers"] = f.speakers.0.into();
                r["hypothesis_speakers"] = f.speakers.1.into();
                r
            })
            .collect();
        let (exact, of) = self.speaker_count_exact();
        let share = if of == 0 {
            0.0
        } else {
            exact as f64 / of as f64
        };
        serde_json::json!({
            "collar_secs": self.collar_secs,
            "files": files,
            "pooled": row("POOLED", &self.pooled, true),
            "speaker_count_exact": {"files": exact, "of": of, "share": pct(share)},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: u64, end: u64, s: &str) -> Turn {
        Turn {
            start,
            end,
            speaker: s.into(),
        }
    }

    #[test]
    fn speakers_are_counted_within_the_scored_regions() {
        let turns = [
            t(0, 100, "A"),
            t(100, 200, "B"),
            t(300, 400, "C"),
            t(50, 50, "D"),
        ];
        assert_eq!(speakers_in(&turns, None), 3, "an empty turn is no speech");
        assert_eq!(speakers_in(&turns, Some(&[(0, 150)])), 2);
        assert_eq!(speakers_in(&turns, Some(&[(200, 300)])), 0);
        let refs = BTreeMap::from([("a".to_string(), turns.to_vec()), ("b".into(), vec![])]);
        let hyps = BTreeMap::from([("a".to_string(), vec![t(0, 400, "x"), t(0, 10, "y")])]);
        let report = score_all(&refs, &hyps, None, 0.0);
        assert_eq!(report.files[0].speakers, (3, 2));
        assert_eq!(report.files[1].speakers, (0, 0));
        assert_eq!(report.speaker_count_exact(), (1, 2));
        assert_eq!(report.to_json()["speaker_count_exact"]["share"], 50.0);
        assert!(report.table().contains("speaker count exact in 1 of 2"));
    }

    #[test]
    fn miss_and_false_alarm_are_split_by_reference_speakers() {
        // Reference: A 0-100, B 50-150 (two speakers 50-100), C 60-80 (three 60-80); nobody
        // 150-200. Hypothesis: x 0-200 alone.
        let r = [t(0, 100, "A"), t(50, 150, "B"), t(60, 80, "C")];
        let b = score(&r, &[t(0, 200, "x")], None, 0);
        let split = b.by_speakers;
        let c = |time, speech, miss, false_alarm| CountSplit {
            time,
            speech,
            miss,
            false_alarm,
        };
        let expected = [
            c(50, 0, 0, 50),
            c(100, 100, 0, 0),
            c(30, 60, 30, 0),
            c(20, 60, 40, 0),
        ];
        assert_eq!(split, expected);
        let miss: u64 = split.iter().map(|c| c.miss).sum();
        let fa: u64 = split.iter().map(|c| c.false_alarm).sum();
        assert_eq!((miss, fa), (b.miss, b.false_alarm));
        let refs = BTreeMap::from([("a".to_string(), r.to_vec())]);
        let hyps = BTreeMap::from([("a".to_string(), vec![t(0, 200, "x")])]);
        let report = score_all(&refs, &hyps, None, 0.0);
        assert_eq!(report.pooled.by_speakers, split);
        let json = report.to_json();
        assert_eq!(
            json["pooled"]["by_reference_speakers"][3]["reference_speakers"],
            "3+"
        );
        assert!(
            report
                .table()
                .contains("pooled by reference speakers talking")
        );
    }

    #[test]
    fn perfect_and_relabelled_hypotheses_score_zero() {
        let r = [t(0, 100, "A"), t(100, 200, "B"), t(150, 250, "A")];
        assert_eq!(score(&r, &r, None, 0).der(), 0.0);
        let h = [t(0, 100, "x"), t(100, 200, "y"), t(150, 250, "x")];
        let b = score(&r, &h, None, 0);
        assert_eq!(b.der(), 0.0);
        assert_eq!(b.total, 300 - 50 + 50); // A: 0-100, 150-250 (200); B: 100 (overlap counted twice)
    }

    #[test]
    fn miss_false_alarm_and_confusion() {
        let r = [t(0, 100, "A"), t(100, 200, "B")];
        // all missed
        let b = score(&r, &[], Some(&[(0, 200)]), 0);
        assert_eq!((b.total, b.miss, b.der()), (200, 200, 1.0));
        // a false alarm after the reference
        let h = [t(0, 100, "x"), t(100, 200, "y"), t(200, 300, "z")];
        let b = score(&r, &h, Some(&[(0, 300)]), 0);
        assert_eq!((b.false_alarm, b.der()), (100, 0.5));
        // one hypothesis speaker for both: half confused
        let b = score(&r, &[t(0, 200, "x")], None, 0);
        assert_eq!((b.confusion, b.correct), (100, 100));
        // overlap in the reference, one speaker in the hypothesis: a miss, not a confusion
        let r2 = [t(0, 100, "A"), t(0, 100, "B")];
        let b = score(&r2, &[t(0, 100, "x")], None, 0);
        assert_eq!(
            (b.total, b.miss, b.confusion, b.correct),
            (200, 100, 0, 100)
        );
    }

    #[test]
    fn collar_and_uem_cropping() {
        let r = [t(100, 200, "A")];
        let h = [t(110, 210, "x")];
        // 10 samples missed at the start and 10 false alarm at the end, without collar.
        let b = score(&r, &h, None, 0);
        assert_eq!((b.miss, b.false_alarm), (10, 10));
        // A 40-sample collar removes 20 samples each side of 100 and 200: no error left.
        let b = score(&r, &h, None, 40);
        assert_eq!(b.der(), 0.0);
        assert_eq!(b.total, 60);
        // The UEM crops both sides.
        let b = score(&r, &h, Some(&[(150, 205)]), 0);
        assert_eq!((b.total, b.false_alarm), (50, 5));
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(score(&[], &[], None, 0), DerBreakdown::default());
        assert_eq!(score(&[], &[t(0, 10, "x")], None, 0).der(), f64::INFINITY);
        let mut pooled = DerBreakdown::default();
        pooled += score(&[t(0, 10, "A")], &[], None, 0);
        pooled += score(&[t(0, 30, "A")], &[t(0, 30, "x")], None, 0);
        assert_eq!(pooled.der(), 0.25);
    }

    #[test]
    fn a_set_of_recordings_is_scored_per_file_and_pooled() {
        let by_id = |turns: &[(&str, Turn)]| {
            let mut m: BTreeMap<String, Vec<Turn>> = BTreeMap::new();
            for (id, turn) in turns {
                m.entry(id.to_string()).or_default().push(turn.clone());
            }
            m
        };
        let refs = by_id(&[("a", t(0, 16_000, "A")), ("b", t(0, 32_000, "B"))]);
        let hyps = by_id(&[("a", t(0, 16_000, "x"))]);
        let report = score_all(&refs, &hyps, None, 0.0);
        assert_eq!(report.files.len(), 2);
        assert!(report.files[0].in_hypothesis && !report.files[1].in_hypothesis);
        assert_eq!((report.pooled.total, report.pooled.miss), (48_000, 32_000));
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "collar 0.000 s, overlap scored, optimal mapping");
        assert!(lines[1].starts_with("file ") && lines[1].ends_with("  speech s  speakers"));
        assert!(lines[2].starts_with("a ") && lines[2].contains(" 0.00 "));
        assert!(lines[3].starts_with("b ") && lines[3].ends_with("  (no hypothesis)"));
        assert!(lines[4].starts_with("POOLED") && lines[4].contains(" 66.67 "));
        let json = report.to_json();
        assert_eq!(json["pooled"]["der"], 66.67);
        assert_eq!(json["files"][1]["in_hypothesis"], false);
        assert_eq!(json["files"][1]["reference_speech_secs"], 2.0);
    }
}
