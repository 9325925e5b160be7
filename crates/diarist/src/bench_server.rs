//! `diarist bench --clients N[,N...]`: the WebSocket service under load, on loopback only. One
//! server (one engine, one worker pool) in this process; N protocol clients stream fixture
//! recordings at real time at once; final-label latency is measured at the clients, from the
//! moment a sample is due to be sent to the moment a final turn covering it arrives.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use diarist_engine::offline::SAMPLE_RATE;
use diarist_engine::{Config, Engine};
use diarist_server::Server;
use diarist_server::client::{ClientOptions, stream_samples};
use diarist_server::protocol::{ServerMessage, StartOptions};
use hdrhistogram::Histogram;

use crate::bench_streams::{cpu_secs, rss_mb};

/// One load level's outcome.
struct Level {
    clients: usize,
    failed: usize,
    received: u64,
    lost: u64,
    unprocessed: u64,
    latency: Histogram<u64>,
    cpu_cores: f64,
    rss_per_session_mb: f64,
}

async fn run_level(
    url: &str,
    token: &str,
    audio: &[Arc<Vec<f32>>],
    clients: usize,
    hop: Option<f64>,
) -> anyhow::Result<Level> {
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 600_000, 3,
    )?));
    let base_rss = rss_mb();
    let peak_rss = Arc::new(Mutex::new(base_rss));
    let sampling = {
        let peak = peak_rss.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = rss_mb();
                let mut p = peak.lock().unwrap_or_else(|e| e.into_inner());
                *p = p.max(now);
            }
        })
    };
    let cpu0 = cpu_secs();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let samples = audio[i % audio.len()].as_ref().clone();
        let opts = ClientOptions {
            url: url.to_string(),
            token: token.to_string(),
            speed: Some(1.0),
            options: StartOptions {
                hop,
                ..Default::default()
            },
        };
        let latency = latency.clone();
        tasks.push(tokio::spawn(async move {
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
        }));
    }
    let mut level = Level {
        clients,
        failed: 0,
        received: 0,
        lost: 0,
        unprocessed: 0,
        latency: Histogram::new(3)?,
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

/// Runs the load levels against one in-process server on 127.0.0.1; every client asks for `hop`
/// when given.
pub fn run(
    config: &Config,
    files: &[PathBuf],
    levels: &[usize],
    duration: f64,
    hop: Option<f64>,
) -> anyhow::Result<()> {
    let limit = (duration * SAMPLE_RATE as f64) as usize;
    let audio: Vec<Arc<Vec<f32>>> = files
        .iter()
        .map(|f| {
            let mut a = diarist_audio::decode_all(f)
                .with_context(|| format!("decoding {}", f.display()))?;
            a.truncate(limit);
            Ok(Arc::new(a))
        })
        .collect::<anyhow::Result<_>>()?;
    let most = levels.iter().copied().max().unwrap_or(1);
    let token = format!("bench-{}", std::process::id());
    let (mut server_config, _) = crate::settings::load_server(None)?;
    server_config.listen = "127.0.0.1:0".into();
    server_config.token = token.clone();
    server_config.max_sessions = server_config.max_sessions.max(most);
    server_config.stats_interval_secs = 0.0;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let engine = Engine::start(config)?;
    runtime.block_on(async move {
        let server = Server::bind(server_config, engine, None).await?;
        let url = format!("ws://{}/v1/stream", server.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
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
        println!("| clients | audio s | failed | lost samples | unprocessed | final-label p50 s | p95 s | p99 s | max s | CPU cores | RSS MB per session | holds |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut best = 0;
        for &n in levels {
            let l = run_level(&url, &token, &audio, n, hop).await?;
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
        println!("largest number of real-time clients with nothing lost and p99 final-label latency <= 4 s: {best}");
        let _ = stop.send(());
        serving.await??;
        anyhow::Ok(())
    })
}
