//! The tagger: WordPiece tokens in, per-word BIO tags out, entities as character spans of the
//! caller's text. Long texts are cut into overlapping windows of word pieces; each word piece is
//! read from the window where it sits farther from an edge (each overlap is split in the middle).

use std::path::Path;

use diarist_models::{Runtime, SessionOptions, read_verified};
use ort::session::Session;
use ort::value::TensorRef;
use tokenizers::Tokenizer;

use crate::manifest::Tag;
use crate::spoken::{email_shaped, luhn, spoken_digits};
use crate::{Entity, Label, PiiConfig, PiiError, PiiManifest};

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

    fn decode(&self, text: &str, enc: &Encoded, logits: &[f32]) -> Vec<Entity> {
        let classes = self.tags.len();
        // words: (first char, end char, tag, probability)
        let mut words: Vec<(usize, usize, Option<Tag>, f32)> = Vec::new();
        let mut last_word = None;
        for (i, word) in enc.words.iter().enumerate() {
            let (s, e) = enc.offsets[i];
            if word.is_some() && *word == last_word {
                if let Some(w) = words.last_mut() {
                    w.1 = w.1.max(e);
                }
                continue;
            }
            last_word = *word;
            let row = &logits[i * classes..(i + 1) * classes];
            let (best, p) = softmax_argmax(row);
            words.push((s, e, self.tags[best], p));
        }
        // BIO → spans (first char, end char, label, summed probability, words); an I- that does
        // not continue an open span of its label starts one
        let mut spans: Vec<(usize, usize, Label, f32, usize)> = Vec::new();
        let mut open = false;
        for (s, e, tag, p) in words {
            match tag {
                None => open = false,
                Some(Tag::Inside(l)) if open && spans.last().is_some_and(|x| x.2 == l) => {
                    let x = spans.last_mut().expect("an open span");
                    x.1 = e;
                    x.3 += p;
                    x.4 += 1;
                }
                Some(Tag::Begin(l) | Tag::Inside(l)) => {
                    spans.push((s, e, l, p, 1));
                    open = true;
                }
            }
        }
        let chars: Vec<char> = text.chars().collect();
        join_email_parts(&mut spans, &chars);
        spans
            .into_iter()
            .filter_map(|(start, end, label, sum, n)| {
                let (start, end) = trim_edges(&chars, start, end)?;
                let surface: String = chars[start..end.min(chars.len())].iter().collect();
                let score = validate(label, &surface, sum / n as f32);
                (score >= self.opts.min_score).then_some(Entity {
                    start,
                    end,
                    label,
                    score,
                })
            })
            .collect()
    }
}

/// The span without the sentence punctuation, symbols, emoji and spaces that word-level tagging
/// can sweep in at its edges; `None` when nothing is left.
fn trim_edges(chars: &[char], mut start: usize, mut end: usize) -> Option<(usize, usize)> {
    let keep = |c: char| c.is_alphanumeric() || matches!(c, '(' | ')' | '+' | '#' | '@');
    end = end.min(chars.len());
    while start < end && !keep(chars[start]) {
        start += 1;
    }
    while end > start && !keep(chars[end - 1]) {
        end -= 1;
    }
    (start < end).then_some((start, end))
}

/// Words that join the parts of an e-mail address, spoken or written.
const EMAIL_JOINERS: &[&str] = &[
    "at",
    "@",
    "dot",
    ".",
    "underscore",
    "_",
    "hyphen",
    "dash",
    "-",
];

/// An e-mail address is often tagged in pieces: its user part ("kevin", "h dot flynn") as a name,
/// its address part ("seventy nine at icloud dot com", "@fastmail.net") as an e-mail. A name or
/// e-mail span directly followed by an e-mail span that starts with a joiner or a number, or an
/// e-mail span that ends with a joiner directly followed by a name or e-mail span, is one address.
fn join_email_parts(spans: &mut Vec<(usize, usize, Label, f32, usize)>, chars: &[char]) {
    let words = |a: usize, b: usize| -> Vec<String> {
        chars[a..b.min(chars.len())]
            .iter()
            .collect::<String>()
            .split(|c: char| c.is_whitespace() || matches!(c, '.' | '_' | '-' | '@'))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let starts_joined = |a: usize, b: usize| {
        let first = chars.get(a).copied().unwrap_or(' ');
        matches!(first, '.' | '_' | '-' | '@')
            || words(a, b).first().is_some_and(|w| {
                EMAIL_JOINERS.contains(&w.as_str()) || !spoken_digits(w).is_empty()
            })
    };
    let ends_joined = |a: usize, b: usize| {
        let last = chars.get(b.wrapping_sub(1)).copied().unwrap_or(' ');
        matches!(last, '.' | '_' | '-' | '@')
            || words(a, b)
                .last()
                .is_some_and(|w| EMAIL_JOINERS.contains(&w.as_str()))
    };
    let mut i = spans.len();
    while i > 1 {
        i -= 1;
        let (a, b) = (spans[i - 1], spans[i]);
        let gap_ok = chars[a.1..b.0].iter().all(|c| c.is_whitespace());
        let names = |l: Label| matches!(l, Label::PersonName | Label::Email);
        let joined = (b.2 == Label::Email && names(a.2) && starts_joined(b.0, b.1))
            || (a.2 == Label::Email && names(b.2) && ends_joined(a.0, a.1));
        if gap_ok && joined {
            spans[i - 1] = (a.0, b.1, Label::Email, a.3 + b.3, a.4 + b.4);
            spans.remove(i);
        }
    }
}

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

/// Confidence after checking the span's form: a card number that passes Luhn, a phone number
/// with a plausible digit count or an e-mail with an address's shape gains; one that cannot be
/// what its label says loses.
fn validate(label: Label, surface: &str, score: f32) -> f32 {
    let gain = |s: f32| 1.0 - (1.0 - s) * 0.5;
    let digits = || spoken_digits(surface).len();
    match label {
        Label::CreditCard => {
            let d = spoken_digits(surface);
            if !(12..=19).contains(&d.len()) {
                score * 0.5
            } else if luhn(&d) {
                gain(score)
            } else {
                // recognisers mishear single digits; a near-miss still reads as a card
                score * 0.8
            }
        }
        Label::Phone => match digits() {
            7..=15 => gain(score),
            _ => score * 0.6,
        },
        // nine digits (US social security) or six (UK national insurance, with its letters)
        Label::Ssn => match digits() {
            9 | 6 => gain(score),
            _ => score * 0.6,
        },
        Label::Email => {
            if email_shaped(surface) {
                gain(score)
            } else {
                score * 0.6
            }
        }
        _ => score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans_of(text: &str, parts: &[(&str, Label)]) -> Vec<(usize, usize, Label, f32, usize)> {
        parts
            .iter()
            .map(|(p, l)| {
                let byte = text.find(p).unwrap();
                let start = text[..byte].chars().count();
                (start, start + p.chars().count(), *l, 0.9, 1)
            })
            .collect()
    }

    #[test]
    fn e_mail_pieces_join_into_one_address() {
        let text = "it's h dot flynn at protonmail dot com and call ana";
        let chars: Vec<char> = text.chars().collect();
        let mut spans = spans_of(
            text,
            &[
                ("h dot", Label::Email),
                ("flynn", Label::PersonName),
                ("at protonmail dot com", Label::Email),
                ("ana", Label::PersonName),
            ],
        );
        join_email_parts(&mut spans, &chars);
        let got: Vec<_> = spans.iter().map(|s| (s.0, s.1, s.2)).collect();
        assert_eq!(
            got,
            vec![(5, 38, Label::Email), (48, 51, Label::PersonName)]
        );

        let text = "kevin seventy nine at icloud dot com, t_budig@fastmail.com";
        let chars: Vec<char> = text.chars().collect();
        let mut spans = spans_of(
            text,
            &[
                ("kevin", Label::PersonName),
                ("seventy nine at icloud dot com", Label::Email),
                ("t", Label::PersonName),
                ("_budig@fastmail.com", Label::Email),
            ],
        );
        // "t" is found first at "at": place it where it is
        spans[2].0 = 38;
        spans[2].1 = 39;
        join_email_parts(&mut spans, &chars);
        let got: Vec<_> = spans.iter().map(|s| (s.0, s.1, s.2)).collect();
        assert_eq!(got, vec![(0, 36, Label::Email), (38, 58, Label::Email)]);

        // a name next to an address that has its own user part stays a name
        let text = "ana j@x.com";
        let chars: Vec<char> = text.chars().collect();
        let mut spans = spans_of(
            text,
            &[("ana", Label::PersonName), ("j@x.com", Label::Email)],
        );
        join_email_parts(&mut spans, &chars);
        assert_eq!(spans.len(), 2);
    }
}
