//! The tagger: WordPiece tokens in, per-word BIO tags out, entities as character spans of the
//! caller's text. Long texts are cut into overlapping windows of word pieces; each word piece is
//! read from the window where it sits farther from an edge (each overlap is split in the middle).

use std::path::Path;

use diarist_models::{Runtime, SessionOptions, read_verified};
use ort::session::Session;
use ort::value::TensorRef;
use tokenizers::Tokenizer;

use crate::manifest::Tag;
use crate::spans::{self, Word};
use crate::{Entity, PiiConfig, PiiError, PiiManifest};

/// How the tagger cuts text and which entities it keeps.
#[derive(Debug, Clone, Copy)]
pub struct TaggerOptions {
    /// Word pieces per model run, special tokens included.
    pub window_tokens: usize,
    /// Word pieces shared by neighbouring windows.
    pub window_overlap: usize,
    /// Longest text accepted in one call, in characters.
    pub max_chars: usize,
    /// Entities below this confidence are dropped.
    pub min_score: f32,
    /// Windows per model run (texts of one call share runs).
    pub max_batch: usize,
    /// Threads and provider of the ONNX Runtime session.
    pub session: SessionOptions,
}

impl TaggerOptions {
    /// The options a `[pii]` configuration section asks for.
    pub fn from_config(config: &PiiConfig, session: SessionOptions) -> Self {
        Self {
            window_tokens: config.window_tokens,
            window_overlap: config.window_overlap,
            max_chars: config.max_chars,
            min_score: config.min_score,
            max_batch: config.max_batch,
            session,
        }
    }
}

/// A loaded PII tagger. One caller at a time (`&mut self`); pools hold one per worker.
pub struct Tagger {
    session: Session,
    tokenizer: Tokenizer,
    manifest: PiiManifest,
    variant: String,
    tags: Vec<Option<Tag>>,
    special: [u32; 3],
    opts: TaggerOptions,
}

/// One text, tokenized.
struct Encoded {
    ids: Vec<u32>,
    /// Character offsets of each word piece.
    offsets: Vec<(usize, usize)>,
    words: Vec<Option<u32>>,
}

/// A stretch of one text's word pieces that goes through the model as one sequence.
struct Window {
    text: usize,
    start: usize,
    end: usize,
    /// The word pieces this window reports: its share of each overlap is the half nearer its
    /// own middle.
    owns: std::ops::Range<usize>,
}

impl Tagger {
    /// Loads the model in `dir` (checked against its manifest's sha256) and its tokenizer.
    /// `variant` names one of the manifest's files; empty picks its default.
    pub fn load(
        runtime: &Runtime,
        dir: &Path,
        variant: &str,
        opts: TaggerOptions,
    ) -> Result<Self, PiiError> {
        let manifest = PiiManifest::load(dir)?;
        let bad = |reason: String| PiiError::Manifest {
            path: dir.to_path_buf(),
            reason,
        };
        if opts.window_tokens > manifest.input.max_tokens || opts.window_tokens < 16 {
            return Err(bad(format!(
                "window of {} word pieces; the model takes 16 to {}",
                opts.window_tokens, manifest.input.max_tokens
            )));
        }
        if opts.window_overlap * 2 >= opts.window_tokens {
            return Err(bad("window overlap must be under half the window".into()));
        }
        let (file, sha) = manifest.file(dir, variant)?;
        let session = runtime.session(&read_verified(&file, &sha)?, opts.session)?;
        for name in [&manifest.input.ids, &manifest.input.mask] {
            if !session.inputs().iter().any(|i| i.name() == name) {
                return Err(bad(format!("the graph has no input `{name}`")));
            }
        }
        if !session
            .outputs()
            .iter()
            .any(|o| o.name() == manifest.output.name)
        {
            return Err(bad(format!(
                "the graph has no output `{}`",
                manifest.output.name
            )));
        }
        let bytes = read_verified(
            &dir.join(&manifest.tokenizer.file),
            &manifest.tokenizer.sha256,
        )?;
        let mut tokenizer =
            Tokenizer::from_bytes(&bytes).map_err(|e| bad(format!("tokenizer: {e}")))?;
        tokenizer
            .with_truncation(None)
            .map_err(|e| bad(e.to_string()))?;
        tokenizer.with_padding(None);
        let special = ["[CLS]", "[SEP]", "[PAD]"].map(|t| tokenizer.token_to_id(t));
        let [Some(cls), Some(sep), Some(pad)] = special else {
            return Err(bad("the tokenizer lacks [CLS], [SEP] or [PAD]".into()));
        };
        let tags = manifest.tags().map_err(bad)?;
        let variant = manifest.variant_name(variant).to_string();
        Ok(Self {
            session,
            tokenizer,
            manifest,
            variant,
            tags,
            special: [cls, sep, pad],
            opts,
        })
    }

    /// Loads the tagger a `[pii]` configuration names: its model, variant and options, with
    /// `session`'s threads and provider.
    pub fn from_config(
        runtime: &Runtime,
        config: &PiiConfig,
        session: SessionOptions,
    ) -> Result<Self, PiiError> {
        let opts = TaggerOptions::from_config(config, session);
        Self::load(runtime, &config.model, &config.variant, opts)
    }

    /// The manifest the model was loaded from.
    pub fn manifest(&self) -> &PiiManifest {
        &self.manifest
    }

    /// The variant that was loaded.
    pub fn variant(&self) -> &str {
        &self.variant
    }

    /// Number of word pieces the model sees for `text` (special tokens not counted).
    pub fn token_count(&self, text: &str) -> Result<usize, PiiError> {
        Ok(self.encode(text)?.ids.len())
    }

    /// Personal data in `text`, sorted by position, spans not overlapping.
    pub fn tag(&mut self, text: &str) -> Result<Vec<Entity>, PiiError> {
        Ok(self.tag_batch(&[text])?.pop().unwrap_or_default())
    }

    /// Personal data in each of `texts`; their windows share model runs up to `max_batch`.
    pub fn tag_batch(&mut self, texts: &[&str]) -> Result<Vec<Vec<Entity>>, PiiError> {
        let encoded = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let windows = self.windows(&encoded);
        let classes = self.tags.len();
        // logits of every word piece, taken from the window that owns it
        let mut logits: Vec<Vec<f32>> = encoded
            .iter()
            .map(|e| vec![0.0; e.ids.len() * classes])
            .collect();
        // windows of like length share a run, so little of it is padding
        let mut order: Vec<usize> = (0..windows.len()).collect();
        order.sort_by_key(|&k| windows[k].end - windows[k].start);
        for run in order.chunks(self.opts.max_batch.max(1)) {
            let chunk: Vec<&Window> = run.iter().map(|&k| &windows[k]).collect();
            self.run(&encoded, &chunk, &mut logits)?;
        }
        Ok(texts
            .iter()
            .zip(&encoded)
            .zip(&logits)
            .map(|((text, enc), logits)| self.decode(text, enc, logits))
            .collect())
    }

    fn encode(&self, text: &str) -> Result<Encoded, PiiError> {
        let chars = text.chars().count();
        if chars > self.opts.max_chars {
            return Err(PiiError::TooLong {
                chars,
                limit: self.opts.max_chars,
            });
        }
        let enc = self
            .tokenizer
            .encode_char_offsets(text, false)
            .map_err(|e| PiiError::Tokenizer(e.to_string()))?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            offsets: enc.get_offsets().to_vec(),
            words: enc.get_word_ids().to_vec(),
        })
    }

    fn windows(&self, encoded: &[Encoded]) -> Vec<Window> {
        let width = self.opts.window_tokens - 2;
        let step = width - self.opts.window_overlap;
        let mut out = Vec::new();
        for (text, enc) in encoded.iter().enumerate() {
            let n = enc.ids.len();
            let mut start = 0;
            while start < n {
                let end = (start + width).min(n);
                // the last window ends at the text's end and is as wide as the text allows
                let first = if end == n {
                    n.saturating_sub(width)
                } else {
                    start
                };
                if let Some(prev) = out.last_mut().filter(|w: &&mut Window| w.text == text) {
                    let boundary = (first + prev.end) / 2;
                    prev.owns.end = boundary;
                    out.push(Window {
                        text,
                        start: first,
                        end,
                        owns: boundary..end,
                    });
                } else {
                    out.push(Window {
                        text,
                        start: first,
                        end,
                        owns: first..end,
                    });
                }
                start += step;
                if end == n {
                    break;
                }
            }
        }
        out
    }

    fn run(
        &mut self,
        encoded: &[Encoded],
        chunk: &[&Window],
        logits: &mut [Vec<f32>],
    ) -> Result<(), PiiError> {
        let [cls, sep, pad] = self.special;
        let len = chunk.iter().map(|w| w.end - w.start + 2).max().unwrap_or(2);
        let mut ids = vec![i64::from(pad); chunk.len() * len];
        let mut mask = vec![0i64; chunk.len() * len];
        for (row, w) in chunk.iter().enumerate() {
            let seq = std::iter::once(cls)
                .chain(encoded[w.text].ids[w.start..w.end].iter().copied())
                .chain(std::iter::once(sep));
            for (col, id) in seq.enumerate() {
                ids[row * len + col] = i64::from(id);
                mask[row * len + col] = 1;
            }
        }
        let shape = vec![chunk.len() as i64, len as i64];
        let ids_t = TensorRef::from_array_view((shape.clone(), &ids[..]))?;
        let mask_t = TensorRef::from_array_view((shape, &mask[..]))?;
        let input = &self.manifest.input;
        let outputs = self.session.run(ort::inputs![
            input.ids.as_str() => ids_t,
            input.mask.as_str() => mask_t,
        ])?;
        let (oshape, data) =
            outputs[self.manifest.output.name.as_str()].try_extract_tensor::<f32>()?;
        let classes = self.tags.len();
        if oshape.len() != 3
            || oshape[0] as usize != chunk.len()
            || oshape[1] as usize != len
            || oshape[2] as usize != classes
        {
            return Err(PiiError::Manifest {
                path: self.manifest.model.name.clone().into(),
                reason: format!(
                    "logits of shape {oshape:?}; expected [{}, {len}, {classes}]",
                    chunk.len()
                ),
            });
        }
        for (row, w) in chunk.iter().enumerate() {
            for i in w.owns.clone() {
                let at = (row * len + 1 + i - w.start) * classes;
                logits[w.text][i * classes..(i + 1) * classes]
                    .copy_from_slice(&data[at..at + classes]);
            }
        }
        Ok(())
    }

    /// The entities of one text: each word's tag is its first piece's best class.
    fn decode(&self, text: &str, enc: &Encoded, logits: &[f32]) -> Vec<Entity> {
        let classes = self.tags.len();
        let mut words: Vec<Word> = Vec::new();
        let mut last_word = None;
        for (i, word) in enc.words.iter().enumerate() {
            let (start, end) = enc.offsets[i];
            if word.is_some() && *word == last_word {
                if let Some(w) = words.last_mut() {
                    w.end = w.end.max(end);
                }
                continue;
            }
            last_word = *word;
            let row = &logits[i * classes..(i + 1) * classes];
            let (best, probability) = softmax_argmax(row);
            words.push(Word {
                start,
                end,
                tag: self.tags[best],
                probability,
            });
        }
        spans::entities(text, words, self.opts.min_score)
    }
}

/// The most likely class of a row of logits, and its probability.
fn softmax_argmax(row: &[f32]) -> (usize, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|x| (x - max).exp()).sum();
    let (best, value) =
        row.iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |a, (i, x)| if x > a.1 { (i, x) } else { a },
            );
    (best, (value - max).exp() / sum)
}
