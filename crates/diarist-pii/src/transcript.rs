//! A transcript whose segments are attributed to speakers, with its personal data redacted and
//! written as SubRip, WebVTT, a readable timeline or JSON.

use std::path::Path;

use diarist_core::transcript::{self, Segment, write_srt, write_text, write_vtt};
use serde_json::{Map, Value, json};

use crate::text::{TextError, redact_texts};
use crate::{PiiConfig, PiiError, Tagger};

/// How a redacted transcript is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    /// JSON: the recording's fields, `redacted`, and the `transcript` segments.
    Json,
    /// SubRip subtitles, speaker first.
    Srt,
    /// WebVTT subtitles, speakers as voice tags.
    Vtt,
    /// A readable timeline, one line per segment.
    Text,
}

/// Reads a recogniser's transcript: STM, SRT, WebVTT or JSON by the file's extension.
pub fn read_transcript(path: &Path) -> Result<Vec<Segment>, TextError> {
    let text = crate::text::read_text(path)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    transcript::parse(&text, ext).map_err(|e| TextError::Transcript {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A segment that overlaps no turn goes to the nearest turn at most this far away (samples).
pub const REACH: u64 = diarist_core::SAMPLE_RATE as u64;

/// `segments` attributed to the speakers of `turns` ([`transcript::attribute`], within
/// [`REACH`]), then redacted and written as [`write_redacted`] does.
pub fn attribute_redacted(
    tagger: Option<&mut Tagger>,
    policy: &PiiConfig,
    turns: &[diarist_core::rttm::Turn],
    segments: Vec<Segment>,
    format: TranscriptFormat,
    fields: Map<String, Value>,
) -> Result<String, PiiError> {
    let rows = transcript::attribute(turns, segments, REACH);
    write_redacted(tagger, policy, rows, format, fields)
}

/// `segments` (each with its speaker, if it has one) with their personal data redacted as
/// `policy` says (none without a tagger), written in `format`. JSON is the recording's `fields`
/// (its file id, duration, speakers and turns) with `redacted` (whether a tagger looked) and
/// `transcript` added: each segment's `start`, `end`, `speaker`, `text` and the `redactions`
/// made in it, pretty-printed.
pub fn write_redacted(
    tagger: Option<&mut Tagger>,
    policy: &PiiConfig,
    mut segments: Vec<(Segment, Option<String>)>,
    format: TranscriptFormat,
    mut fields: Map<String, Value>,
) -> Result<String, PiiError> {
    let tagged = tagger.is_some();
    let texts: Vec<&str> = segments.iter().map(|(s, _)| s.text.as_str()).collect();
    let redacted = redact_texts(tagger, &texts, policy)?;
    for ((s, _), r) in segments.iter_mut().zip(&redacted) {
        s.text.clone_from(&r.text);
    }
    Ok(match format {
        TranscriptFormat::Srt => write_srt(&segments),
        TranscriptFormat::Vtt => write_vtt(&segments),
        TranscriptFormat::Text => write_text(&segments),
        TranscriptFormat::Json => {
            fields.insert("redacted".into(), tagged.into());
            let lines = segments.iter().zip(&redacted).map(|((s, speaker), r)| {
                json!({"start": s.start, "end": s.end, "speaker": speaker, "text": s.text,
                       "redactions": r.hidden_json()})
            });
            fields.insert("transcript".into(), lines.collect());
            let mut s = serde_json::to_string_pretty(&Value::Object(fields)).unwrap_or_default();
            s.push('\n');
            s
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments() -> Vec<(Segment, Option<String>)> {
        let segment = |start, end, text: &str| Segment {
            start,
            end,
            text: text.into(),
        };
        vec![
            (segment(0.5, 1.0, "hi"), Some("SPEAKER_00".into())),
            (segment(1.0, 2.25, "bye"), None),
        ]
    }

    #[test]
    fn a_transcript_without_a_tagger_is_written_as_it_is() {
        let policy = PiiConfig::default();
        let write = |format| write_redacted(None, &policy, segments(), format, Map::new()).unwrap();
        assert_eq!(
            write(TranscriptFormat::Srt),
            "1\n00:00:00,500 --> 00:00:01,000\nSPEAKER_00: hi\n\n2\n00:00:01,000 --> 00:00:02,250\nbye\n\n"
        );
        assert!(write(TranscriptFormat::Vtt).starts_with("WEBVTT\n\n"));
        assert_eq!(
            write(TranscriptFormat::Text),
            "[    0.50 -     1.00] SPEAKER_00: hi\n[    1.00 -     2.25] ?: bye\n"
        );
        let mut fields = Map::new();
        fields.insert("file_id".into(), "rec".into());
        let json = write_redacted(None, &policy, segments(), TranscriptFormat::Json, fields);
        let v: Value = serde_json::from_str(&json.unwrap()).unwrap();
        assert_eq!(v["file_id"], "rec");
        assert_eq!(v["redacted"], false);
        assert_eq!(
            v["transcript"][1],
            json!({"start": 1.0, "end": 2.25, "speaker": null, "text": "bye", "redactions": []})
        );
    }
}
