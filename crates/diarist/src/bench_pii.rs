//! `diarist bench --pii FILE.jsonl`: the PII tagger's latency per utterance (batch 1, the
//! configured threads), throughput with batching, and span scores against the file's reference.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use diarist_engine::Config;
use diarist_pii::{Entity, Label, Scores, Tagger};
use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::bench::percentiles;
use crate::redact::load_tagger;

/// One reference sentence: its text and personal-data spans (character offsets).
#[derive(Deserialize)]
struct Reference {
    text: String,
    entities: Vec<RefEntity>,
}

#[derive(Deserialize)]
struct RefEntity {
    start: usize,
    end: usize,
    label: String,
}

fn read_reference(path: &Path) -> anyhow::Result<Vec<(String, Vec<Entity>)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let r: Reference = serde_json::from_str(line).with_context(|| {
                format!("{}:{}: not a reference sentence", path.display(), n + 1)
            })?;
            let entities = r
                .entities
                .iter()
                .map(|e| {
                    let label = Label::parse(&e.label).with_context(|| {
                        format!("{}:{}: unknown label {:?}", path.display(), n + 1, e.label)
                    })?;
                    Ok(Entity {
                        start: e.start,
                        end: e.end,
                        label,
                        score: 1.0,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((r.text, entities))
        })
        .collect()
}

/// Utterances of exactly `tokens` word pieces (as near as whole words allow), cut from the
/// reference texts laid end to end.
fn utterances(
    tagger: &Tagger,
    texts: &[&str],
    tokens: usize,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut words = texts.iter().flat_map(|t| t.split_whitespace()).cycle();
    let mut out = Vec::with_capacity(count);
    let mut current = String::new();
    while out.len() < count {
        let word = words.next().context("no reference text")?;
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

/// Runs the PII benchmark on the reference file `path`.
pub fn run(config: &Config, path: &Path, count: usize) -> anyhow::Result<()> {
    let reference = read_reference(path)?;
    anyhow::ensure!(
        !reference.is_empty(),
        "{} holds no sentences",
        path.display()
    );
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
        config.runtime.intra_threads
    );
    let texts: Vec<&str> = reference.iter().map(|(t, _)| t.as_str()).collect();
    for tokens in [30, 60] {
        let inputs = utterances(&tagger, &texts, tokens, count)?;
        for text in inputs.iter().take(20) {
            tagger.tag(text)?; // warm-up
        }
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
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
    // batches of like length, as a batching caller would form them (padding is wasted work)
    let mut by_length: Vec<(usize, &str)> = texts
        .iter()
        .map(|t| Ok((tagger.token_count(t)?, *t)))
        .collect::<anyhow::Result<_>>()?;
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
