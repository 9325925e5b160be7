//! A recording's diarization as it is written out: RTTM, JSON or a readable timeline, into files
//! replaced atomically.

use std::path::{Path, PathBuf};

use diarist_core::SAMPLE_RATE;
use diarist_core::reconstruct::SpeakerTurn;
use diarist_core::rttm::{self, file_id, speaker_label};
use serde_json::{Map, Value, json};

use crate::offline::Diarization;

/// How a diarization is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// NIST RTTM, one SPEAKER line per overlap-aware turn.
    Rttm,
    /// JSON with overlap-aware and exclusive turns.
    Json,
    /// A readable timeline: the speaker count and length, then one line per turn.
    Text,
}

/// Samples as seconds rounded to the millisecond.
fn secs(samples: usize) -> f64 {
    (samples as f64 / SAMPLE_RATE as f64 * 1000.0).round() / 1000.0
}

/// Turns as JSON: `start` and `end` in seconds, `speaker` by label.
fn turns_json(turns: &[SpeakerTurn]) -> Value {
    turns
        .iter()
        .map(|t| json!({"start": secs(t.start), "end": secs(t.end), "speaker": speaker_label(t.speaker)}))
        .collect()
}

/// The JSON fields that describe recording `id`'s diarization: `file_id`, `duration` (seconds),
/// `speakers` (their labels) and the overlap-aware `turns`.
pub fn summary_json(id: &str, d: &Diarization) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("file_id".into(), id.into());
    map.insert("duration".into(), secs(d.samples).into());
    map.insert(
        "speakers".into(),
        (0..d.speakers).map(speaker_label).collect(),
    );
    map.insert("turns".into(), turns_json(&d.turns));
    map
}

/// `mm:ss.cc`, rounded up to the hundredth.
fn clock(samples: usize) -> String {
    let centis = (samples as u64 * 100).div_ceil(SAMPLE_RATE as u64);
    format!(
        "{:02}:{:02}.{:02}",
        centis / 6000,
        centis / 100 % 60,
        centis % 100
    )
}

/// Recording `id`'s diarization written in `format`: RTTM under the file id `id`, JSON
/// ([`summary_json`] and the `exclusive_turns`, pretty-printed), or the timeline.
pub fn render(id: &str, d: &Diarization, format: OutputFormat) -> String {
    match format {
        OutputFormat::Rttm => rttm::write(id, &rttm::to_rttm_turns(&d.turns)),
        OutputFormat::Json => {
            let mut map = summary_json(id, d);
            map.insert("exclusive_turns".into(), turns_json(&d.exclusive_turns));
            let mut s = serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default();
            s.push('\n');
            s
        }
        OutputFormat::Text => {
            let mut s = format!("{id}: {} speakers in {}\n", d.speakers, clock(d.samples));
            for t in &d.turns {
                s.push_str(&format!(
                    "  {} - {}  {}\n",
                    clock(t.start),
                    clock(t.end),
                    speaker_label(t.speaker)
                ));
            }
            s
        }
    }
}

/// Where a command's outputs go: one file per input in a directory, named by the input's file id
/// and an extension, or standard output.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The directory; standard output when `None`.
    pub dir: Option<PathBuf>,
    /// The extension of the files written there (`rttm`, `json`, ...).
    pub ext: &'static str,
}

impl Destination {
    /// The output file of `input`, when there is a directory.
    pub fn path(&self, input: &Path) -> Option<PathBuf> {
        (self.dir.as_ref()).map(|d| d.join(format!("{}.{}", file_id(input), self.ext)))
    }

    /// Whether the output file of `input` exists already.
    pub fn exists(&self, input: &Path) -> bool {
        self.path(input).is_some_and(|p| p.exists())
    }

    /// Writes `text` as the output of `input` ([`emit`]); the error names where it went.
    pub fn write(&self, input: &Path, text: &str) -> Result<(), String> {
        let path = self.path(input);
        emit(path.as_deref(), text).map_err(|e| match &path {
            Some(p) => format!("writing {}: {e}", p.display()),
            None => format!("writing to standard output: {e}"),
        })
    }
}

/// Writes `text` to `path` atomically ([`write_atomic`]), or to standard output when `path` is
/// `None`.
pub fn emit(path: Option<&Path>, text: &str) -> std::io::Result<()> {
    match path {
        Some(p) => write_atomic(p, text),
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()),
    }
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, then a rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diarization() -> Diarization {
        let turn = |start, end, speaker| SpeakerTurn {
            start,
            end,
            speaker,
        };
        Diarization {
            samples: 16_000 * 61 + 1,
            speakers: 2,
            turns: vec![turn(8_000, 24_000, 0), turn(16_000, 40_000, 1)],
            exclusive_turns: vec![turn(8_000, 16_000, 0), turn(16_000, 40_000, 1)],
            windows: 1,
            embeddings: 2,
        }
    }

    #[test]
    fn a_diarization_is_written_as_rttm_json_and_a_timeline() {
        let d = diarization();
        let rttm = render("rec", &d, OutputFormat::Rttm);
        assert_eq!(
            rttm.lines().next(),
            Some("SPEAKER rec 1 0.500 1.000 <NA> <NA> SPEAKER_00 <NA> <NA>")
        );
        let v: Value = serde_json::from_str(&render("rec", &d, OutputFormat::Json)).unwrap();
        assert_eq!(v["file_id"], "rec");
        assert_eq!(v["duration"], 61.0);
        assert_eq!(v["speakers"], json!(["SPEAKER_00", "SPEAKER_01"]));
        assert_eq!(
            v["turns"][1],
            json!({"start": 1.0, "end": 2.5, "speaker": "SPEAKER_01"})
        );
        assert_eq!(v["exclusive_turns"][0]["end"], 1.0);
        assert_eq!(
            render("rec", &d, OutputFormat::Text),
            "rec: 2 speakers in 01:01.01\n  00:00.50 - 00:01.50  SPEAKER_00\n  00:01.00 - 00:02.50  SPEAKER_01\n"
        );
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("diarist-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.rttm");
        write_atomic(&path, "one").unwrap();
        write_atomic(&path, "two").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write_atomic(&dir.join("missing/x.rttm"), "x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
