//! RTTM and UEM files: reading and writing speaker turns and scored regions.
//!
//! Times are seconds in the files and integer samples at 16 kHz in memory. Reading the files
//! is the caller's business: these functions take and return text.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;

use crate::reconstruct::SpeakerTurn;

use crate::SAMPLE_RATE;

/// Seconds to samples, rounded to the nearest sample.
pub fn secs_to_samples(secs: f64) -> u64 {
    (secs * f64::from(SAMPLE_RATE)).round().max(0.0) as u64
}

/// Samples to seconds.
pub fn samples_to_secs(samples: u64) -> f64 {
    samples as f64 / f64::from(SAMPLE_RATE)
}

/// One speaker turn, `[start, end)` in samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// First sample.
    pub start: u64,
    /// One past the last sample.
    pub end: u64,
    /// Speaker label.
    pub speaker: String,
}

/// A line of an RTTM or UEM file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}: `{text}`")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
    /// The line.
    pub text: String,
}

/// One of several named texts that could not be read: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("parsing {name}")]
pub struct SourceError {
    /// The text's name (its file, as the caller names it).
    pub name: String,
    /// What is wrong in it.
    #[source]
    pub error: ParseError,
}

/// The RTTM file id of a recording: its file name without the extension (`audio` for a path
/// with no file name).
pub fn file_id(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "audio".into(), |s| s.to_string_lossy().into_owned())
}

/// Speaker label of global speaker `k`: `SPEAKER_00`, `SPEAKER_01`, ...
pub fn speaker_label(k: usize) -> String {
    format!("SPEAKER_{k:02}")
}

/// Turns of global speakers as RTTM turns, with their speakers' labels.
pub fn to_rttm_turns(turns: &[SpeakerTurn]) -> Vec<Turn> {
    turns
        .iter()
        .map(|t| Turn {
            start: t.start as u64,
            end: t.end as u64,
            speaker: speaker_label(t.speaker),
        })
        .collect()
}

fn seconds(field: Option<&str>, what: &str, line: usize, text: &str) -> Result<f64, ParseError> {
    let err = |reason: String| ParseError {
        line,
        reason,
        text: text.to_string(),
    };
    let v: f64 = field
        .ok_or_else(|| err(format!("missing {what}")))?
        .parse()
        .map_err(|_| err(format!("bad {what}")))?;
    if !v.is_finite() || v < 0.0 {
        return Err(err(format!("{what} must be a non-negative number")));
    }
    Ok(v)
}

/// Reads the SPEAKER lines of an RTTM text, grouped by file id. Blank lines, comments (`#`,
/// `;;`) and other record types are skipped; turns of zero duration are dropped.
pub fn parse(text: &str) -> Result<BTreeMap<String, Vec<Turn>>, ParseError> {
    let mut out: BTreeMap<String, Vec<Turn>> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(";;") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[0] != "SPEAKER" {
            continue;
        }
        if fields.len() < 8 {
            return Err(ParseError {
                line: i + 1,
                reason: "a SPEAKER line needs at least 8 fields".into(),
                text: raw.into(),
            });
        }
        let start = seconds(fields.get(3).copied(), "onset", i + 1, raw)?;
        let duration = seconds(fields.get(4).copied(), "duration", i + 1, raw)?;
        let (start, end) = (secs_to_samples(start), secs_to_samples(start + duration));
        if end > start {
            out.entry(fields[1].to_string()).or_default().push(Turn {
                start,
                end,
                speaker: fields[7].to_string(),
            });
        }
    }
    Ok(out)
}

/// RTTM SPEAKER lines for `turns` of file `file_id`, with millisecond precision.
pub fn write(file_id: &str, turns: &[Turn]) -> String {
    let mut s = String::new();
    for t in turns {
        let start = samples_to_secs(t.start);
        let dur = samples_to_secs(t.end.saturating_sub(t.start));
        s.push_str(&format!(
            "SPEAKER {file_id} 1 {start:.3} {dur:.3} <NA> <NA> {} <NA> <NA>\n",
            t.speaker
        ));
    }
    s
}

/// Reads a UEM text (`file channel start end` per line) into scored regions per file id.
pub fn parse_uem(text: &str) -> Result<BTreeMap<String, Vec<(u64, u64)>>, ParseError> {
    let mut out: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(";;") {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            return Err(ParseError {
                line: i + 1,
                reason: "a UEM line needs 4 fields".into(),
                text: raw.into(),
            });
        }
        let start = secs_to_samples(seconds(fields.get(2).copied(), "start", i + 1, raw)?);
        let end = secs_to_samples(seconds(fields.get(3).copied(), "end", i + 1, raw)?);
        if end > start {
            out.entry(fields[0].to_string())
                .or_default()
                .push((start, end));
        }
    }
    Ok(out)
}

/// What one text holds, by file id.
type ById<V> = BTreeMap<String, Vec<V>>;

/// Parses every named text with `parse_one` and merges what they hold by file id, in the order
/// given.
fn merge<N: Display, T: AsRef<str>, V>(
    texts: impl IntoIterator<Item = (N, T)>,
    parse_one: fn(&str) -> Result<ById<V>, ParseError>,
) -> Result<ById<V>, SourceError> {
    let mut all: ById<V> = BTreeMap::new();
    for (name, text) in texts {
        let parsed = parse_one(text.as_ref()).map_err(|error| SourceError {
            name: name.to_string(),
            error,
        })?;
        for (id, items) in parsed {
            all.entry(id).or_default().extend(items);
        }
    }
    Ok(all)
}

/// Reads several RTTM texts (a directory's files, say), each named for its errors, into turns
/// merged by file id.
pub fn parse_all<N: Display, T: AsRef<str>>(
    texts: impl IntoIterator<Item = (N, T)>,
) -> Result<BTreeMap<String, Vec<Turn>>, SourceError> {
    merge(texts, parse)
}

/// Reads several UEM texts, each named for its errors, into scored regions merged by file id.
pub fn parse_uem_all<N: Display, T: AsRef<str>>(
    texts: impl IntoIterator<Item = (N, T)>,
) -> Result<BTreeMap<String, Vec<(u64, u64)>>, SourceError> {
    merge(texts, parse_uem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = "SPEAKER rec 1 2.130 11.050 <NA> <NA> A <NA> <NA>\n\n# note\nSPEAKER rec 1 13.240 3.570 <NA> <NA> B <NA> <NA>\nSPEAKER other 1 0.5 0.25 <NA> <NA> C <NA> <NA>\n";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed["rec"][0],
            Turn {
                start: 34_080,
                end: 210_880,
                speaker: "A".into()
            }
        );
        let written = write("rec", &parsed["rec"]);
        assert_eq!(parse(&written).unwrap()["rec"], parsed["rec"]);
        assert!(written.starts_with("SPEAKER rec 1 2.130 11.050 <NA> <NA> A"));
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let err = parse("SPEAKER rec 1 x 1.0 <NA> <NA> A\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = parse("\nSPEAKER rec 1 1.0\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(parse("SPEAKER rec 1 -1 1.0 <NA> <NA> A <NA> <NA>").is_err());
        assert!(parse_uem("rec 1 0.0\n").is_err());
    }

    #[test]
    fn uem_regions() {
        let u = parse_uem("rec 1 0.000 30.000\nrec 1 40 41\n").unwrap();
        assert_eq!(u["rec"], vec![(0, 480_000), (640_000, 656_000)]);
    }

    #[test]
    fn several_texts_merge_by_file_id_and_errors_name_their_text() {
        let a = "SPEAKER rec 1 0.0 1.0 <NA> <NA> A <NA> <NA>\n";
        let b =
            "SPEAKER rec 1 2.0 1.0 <NA> <NA> B <NA> <NA>\nSPEAKER x 1 0 1 <NA> <NA> C <NA> <NA>\n";
        let all = parse_all([("a.rttm", a), ("b.rttm", b)]).unwrap();
        let speakers: Vec<&str> = all["rec"].iter().map(|t| t.speaker.as_str()).collect();
        assert_eq!(speakers, ["A", "B"]);
        assert_eq!(all["x"].len(), 1);
        let err = parse_all([("a.rttm", a), ("bad.rttm", "SPEAKER rec 1 x")]).unwrap_err();
        assert_eq!((err.name.as_str(), err.error.line), ("bad.rttm", 1));
        assert_eq!(err.to_string(), "parsing bad.rttm");
        let uem = parse_uem_all([("u", "rec 1 0 1\n"), ("v", "rec 1 2 3\n")]).unwrap();
        assert_eq!(uem["rec"], vec![(0, 16_000), (32_000, 48_000)]);
    }

    #[test]
    fn a_file_id_is_the_name_without_its_extension() {
        assert_eq!(file_id(Path::new("a/b/meeting.01.wav")), "meeting.01");
        assert_eq!(file_id(Path::new("call")), "call");
        assert_eq!(file_id(Path::new("/")), "audio");
    }

    #[test]
    fn global_speakers_get_their_labels() {
        let turns = to_rttm_turns(&[SpeakerTurn {
            start: 16_000,
            end: 32_000,
            speaker: 3,
        }]);
        assert_eq!(
            turns,
            [Turn {
                start: 16_000,
                end: 32_000,
                speaker: "SPEAKER_03".into()
            }]
        );
    }
}
