//! What the benchmarks measure with: latency histograms and their percentiles, and this
//! process's CPU time and resident memory (from `/proc/self`; 0 where it cannot be read).

use hdrhistogram::Histogram;

use crate::BenchError;

/// A histogram of microseconds from 1 to `high`, three significant digits.
pub fn histogram(high: u64) -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, high, 3).map_err(BenchError::Histogram)
}

/// p50, p95, p99 and max of a histogram of microseconds, in milliseconds.
pub fn percentiles(h: &Histogram<u64>) -> String {
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

/// CPU seconds (user + system) this process has used.
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of this process, MB.
pub fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Resident memory of this process now, MB.
pub fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// A memory figure of `/proc/self/status` (in kB there), MB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
