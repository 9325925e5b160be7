//! The WebSocket service under load, on loopback only. One server (one engine, one worker pool)
//! in this process; N protocol clients stream recordings at real time at once; final-label
//! latency is measured at the clients, from the moment a sample is due to be sent to the moment
//! a final turn covering it arrives.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diarist_core::SAMPLE_RATE;
use diarist_engine::{Engine, EngineConfig};
use diarist_server::client::{ClientError, ClientOptions, Finished, stream_samples};
use diarist_server::protocol::{ServerMessage, StartOptions};
use diarist_server::{Server, ServerConfig};
use hdrhistogram::Histogram;
use tokio::task::JoinHandle;

use crate::BenchError;
use crate::measure::{cpu_secs, histogram, rss_mb};

/// One load level's outcome.
struct Level {
    clients: usize,
    failed: usize,
    received: u64,
    lost: u64,
    unprocessed: u64,
    /// Final-label latency, ms.
    latency: Histogram<u64>,
    cpu_cores: f64,
    rss_per_session_mb: f64,
}

/// A task that samples this process's resident memory every 250 ms into `peak`.
fn sample_peak_rss(peak: Arc<Mutex<f64>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = rss_mb();
            let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
            *p = p.max(now);
        }
    })
}

/// A client streaming `samples` at real time with `opts`, recording into `latency` how late
/// (ms) each final turn arrives after its end was sent.
fn spawn_client(
    samples: Vec<f32>,
    opts: ClientOptions,
    latency: Arc<Mutex<Histogram<u64>>>,
) -> JoinHandle<Result<Finished, ClientError>> {
    tokio::spawn(async move {
        let begun = Instant::now();
        stream_samples(samples, &opts, |m| {
            if let ServerMessage::Turn { end, .. } = m {
                let due = begun + Duration::from_secs_f64(*end as f64 / SAMPLE_RATE as f64);
                let ms = Instant::now().saturating_duration_since(due).as_millis() as u64;
                let _ = latency
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(ms.max(1));
            }
        })
        .await
    })
}

/// Runs `clients` clients at once against `url`, cycling over `audio`.
async fn run_level(
    url: &str,
    token: &str,
    audio: &[Arc<Vec<f32>>],
    clients: usize,
    hop: Option<f64>,
) -> Result<Level, BenchError> {
    let latency = Arc::new(Mutex::new(histogram(600_000)?));
    let base_rss = rss_mb();
    let peak_rss = Arc::new(Mutex::new(base_rss));
    let sampling = sample_peak_rss(peak_rss.clone());
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let opts = ClientOptions {
                url: url.to_string(),
                token: token.to_string(),
                speed: Some(1.0),
                options: StartOptions {
                    hop,
                    ..Default::default()
                },
                resume: None,
            };
            let samples = audio[i % audio.len()].as_ref().clone();
            spawn_client(samples, opts, latency.clone())
        })
        .collect();
    let mut level = Level {
        clients,
        failed: 0,
        received: 0,
        lost: 0,
        unprocessed: 0,
        latency: Histogram::new(3).map_err(BenchError::Histogram)?,
        cpu_cores: 0.0,
        rss_per_session_mb: 0.0,
    };
    for t in tasks {
        match t.await {
            Ok(Ok(f)) if f.error.is_none() => {
                level.received += f.totals.samples_received;
                level.lost += f.totals.samples_lost;
                level.unprocessed += f
                    .totals
                    .samples_received
                    .saturating_sub(f.totals.samples_processed);
            }
            _ => level.failed += 1,
        }
    }
    level.cpu_cores = (cpu_secs() - cpu0) / t0.elapsed().as_secs_f64();
    sampling.abort();
    let peak = *peak_rss.lock().unwrap_or_else(|e| e.into_inner());
    level.rss_per_session_mb = (peak - base_rss).max(0.0) / clients as f64;
    level.latency = latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(level)
}

/// Runs the load levels against `url`, printing a row per level, and the largest that held.
async fn run_levels(
    url: &str,
    token: &str,
    audio: &[Arc<Vec<f32>>],
    levels: &[usize],
    hop: Option<f64>,
) -> Result<(), BenchError> {
    println!(
        "| clients | audio s | failed | lost samples | unprocessed | final-label p50 s | p95 s | p99 s | max s | CPU cores | RSS MB per session | holds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut best = 0;
    for &n in levels {
        let l = run_level(url, token, audio, n, hop).await?;
        let q = |p: f64| l.latency.value_at_quantile(p) as f64 / 1000.0;
        let holds = l.failed == 0 && l.lost == 0 && l.unprocessed == 0 && q(0.99) <= 4.0;
        if holds {
            best = best.max(n);
        }
        println!(
            "| {} | {:.0} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            l.clients,
            l.received as f64 / SAMPLE_RATE as f64,
            l.failed,
            l.lost,
            l.unprocessed,
            q(0.5),
            q(0.95),
            q(0.99),
            l.latency.max() as f64 / 1000.0,
            l.cpu_cores,
            l.rss_per_session_mb,
            if holds { "yes" } else { "no" }
        );
    }
    println!(
        "largest number of real-time clients with nothing lost and p99 final-label latency <= 4 s: {best}"
    );
    Ok(())
}

/// The first `duration` seconds of each of `files`, decoded.
fn decode(files: &[PathBuf], duration: f64) -> Result<Vec<Arc<Vec<f32>>>, BenchError> {
    let limit = (duration * SAMPLE_RATE as f64) as usize;
    files
        .iter()
        .map(|f| {
            let mut a = diarist_audio::decode_all(f).map_err(|error| BenchError::Decode {
                path: f.clone(),
                error,
            })?;
            a.truncate(limit);
            Ok(Arc::new(a))
        })
        .collect()
}

/// Runs the load levels (`levels` concurrent clients, each streaming at most `duration` seconds
/// of one of `files`, asking for `hop` when given) against one in-process server on 127.0.0.1:
/// the engine `config` names, and `server` bound to a free port with a fresh token.
pub fn run(
    config: &EngineConfig,
    mut server: ServerConfig,
    files: &[PathBuf],
    levels: &[usize],
    duration: f64,
    hop: Option<f64>,
) -> Result<(), BenchError> {
    let audio = decode(files, duration)?;
    let token = format!("bench-{}", std::process::id());
    server.listen = "127.0.0.1:0".into();
    server.token = token.clone();
    server.max_sessions = server
        .max_sessions
        .max(levels.iter().copied().max().unwrap_or(1));
    server.stats_interval_secs = 0.0;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let engine = Engine::start(config)?;
    runtime.block_on(async move {
        let server = Server::bind(server, engine, None).await?;
        let url = format!("ws://{}/v1/stream", server.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(std::future::pending(), async {
            let _ = stopped.await;
        }));
        let s = &config.streaming;
        println!(
            "# diarist bench --clients: loopback server, {} s of audio per client at real time, window {} s, hop {} s, latency {} s",
            duration,
            s.window_secs,
            hop.unwrap_or(s.hop_secs),
            s.latency_secs
        );
        run_levels(&url, &token, &audio, levels, hop).await?;
        let _ = stop.send(());
        serving.await??;
        Ok(())
    })
}
