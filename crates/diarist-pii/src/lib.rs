//! Personal data in transcript text: a token-classification model (WordPiece tokenizer, ONNX
//! Runtime) finds names, phone and card numbers, e-mail addresses, dates, national ids, street
//! addresses and places; validators adjust its confidence; a policy redacts what it found.
//!
//! Speech-recogniser output is the target: lower case, little punctuation, numbers spoken
//! ("four two four two", "double five"), e-mails spoken ("j fernandez at protonmail dot com").
//! Offsets are in characters (Unicode scalar values) of the caller's text.

mod config;
mod manifest;
mod pool;
mod redact;
mod score;
mod spans;
mod spoken;
mod tagger;
pub mod text;
pub mod transcript;

pub use config::{PiiConfig, RedactStyle};
pub use manifest::PiiManifest;
pub use pool::{PoolError, TaggerPool};
pub use redact::redact;
pub use score::{Scores, SpanCounts};
pub use spoken::spoken_digits;
pub use tagger::{Tagger, TaggerOptions};

use serde::{Deserialize, Serialize};

/// The kinds of personal data the tagger reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Label {
    /// A person's name (first, last, full, or spelled out letter by letter).
    PersonName,
    /// A telephone number.
    Phone,
    /// An e-mail address, written or spoken.
    Email,
    /// A payment card number.
    CreditCard,
    /// A calendar date (birth dates, appointments).
    Date,
    /// A social security or national insurance number.
    Ssn,
    /// A street address (house number and street, apartment).
    StreetAddress,
    /// A city or town.
    City,
    /// A state, region or country.
    Location,
}

impl Label {
    /// Every label, in the order of the model's label list.
    pub const ALL: [Label; 9] = [
        Label::PersonName,
        Label::Phone,
        Label::Email,
        Label::CreditCard,
        Label::Date,
        Label::Ssn,
        Label::StreetAddress,
        Label::City,
        Label::Location,
    ];

    /// The label's name as the model's label list and the JSON output spell it.
    pub fn name(self) -> &'static str {
        match self {
            Label::PersonName => "PERSON_NAME",
            Label::Phone => "PHONE",
            Label::Email => "EMAIL",
            Label::CreditCard => "CREDIT_CARD",
            Label::Date => "DATE",
            Label::Ssn => "SSN",
            Label::StreetAddress => "STREET_ADDRESS",
            Label::City => "CITY",
            Label::Location => "LOCATION",
        }
    }

    /// Parses a label name (`PERSON_NAME`, ...).
    pub fn parse(name: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Places (cities, states, countries) rather than data about one person.
    pub fn is_place(self) -> bool {
        matches!(self, Label::City | Label::Location)
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One piece of personal data found in a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// First character (Unicode scalar value index) of the span.
    pub start: usize,
    /// One past the last character of the span.
    pub end: usize,
    /// What kind of data it is.
    pub label: Label,
    /// Confidence in [0, 1], after validators.
    pub score: f32,
}

/// Everything that can go wrong tagging text.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] diarist_models::ModelError),
    /// ONNX Runtime reported an error during a run.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    /// The manifest or the tokenizer does not fit the model.
    #[error("PII model {path}: {reason}")]
    Manifest {
        /// The model directory or file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer failed on the text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The text is longer than the tagger accepts in one call.
    #[error("text of {chars} characters is longer than the limit of {limit}; split it")]
    TooLong {
        /// Characters in the text.
        chars: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The configuration is invalid.
    #[error("pii configuration: {0}")]
    Config(String),
}
