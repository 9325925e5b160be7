//! Transcript text in and out of redaction: a file or standard input read as UTF-8, the line
//! formats `diarist redact` takes (plain text, JSON lines, STM) and what it writes for each line,
//! and texts tagged and redacted in batches.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::{Entity, PiiConfig, PiiError, Tagger, redact};

/// Texts tagged per model run.
pub const BATCH: usize = 16;

/// Text that could not be read, or a line that does not fit its format.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Standard input could not be read.
    #[error("reading standard input")]
    Stdin(#[source] std::io::Error),
    /// A file could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A transcript file that does not parse in the format its extension names.
    #[error("{}: {reason}", .path.display())]
    Transcript {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        reason: String,
    },
    /// The bytes are not UTF-8.
    #[error("{name} is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The file, or `standard input`.
        name: String,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// A JSON line (1-based) that is not a JSON object, with the parser's reason if it is not
    /// JSON at all.
    #[error("line {0}: not a JSON object")]
    NotObject(usize, #[source] Option<serde_json::Error>),
    /// A JSON line (1-based) without a string `text` field.
    #[error("line {0}: no string field \"text\"")]
    NoText(usize),
    /// An STM line (1-based) with fewer than five fields.
    #[error("line {0}: an STM line has at least five fields")]
    ShortStm(usize),
}

/// Reads a file, or standard input for `-`, as UTF-8 text, saying where it is not.
pub fn read_text(path: &Path) -> Result<String, TextError> {
    let stdin = path == Path::new("-");
    let bytes = if stdin {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(TextError::Stdin)?;
        bytes
    } else {
        std::fs::read(path).map_err(|source| TextError::Read {
            path: path.to_path_buf(),
            source,
        })?
    };
    String::from_utf8(bytes).map_err(|e| TextError::NotUtf8 {
        name: if stdin {
            "standard input".into()
        } else {
            path.display().to_string()
        },
        offset: e.utf8_error().valid_up_to(),
    })
}

/// How lines of text to redact are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// One utterance per line.
    Text,
    /// One JSON object with a string `text` field per line; blank lines are kept.
    Jsonl,
    /// NIST STM (`file channel speaker start end words...`); `;;` comments and blank lines are
    /// kept.
    Stm,
}

impl std::str::FromStr for LineFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "jsonl" => Ok(Self::Jsonl),
            "stm" => Ok(Self::Stm),
            other => Err(format!(
                "`{other}` is not a line format (text, jsonl or stm)"
            )),
        }
    }
}

/// One input line: its text to tag, and how to write it back.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A line passed through unchanged (STM comments, blank lines).
    Verbatim(String),
    /// A plain text line.
    Text(String),
    /// A JSON object, and its `text`.
    Json(Map<String, Value>, String),
    /// An STM line: its first five fields, and its words.
    Stm(String, String),
}

impl Item {
    /// The text to tag, if the line has one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Item::Verbatim(_) => None,
            Item::Text(t) | Item::Json(_, t) | Item::Stm(_, t) => Some(t),
        }
    }

    /// What is written for the line, given the entities found in its text (newline-terminated):
    /// a text line redacted, then each entity indented below it (label, character span, score,
    /// what it covers); a JSON object with `redacted` and `entities` added; an STM line with its
    /// words redacted; anything else as it was.
    pub fn render(&self, entities: &[Entity], policy: &PiiConfig) -> String {
        match self {
            Item::Verbatim(line) => format!("{line}\n"),
            Item::Text(t) => {
                let mut out = format!("{}\n", redact(t, entities, policy));
                for e in entities {
                    let surface: String = t.chars().skip(e.start).take(e.end - e.start).collect();
                    out.push_str(&format!(
                        "    {} {}..{} {:.2} {:?}\n",
                        e.label, e.start, e.end, e.score, surface
                    ));
                }
                out
            }
            Item::Json(map, t) => {
                let mut map = map.clone();
                map.insert("redacted".into(), redact(t, entities, policy).into());
                map.insert("entities".into(), entities_json(entities));
                format!("{}\n", Value::Object(map))
            }
            Item::Stm(head, words) => format!("{head} {}\n", redact(words, entities, policy)),
        }
    }
}

/// The lines of `text` in `format`.
pub fn parse(text: &str, format: LineFormat) -> Result<Vec<Item>, TextError> {
    text.lines()
        .enumerate()
        .map(|(n, line)| parse_line(line, n + 1, format))
        .collect()
}

/// Line `n` (1-based) in `format`.
fn parse_line(line: &str, n: usize, format: LineFormat) -> Result<Item, TextError> {
    Ok(match format {
        LineFormat::Text => Item::Text(line.to_string()),
        LineFormat::Jsonl if line.trim().is_empty() => Item::Verbatim(String::new()),
        LineFormat::Jsonl => {
            let value: Value =
                serde_json::from_str(line).map_err(|e| TextError::NotObject(n, Some(e)))?;
            let Value::Object(map) = value else {
                return Err(TextError::NotObject(n, None));
            };
            let Some(Value::String(t)) = map.get("text") else {
                return Err(TextError::NoText(n));
            };
            let t = t.clone();
            Item::Json(map, t)
        }
        LineFormat::Stm if line.trim().is_empty() || line.starts_with(";;") => {
            Item::Verbatim(line.to_string())
        }
        LineFormat::Stm => {
            let (head, words) = split_fields(line, 5).ok_or(TextError::ShortStm(n))?;
            Item::Stm(head.to_string(), words.to_string())
        }
    })
}

/// The entities found in each item's text (none for a line without text), the texts of all of
/// `items` tagged together.
pub fn tag_items(tagger: &mut Tagger, items: &[Item]) -> Result<Vec<Vec<Entity>>, PiiError> {
    let texts: Vec<&str> = items.iter().filter_map(Item::text).collect();
    let mut found = tagger.tag_batch(&texts)?.into_iter();
    Ok(items
        .iter()
        .map(|item| match item.text() {
            Some(_) => found.next().unwrap_or_default(),
            None => Vec::new(),
        })
        .collect())
}

/// Tags `items` in batches of [`BATCH`] and writes each to `out` with its personal data
/// redacted as `policy` says ([`Item::render`]).
pub fn redact_items(
    tagger: &mut Tagger,
    items: &[Item],
    policy: &PiiConfig,
    out: &mut impl std::io::Write,
) -> Result<(), RedactItemsError> {
    for chunk in items.chunks(BATCH) {
        for (item, entities) in chunk.iter().zip(tag_items(tagger, chunk)?) {
            out.write_all(item.render(&entities, policy).as_bytes())?;
        }
    }
    Ok(out.flush()?)
}

/// Why [`redact_items`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RedactItemsError {
    /// The tagger failed.
    #[error(transparent)]
    Tagger(#[from] PiiError),
    /// The output could not be written.
    #[error("writing the output")]
    Write(#[from] std::io::Error),
}

/// The first `n` whitespace-separated fields of `line` and the rest.
pub fn split_fields(line: &str, n: usize) -> Option<(&str, &str)> {
    let mut rest = line.trim_start();
    let mut end = 0;
    for _ in 0..n {
        let field_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if field_end == 0 {
            return None;
        }
        end = line.len() - rest.len() + field_end;
        rest = rest[field_end..].trim_start();
    }
    Some((&line[..end], rest))
}

/// A score rounded to three decimals, as the JSON outputs write it.
fn rounded(score: f32) -> f32 {
    (score * 1000.0).round() / 1000.0
}

/// The entities as the JSON outputs write them: `start`, `end`, `label`, `score`.
pub fn entities_json(entities: &[Entity]) -> Value {
    entities
        .iter()
        .map(|e| {
            json!({
                "start": e.start,
                "end": e.end,
                "label": e.label.name(),
                "score": rounded(e.score),
            })
        })
        .collect()
}

/// One text with its personal data hidden.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    /// The text, redacted.
    pub text: String,
    /// The entities the policy hid in it.
    pub hidden: Vec<Entity>,
}

impl Redacted {
    /// What was hidden, as the JSON outputs write it: `label` and `score` of each.
    pub fn hidden_json(&self) -> Value {
        self.hidden
            .iter()
            .map(|e| json!({"label": e.label.name(), "score": rounded(e.score)}))
            .collect()
    }
}

/// `texts` redacted as `policy` says, [`BATCH`] texts per model run; without a tagger, as they
/// are.
pub fn redact_texts(
    mut tagger: Option<&mut Tagger>,
    texts: &[&str],
    policy: &PiiConfig,
) -> Result<Vec<Redacted>, PiiError> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(BATCH) {
        let found = match tagger.as_deref_mut() {
            Some(t) => t.tag_batch(chunk)?,
            None => vec![Vec::new(); chunk.len()],
        };
        for (text, entities) in chunk.iter().zip(found) {
            out.push(Redacted {
                text: redact(text, &entities, policy),
                hidden: entities
                    .into_iter()
                    .filter(|e| policy.redact.contains(&e.label))
                    .collect(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Label;

    fn name(start: usize, end: usize) -> Entity {
        Entity {
            start,
            end,
            label: Label::PersonName,
            score: 0.9876,
        }
    }

    #[test]
    fn stm_fields_split_after_the_fifth() {
        let (head, words) = split_fields("sample 1 Diane 6.68 7.16  Hello there", 5).unwrap();
        assert_eq!(head, "sample 1 Diane 6.68 7.16");
        assert_eq!(words, "Hello there");
        assert!(split_fields("sample 1 Diane", 5).is_none());
        let (head, words) = split_fields("  a b c d e", 5).unwrap();
        assert_eq!((head, words), ("  a b c d e", ""));
    }

    #[test]
    fn lines_are_read_in_each_format_and_refused_with_their_number() {
        let items = parse(";; note\n\nf 1 S 0.5 1.0 hi ana\n", LineFormat::Stm).unwrap();
        assert_eq!(items[0], Item::Verbatim(";; note".into()));
        assert_eq!(items[1].text(), None);
        assert_eq!(items[2], Item::Stm("f 1 S 0.5 1.0".into(), "hi ana".into()));
        let e = parse("f 1 S 0.5 1.0 x\nf 1 S 0.5\n", LineFormat::Stm).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: an STM line has at least five fields"
        );

        let items = parse("{\"id\": 1, \"text\": \"hi\"}\n  \n", LineFormat::Jsonl).unwrap();
        assert_eq!(items[0].text(), Some("hi"));
        assert_eq!(items[1], Item::Verbatim(String::new()));
        for (line, error) in [
            ("[1]", "line 1: not a JSON object"),
            ("nope", "line 1: not a JSON object"),
            ("{\"text\": 5}", "line 1: no string field \"text\""),
        ] {
            let e = parse(line, LineFormat::Jsonl).unwrap_err();
            assert_eq!(e.to_string(), error);
        }
        assert!(matches!(
            parse("nope", LineFormat::Jsonl),
            Err(TextError::NotObject(1, Some(_)))
        ));
        assert_eq!(parse("", LineFormat::Text).unwrap(), []);
    }

    #[test]
    fn each_line_is_written_back_with_what_was_found() {
        let policy = PiiConfig::default();
        let entities = [name(3, 6)];
        let text = Item::Text("hi ana".into());
        assert_eq!(
            text.render(&entities, &policy),
            "hi [PERSON_NAME]\n    PERSON_NAME 3..6 0.99 \"ana\"\n"
        );
        let json = parse("{\"id\": 7, \"text\": \"hi ana\"}", LineFormat::Jsonl).unwrap();
        let v: Value = serde_json::from_str(&json[0].render(&entities, &policy)).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["redacted"], "hi [PERSON_NAME]");
        assert_eq!(v["entities"][0]["label"], "PERSON_NAME");
        let stm = Item::Stm("f 1 S 0.5 1.0".into(), "hi ana".into());
        assert_eq!(
            stm.render(&entities, &policy),
            "f 1 S 0.5 1.0 hi [PERSON_NAME]\n"
        );
        assert_eq!(Item::Verbatim(";; x".into()).render(&[], &policy), ";; x\n");
    }

    #[test]
    fn text_is_read_as_utf8_or_refused_with_the_offset() {
        let dir = std::env::temp_dir().join(format!("diarist-pii-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.txt");
        std::fs::write(&path, "héllo").unwrap();
        assert_eq!(read_text(&path).unwrap(), "héllo");
        std::fs::write(&path, b"ok\n\xff").unwrap();
        let e = read_text(&path).unwrap_err().to_string();
        assert!(
            e.ends_with(" is not UTF-8 text (invalid byte at offset 3)"),
            "{e}"
        );
        let e = read_text(&dir.join("missing.txt")).unwrap_err();
        assert!(matches!(e, TextError::Read { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_tagger_texts_stay_as_they_are() {
        let policy = PiiConfig::default();
        let texts = vec!["a"; BATCH + 1];
        let out = redact_texts(None, &texts, &policy).unwrap();
        assert_eq!(out.len(), BATCH + 1);
        assert!(out.iter().all(|r| r.text == "a" && r.hidden.is_empty()));
        let r = Redacted {
            text: String::new(),
            hidden: vec![name(0, 1)],
        };
        assert_eq!(
            r.hidden_json(),
            json!([{"label": "PERSON_NAME", "score": 0.988_f32}])
        );
    }
}
