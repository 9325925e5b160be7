//! From tagged words to entities: runs of BIO tags become spans, the pieces of one e-mail address
//! are joined, each span's edges are trimmed, and validators adjust its confidence.

use crate::manifest::Tag;
use crate::spoken::{email_shaped, luhn, spoken_digits};
use crate::{Entity, Label};

/// One word of a text as the model tagged it (by its first word piece).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Word {
    /// First character.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// The word's tag; `None` outside any entity.
    pub tag: Option<Tag>,
    /// The tag's probability.
    pub probability: f32,
}

/// A run of words that make one entity, before its edges are trimmed and it is validated.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    /// First character.
    start: usize,
    /// One past the last character.
    end: usize,
    /// What the words say it is.
    label: Label,
    /// Sum of the words' tag probabilities.
    probability_sum: f32,
    /// Words in the span.
    words: usize,
}

impl Span {
    /// The span's confidence before validation: its words' mean tag probability.
    fn mean_probability(&self) -> f32 {
        self.probability_sum / self.words as f32
    }
}

/// The entities among `words` (in text order) of `text`: spans of like-labelled words, e-mail
/// pieces joined, edges trimmed, confidence validated; those under `min_score` are dropped.
pub(crate) fn entities(text: &str, words: Vec<Word>, min_score: f32) -> Vec<Entity> {
    let mut spans = bio_spans(words);
    let chars: Vec<char> = text.chars().collect();
    join_email_parts(&mut spans, &chars);
    spans
        .into_iter()
        .filter_map(|span| {
            let (start, end) = trim_edges(&chars, span.start, span.end)?;
            let surface: String = chars[start..end.min(chars.len())].iter().collect();
            let score = validate(span.label, &surface, span.mean_probability());
            (score >= min_score).then_some(Entity {
                start,
                end,
                label: span.label,
                score,
            })
        })
        .collect()
}

/// Spans of BIO-tagged words: a B- starts a span, an I- continues an open span of its label, and
/// an I- that does not continue one starts one.
fn bio_spans(words: Vec<Word>) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut open = false;
    for word in words {
        match word.tag {
            None => open = false,
            Some(Tag::Inside(l)) if open && spans.last().is_some_and(|x| x.label == l) => {
                let x = spans.last_mut().expect("an open span");
                x.end = word.end;
                x.probability_sum += word.probability;
                x.words += 1;
            }
            Some(Tag::Begin(label) | Tag::Inside(label)) => {
                spans.push(Span {
                    start: word.start,
                    end: word.end,
                    label,
                    probability_sum: word.probability,
                    words: 1,
                });
                open = true;
            }
        }
    }
    spans
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

/// The lower-cased words of `chars[a..b]`, split at spaces and e-mail punctuation.
fn email_words(chars: &[char], a: usize, b: usize) -> Vec<String> {
    chars[a..b.min(chars.len())]
        .iter()
        .collect::<String>()
        .split(|c: char| c.is_whitespace() || matches!(c, '.' | '_' | '-' | '@'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `chars[a..b]` starts with e-mail punctuation, a joiner word or a number.
fn starts_joined(chars: &[char], a: usize, b: usize) -> bool {
    let first = chars.get(a).copied().unwrap_or(' ');
    matches!(first, '.' | '_' | '-' | '@')
        || email_words(chars, a, b)
            .first()
            .is_some_and(|w| EMAIL_JOINERS.contains(&w.as_str()) || !spoken_digits(w).is_empty())
}

/// Whether `chars[a..b]` ends with e-mail punctuation or a joiner word.
fn ends_joined(chars: &[char], a: usize, b: usize) -> bool {
    let last = chars.get(b.wrapping_sub(1)).copied().unwrap_or(' ');
    matches!(last, '.' | '_' | '-' | '@')
        || email_words(chars, a, b)
            .last()
            .is_some_and(|w| EMAIL_JOINERS.contains(&w.as_str()))
}

/// An e-mail address is often tagged in pieces: its user part ("kevin", "h dot flynn") as a name,
/// its address part ("seventy nine at icloud dot com", "@fastmail.net") as an e-mail. A name or
/// e-mail span directly followed by an e-mail span that starts with a joiner or a number, or an
/// e-mail span that ends with a joiner directly followed by a name or e-mail span, is one address.
fn join_email_parts(spans: &mut Vec<Span>, chars: &[char]) {
    let names = |l: Label| matches!(l, Label::PersonName | Label::Email);
    let mut i = spans.len();
    while i > 1 {
        i -= 1;
        let (a, b) = (spans[i - 1], spans[i]);
        let gap_ok = chars[a.end..b.start].iter().all(|c| c.is_whitespace());
        let joined = (b.label == Label::Email
            && names(a.label)
            && starts_joined(chars, b.start, b.end))
            || (a.label == Label::Email && names(b.label) && ends_joined(chars, a.start, a.end));
        if gap_ok && joined {
            spans[i - 1] = Span {
                start: a.start,
                end: b.end,
                label: Label::Email,
                probability_sum: a.probability_sum + b.probability_sum,
                words: a.words + b.words,
            };
            spans.remove(i);
        }
    }
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

    fn spans_of(text: &str, parts: &[(&str, Label)]) -> Vec<Span> {
        parts
            .iter()
            .map(|(p, l)| {
                let byte = text.find(p).unwrap();
                let start = text[..byte].chars().count();
                Span {
                    start,
                    end: start + p.chars().count(),
                    label: *l,
                    probability_sum: 0.9,
                    words: 1,
                }
            })
            .collect()
    }

    fn placed(spans: &[Span]) -> Vec<(usize, usize, Label)> {
        spans.iter().map(|s| (s.start, s.end, s.label)).collect()
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
        assert_eq!(
            placed(&spans),
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
        spans[2].start = 38;
        spans[2].end = 39;
        join_email_parts(&mut spans, &chars);
        assert_eq!(
            placed(&spans),
            vec![(0, 36, Label::Email), (38, 58, Label::Email)]
        );

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

    #[test]
    fn bio_tags_make_spans_and_a_stray_inside_starts_one() {
        let word = |start: usize, tag: Option<Tag>| Word {
            start,
            end: start + 3,
            tag,
            probability: 0.5,
        };
        let spans = bio_spans(vec![
            word(0, Some(Tag::Begin(Label::PersonName))),
            word(4, Some(Tag::Inside(Label::PersonName))),
            word(8, None),
            word(12, Some(Tag::Inside(Label::City))),
            word(16, Some(Tag::Inside(Label::Phone))),
        ]);
        assert_eq!(
            placed(&spans),
            vec![
                (0, 7, Label::PersonName),
                (12, 15, Label::City),
                (16, 19, Label::Phone)
            ]
        );
        assert_eq!((spans[0].words, spans[0].mean_probability()), (2, 0.5));
    }
}
