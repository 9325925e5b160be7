//! The `[pii]` section of the configuration: which model tags, and what redaction hides.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Label, PiiError};

/// How redacted spans are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedactStyle {
    /// The label in brackets: `[PERSON_NAME]`.
    Tag,
    /// The fixed `mask` string, whatever the label.
    Mask,
}

/// Tagger model and redaction policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiConfig {
    /// Directory holding the tagger's manifest.toml.
    pub model: PathBuf,
    /// A variant the manifest lists, such as "int8" or "fp32"; empty: its default variant.
    pub variant: String,
    /// Entities whose confidence (after validators) is below this are not reported.
    pub min_score: f32,
    /// Labels that redaction hides; the others are reported but left in the text.
    pub redact: Vec<Label>,
    /// How a hidden span is written.
    pub style: RedactStyle,
    /// The replacement for every hidden span when `style = "mask"`.
    pub mask: String,
    /// Word pieces per model run; longer texts are cut into overlapping windows.
    pub window_tokens: usize,
    /// Word pieces shared by neighbouring windows.
    pub window_overlap: usize,
    /// Longest text accepted in one call, in characters.
    pub max_chars: usize,
    /// Windows per model run. With a dynamically quantised (INT8) model, activation scales are
    /// computed over the whole run, so above 1 a text's result can depend on what else is in it.
    pub max_batch: usize,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::from("models/pii-minilm-l3"),
            variant: "int8".into(),
            min_score: 0.7,
            redact: Label::ALL.to_vec(),
            style: RedactStyle::Tag,
            mask: "[REDACTED]".into(),
            window_tokens: 128,
            window_overlap: 32,
            max_chars: 1_000_000,
            max_batch: 1,
        }
    }
}

impl PiiConfig {
    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), PiiError> {
        let bad = |what: &str| Err(PiiError::Config(what.to_string()));
        if !(0.0..=1.0).contains(&self.min_score) {
            return bad("min_score must be in [0, 1]");
        }
        if !(16..=510).contains(&self.window_tokens) {
            return bad("window_tokens must be in 16..=510");
        }
        if self.window_overlap * 2 >= self.window_tokens {
            return bad("window_overlap must be less than half of window_tokens");
        }
        if !(1..=256).contains(&self.max_batch) {
            return bad("max_batch must be in 1..=256");
        }
        if self.max_chars == 0 {
            return bad("max_chars must be at least 1");
        }
        Ok(())
    }
}
