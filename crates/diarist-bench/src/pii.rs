//! The PII tagger benchmark: latency per utterance (batch 1, the configured threads), throughput
//! with batching, and span scores against a reference file's sentences.

use std::path::Path;
use std::time::Instant;

use diarist_config::Settings;
use diarist_models::Runtime;
use diarist_pii::{Entity, Label, Scores, Tagger};
use serde::Deserialize;

use crate::BenchError;
use crate::measure::{histogram, percentiles};

/// One reference sentence: its text and personal-data spans (character offsets).
#[derive(Deserialize)]
struct Sentence {
    text: String,
    entities: Vec<SentenceEntity>,
}

/// One personal-data span of a reference sentence.
#[derive(Deserialize)]
struct SentenceEntity {
    start: usize,
    end: usize,
    label: String,
}

/// Line `line` (1-based) of the reference file `path`: a sentence and its entities.
fn parse_sentence(
    path: &Path,
    line: usize,
    text: &str,
) -> Result<(String, Vec<Entity>), BenchError> {
    let s: Sentence = serde_json::from_str(text).map_err(|error| BenchError::Sentence {
        path: path.to_path_buf(),
        line,
        error,
    })?;
    let entities = s
        .entities
        .iter()
        .map(|e| {
            let label = Label::parse(&e.label).ok_or_else(|| BenchError::Label {
                path: path.to_path_buf(),
                line,
                label: e.label.clone(),
            })?;
            Ok(Entity {
                start: e.start,
                end: e.end,
                label,
                score: 1.0,
            })
        })
        .collect::<Result<Vec<_>, BenchError>>()?;
    Ok((s.text, entities))
}

/// The sentences of a JSON-lines reference file (`{"text", "entities"}` per line).
fn read_reference(path: &Path) -> Result<Vec<(String, Vec<Entity>)>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|error| BenchError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| parse_sentence(path, n + 1, line))
        .collect()
}

/// The tagger the configuration names.
fn load_tagger(config: &Settings) -> Result<Tagger, BenchError> {
    let runtime = Runtime::load(&config.engine.runtime.onnxruntime)?;
    Tagger::from_config(
        &runtime,
        &config.pii,
        config.engine.runtime.session_options(),
    )
    .map_err(|error| BenchError::Tagger {
        path: config.pii.model.clone(),
        error,
    })
}

/// Utterances of exactly `tokens` word pieces (as near as whole words allow), cut from the
/// reference texts laid end to end.
fn utterances(
    tagger: &Tagger,
    texts: &[&str],
    tokens: usize,
    count: usize,
) -> Result<Vec<String>, BenchError> {
    let mut words = texts.iter().flat_map(|t| t.split_whitespace()).cycle();
    let mut out = Vec::with_capacity(count);
    let mut current = String::new();
    while out.len() < count {
        let word = words
            .next()
            .ok_or_else(|| BenchError::Input("no reference text".into()))?;
        let candidate = if current.is_empty() {
            word.to_string()
        } else {
            format!("{current} {word}")
        };
        if tagger.token_count(&candidate)? > tokens {
            out.push(std::mem::replace(&mut current, word.to_string()));
        } else {
            current = candidate;
        }
    }
    Ok(out)
}

/// Prints the tagger's latency on `count` utterances of 30 and of 60 word pieces, one at a time.
fn print_latency(tagger: &mut Tagger, texts: &[&str], count: usize) -> Result<(), BenchError> {
    for tokens in [30, 60] {
        let inputs = utterances(tagger, texts, tokens, count)?;
        for text in inputs.iter().take(20) {
            tagger.tag(text)?; // warm-up
        }
        let mut h = histogram(60_000_000)?;
        for text in &inputs {
            let t = Instant::now();
            tagger.tag(text)?;
            h.record(t.elapsed().as_micros().max(1) as u64)?;
        }
        println!(
            "latency, batch 1, {tokens:>2}-token utterances: {}",
            percentiles(&h)
        );
    }
    Ok(())
}

/// Prints the throughput of taggers that take 1, 8 and 32 texts per model run over `texts`,
/// batched by like length, as a batching caller would form them (padding is wasted work).
fn print_throughput(config: &Settings, tagger: &Tagger, texts: &[&str]) -> Result<(), BenchError> {
    let mut by_length: Vec<(usize, &str)> = texts
        .iter()
        .map(|t| Ok((tagger.token_count(t)?, *t)))
        .collect::<Result<_, BenchError>>()?;
    by_length.sort();
    let sorted: Vec<&str> = by_length.into_iter().map(|(_, t)| t).collect();
    for batch in [1, 8, 32] {
        let mut batched = config.clone();
        batched.pii.max_batch = batch;
        let mut tagger = load_tagger(&batched)?;
        let t = Instant::now();
        for chunk in sorted.chunks(batch) {
            tagger.tag_batch(chunk)?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "throughput, {batch:>2} texts per model run: {:7.0} utterances/s ({} utterances)",
            texts.len() as f64 / secs,
            texts.len()
        );
    }
    Ok(())
}

/// Prints the span scores (per label and micro-averaged, exact span and label) and the
/// character-level scores of the tagger on the reference sentences.
fn print_scores(
    tagger: &mut Tagger,
    reference: &[(String, Vec<Entity>)],
) -> Result<(), BenchError> {
    let mut scores = Scores::default();
    for chunk in reference.chunks(32) {
        let batch: Vec<&str> = chunk.iter().map(|(t, _)| t.as_str()).collect();
        for ((text, gold), found) in chunk.iter().zip(tagger.tag_batch(&batch)?) {
            scores.add(text, gold, &found);
        }
    }
    println!(
        "span scores (exact span and label) on {} sentences:",
        scores.texts
    );
    println!(
        "  {:<15} {:>6} {:>6} {:>6} {:>6}",
        "label", "P", "R", "F1", "n"
    );
    for (label, c) in &scores.per_label {
        println!(
            "  {:<15} {:6.3} {:6.3} {:6.3} {:6}",
            label.name(),
            c.precision(),
            c.recall(),
            c.f1(),
            c.tp + c.fn_
        );
    }
    let micro = scores.micro();
    println!(
        "  {:<15} {:6.3} {:6.3} {:6.3} {:6}",
        "micro",
        micro.precision(),
        micro.recall(),
        micro.f1(),
        micro.tp + micro.fn_
    );
    println!(
        "PII exact-span precision {:.3}, recall {:.3}; character level: redaction recall of personal data {:.4}, precision {:.4}",
        scores.exact_span.precision(),
        scores.exact_span.recall(),
        scores.personal_char_recall(),
        scores.char_precision()
    );
    Ok(())
}

/// Runs the PII benchmark of the tagger `config` names on the reference file `path` (JSON
/// lines of `{"text", "entities"}`), timing `count` utterances per length.
pub fn run(config: &Settings, path: &Path, count: usize) -> Result<(), BenchError> {
    let reference = read_reference(path)?;
    if reference.is_empty() {
        return Err(BenchError::Input(format!(
            "{} holds no sentences",
            path.display()
        )));
    }
    let t = Instant::now();
    let mut tagger = load_tagger(config)?;
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let (file, _) = tagger
        .manifest()
        .file(&config.pii.model, &config.pii.variant)?;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    println!("# diarist bench --pii {}", path.display());
    println!(
        "model {} ({}) variant {} ({} layers): {:.1} MB, loaded in {load_ms:.0} ms, {} intra-op thread(s)",
        tagger.manifest().model.name,
        config.pii.model.display(),
        tagger.variant(),
        tagger.manifest().model.layers,
        size as f64 / 1e6,
        config.engine.runtime.intra_threads
    );
    let texts: Vec<&str> = reference.iter().map(|(t, _)| t.as_str()).collect();
    print_latency(&mut tagger, &texts, count)?;
    print_throughput(config, &tagger, &texts)?;
    print_scores(&mut tagger, &reference)
}
