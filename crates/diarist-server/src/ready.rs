//! Whether the server takes new sessions: not while it drains, while every slot is taken, or
//! while the engine's queue or the CPU is above the configured level.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::ServerConfig;
use crate::http::{Metrics, Refusal};

/// Clock ticks per second of `/proc/self/stat`'s CPU times (Linux's USER_HZ, 100 on every
/// architecture it exposes to user space).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU use is measured over at least this long (a probe every few hundred ms reuses the last).
const CPU_WINDOW: Duration = Duration::from_secs(1);

/// The server's readiness: its draining flag and its load limits.
pub(crate) struct Readiness {
    draining: AtomicBool,
    max_queued: u64,
    max_cpu: f64,
    cpu: Mutex<CpuMeter>,
}

impl Readiness {
    /// The limits `config` sets.
    pub(crate) fn new(config: &ServerConfig) -> Self {
        Self {
            draining: AtomicBool::new(false),
            max_queued: config.ready_max_queued_jobs,
            max_cpu: config.ready_max_cpu,
            cpu: Mutex::new(CpuMeter::start()),
        }
    }

    /// Starts draining: from now on no new session is taken.
    pub(crate) fn drain(&self, metrics: &Metrics) {
        self.draining.store(true, Ordering::SeqCst);
        metrics.set_draining();
    }

    /// Whether the server drains.
    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Why a new session would be refused now, if it would; `slots_free` says whether a
    /// session slot is free.
    pub(crate) fn refusal(&self, metrics: &Metrics, slots_free: bool) -> Option<Refusal> {
        if self.draining() {
            Some(Refusal::Draining)
        } else if !slots_free {
            Some(Refusal::Full)
        } else if self.overloaded(metrics) {
            Some(Refusal::Overloaded)
        } else {
            None
        }
    }

    /// Whether the engine's queue or the CPU is above its limit.
    fn overloaded(&self, metrics: &Metrics) -> bool {
        if self.max_queued > 0 && metrics.engine_queued() > self.max_queued {
            return true;
        }
        if self.max_cpu > 0.0 {
            let mut cpu = self.cpu.lock().unwrap_or_else(|p| p.into_inner());
            return cpu.share() > self.max_cpu;
        }
        false
    }
}

/// The process's share of the machine's cores between two readings of `/proc/self/stat`.
struct CpuMeter {
    at: Instant,
    cpu_secs: f64,
    share: f64,
    cores: f64,
}

impl CpuMeter {
    fn start() -> Self {
        Self {
            at: Instant::now(),
            cpu_secs: process_cpu_secs().unwrap_or(0.0),
            share: 0.0,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        }
    }

    /// The share since the last reading at least [`CPU_WINDOW`] ago (the previous share when
    /// the last reading is more recent).
    fn share(&mut self) -> f64 {
        let elapsed = self.at.elapsed();
        if elapsed >= CPU_WINDOW
            && let Some(now) = process_cpu_secs()
        {
            self.share = (now - self.cpu_secs) / (elapsed.as_secs_f64() * self.cores);
            self.cpu_secs = now;
            self.at = Instant::now();
        }
        self.share
    }
}

/// User and system CPU time of this process so far, seconds (Linux; `None` elsewhere).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses: utime is the 12th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_cpu_time_grows_with_work() {
        let before = process_cpu_secs().expect("Linux has /proc/self/stat");
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = process_cpu_secs().unwrap();
        assert!(after - before >= 0.1, "{before} -> {after}");
    }
}
