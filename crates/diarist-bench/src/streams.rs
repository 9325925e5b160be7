//! The streaming load test: concurrent real-time streams on one shared engine, and streaming DER
//! beside offline DER on the same files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use diarist_core::der::DerBreakdown;
use diarist_core::rttm::{self, file_id};
use diarist_engine::source::{self, Pace};
use diarist_engine::{Engine, EngineConfig, Event, FinalTurns, StreamOptions};

use crate::measure::{cpu_secs, peak_rss_mb};
use crate::models::{pooled_der, run_offline};
use crate::{BenchError, Reference, rates};

/// One load level's outcome.
struct Level {
    streams: usize,
    audio_secs: f64,
    lost: u64,
    overloads: u64,
    window_p99_ms: f64,
    /// End-to-end latency p50, p95, p99 and max, ms.
    e2e: (f64, f64, f64, f64),
    cpu_cores: f64,
}

/// What the streams of one level add up to.
#[derive(Default)]
struct Totals {
    lost: AtomicU64,
    overloads: AtomicU64,
    samples: AtomicU64,
}

/// Stream `i` of `streams`: replays `path` at real time (at most `limit` samples) into a new
/// stream of `engine`, its start staggered by its share of `cycle` seconds, and adds up what it
/// lost and took in.
fn run_one(
    engine: &Engine,
    path: PathBuf,
    (i, streams): (usize, usize),
    cycle: f64,
    limit: u64,
    totals: &Totals,
) -> Result<(), BenchError> {
    let (writer, stream) = engine.open(StreamOptions::default())?;
    // Stagger the starts over the streams' work cycle (a backbone run every `backbone_every`
    // hops), as independent clients would be.
    std::thread::sleep(std::time::Duration::from_secs_f64(
        cycle * i as f64 / streams.max(1) as f64,
    ));
    let src = std::thread::spawn(move || {
        source::replay_file(&path, writer, Pace::Live { speed: 1.0 }, Some(limit))
    });
    for e in stream.events() {
        if let Event::Overload { .. } = e {
            totals.overloads.fetch_add(1, Ordering::Relaxed);
        }
    }
    let summary = stream.wait()?;
    src.join()
        .map_err(|_| BenchError::Panicked("source panicked"))??;
    totals
        .lost
        .fetch_add(summary.samples_lost, Ordering::Relaxed);
    totals
        .samples
        .fetch_add(summary.samples_in, Ordering::Relaxed);
    Ok(())
}

/// Runs `streams` real-time streams of at most `duration` seconds each, cycling over `files`.
fn run_level(
    config: &EngineConfig,
    files: &[PathBuf],
    streams: usize,
    duration: f64,
) -> Result<Level, BenchError> {
    let engine = Engine::start(config)?;
    let totals = Totals::default();
    let limit = (duration * f64::from(diarist_core::SAMPLE_RATE)) as u64;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let cycle = config.streaming.hop_secs * config.streaming.backbone_every.max(1) as f64;
    std::thread::scope(|s| -> Result<(), BenchError> {
        let handles: Vec<_> = (0..streams)
            .map(|i| {
                let path = files[i % files.len()].clone();
                let (engine, totals) = (&engine, &totals);
                s.spawn(move || run_one(engine, path, (i, streams), cycle, limit, totals))
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| BenchError::Panicked("a stream panicked"))??;
        }
        Ok(())
    })?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    let stats = engine.stats().summary();
    let get = |name: &str| stats.iter().find(|s| s.stage == name);
    let window_p99_ms = ["segmentation", "embedding", "queue wait"]
        .iter()
        .filter_map(|n| get(n))
        .map(|s| s.p99)
        .sum();
    let e2e = get("end to end").map_or((0.0, 0.0, 0.0, 0.0), |s| (s.p50, s.p95, s.p99, s.max));
    Ok(Level {
        streams,
        audio_secs: totals.samples.load(Ordering::Relaxed) as f64
            / f64::from(diarist_core::SAMPLE_RATE),
        lost: totals.lost.load(Ordering::Relaxed),
        overloads: totals.overloads.load(Ordering::Relaxed),
        window_p99_ms,
        e2e,
        cpu_cores: cpu / wall,
    })
}

/// Streams `path` through `engine` as fast as the engine goes; returns its final turns (those of
/// its turn-ended events, in the order they ended).
fn final_turns(
    engine: &Engine,
    path: &Path,
    options: StreamOptions,
) -> Result<Vec<rttm::Turn>, BenchError> {
    let (writer, stream) = engine.open(options)?;
    let owned = path.to_path_buf();
    let source =
        std::thread::spawn(move || source::replay_file(&owned, writer, Pace::Fastest, None));
    let mut turns = FinalTurns::default();
    for e in stream.events() {
        turns.observe(&e);
    }
    stream.wait()?;
    source
        .join()
        .map_err(|_| BenchError::Panicked("the replay thread panicked"))?
        .map_err(|error| BenchError::Replay {
            path: path.to_path_buf(),
            error,
        })?;
    Ok(turns.closed().to_vec())
}

/// Streams every file at once as fast as the engine goes, every stream in backbone phase
/// `phase`, and scores the final turns.
fn streaming_der(
    config: &EngineConfig,
    files: &[PathBuf],
    reference: &Reference,
    phase: usize,
) -> Result<DerBreakdown, BenchError> {
    let engine = Engine::start(config)?;
    let options = StreamOptions {
        backbone_phase: Some(phase),
        ..Default::default()
    };
    let results: Vec<Result<(String, Vec<rttm::Turn>), BenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| {
                let (engine, options) = (&engine, options.clone());
                s.spawn(move || Ok((file_id(f), final_turns(engine, f, options)?)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("stream thread"))
            .collect()
    });
    let mut pooled = DerBreakdown::default();
    for r in results {
        let (id, hyp) = r?;
        pooled += reference.score(&id, &hyp);
    }
    Ok(pooled)
}

/// Prints the streaming settings.
fn print_config(config: &EngineConfig) {
    let s = &config.streaming;
    println!(
        "streaming: window {} s, hop {} s, latency {} s, max_batch {}, max_wait {} ms, workers {}",
        s.window_secs,
        s.hop_secs,
        s.latency_secs,
        s.max_batch,
        s.max_wait_ms,
        if s.workers == 0 {
            "one per core".to_string()
        } else {
            s.workers.to_string()
        }
    );
}

/// Prints the offline DER of `files` and their streaming DER in every backbone phase, against
/// `reference`.
fn compare_der(
    config: &EngineConfig,
    files: &[PathBuf],
    reference: &Reference,
    offline: &DerBreakdown,
) -> Result<(), BenchError> {
    let s = &config.streaming;
    println!("DER offline (same files): {}", rates(offline));
    // Which windows run the backbone changes single decisions: every phase is scored.
    for phase in 0..s.backbone_every.max(1) {
        let st = streaming_der(config, files, reference, phase)?;
        println!(
            "DER streaming ({} s latency, backbone phase {phase}): {}, {:+.2} points from offline",
            s.latency_secs,
            rates(&st),
            100.0 * (st.der() - offline.der())
        );
    }
    Ok(())
}

/// Runs the load levels (`levels` concurrent streams of at most `duration` seconds each,
/// cycling over `files`) and, with a reference, the streaming-versus-offline DER comparison
/// (offline with `workers` workers) first.
pub fn run(
    config: &EngineConfig,
    files: &[PathBuf],
    levels: &[usize],
    duration: f64,
    reference: Option<&Reference>,
    workers: usize,
) -> Result<(), BenchError> {
    println!("# diarist bench --streams");
    let offline = match reference {
        Some(r) => Some(pooled_der(
            r,
            &run_offline(config, files, workers)?.1,
            false,
        )),
        None => None,
    };
    print_config(config);
    if let (Some(r), Some(off)) = (reference, offline) {
        compare_der(config, files, r, &off)?;
    }
    println!(
        "| streams | audio s | lost samples | overloads | window p99 ms | e2e p50 s | e2e p95 s | e2e p99 s | e2e max s | CPU cores | peak RSS MB | holds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut best = 0;
    for &n in levels {
        let l = run_level(config, files, n, duration)?;
        let holds = l.lost == 0 && l.overloads == 0 && l.e2e.2 <= 3500.0;
        if holds {
            best = best.max(l.streams);
        }
        println!(
            "| {} | {:.0} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
            l.streams,
            l.audio_secs,
            l.lost,
            l.overloads,
            l.window_p99_ms,
            l.e2e.0 / 1000.0,
            l.e2e.1 / 1000.0,
            l.e2e.2 / 1000.0,
            l.e2e.3 / 1000.0,
            l.cpu_cores,
            peak_rss_mb(),
            if holds { "yes" } else { "no" }
        );
    }
    println!(
        "largest number of real-time streams with p99 end-to-end <= 3.5 s and nothing lost: {best}"
    );
    Ok(())
}
