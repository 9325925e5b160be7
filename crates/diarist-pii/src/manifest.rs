//! `manifest.toml` of a PII tagger model: the graph's inputs and outputs, its label list, the
//! tokenizer that goes with it, and checksums of every file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Label, PiiError};

/// `[model]`: what the model is and where it came from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Model name.
    pub name: String,
    /// Always "token-classification".
    pub task: String,
    /// The variant loaded when none is named.
    pub default_variant: String,
    /// Licence of the weights.
    pub licence: String,
    /// Licence text beside the weights.
    pub licence_file: String,
    /// Where the weights came from.
    pub source: String,
    /// The script that produced the files.
    pub produced_by: String,
    /// Transformer layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
}

/// `[input]`: graph input names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    /// Token ids `[batch, tokens]` int64.
    pub ids: String,
    /// Attention mask `[batch, tokens]` int64.
    pub mask: String,
    /// Longest sequence the model takes, special tokens included.
    pub max_tokens: usize,
}

/// `[output]`: the logits and what their classes mean.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Logits `[batch, tokens, labels]` float32.
    pub name: String,
    /// Tagging scheme; "bio-first-subtoken": a word's tag is its first word piece's.
    pub scheme: String,
    /// Class names: "O", then "B-LABEL" / "I-LABEL".
    pub labels: Vec<String>,
}

/// `[tokenizer]`: the Hugging Face tokenizer.json the model was trained with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerSection {
    /// File, relative to the manifest.
    pub file: String,
    /// Its sha256.
    pub sha256: String,
}

/// One ONNX file of the model (full precision, quantised, ...).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// ONNX file, relative to the manifest.
    pub file: String,
    /// Its sha256.
    pub sha256: String,
}

/// A parsed and checked PII model manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiManifest {
    /// What the model is.
    pub model: ModelSection,
    /// Graph inputs.
    pub input: InputSection,
    /// Graph output.
    pub output: OutputSection,
    /// Tokenizer.
    pub tokenizer: TokenizerSection,
    /// The model's ONNX files by variant name.
    pub variants: BTreeMap<String, Variant>,
}

/// Beginning or inside of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    Begin(Label),
    Inside(Label),
}

impl PiiManifest {
    /// Reads `dir/manifest.toml` and checks it.
    pub fn load(dir: &Path) -> Result<Self, PiiError> {
        let path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| PiiError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let manifest: PiiManifest = toml::from_str(&text).map_err(|e| PiiError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let bad = |reason: String| PiiError::Manifest {
            path: path.clone(),
            reason,
        };
        if manifest.model.task != "token-classification" {
            return Err(bad(format!(
                "task is {:?}, not \"token-classification\"",
                manifest.model.task
            )));
        }
        if manifest.output.scheme != "bio-first-subtoken" {
            return Err(bad(format!(
                "unknown tagging scheme {:?}",
                manifest.output.scheme
            )));
        }
        if !manifest
            .variants
            .contains_key(&manifest.model.default_variant)
        {
            return Err(bad(format!(
                "default variant `{}` is not among the variants",
                manifest.model.default_variant
            )));
        }
        manifest.tags().map_err(bad)?;
        Ok(manifest)
    }

    /// The variant `variant` names: itself, or the default variant when it is empty.
    pub fn variant_name<'a>(&'a self, variant: &'a str) -> &'a str {
        if variant.is_empty() {
            &self.model.default_variant
        } else {
            variant
        }
    }

    /// The ONNX file and its sha256 for `variant` (empty: the default variant).
    pub fn file(&self, dir: &Path, variant: &str) -> Result<(PathBuf, String), PiiError> {
        let variant = self.variant_name(variant);
        match self.variants.get(variant) {
            Some(v) => Ok((dir.join(&v.file), v.sha256.clone())),
            None => Err(PiiError::Manifest {
                path: dir.to_path_buf(),
                reason: format!(
                    "no variant `{variant}` (known: {})",
                    self.variants
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// The meaning of each output class: `None` for "O".
    pub(crate) fn tags(&self) -> Result<Vec<Option<Tag>>, String> {
        let labels = &self.output.labels;
        if labels.first().map(String::as_str) != Some("O") {
            return Err("the first output label must be \"O\"".into());
        }
        labels
            .iter()
            .map(|l| {
                if l == "O" {
                    return Ok(None);
                }
                let (prefix, name) = l
                    .split_once('-')
                    .ok_or_else(|| format!("label {l:?} is not O, B-X or I-X"))?;
                let label = Label::parse(name).ok_or_else(|| format!("unknown label {name:?}"))?;
                match prefix {
                    "B" => Ok(Some(Tag::Begin(label))),
                    "I" => Ok(Some(Tag::Inside(label))),
                    _ => Err(format!("label {l:?} is not O, B-X or I-X")),
                }
            })
            .collect()
    }
}
