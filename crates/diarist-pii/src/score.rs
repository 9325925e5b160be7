//! Scoring tagger output against reference spans: span F1 per label, exact-span precision and
//! recall of personal data, and character-level redaction recall.

use std::collections::BTreeMap;

use crate::{Entity, Label};

/// True positives, false positives and false negatives of one kind of span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanCounts {
    /// Spans found that are in the reference.
    pub tp: usize,
    /// Spans found that are not.
    pub fp: usize,
    /// Reference spans not found.
    pub fn_: usize,
}

impl SpanCounts {
    /// tp / (tp + fp), 1 when nothing was found.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    /// tp / (tp + fn), 1 when the reference is empty.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    fn add(&mut self, other: SpanCounts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Accumulated scores over many texts.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Exact span and label, per label.
    pub per_label: BTreeMap<Label, SpanCounts>,
    /// Exact span whatever the label: is this stretch personal data at all.
    pub exact_span: SpanCounts,
    /// Non-space characters of reference spans of personal (non-place) labels that a found span
    /// of any label covers, out of all of them.
    pub personal_chars: (usize, usize),
    /// Non-space characters inside found spans that are inside some reference span, out of all.
    pub found_chars: (usize, usize),
    /// Texts scored.
    pub texts: usize,
}

impl Scores {
    /// Scores one text: `reference` and `found` are character spans of `text`.
    pub fn add(&mut self, text: &str, reference: &[Entity], found: &[Entity]) {
        self.texts += 1;
        for label in Label::ALL {
            let r: Vec<_> = reference
                .iter()
                .filter(|e| e.label == label)
                .map(|e| (e.start, e.end))
                .collect();
            let f: Vec<_> = found
                .iter()
                .filter(|e| e.label == label)
                .map(|e| (e.start, e.end))
                .collect();
            if r.is_empty() && f.is_empty() {
                continue;
            }
            self.per_label
                .entry(label)
                .or_default()
                .add(match_spans(&r, &f));
        }
        let r: Vec<_> = reference.iter().map(|e| (e.start, e.end)).collect();
        let f: Vec<_> = found.iter().map(|e| (e.start, e.end)).collect();
        self.exact_span.add(match_spans(&r, &f));
        let chars: Vec<char> = text.chars().collect();
        let covered = |i: usize, spans: &[Entity]| spans.iter().any(|e| e.start <= i && i < e.end);
        let span = |e: &Entity| chars.iter().enumerate().take(e.end).skip(e.start);
        for e in reference.iter().filter(|e| !e.label.is_place()) {
            for (i, c) in span(e) {
                if !c.is_whitespace() {
                    self.personal_chars.1 += 1;
                    self.personal_chars.0 += usize::from(covered(i, found));
                }
            }
        }
        for e in found {
            for (i, c) in span(e) {
                if !c.is_whitespace() {
                    self.found_chars.1 += 1;
                    self.found_chars.0 += usize::from(covered(i, reference));
                }
            }
        }
    }

    /// Micro-averaged span counts over every label.
    pub fn micro(&self) -> SpanCounts {
        let mut all = SpanCounts::default();
        for c in self.per_label.values() {
            all.add(*c);
        }
        all
    }

    /// Character-level recall of personal (non-place) data.
    pub fn personal_char_recall(&self) -> f64 {
        ratio(self.personal_chars.0, self.personal_chars.1)
    }

    /// Character-level precision of everything found.
    pub fn char_precision(&self) -> f64 {
        ratio(self.found_chars.0, self.found_chars.1)
    }
}

fn match_spans(reference: &[(usize, usize)], found: &[(usize, usize)]) -> SpanCounts {
    let tp = found.iter().filter(|s| reference.contains(s)).count();
    SpanCounts {
        tp,
        fp: found.len() - tp,
        fn_: reference.len() - tp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(start: usize, end: usize, label: Label) -> Entity {
        Entity {
            start,
            end,
            label,
            score: 1.0,
        }
    }

    #[test]
    fn counts_exact_spans_and_characters() {
        let text = "ana at five five five one two three";
        let reference = [e(0, 3, Label::PersonName), e(7, 35, Label::Phone)];
        // the name is found; the phone number only in part, under the wrong label
        let found = [e(0, 3, Label::PersonName), e(7, 21, Label::Ssn)];
        let mut s = Scores::default();
        s.add(text, &reference, &found);
        assert_eq!(
            s.micro(),
            SpanCounts {
                tp: 1,
                fp: 1,
                fn_: 1
            }
        );
        assert_eq!(
            s.per_label[&Label::PersonName],
            SpanCounts {
                tp: 1,
                fp: 0,
                fn_: 0
            }
        );
        assert_eq!(s.exact_span.tp, 1);
        // 3 + 12 of 3 + 23 non-space reference characters are covered
        assert_eq!(s.personal_chars, (15, 26));
        assert_eq!(s.char_precision(), 1.0);
    }
}
