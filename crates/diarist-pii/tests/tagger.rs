//! The shipped PII tagger on real text: the pyannote sample's transcript, speech-recogniser
//! sentences with spoken numbers and e-mails, non-ASCII offsets, long, empty and garbage input,
//! and the quality targets on the held-out test split (templates never seen in training).

use std::path::PathBuf;

use diarist_models::{Runtime, SessionOptions};
use diarist_pii::{
    Entity, Label, PiiConfig, PiiError, Scores, Tagger, TaggerOptions, TaggerPool, redact,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `[pii]` section and the ONNX Runtime library of the shipped configuration.
fn config() -> (PiiConfig, PathBuf) {
    let text = std::fs::read_to_string(root().join("configs/diarist.toml")).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let mut pii: PiiConfig = table["pii"].clone().try_into().unwrap();
    pii.model = root().join("models").join(pii.model);
    let lib = std::env::var_os("DIARIST_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            root()
                .join(".ort")
                .join(table["runtime"]["onnxruntime"].as_str().unwrap())
        });
    (pii, lib)
}

fn tagger_with(edit: impl FnOnce(&mut PiiConfig)) -> (Tagger, PiiConfig) {
    let (mut pii, lib) = config();
    edit(&mut pii);
    let runtime = Runtime::load(&lib).unwrap();
    let opts = TaggerOptions::from_config(&pii, SessionOptions::default());
    (
        Tagger::load(&runtime, &pii.model, &pii.variant, opts).unwrap(),
        pii,
    )
}

fn tagger() -> (Tagger, PiiConfig) {
    tagger_with(|_| {})
}

fn surfaces(text: &str, entities: &[Entity]) -> Vec<(String, Label)> {
    entities
        .iter()
        .map(|e| {
            (
                text.chars().skip(e.start).take(e.end - e.start).collect(),
                e.label,
            )
        })
        .collect()
}

#[test]
fn the_sample_transcript_comes_back_without_names_or_places() {
    let (mut tagger, policy) = tagger();
    let stm = std::fs::read_to_string(root().join("audio-fixtures/pyannote_sample.stm")).unwrap();
    let mut redacted = String::new();
    for line in stm.lines() {
        let words: Vec<&str> = line.split_whitespace().skip(5).collect();
        let text = words.join(" ");
        let found = tagger.tag(&text).unwrap();
        redacted.push_str(&redact(&text, &found, &policy));
        redacted.push('\n');
    }
    for secret in ["Diane", "Sheila", "New Jersey", "Texas", "Chicago"] {
        assert!(!redacted.contains(secret), "{secret} left in:\n{redacted}");
    }
    assert!(
        redacted.contains("This is [PERSON_NAME] in [LOCATION]"),
        "{redacted}"
    );
    // what is not personal stays as it was
    assert!(
        redacted.contains("I didn't know you were there."),
        "{redacted}"
    );
    assert!(redacted.contains("Neither did I."), "{redacted}");
}

#[test]
fn recogniser_style_sentences() {
    let (mut tagger, _) = tagger();
    let cases: &[(&str, &[(&str, Label)])] = &[
        (
            "yeah my name is maria gonzalez and my number is five five five double two oh one nine eight seven",
            &[
                ("maria gonzalez", Label::PersonName),
                (
                    "five five five double two oh one nine eight seven",
                    Label::Phone,
                ),
            ],
        ),
        (
            "you can email me at j fernandez at protonmail dot com",
            &[("j fernandez at protonmail dot com", Label::Email)],
        ),
        (
            "the card number is four two four two four two four two four two four two four two four two",
            &[(
                "four two four two four two four two four two four two four two four two",
                Label::CreditCard,
            )],
        ),
        (
            "i was born on march third nineteen eighty five",
            &[("march third nineteen eighty five", Label::Date)],
        ),
        (
            "the total comes to forty two dollars and my order number is seven seven three one",
            &[],
        ),
    ];
    for (text, expected) in cases {
        let found = surfaces(text, &tagger.tag(text).unwrap());
        let expected: Vec<(String, Label)> =
            expected.iter().map(|(s, l)| (s.to_string(), *l)).collect();
        assert_eq!(found, expected, "in {text:?}");
    }
}

#[test]
fn offsets_are_characters_of_non_ascii_text() {
    let (mut tagger, policy) = tagger();
    let text = "😀 ok — hi this is José Núñez, call me at 555 123 4567 👍";
    let found = tagger.tag(text).unwrap();
    let s = surfaces(text, &found);
    assert!(
        s.contains(&("José Núñez".to_string(), Label::PersonName)),
        "{s:?}"
    );
    assert!(
        s.contains(&("555 123 4567".to_string(), Label::Phone)),
        "{s:?}"
    );
    let out = redact(text, &found, &policy);
    assert!(
        out.starts_with("😀 ok — hi this is [PERSON_NAME], call me at [PHONE]"),
        "{out}"
    );
    assert!(out.ends_with(" 👍"), "{out}");
}

#[test]
fn empty_long_huge_and_garbage_input() {
    let (mut tagger, _) = tagger_with(|c| c.max_chars = 100_000);
    assert!(tagger.tag("").unwrap().is_empty());
    assert!(tagger.tag(" \n\t ").unwrap().is_empty());
    // a long text goes through in windows: personal data at both ends and across window edges
    let filler = "and then we talked about the weather for a while ".repeat(60);
    let text = format!(
        "my name is peter novak {filler} please call me back at two one two five five five oh one nine nine"
    );
    assert!(tagger.token_count(&text).unwrap() > 500);
    let s = surfaces(&text, &tagger.tag(&text).unwrap());
    assert_eq!(
        s,
        vec![
            ("peter novak".to_string(), Label::PersonName),
            (
                "two one two five five five oh one nine nine".to_string(),
                Label::Phone
            )
        ]
    );
    // longer than the limit: a typed error, not a panic
    let huge = "x".repeat(100_001);
    assert!(matches!(
        tagger.tag(&huge),
        Err(PiiError::TooLong {
            chars: 100_001,
            limit: 100_000
        })
    ));
    // bytes that are not text, decoded lossily: no panic, offsets inside the text
    let garbage: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let garbage = String::from_utf8_lossy(&garbage).into_owned();
    let chars = garbage.chars().count();
    for e in tagger.tag(&garbage).unwrap() {
        assert!(e.start < e.end && e.end <= chars);
    }
    // batches give what single calls give
    let texts = [
        "call me at five five five one two three four",
        "",
        "i live in denver colorado",
    ];
    let batch = tagger.tag_batch(&texts).unwrap();
    for (t, b) in texts.iter().zip(batch) {
        assert_eq!(tagger.tag(t).unwrap(), b);
    }
}

#[test]
fn held_out_test_split_meets_the_quality_targets() {
    let (mut tagger, _) = tagger();
    let data = std::fs::read_to_string(root().join("tools/pii/data/test.jsonl")).unwrap();
    let mut scores = Scores::default();
    for line in data.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        let reference: Vec<Entity> = row["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| Entity {
                start: e["start"].as_u64().unwrap() as usize,
                end: e["end"].as_u64().unwrap() as usize,
                label: Label::parse(e["label"].as_str().unwrap()).unwrap(),
                score: 1.0,
            })
            .collect();
        scores.add(text, &reference, &tagger.tag(text).unwrap());
    }
    assert!(scores.texts > 500);
    let f1 = scores.micro().f1();
    let precision = scores.exact_span.precision();
    let recall = scores.personal_char_recall();
    eprintln!(
        "micro span F1 {f1:.3}, exact-span PII precision {precision:.3}, character recall {recall:.4}"
    );
    assert!(f1 >= 0.85, "micro span F1 {f1:.3}");
    assert!(precision >= 0.90, "exact-span PII precision {precision:.3}");
    assert!(
        recall >= 0.98,
        "character-level redaction recall {recall:.4}"
    );
}

/// A pool of two taggers answers a short text while a long one occupies the other worker, and
/// each caller gets the entities of its own text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagger_pool_answers_a_short_text_while_a_long_one_runs() {
    let pool = TaggerPool::new(vec![tagger().0, tagger().0], 4).unwrap();
    assert_eq!(pool.workers(), 2);
    let long = "my name is ana lopez and you can call me on four two four two ".repeat(1000);
    let short = "call me at five five five one two three four".to_string();
    let timed = |text: String| {
        let pool = &pool;
        async move {
            let found = pool.tag(text).await;
            (std::time::Instant::now(), found)
        }
    };
    let ((long_done, long_found), (short_done, short_found)) =
        tokio::join!(timed(long.clone()), async {
            // The long text reaches a worker first.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            timed(short.clone()).await
        });
    assert!(
        short_done < long_done,
        "the short text waited for the long one"
    );
    let (text, entities) = short_found.unwrap();
    assert_eq!(text, short);
    assert_eq!(
        surfaces(&text, &entities),
        vec![(
            "five five five one two three four".to_string(),
            Label::Phone
        )]
    );
    let (text, entities) = long_found.unwrap();
    assert_eq!(text, long);
    assert!(
        entities
            .iter()
            .filter(|e| e.label == Label::PersonName)
            .count()
            >= 900
    );
}
