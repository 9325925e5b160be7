//! `diarist bench --streams N[,N...]`: concurrent real-time streams on one shared engine, and
//! streaming DER beside offline DER on the same files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use diarist_core::der::{self, DerBreakdown};
use diarist_core::rttm;
use diarist_engine::source::{self, Pace};
use diarist_engine::{Config, Engine, Event, StreamOptions};

use crate::diarize::file_id;
use crate::stream::FinalTurns;

/// CPU seconds (user + system) this process has used.
pub(crate) fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of this process, MB.
fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Resident memory of this process now, MB.
pub(crate) fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One load level's outcome.
struct Level {
    streams: usize,
    audio_secs: f64,
    lost: u64,
    overloads: u64,
    window_p99_ms: f64,
    e2e: (f64, f64, f64, f64),
    cpu_cores: f64,
}

/// Runs `streams` real-time streams of at most `duration` seconds each, cycling over `files`.
fn run_level(
    config: &Config,
    files: &[PathBuf],
    streams: usize,
    duration: f64,
) -> anyhow::Result<Level> {
    let engine = Engine::start(config)?;
    let lost = AtomicU64::new(0);
    let overloads = AtomicU64::new(0);
    let samples = AtomicU64::new(0);
    let limit = (duration * 16_000.0) as u64;
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let cycle = config.streaming.hop_secs * config.streaming.backbone_every.max(1) as f64;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut handles = Vec::new();
        for i in 0..streams {
            let path = files[i % files.len()].clone();
            let (engine, lost, overloads, samples) = (&engine, &lost, &overloads, &samples);
            handles.push(s.spawn(move || -> anyhow::Result<()> {
                let (writer, stream) = engine.open(StreamOptions::default())?;
                // Stagger the starts over the streams' work cycle (a backbone run every
                // `backbone_every` hops), as independent clients would be.
                std::thread::sleep(std::time::Duration::from_secs_f64(
                    cycle * i as f64 / streams.max(1) as f64,
                ));
                let src = std::thread::spawn(move || {
                    source::replay_file(&path, writer, Pace::Live { speed: 1.0 }, Some(limit))
                });
                for e in stream.events() {
                    if let Event::Overload { .. } = e {
                        overloads.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let summary = stream.wait()?;
                src.join()
                    .map_err(|_| anyhow::anyhow!("source panicked"))??;
                lost.fetch_add(summary.samples_lost, Ordering::Relaxed);
                samples.fetch_add(summary.samples_in, Ordering::Relaxed);
                Ok(())
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a stream panicked"))??;
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
        audio_secs: samples.load(Ordering::Relaxed) as f64 / 16_000.0,
        lost: lost.load(Ordering::Relaxed),
        overloads: overloads.load(Ordering::Relaxed),
        window_p99_ms,
        e2e,
        cpu_cores: cpu / wall,
    })
}

/// Streams every file at once as fast as the engine goes, every stream in backbone phase
/// `phase`, and scores the final turns.
fn streaming_der(
    config: &Config,
    files: &[PathBuf],
    reference: &Path,
    phase: usize,
) -> anyhow::Result<DerBreakdown> {
    let engine = Engine::start(config)?;
    let refs = crate::eval::read_rttm_tree(reference)?;
    let uems = crate::eval::read_uem_tree(reference)?;
    let results: Vec<anyhow::Result<(String, FinalTurns)>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| {
                let engine = &engine;
                s.spawn(move || {
                    let mut turns = FinalTurns::default();
                    crate::stream::run_stream(
                        engine,
                        f,
                        Pace::Fastest,
                        StreamOptions {
                            backbone_phase: Some(phase),
                            ..Default::default()
                        },
                        |e| turns.observe(e),
                    )?;
                    Ok((file_id(f), turns))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("stream thread"))
            .collect()
    });
    let mut pooled = DerBreakdown::default();
    for r in results {
        let (id, turns) = r?;
        let hyp: Vec<rttm::Turn> = turns.turns;
        let reference = refs.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        pooled += der::score(reference, &hyp, uems.get(&id).map(Vec::as_slice), 0);
    }
    Ok(pooled)
}

fn rates(b: &DerBreakdown) -> String {
    let t = b.total.max(1) as f64;
    format!(
        "{:.2} % (miss {:.2} %, false alarm {:.2} %, confusion {:.2} %)",
        100.0 * b.der(),
        100.0 * b.miss as f64 / t,
        100.0 * b.false_alarm as f64 / t,
        100.0 * b.confusion as f64 / t
    )
}

/// Runs the load levels and, with a reference, the streaming-versus-offline DER comparison.
pub fn run(
    config: &Config,
    files: &[PathBuf],
    levels: &[usize],
    duration: f64,
    reference: Option<&Path>,
    offline: Option<&DerBreakdown>,
) -> anyhow::Result<()> {
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
    if let (Some(r), Some(off)) = (reference, offline) {
        println!("DER offline (same files): {}", rates(off));
        // Which windows run the backbone changes single decisions: every phase is scored.
        for phase in 0..s.backbone_every.max(1) {
            let st = streaming_der(config, files, r, phase)?;
            println!(
                "DER streaming ({} s latency, backbone phase {phase}): {}, {:+.2} points from offline",
                s.latency_secs,
                rates(&st),
                100.0 * (st.der() - off.der())
            );
        }
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
