//! `diarist diarize REC --transcript REC.stm`: a recogniser's transcript attributed segment by
//! segment to the diarized speakers, with personal data redacted.

use std::path::Path;

use anyhow::{Context, bail};
use diarist_core::rttm::{secs_to_samples, speaker_label, to_rttm_turns};
use diarist_core::transcript::{self, Segment};
use diarist_engine::Config;
use diarist_engine::offline::{Models, SAMPLE_RATE, diarize_file};
use serde::Deserialize;
use serde_json::json;

use crate::diarize::Format;
use crate::redact::{load_tagger, read_text};

/// Segments tagged per model run.
const BATCH: usize = 16;
/// A segment that overlaps no turn goes to the nearest turn at most this far away (samples).
const REACH: u64 = SAMPLE_RATE as u64;

#[derive(Deserialize)]
struct JsonSegment {
    start: f64,
    end: f64,
    text: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonTranscript {
    List(Vec<JsonSegment>),
    Object { segments: Vec<JsonSegment> },
}

/// Reads a transcript: STM, SRT or WebVTT by extension, JSON (`[{"start", "end", "text"}]` or
/// `{"segments": [...]}`, times in seconds).
pub fn read_transcript(path: &Path) -> anyhow::Result<Vec<Segment>> {
    let text = read_text(path)?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let at = || format!("{}", path.display());
    let segments = match ext.as_str() {
        "stm" => transcript::parse_stm(&text).with_context(at)?,
        "srt" | "vtt" => transcript::parse_subtitles(&text).with_context(at)?,
        "json" => {
            let parsed: JsonTranscript = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{}: expected [{{\"start\", \"end\", \"text\"}}] or {{\"segments\": [...]}}",
                    at()
                )
            })?;
            let list = match parsed {
                JsonTranscript::List(l) | JsonTranscript::Object { segments: l } => l,
            };
            let mut out = Vec::with_capacity(list.len());
            for (i, s) in list.into_iter().enumerate() {
                if !(s.start.is_finite() && s.end.is_finite() && 0.0 <= s.start && s.start <= s.end)
                {
                    bail!(
                        "{}: segment {}: times must satisfy 0 <= start <= end",
                        at(),
                        i + 1
                    );
                }
                out.push(Segment {
                    start: s.start,
                    end: s.end,
                    text: s.text,
                });
            }
            out
        }
        _ => bail!(
            "{}: unknown transcript format (use .stm, .srt, .vtt or .json)",
            at()
        ),
    };
    Ok(segments)
}

/// Diarizes `file`, attributes and (unless `keep_pii`) redacts `segments`, renders in `format`.
pub fn run(
    config: &Config,
    file: &Path,
    id: &str,
    segments: Vec<Segment>,
    format: Format,
    keep_pii: bool,
) -> anyhow::Result<String> {
    if format == Format::Rttm {
        bail!("an attributed transcript is written as json, srt, vtt or text, not rttm");
    }
    let d = Models::load(config)
        .and_then(|mut models| diarize_file(&mut models, &config.offline, file))
        .with_context(|| format!("diarizing {}", file.display()))?;
    let turns = to_rttm_turns(&d.turns);
    let mut tagger = if keep_pii {
        None
    } else {
        Some(load_tagger(config)?)
    };
    let mut rows = Vec::with_capacity(segments.len());
    let mut labels_found = Vec::with_capacity(segments.len());
    for chunk in segments.chunks(BATCH) {
        let found = match tagger.as_mut() {
            Some(t) => t.tag_batch(&chunk.iter().map(|s| s.text.as_str()).collect::<Vec<_>>())?,
            None => vec![Vec::new(); chunk.len()],
        };
        for (s, entities) in chunk.iter().zip(found) {
            let start = secs_to_samples(s.start);
            let end = secs_to_samples(s.end).max(start + 1);
            let speaker = transcript::speaker_of(&turns, start, end, REACH).map(str::to_string);
            let text = diarist_pii::redact(&s.text, &entities, &config.pii);
            labels_found.push(
                entities
                    .iter()
                    .filter(|e| config.pii.redact.contains(&e.label))
                    .map(|e| json!({"label": e.label.name(), "score": (e.score * 1000.0).round() / 1000.0}))
                    .collect::<Vec<_>>(),
            );
            rows.push((
                Segment {
                    start: s.start,
                    end: s.end,
                    text,
                },
                speaker,
            ));
        }
    }
    Ok(match format {
        Format::Srt => transcript::write_srt(&rows),
        Format::Vtt => transcript::write_vtt(&rows),
        Format::Text => rows
            .iter()
            .map(|(s, sp)| {
                format!(
                    "[{:8.2} - {:8.2}] {}: {}\n",
                    s.start,
                    s.end,
                    sp.as_deref().unwrap_or("?"),
                    s.text
                )
            })
            .collect(),
        Format::Json | Format::Rttm => {
            let secs = |s: u64| (s as f64 / SAMPLE_RATE as f64 * 1000.0).round() / 1000.0;
            let value = json!({
                "file_id": id,
                "duration": secs(d.samples as u64),
                "speakers": (0..d.speakers).map(speaker_label).collect::<Vec<_>>(),
                "turns": turns.iter().map(|t| json!({"start": secs(t.start), "end": secs(t.end), "speaker": t.speaker})).collect::<Vec<_>>(),
                "redacted": !keep_pii,
                "transcript": rows.iter().zip(&labels_found).map(|((s, sp), found)| json!({
                    "start": s.start, "end": s.end, "speaker": sp, "text": s.text, "redactions": found,
                })).collect::<Vec<_>>(),
            });
            let mut s = serde_json::to_string_pretty(&value)?;
            s.push('\n');
            s
        }
    })
}
