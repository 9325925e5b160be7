//! Writing a text with its personal data hidden, as the redaction policy says.

use crate::{Entity, PiiConfig, RedactStyle};

/// `text` with every entity whose label the policy hides replaced by `[LABEL]` or the mask.
/// Entities are character spans as the tagger returns them (sorted, not overlapping); spans that
/// overlap an earlier one or fall outside the text are skipped.
pub fn redact(text: &str, entities: &[Entity], policy: &PiiConfig) -> String {
    let bytes: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = bytes.len() - 1;
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in entities {
        if !policy.redact.contains(&e.label) || e.start < at || e.end > chars || e.start >= e.end {
            continue;
        }
        out.push_str(&text[bytes[at]..bytes[e.start]]);
        match policy.style {
            RedactStyle::Tag => {
                out.push('[');
                out.push_str(e.label.name());
                out.push(']');
            }
            RedactStyle::Mask => out.push_str(&policy.mask),
        }
        at = e.end;
    }
    out.push_str(&text[bytes[at]..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Label;

    fn entity(start: usize, end: usize, label: Label) -> Entity {
        Entity {
            start,
            end,
            label,
            score: 0.9,
        }
    }

    #[test]
    fn replaces_character_spans_of_non_ascii_text() {
        let text = "soy José Núñez de Málaga";
        let ents = [
            entity(4, 14, Label::PersonName),
            entity(18, 24, Label::City),
        ];
        let mut policy = PiiConfig::default();
        assert_eq!(redact(text, &ents, &policy), "soy [PERSON_NAME] de [CITY]");
        policy.redact.retain(|l| !l.is_place());
        assert_eq!(redact(text, &ents, &policy), "soy [PERSON_NAME] de Málaga");
        policy.style = RedactStyle::Mask;
        assert_eq!(redact(text, &ents, &policy), "soy [REDACTED] de Málaga");
    }

    #[test]
    fn skips_overlapping_and_out_of_range_spans() {
        let text = "call ana";
        let ents = [
            entity(5, 8, Label::PersonName),
            entity(6, 8, Label::City),
            entity(7, 40, Label::City),
        ];
        assert_eq!(
            redact(text, &ents, &PiiConfig::default()),
            "call [PERSON_NAME]"
        );
    }
}
