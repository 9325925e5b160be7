//! `diarist bench`: model load time, per-window model latency, offline speed and accuracy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use diarist_audio::AudioStream;
use diarist_core::der::{self, DerBreakdown};
use diarist_engine::Config;
use diarist_engine::batch::diarize_files;
use diarist_engine::offline::{Diarization, Models, SAMPLE_RATE};
use hdrhistogram::Histogram;

use crate::diarize::{collect_inputs, file_id, to_rttm_turns};
use crate::settings::{self, CommonArgs, OfflineArgs};

/// Arguments of `diarist bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Audio files or directories [default: the AMI excerpts in ../shared/eval/ami or audio-fixtures].
    pub inputs: Vec<PathBuf>,
    /// Directory (or file) of reference RTTM: scores DER (collar 0, overlap scored, pooled).
    #[arg(long = "ref")]
    pub reference: Option<PathBuf>,
    /// Concurrent real-time streams to try, e.g. `10,20,30`: runs the streaming load test instead
    /// of the model and offline benchmarks (with --ref, also streaming DER beside offline DER).
    #[arg(long, value_delimiter = ',')]
    pub streams: Vec<usize>,
    /// Concurrent real-time WebSocket clients to try, e.g. `20,35,50`: runs the service load
    /// test (an in-process server on 127.0.0.1) instead of the model benchmarks.
    #[arg(long, value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// With --clients: the hop every client asks for in its `start` (seconds).
    #[arg(long)]
    pub client_hop: Option<f64>,
    /// Seconds of audio per stream in the streaming load test.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// A JSON-lines file of reference sentences (`{"text", "entities"}`): benchmarks the PII
    /// tagger (latency, throughput, span scores) instead of the audio models.
    #[arg(long)]
    pub pii: Option<PathBuf>,
    #[command(flatten)]
    pub pii_model: crate::redact::PiiArgs,
    /// Windows timed per model and window length (utterances per length with --pii).
    #[arg(long, default_value_t = 50)]
    pub windows: usize,
    #[command(flatten)]
    pub offline: OfflineArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// p50, p95, p99 and max of a histogram of microseconds, in milliseconds.
pub(crate) fn percentiles(h: &Histogram<u64>) -> String {
    let ms = |v: u64| v as f64 / 1000.0;
    format!(
        "p50 {:7.2} ms  p95 {:7.2} ms  p99 {:7.2} ms  max {:7.2} ms  (n={})",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.95)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    )
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).context("creating a latency histogram")
}

/// Times the models on `count` windows of `secs` seconds cut from `audio`.
fn time_models(
    models: &mut Models,
    audio: &[f32],
    secs: f64,
    count: usize,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, Histogram<u64>)> {
    let len = (secs * SAMPLE_RATE as f64) as usize;
    let (mut seg, mut emb1, mut emb3) = (histogram()?, histogram()?, histogram()?);
    if audio.len() < len {
        return Ok((seg, emb1, emb3));
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
        seg.record(t.elapsed().as_micros() as u64)?;
        let t = Instant::now();
        models.embedding.run(w, len, &ones1, 1)?;
        emb1.record(t.elapsed().as_micros() as u64)?;
        let t = Instant::now();
        models.embedding.run(w, len, &ones3, 3)?;
        emb3.record(t.elapsed().as_micros() as u64)?;
    }
    Ok((seg, emb1, emb3))
}

/// Diarizes `files` with `workers` threads; returns wall seconds and the results.
fn run_offline(
    config: &Config,
    files: &[PathBuf],
    workers: usize,
) -> anyhow::Result<(f64, Vec<(String, Diarization)>)> {
    let results = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let started = Instant::now();
    diarize_files(config, files, workers, |f, result| match result {
        Ok(d) => results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((file_id(f), d)),
        Err(e) => errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{}: {e}", f.display())),
    });
    let wall = started.elapsed().as_secs_f64();
    if let Some(e) = errors
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .first()
    {
        anyhow::bail!("{e}");
    }
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((wall, results))
}

/// Runs `diarist bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let mut config = settings::load(&args.common, &args.offline)?;
    if let Some(path) = &args.pii {
        args.pii_model.apply(&mut config);
        crate::bench_pii::run(&config, path, args.windows.max(100))?;
        return Ok(ExitCode::SUCCESS);
    }
    let inputs = if args.inputs.is_empty() {
        vec![PathBuf::from("../shared/eval/ami")]
    } else {
        args.inputs.clone()
    };
    let files = collect_inputs(&inputs)?;
    anyhow::ensure!(!files.is_empty(), "no audio files to benchmark");
    if !args.clients.is_empty() {
        crate::bench_server::run(
            &config,
            &files,
            &args.clients,
            args.duration,
            args.client_hop,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if !args.streams.is_empty() {
        println!("# diarist bench --streams");
        let offline = match &args.reference {
            Some(r) => {
                let cores = settings::workers(&config, files.len());
                let (_, results) = run_offline(&config, &files, cores)?;
                Some(pooled_der(r, &results, false)?)
            }
            None => None,
        };
        crate::bench_streams::run(
            &config,
            &files,
            &args.streams,
            args.duration,
            args.reference.as_deref(),
            offline.as_ref(),
        )?;
        return Ok(ExitCode::SUCCESS);
    }

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

    let t = Instant::now();
    let mut models = Models::load(&config)?;
    let first_load = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    drop(Models::load(&config)?);
    let warm_load = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "model load: {first_load:.0} ms (first, with the runtime), {warm_load:.0} ms (one more worker)"
    );

    let mut audio = Vec::new();
    let mut stream = AudioStream::open(&files[0])?;
    while stream.read(&mut audio)? > 0 {}
    for secs in [3.0, 10.0] {
        let (seg, emb1, emb3) = time_models(&mut models, &audio, secs, args.windows)?;
        println!(
            "{secs:>4} s window  segmentation        {}",
            percentiles(&seg)
        );
        println!(
            "{secs:>4} s window  embedding, 1 speaker {}",
            percentiles(&emb1)
        );
        println!(
            "{secs:>4} s window  embedding, 3 speakers {}",
            percentiles(&emb3)
        );
    }
    drop(models);

    let cores = settings::workers(&config, files.len());
    let (wall1, _) = run_offline(&config, &files, 1)?;
    let (wall, results) = run_offline(&config, &files, cores)?;
    let audio_secs: f64 =
        results.iter().map(|(_, d)| d.samples as f64).sum::<f64>() / SAMPLE_RATE as f64;
    println!(
        "offline: {} files, {audio_secs:.1} s of audio: 1 worker {wall1:.2} s ({:.1}x real time), {cores} workers {wall:.2} s ({:.1}x real time, {:.2}x the 1-worker run)",
        files.len(),
        audio_secs / wall1,
        audio_secs / wall,
        wall1 / wall
    );

    if let Some(r) = &args.reference {
        let pooled = pooled_der(r, &results, true)?;
        println!(
            "DER pooled (collar 0, overlap scored): {:.2} % (miss {:.2} %, false alarm {:.2} %, confusion {:.2} %)",
            100.0 * pooled.der(),
            100.0 * pooled.miss as f64 / pooled.total.max(1) as f64,
            100.0 * pooled.false_alarm as f64 / pooled.total.max(1) as f64,
            100.0 * pooled.confusion as f64 / pooled.total.max(1) as f64,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Pooled DER of offline results against the reference RTTM under `r`.
fn pooled_der(
    r: &Path,
    results: &[(String, Diarization)],
    print: bool,
) -> anyhow::Result<DerBreakdown> {
    let refs = crate::eval::read_rttm_tree(r)?;
    let uems = crate::eval::read_uem_tree(r)?;
    let mut pooled = DerBreakdown::default();
    for (id, d) in results {
        let hyp = to_rttm_turns(&d.turns);
        let reference = refs.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let b = der::score(reference, &hyp, uems.get(id).map(Vec::as_slice), 0);
        if print {
            println!("DER {id}: {:.2} %", 100.0 * b.der());
        }
        pooled += b;
    }
    Ok(pooled)
}
