//! The model and offline benchmark: model load time, per-window model latency, offline speed
//! with one worker and with all, and DER against a reference.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use diarist_audio::AudioStream;
use diarist_core::SAMPLE_RATE;
use diarist_core::der::DerBreakdown;
use diarist_core::rttm::{file_id, to_rttm_turns};
use diarist_engine::EngineConfig;
use diarist_engine::batch::diarize_files;
use diarist_engine::offline::{Diarization, Models};
use hdrhistogram::Histogram;

use crate::measure::{histogram, percentiles};
use crate::{BenchError, Reference, rates};

/// Latencies of the models on windows of one length, microseconds.
struct WindowLatency {
    segmentation: Histogram<u64>,
    /// The embedding model with one speaker's weights.
    embedding1: Histogram<u64>,
    /// The embedding model with three speakers' weights.
    embedding3: Histogram<u64>,
}

/// Times the models on `count` windows of `secs` seconds cut from `audio` (none when the audio
/// is shorter than a window).
fn time_models(
    models: &mut Models,
    audio: &[f32],
    secs: f64,
    count: usize,
) -> Result<WindowLatency, BenchError> {
    let len = (secs * SAMPLE_RATE as f64) as usize;
    let mut latency = WindowLatency {
        segmentation: histogram(600_000_000)?,
        embedding1: histogram(600_000_000)?,
        embedding3: histogram(600_000_000)?,
    };
    if audio.len() < len {
        return Ok(latency);
    }
    let frames = models.embedding.weight_geometry().frames(len);
    let ones1 = vec![1.0f32; frames];
    let ones3 = vec![1.0f32; 3 * frames];
    let hop = ((audio.len() - len) / count.max(1)).max(1);
    for i in 0..count {
        let start = (i * hop) % (audio.len() - len + 1);
        let w = &audio[start..start + len];
        let t = Instant::now();
        models.segmentation.run(w, len)?;
        latency
            .segmentation
            .record(t.elapsed().as_micros() as u64)?;
        let t = Instant::now();
        models.embedding.run(w, len, &ones1, 1)?;
        latency.embedding1.record(t.elapsed().as_micros() as u64)?;
        let t = Instant::now();
        models.embedding.run(w, len, &ones3, 3)?;
        latency.embedding3.record(t.elapsed().as_micros() as u64)?;
    }
    Ok(latency)
}

/// Diarizes `files` with `workers` threads; returns wall seconds and the results by file id,
/// sorted.
pub(crate) fn run_offline(
    config: &EngineConfig,
    files: &[PathBuf],
    workers: usize,
) -> Result<(f64, Vec<(String, Diarization)>), BenchError> {
    let results = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let started = Instant::now();
    diarize_files(config, files, workers, |f, result| match result {
        Ok(d) => results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((file_id(f), d)),
        Err(error) => errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(BenchError::Diarize {
                path: f.to_path_buf(),
                error,
            }),
    });
    let wall = started.elapsed().as_secs_f64();
    if let Some(e) = errors
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .next()
    {
        return Err(e);
    }
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((wall, results))
}

/// Pooled DER of offline results against `reference`; `print` also prints each file's.
pub(crate) fn pooled_der(
    reference: &Reference,
    results: &[(String, Diarization)],
    print: bool,
) -> DerBreakdown {
    let mut pooled = DerBreakdown::default();
    for (id, d) in results {
        let b = reference.score(id, &to_rttm_turns(&d.turns));
        if print {
            println!("DER {id}: {:.2} %", 100.0 * b.der());
        }
        pooled += b;
    }
    pooled
}

/// Prints the models and settings benchmarked.
fn print_config(config: &EngineConfig) {
    println!("# diarist bench");
    println!(
        "config: segmentation {} ({}), embedding {} ({}), ONNX Runtime {}, window {} s, step {} s, intra_threads {}",
        config.models.segmentation.display(),
        config.models.segmentation_variant,
        config.models.embedding.display(),
        config.models.embedding_variant,
        config.runtime.onnxruntime.display(),
        config.offline.window_secs,
        config.offline.step_secs,
        config.runtime.intra_threads
    );
}

/// Loads the models twice (the first load also loads the runtime) and prints both times;
/// returns the first models.
fn time_loads(config: &EngineConfig) -> Result<Models, BenchError> {
    let t = Instant::now();
    let models = Models::load(config)?;
    let first_load = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    drop(Models::load(config)?);
    let warm_load = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "model load: {first_load:.0} ms (first, with the runtime), {warm_load:.0} ms (one more worker)"
    );
    Ok(models)
}

/// Prints the models' latency on `windows` windows of 3 s and of 10 s cut from `file`.
fn print_window_latency(
    models: &mut Models,
    file: &std::path::Path,
    windows: usize,
) -> Result<(), BenchError> {
    let mut audio = Vec::new();
    let mut stream = AudioStream::open(file)?;
    while stream.read(&mut audio)? > 0 {}
    for secs in [3.0, 10.0] {
        let l = time_models(models, &audio, secs, windows)?;
        println!(
            "{secs:>4} s window  segmentation        {}",
            percentiles(&l.segmentation)
        );
        println!(
            "{secs:>4} s window  embedding, 1 speaker {}",
            percentiles(&l.embedding1)
        );
        println!(
            "{secs:>4} s window  embedding, 3 speakers {}",
            percentiles(&l.embedding3)
        );
    }
    Ok(())
}

/// Runs the benchmark on `files` (the first one's audio for the window latencies, `windows`
/// windows per length; all of them offline, with one worker and with `workers`) and, with a
/// reference, prints DER per file and pooled.
pub fn run(
    config: &EngineConfig,
    files: &[PathBuf],
    windows: usize,
    workers: usize,
    reference: Option<&Reference>,
) -> Result<(), BenchError> {
    let first = files
        .first()
        .ok_or_else(|| BenchError::Input("no audio files to benchmark".into()))?;
    print_config(config);
    let mut models = time_loads(config)?;
    print_window_latency(&mut models, first, windows)?;
    drop(models);

    let (wall1, _) = run_offline(config, files, 1)?;
    let (wall, results) = run_offline(config, files, workers)?;
    let audio_secs: f64 =
        results.iter().map(|(_, d)| d.samples as f64).sum::<f64>() / SAMPLE_RATE as f64;
    println!(
        "offline: {} files, {audio_secs:.1} s of audio: 1 worker {wall1:.2} s ({:.1}x real time), {workers} workers {wall:.2} s ({:.1}x real time, {:.2}x the 1-worker run)",
        files.len(),
        audio_secs / wall1,
        audio_secs / wall,
        wall1 / wall
    );
    if let Some(r) = reference {
        let pooled = pooled_der(r, &results, true);
        println!("DER pooled (collar 0, overlap scored): {}", rates(&pooled));
    }
    Ok(())
}
