//! `diarist redact`: personal data in transcript text, found and hidden.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use diarist_engine::Config;
use diarist_models::Runtime;
use diarist_pii::{Entity, Tagger, redact};
use serde_json::{Map, Value, json};

use crate::settings::{self, CommonArgs, OfflineArgs};

/// Texts tagged per model run.
const BATCH: usize = 16;

/// How `diarist redact` reads its input.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    /// One utterance per line; prints each redacted, then its entities indented below it.
    Text,
    /// One JSON object with a "text" field per line; prints it with "redacted" and "entities".
    Jsonl,
    /// NIST STM (`file channel speaker start end words...`); prints it with the words redacted.
    Stm,
}

/// Arguments of `diarist redact`.
#[derive(clap::Args)]
pub struct RedactArgs {
    /// Text to redact, or `-` for standard input.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: TextFormat,
    #[command(flatten)]
    pub pii: PiiArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Overrides of the `[pii]` configuration.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PiiArgs {
    /// PII tagger model directory (holding manifest.toml).
    #[arg(long)]
    pub pii_model: Option<PathBuf>,
    /// PII tagger variant ("int8", "fp32", ...).
    #[arg(long)]
    pub pii_variant: Option<String>,
}

impl PiiArgs {
    /// The configuration with these overrides applied.
    pub fn apply(&self, config: &mut Config) {
        if let Some(m) = &self.pii_model {
            config.pii.model = m.clone();
            // another model's variants are its own: start from its default
            config.pii.variant = String::new();
        }
        if let Some(v) = &self.pii_variant {
            config.pii.variant = v.clone();
        }
    }
}

/// Loads the tagger the configuration names.
pub fn load_tagger(config: &Config) -> anyhow::Result<Tagger> {
    let runtime = Runtime::load(&config.runtime.onnxruntime)?;
    Tagger::from_config(&runtime, &config.pii, config.runtime.session_options())
        .with_context(|| format!("loading the PII tagger {}", config.pii.model.display()))
}

/// Reads a file or standard input as UTF-8 text, saying where it is not.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
    } else {
        bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            if path == Path::new("-") {
                "standard input".to_string()
            } else {
                path.display().to_string()
            },
            e.utf8_error().valid_up_to()
        )
    })
}

/// One input line, its text and how to print it back.
enum Item {
    /// A line passed through unchanged (STM comments, blank lines).
    Verbatim(String),
    /// A plain text line.
    Text(String),
    /// A JSON object whose "text" is tagged.
    Json(Map<String, Value>, String),
    /// An STM line: its first five fields, and its words.
    Stm(String, String),
}

impl Item {
    fn text(&self) -> Option<&str> {
        match self {
            Item::Verbatim(_) => None,
            Item::Text(t) | Item::Json(_, t) | Item::Stm(_, t) => Some(t),
        }
    }
}

fn parse(text: &str, format: TextFormat) -> anyhow::Result<Vec<Item>> {
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            let at = || format!("line {}", n + 1);
            Ok(match format {
                TextFormat::Text => Item::Text(line.to_string()),
                TextFormat::Jsonl if line.trim().is_empty() => Item::Verbatim(String::new()),
                TextFormat::Jsonl => {
                    let value: Value = serde_json::from_str(line)
                        .with_context(|| format!("{}: not a JSON object", at()))?;
                    let Value::Object(map) = value else {
                        bail!("{}: not a JSON object", at());
                    };
                    let Some(Value::String(t)) = map.get("text") else {
                        bail!("{}: no string field \"text\"", at());
                    };
                    let t = t.clone();
                    Item::Json(map, t)
                }
                TextFormat::Stm => {
                    if line.trim().is_empty() || line.starts_with(";;") {
                        Item::Verbatim(line.to_string())
                    } else {
                        let (head, words) = split_fields(line, 5).with_context(|| {
                            format!("{}: an STM line has at least five fields", at())
                        })?;
                        Item::Stm(head.to_string(), words.to_string())
                    }
                }
            })
        })
        .collect()
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

/// The entities as the JSON output writes them.
pub fn entities_json(entities: &[Entity]) -> Value {
    Value::Array(
        entities
            .iter()
            .map(|e| {
                json!({
                    "start": e.start,
                    "end": e.end,
                    "label": e.label.name(),
                    "score": (e.score * 1000.0).round() / 1000.0,
                })
            })
            .collect(),
    )
}

/// Runs `diarist redact`.
pub fn run(args: &RedactArgs) -> anyhow::Result<ExitCode> {
    let mut config = settings::load(&args.common, &OfflineArgs::default())?;
    args.pii.apply(&mut config);
    let input = read_text(&args.input)?;
    let items = parse(&input, args.format)?;
    let mut tagger = load_tagger(&config)?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for chunk in items.chunks(BATCH) {
        let texts: Vec<&str> = chunk.iter().filter_map(Item::text).collect();
        let mut found = tagger.tag_batch(&texts)?.into_iter();
        for item in chunk {
            let entities = if item.text().is_some() {
                found.next().unwrap_or_default()
            } else {
                Vec::new()
            };
            match item {
                Item::Verbatim(line) => writeln!(out, "{line}")?,
                Item::Text(t) => {
                    writeln!(out, "{}", redact(t, &entities, &config.pii))?;
                    for e in &entities {
                        let surface: String =
                            t.chars().skip(e.start).take(e.end - e.start).collect();
                        writeln!(
                            out,
                            "    {} {}..{} {:.2} {:?}",
                            e.label, e.start, e.end, e.score, surface
                        )?;
                    }
                }
                Item::Json(map, t) => {
                    let mut map = map.clone();
                    map.insert("redacted".into(), redact(t, &entities, &config.pii).into());
                    map.insert("entities".into(), entities_json(&entities));
                    writeln!(out, "{}", Value::Object(map))?;
                }
                Item::Stm(head, words) => {
                    writeln!(out, "{head} {}", redact(words, &entities, &config.pii))?
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stm_fields_split_after_the_fifth() {
        let (head, words) = split_fields("sample 1 Diane 6.68 7.16  Hello there", 5).unwrap();
        assert_eq!(head, "sample 1 Diane 6.68 7.16");
        assert_eq!(words, "Hello there");
        assert!(split_fields("sample 1 Diane", 5).is_none());
        let (head, words) = split_fields("  a b c d e", 5).unwrap();
        assert_eq!((head, words), ("  a b c d e", ""));
    }
}
