//! Latency histograms (hdrhistogram) for every stage of streaming diarization.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A measured stage (or, for the last two, a count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Time a job waited in the batcher's queue, µs.
    QueueWait,
    /// Segmentation run time per window, µs.
    Segmentation,
    /// Embedding backbone run time per window, µs.
    Embedding,
    /// Pooling one voice's features into an embedding, µs.
    Pooling,
    /// Online clustering and event generation per window, µs.
    Clustering,
    /// From a sample's arrival to its final label, µs.
    EndToEnd,
    /// Windows per model run.
    BatchSize,
    /// Jobs waiting in the batcher's queue.
    QueueDepth,
}

const STAGES: [(Stage, &str, &str); 8] = [
    (Stage::QueueWait, "queue wait", "ms"),
    (Stage::Segmentation, "segmentation", "ms"),
    (Stage::Embedding, "embedding", "ms"),
    (Stage::Pooling, "pooling", "ms"),
    (Stage::Clustering, "clustering", "ms"),
    (Stage::EndToEnd, "end to end", "ms"),
    (Stage::BatchSize, "batch size", "windows"),
    (Stage::QueueDepth, "queue depth", "jobs"),
];

/// Percentiles of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    /// Stage name.
    pub stage: &'static str,
    /// Unit of the values.
    pub unit: &'static str,
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

/// One stage's values counted at fixed upper bounds: the shape of a Prometheus-style histogram,
/// read from the stage's hdrhistogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    /// Values recorded.
    pub count: u64,
    /// Their sum, each value taken as the middle of its hdrhistogram bucket (within 0.1 %).
    pub sum: u64,
    /// Values per bucket: `counts[i]` those above `bounds[i - 1]` and at most `bounds[i]`; the
    /// last entry, one past the bounds, those above every bound.
    pub counts: Vec<u64>,
}

/// Histograms of all stages, shared by the workers and the streams: one lock per stage, so the
/// workers recording model times, the streams recording clustering and latency and the batcher
/// recording its queue never wait for each other.
pub struct Stats {
    histograms: [Mutex<Histogram<u64>>; STAGES.len()],
    /// Jobs waiting in the batcher's queue after its last dispatch.
    queued: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        let h =
            |_| Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"));
        Self {
            histograms: std::array::from_fn(h),
            queued: AtomicU64::new(0),
        }
    }
}

impl Stats {
    /// Sets the jobs waiting in the batcher's queue (the batcher calls it after each dispatch).
    pub fn set_queued(&self, jobs: u64) {
        self.queued.store(jobs, AtomicOrdering::Relaxed);
    }

    /// Jobs waiting in the batcher's queue after its last dispatch: the engine's load now.
    pub fn queued(&self) -> u64 {
        self.queued.load(AtomicOrdering::Relaxed)
    }
}

fn index(stage: Stage) -> usize {
    STAGES
        .iter()
        .position(|(s, _, _)| *s == stage)
        .expect("every stage is listed")
}

impl Stats {
    /// Records a value of `stage` (µs for times).
    pub fn record(&self, stage: Stage, value: u64) {
        self.histogram(stage).saturating_record(value.max(1));
    }

    fn histogram(&self, stage: Stage) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.histograms[index(stage)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records a duration of `stage`.
    pub fn record_duration(&self, stage: Stage, d: Duration) {
        self.record(stage, d.as_micros().min(u64::MAX as u128) as u64);
    }

    /// Records many values of `stage` under one lock of its histogram.
    pub fn record_many(&self, stage: Stage, values: impl IntoIterator<Item = u64>) {
        let mut h = self.histogram(stage);
        for v in values {
            h.saturating_record(v.max(1));
        }
    }

    /// Counts of `stage`'s values (µs for times) in the buckets that `bounds` (ascending) close.
    /// The histogram keeps 3 significant digits, so a value within 0.1 % above a bound may count
    /// at or below it.
    pub fn buckets(&self, stage: Stage, bounds: &[u64]) -> Buckets {
        let h = self.histogram(stage);
        let mut counts = vec![0; bounds.len() + 1];
        let mut sum = 0u64;
        for v in h.iter_recorded() {
            let (value, n) = (v.value_iterated_to(), v.count_at_value());
            sum = sum.saturating_add(h.median_equivalent(value).saturating_mul(n));
            let lowest = h.lowest_equivalent(value);
            counts[bounds.partition_point(|&b| b < lowest)] += n;
        }
        Buckets {
            count: h.len(),
            sum,
            counts,
        }
    }

    /// Percentiles of every stage that recorded something.
    pub fn summary(&self) -> Vec<StageSummary> {
        STAGES
            .iter()
            .filter_map(|&(stage, name, unit)| {
                let h = self.histogram(stage);
                let scale = if unit == "ms" { 1000.0 } else { 1.0 };
                let q = |p: f64| h.value_at_quantile(p) as f64 / scale;
                (!h.is_empty()).then(|| StageSummary {
                    stage: name,
                    unit,
                    count: h.len(),
                    p50: q(0.5),
                    p95: q(0.95),
                    p99: q(0.99),
                    max: h.max() as f64 / scale,
                })
            })
            .collect()
    }

    /// [`Stats::summary`] as a table: a header, then a line per stage with its count, p50, p95,
    /// p99, max and unit.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<14} {:>8} {:>9} {:>9} {:>9} {:>9}  unit\n",
            "stage", "count", "p50", "p95", "p99", "max"
        );
        for s in self.summary() {
            out.push_str(&format!(
                "{:<14} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}\n",
                s.stage, s.count, s.p50, s.p95, s.p99, s.max, s.unit
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_each_value_once_at_its_upper_bound() {
        let stats = Stats::default();
        for us in [500, 1_000, 1_001, 2_000, 5_000_000] {
            stats.record(Stage::Segmentation, us);
        }
        let b = stats.buckets(Stage::Segmentation, &[1_000, 2_500, 1_000_000]);
        assert_eq!(b.count, 5);
        assert_eq!(b.counts, [2, 2, 0, 1]);
        // Exact below 2048 µs; 5 s within the histogram's 0.1 %.
        let rest = b.sum - (500 + 1_000 + 1_001 + 2_000);
        assert!(rest.abs_diff(5_000_000) <= 5_000, "{rest}");
        let empty = stats.buckets(Stage::Clustering, &[1_000, 2_500]);
        assert_eq!(
            (empty.count, empty.sum, empty.counts),
            (0, 0, vec![0, 0, 0])
        );
    }

    #[test]
    fn the_table_has_a_line_per_stage_that_recorded() {
        let stats = Stats::default();
        stats.record(Stage::BatchSize, 4);
        assert_eq!(
            stats.table(),
            "stage             count       p50       p95       p99       max  unit\n\
             batch size            1      4.00      4.00      4.00      4.00  windows\n"
        );
    }
}
