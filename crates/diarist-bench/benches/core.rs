//! Micro-benchmarks of the pure algorithms on synthetic data: clustering and reconstruction.
//! Run with `cargo bench -p diarist-bench`.

use criterion::{Criterion, criterion_group, criterion_main};
use diarist_core::activity::LocalActivity;
use diarist_core::cluster::{self, EmbeddingMatrix};
use diarist_core::reconstruct::{self, PlacedWindow};

/// Deterministic pseudo-random numbers in [-0.5, 0.5).
fn noise(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }
}

/// `n` 192-dimensional embeddings around `speakers` centres.
fn embeddings(n: usize, speakers: usize) -> EmbeddingMatrix {
    let mut next = noise(7);
    let centres: Vec<Vec<f32>> = (0..speakers)
        .map(|_| (0..192).map(|_| next()).collect())
        .collect();
    let mut x = EmbeddingMatrix::new(192);
    for i in 0..n {
        let v: Vec<f32> = centres[i % speakers]
            .iter()
            .map(|c| c + 0.3 * next())
            .collect();
        x.push(&v);
    }
    x
}

fn bench_clustering(c: &mut Criterion) {
    for n in [100usize, 1000] {
        let x = embeddings(n, 4);
        c.bench_function(&format!("average_linkage {n} embeddings"), |b| {
            b.iter(|| cluster::average_linkage(&x))
        });
    }
}

fn bench_reconstruction(c: &mut Criterion) {
    // One hour of 10 s windows every 1 s, 589 frames each, 3 local speakers.
    let mut next = noise(11);
    let windows: Vec<PlacedWindow> = (0..3600)
        .map(|w| PlacedWindow {
            first_frame: w * 59,
            valid_frames: 589,
            activity: LocalActivity {
                frames: 589,
                speakers: 3,
                active: (0..589 * 3).map(|_| u8::from(next() > 0.2)).collect(),
            },
            speakers: vec![Some(w % 4), Some((w + 1) % 4), None],
        })
        .collect();
    let frames = 3600 * 59 + 589;
    c.bench_function("speaker_count + reconstruct, 1 h", |b| {
        b.iter(|| {
            let count = reconstruct::speaker_count(&windows, frames);
            reconstruct::reconstruct(&windows, &count, 4)
        })
    });
}

criterion_group!(benches, bench_clustering, bench_reconstruction);
criterion_main!(benches);
