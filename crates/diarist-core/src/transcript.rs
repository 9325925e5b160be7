//! Transcripts from a speech recogniser: reading STM, SRT/WebVTT and JSON, giving each segment
//! the diarized speaker who talks most during it, and writing SRT, WebVTT and a readable timeline
//! with speakers.

use serde::Deserialize;

use crate::rttm::{ParseError, Turn, secs_to_samples};

/// One transcript segment. Times in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// What was said.
    pub text: String,
}

/// A transcript that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    /// A line of an STM, SRT or WebVTT transcript.
    #[error(transparent)]
    Line(#[from] ParseError),
    /// A JSON transcript of another shape.
    #[error("expected [{{\"start\", \"end\", \"text\"}}] or {{\"segments\": [...]}}")]
    Json(#[source] serde_json::Error),
    /// A JSON segment (1-based) whose times are out of order, negative or not finite.
    #[error("segment {0}: times must satisfy 0 <= start <= end")]
    Times(usize),
    /// A file extension that names no transcript format.
    #[error("unknown transcript format (use .stm, .srt, .vtt or .json)")]
    Format,
}

fn error(line: usize, reason: &str, text: &str) -> ParseError {
    ParseError {
        line,
        reason: reason.to_string(),
        text: text.to_string(),
    }
}

fn time_pair(start: f64, end: f64, line: usize, text: &str) -> Result<(f64, f64), ParseError> {
    if !(start.is_finite() && end.is_finite() && start >= 0.0 && end >= start) {
        return Err(error(line, "times must satisfy 0 <= start <= end", text));
    }
    Ok((start, end))
}

/// Reads NIST STM: `file channel speaker start end [<labels>] words...`; `;;` lines are comments.
pub fn parse_stm(text: &str) -> Result<Vec<Segment>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(";;") {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.len() < 5 {
            return Err(error(n, "an STM line has at least five fields", line));
        }
        let secs = |f: &str| f.parse::<f64>().map_err(|_| error(n, "bad time", line));
        let (start, end) = time_pair(secs(fields[3])?, secs(fields[4])?, n, line)?;
        let mut words = &fields[5..];
        if words
            .first()
            .is_some_and(|w| w.starts_with('<') && w.ends_with('>'))
        {
            words = &words[1..];
        }
        out.push(Segment {
            start,
            end,
            text: words.join(" "),
        });
    }
    Ok(out)
}

/// Reads a transcript in the format its file extension names (any case): `stm`, `srt` or `vtt`,
/// or `json` (see [`parse_json`]).
pub fn parse(text: &str, extension: &str) -> Result<Vec<Segment>, TranscriptError> {
    match extension.to_ascii_lowercase().as_str() {
        "stm" => Ok(parse_stm(text)?),
        "srt" | "vtt" => Ok(parse_subtitles(text)?),
        "json" => parse_json(text),
        _ => Err(TranscriptError::Format),
    }
}

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

/// Reads a JSON transcript: `[{"start", "end", "text"}]` or `{"segments": [...]}`, times in
/// seconds.
pub fn parse_json(text: &str) -> Result<Vec<Segment>, TranscriptError> {
    let (JsonTranscript::List(list) | JsonTranscript::Object { segments: list }) =
        serde_json::from_str(text).map_err(TranscriptError::Json)?;
    list.into_iter()
        .enumerate()
        .map(|(i, s)| {
            if !(s.start.is_finite() && s.end.is_finite() && 0.0 <= s.start && s.start <= s.end) {
                return Err(TranscriptError::Times(i + 1));
            }
            Ok(Segment {
                start: s.start,
                end: s.end,
                text: s.text,
            })
        })
        .collect()
}

/// `HH:MM:SS,mmm` (SRT) or `[HH:]MM:SS.mmm` (WebVTT) in seconds.
fn clock(s: &str) -> Option<f64> {
    let s = s.trim().replace(',', ".");
    let parts: Vec<&str> = s.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m, s] => (
            h.parse::<u64>().ok()?,
            m.parse::<u64>().ok()?,
            s.parse::<f64>().ok()?,
        ),
        [m, s] => (0, m.parse::<u64>().ok()?, s.parse::<f64>().ok()?),
        _ => return None,
    };
    (sec.is_finite() && (0.0..60.0).contains(&sec) && m < 60)
        .then_some(h as f64 * 3600.0 + m as f64 * 60.0 + sec)
}

/// Reads SubRip (SRT) or WebVTT cues: a `start --> end` line, then text lines up to a blank line.
/// Cue numbers, the WEBVTT header, NOTE blocks and cue settings are skipped; `<v Name>` voice
/// tags are removed from the text.
pub fn parse_subtitles(text: &str) -> Result<Vec<Segment>, ParseError> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let Some((a, b)) = line.split_once("-->") else {
            continue;
        };
        let b = b.split_whitespace().next().unwrap_or("");
        let (start, end) = match (clock(a), clock(b)) {
            (Some(s), Some(e)) => time_pair(s, e, i + 1, line)?,
            _ => return Err(error(i + 1, "bad cue timing", line)),
        };
        let mut words = Vec::new();
        while let Some((_, l)) = lines.peek() {
            if l.trim().is_empty() {
                break;
            }
            words.push(strip_tags(l.trim()));
            lines.next();
        }
        out.push(Segment {
            start,
            end,
            text: words.join(" "),
        });
    }
    Ok(out)
}

fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut depth = 0;
    for c in line.chars() {
        match c {
            '<' => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// The speaker who talks most within `[start, end)` samples (on a tie, the first name in order);
/// when nobody does, the speaker of
/// the nearest turn no more than `reach` samples away. `None` when there is none.
pub fn speaker_of<'a, I>(turns: I, start: u64, end: u64, reach: u64) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a Turn>,
    I::IntoIter: Clone,
{
    let turns = turns.into_iter();
    let mut talk: Vec<(&str, u64)> = Vec::new();
    for t in turns.clone() {
        let overlap = t.end.min(end).saturating_sub(t.start.max(start));
        if overlap > 0 {
            match talk.iter_mut().find(|(s, _)| *s == t.speaker) {
                Some((_, n)) => *n += overlap,
                None => talk.push((&t.speaker, overlap)),
            }
        }
    }
    // most speech wins; a tie goes to the first name in order, whatever the turns' order
    if let Some((s, _)) = talk.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0))) {
        return Some(s);
    }
    turns
        .map(|t| {
            let gap = if t.end <= start {
                start - t.end
            } else {
                t.start.saturating_sub(end)
            };
            (gap, t.speaker.as_str())
        })
        .filter(|(gap, _)| *gap <= reach)
        .min_by_key(|(gap, _)| *gap)
        .map(|(_, s)| s)
}

/// Each segment with the speaker who talks most during it ([`speaker_of`]; a segment shorter than
/// a sample counts as one sample long).
pub fn attribute(
    turns: &[Turn],
    segments: Vec<Segment>,
    reach: u64,
) -> Vec<(Segment, Option<String>)> {
    segments
        .into_iter()
        .map(|s| {
            let start = secs_to_samples(s.start);
            let end = secs_to_samples(s.end).max(start + 1);
            let speaker = speaker_of(turns, start, end, reach).map(str::to_string);
            (s, speaker)
        })
        .collect()
}

fn stamp(secs: f64, sep: char) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// SubRip text of `(segment, speaker)` pairs; the speaker leads each cue as `Name: `.
pub fn write_srt(segments: &[(Segment, Option<String>)]) -> String {
    let mut out = String::new();
    for (i, (s, speaker)) in segments.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n",
            i + 1,
            stamp(s.start, ','),
            stamp(s.end, ',')
        ));
        if let Some(name) = speaker {
            out.push_str(name);
            out.push_str(": ");
        }
        out.push_str(&s.text);
        out.push_str("\n\n");
    }
    out
}

/// WebVTT text of `(segment, speaker)` pairs; the speaker as a `<v Name>` voice tag.
pub fn write_vtt(segments: &[(Segment, Option<String>)]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (s, speaker) in segments {
        out.push_str(&format!(
            "{} --> {}\n",
            stamp(s.start, '.'),
            stamp(s.end, '.')
        ));
        if let Some(name) = speaker {
            out.push_str(&format!("<v {name}>"));
        }
        out.push_str(&s.text.replace("-->", "->"));
        out.push_str("\n\n");
    }
    out
}

/// A readable timeline of `(segment, speaker)` pairs: `[start - end] speaker: text` per line,
/// `?` for a segment without a speaker.
pub fn write_text(segments: &[(Segment, Option<String>)]) -> String {
    segments
        .iter()
        .map(|(s, speaker)| {
            format!(
                "[{:8.2} - {:8.2}] {}: {}\n",
                s.start,
                s.end,
                speaker.as_deref().unwrap_or("?"),
                s.text
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(speaker: &str, start: u64, end: u64) -> Turn {
        Turn {
            start,
            end,
            speaker: speaker.into(),
        }
    }

    #[test]
    fn reads_stm_with_comments_and_labels() {
        let stm = ";; comment\nsample 1 Diane 6.68 7.16 Hello?\nsample 1 B 8.0 9.5 <o,f0,female> oh hello there\n";
        let s = parse_stm(stm).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].start, s[0].end, s[0].text.as_str()),
            (6.68, 7.16, "Hello?")
        );
        assert_eq!(s[1].text, "oh hello there");
        assert_eq!(parse_stm("a 1 b 2.0 1.0 x").unwrap_err().line, 1);
        assert!(parse_stm("a 1 b x 1.0 x").is_err());
        assert!(parse_stm("a 1 b").is_err());
    }

    #[test]
    fn reads_srt_and_vtt_and_writes_them_back() {
        let srt = "1\n00:00:01,500 --> 00:00:03,000\nhello\nthere\n\n2\n00:01:02,000 --> 00:01:04,250\n<v Ana>bye\n";
        let s = parse_subtitles(srt).unwrap();
        assert_eq!(
            s[0],
            Segment {
                start: 1.5,
                end: 3.0,
                text: "hello there".into()
            }
        );
        assert_eq!(
            s[1],
            Segment {
                start: 62.0,
                end: 64.25,
                text: "bye".into()
            }
        );
        let vtt = write_vtt(&[(s[1].clone(), Some("SPEAKER_00".into()))]);
        assert_eq!(
            vtt,
            "WEBVTT\n\n00:01:02.000 --> 00:01:04.250\n<v SPEAKER_00>bye\n\n"
        );
        assert_eq!(parse_subtitles(&vtt).unwrap(), vec![s[1].clone()]);
        let again = parse_subtitles(&write_srt(&[(s[0].clone(), None)])).unwrap();
        assert_eq!(again, vec![s[0].clone()]);
        assert!(parse_subtitles("00:00:05,000 --> 00:00:01,000\nx\n").is_err());
        assert!(parse_subtitles("00:00:0x --> 00:00:01,000\nx\n").is_err());
    }

    #[test]
    fn the_speaker_who_talks_most_wins() {
        let turns = [turn("A", 0, 100), turn("B", 80, 300), turn("A", 400, 500)];
        assert_eq!(speaker_of(&turns, 50, 150, 0), Some("B"));
        assert_eq!(speaker_of(&turns, 0, 90, 0), Some("A"));
        assert_eq!(speaker_of(&turns, 320, 350, 10), None);
        assert_eq!(speaker_of(&turns, 320, 350, 50), Some("B"));
        assert_eq!(speaker_of(&turns, 360, 390, 50), Some("A"));
        assert_eq!(speaker_of(&[] as &[Turn], 0, 10, 100), None);
        // equal talk: the first name wins whatever the order of the turns
        let tied = [turn("B", 0, 50), turn("A", 50, 100)];
        assert_eq!(speaker_of(&tied, 0, 100, 0), Some("A"));
        let tied = [turn("A", 0, 50), turn("B", 50, 100)];
        assert_eq!(speaker_of(&tied, 0, 100, 0), Some("A"));
    }

    #[test]
    fn reads_json_transcripts_by_extension() {
        let list = r#"[{"start": 1.5, "end": 2, "text": "hi"}]"#;
        let object = r#"{"segments": [{"start": 1.5, "end": 2.0, "text": "hi"}]}"#;
        let hi = vec![Segment {
            start: 1.5,
            end: 2.0,
            text: "hi".into(),
        }];
        assert_eq!(parse(list, "json").unwrap(), hi);
        assert_eq!(parse(object, "JSON").unwrap(), hi);
        let backwards =
            r#"[{"start": 0, "end": 1, "text": ""}, {"start": 3, "end": 2, "text": ""}]"#;
        assert_eq!(
            parse(backwards, "json").unwrap_err().to_string(),
            "segment 2: times must satisfy 0 <= start <= end"
        );
        let e = parse(r#"{"nope": 1}"#, "json").unwrap_err();
        assert!(matches!(e, TranscriptError::Json(_)), "{e}");
        assert!(matches!(parse("", "doc"), Err(TranscriptError::Format)));
        assert_eq!(
            parse("a 1 b 2.0 1.0 x", "stm").unwrap_err().to_string(),
            "line 1: times must satisfy 0 <= start <= end: `a 1 b 2.0 1.0 x`"
        );
    }

    #[test]
    fn segments_are_attributed_and_written_as_a_timeline() {
        let turns = [turn("A", 0, 16_000), turn("B", 16_000, 48_000)];
        let segment = |start: f64, end: f64| Segment {
            start,
            end,
            text: "x".into(),
        };
        // a zero-length segment still has a speaker; one far from any turn has none
        let rows = attribute(
            &turns,
            vec![segment(0.5, 2.0), segment(0.5, 0.5), segment(9.0, 9.5)],
            16_000,
        );
        let speakers: Vec<Option<&str>> = rows.iter().map(|(_, s)| s.as_deref()).collect();
        assert_eq!(speakers, [Some("B"), Some("A"), None]);
        assert_eq!(
            write_text(&rows[1..]),
            "[    0.50 -     0.50] A: x\n[    9.00 -     9.50] ?: x\n"
        );
    }
}
