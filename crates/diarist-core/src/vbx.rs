//! Bayesian clustering of speaker embeddings without a trained PLDA: a VBx-style variational
//! inference over speaker assignments in a space whitened per recording.
//!
//! The embeddings are centred on the recording's mean and reduced to their main directions. An
//! agglomerative clustering of the recording (at the usual threshold) estimates how much one
//! speaker's embeddings vary (the within-speaker covariance, shrunk towards a sphere since a few
//! dozen embeddings cannot fix all of its entries); the space is whitened by it and rotated so
//! that the spread of speakers is diagonal. There, as in VBx, every speaker is a Gaussian of unit
//! covariance whose mean has a Gaussian prior of that spread, and mean-field variational
//! inference alternates between speakers' posteriors and embeddings' responsibilities, starting
//! from an over-split clustering. A speaker that explains too few embeddings to pay for its own
//! mean loses them: the number of speakers comes out of the evidence rather than from a cut of
//! the dendrogram.

use crate::cluster::{EmbeddingMatrix, renumber};

/// Settings of the inference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VbxParams {
    /// Scale of the embeddings' likelihood: below 1 when embeddings share audio (sliding windows
    /// that overlap by `1 - step / window` are counted `window / step` times).
    pub fa: f64,
    /// Scale of the speaker prior: larger merges more.
    pub fb: f64,
    /// Most iterations.
    pub max_iters: usize,
}

/// Directions of the recording's embeddings kept (at most one fewer than the embeddings).
const DIMS: usize = 32;
/// Weight of the spherical part of the within-speaker covariance.
const SHRINK: f64 = 0.3;
/// A speaker whose share of the embeddings falls below this is dropped.
const MIN_SHARE: f64 = 1e-3;

/// Labels `0..k` for the rows of `x`, starting from the over-split labels `init` and using the
/// clustering `within` to estimate the within-speaker covariance. Returns `init` renumbered when
/// there are too few embeddings to estimate anything.
pub fn cluster(x: &EmbeddingMatrix, init: &[usize], within: &[usize], p: &VbxParams) -> Vec<usize> {
    let n = x.len();
    let k = init.iter().max().map_or(0, |m| m + 1);
    if n < 3 || k < 2 {
        return renumber(init);
    }
    let Some((y, phi)) = project(x, within) else {
        return renumber(init);
    };
    let mut gamma = vec![0f64; n * k];
    for (i, &l) in init.iter().enumerate() {
        for c in 0..k {
            gamma[i * k + c] = if c == l { 0.9 } else { 0.1 / (k - 1) as f64 };
        }
    }
    let (gamma, pi) = infer(&y, &phi, gamma, k, p);
    let labels: Vec<usize> = (0..n)
        .map(|i| {
            (0..k)
                .filter(|&c| pi[c] > MIN_SHARE)
                .max_by(|&a, &b| gamma[i * k + a].total_cmp(&gamma[i * k + b]))
                .unwrap_or(init[i])
        })
        .collect();
    renumber(&labels)
}

/// The embeddings in the whitened space (`[n, d]` row-major) and the speakers' spread along
/// each of its `d` axes; `None` when the within-speaker covariance is degenerate.
fn project(x: &EmbeddingMatrix, within: &[usize]) -> Option<(Vec<f64>, Vec<f64>)> {
    let (n, dim) = (x.len(), x.dim);
    let mut mean = vec![0f64; dim];
    for i in 0..n {
        for (m, &v) in mean.iter_mut().zip(x.row(i)) {
            *m += f64::from(v) / n as f64;
        }
    }
    let centred: Vec<f64> = (0..n)
        .flat_map(|i| (x.row(i).iter().zip(&mean)).map(|(&v, m)| f64::from(v) - m))
        .collect();
    // Principal directions of the recording.
    let total = covariance(&centred, dim, None);
    let (_, axes) = symmetric_eigen(total, dim);
    let d = DIMS.min(n - 1).min(dim);
    let reduced = transform(&centred, dim, &axes, d);
    // Within-speaker covariance, shrunk towards a sphere, then whitened away.
    let w = covariance(&reduced, d, Some(within));
    let trace = (0..d).map(|i| w[i * d + i]).sum::<f64>() / d as f64;
    if trace.is_nan() || trace <= 1e-12 {
        return None;
    }
    let shrunk: Vec<f64> = (0..d * d)
        .map(|e| {
            let diag = if e / d == e % d { trace } else { 0.0 };
            (1.0 - SHRINK) * w[e] + SHRINK * diag
        })
        .collect();
    let (values, vectors) = symmetric_eigen(shrunk, d);
    let mut whiten = vectors.clone();
    for r in 0..d {
        for c in 0..d {
            whiten[r * d + c] /= values[c].max(1e-12).sqrt();
        }
    }
    let white = transform(&reduced, d, &whiten, d);
    // The speakers' spread: the whitened total covariance less the unit within-speaker part.
    let (spread, rotation) = symmetric_eigen(covariance(&white, d, None), d);
    let y = transform(&white, d, &rotation, d);
    let phi = spread.iter().map(|&s| (s - 1.0).max(1e-3)).collect();
    Some((y, phi))
}

/// Covariance `[dim, dim]` of the rows of `data`, around their mean, or around each group's mean
/// when `groups` labels the rows.
fn covariance(data: &[f64], dim: usize, groups: Option<&[usize]>) -> Vec<f64> {
    let n = data.len() / dim;
    let labels: Vec<usize> = groups.map_or_else(|| vec![0; n], <[usize]>::to_vec);
    let k = labels.iter().max().map_or(1, |m| m + 1);
    let mut means = vec![0f64; k * dim];
    let mut sizes = vec![0f64; k];
    for (i, &l) in labels.iter().enumerate() {
        sizes[l] += 1.0;
        for j in 0..dim {
            means[l * dim + j] += data[i * dim + j];
        }
    }
    for l in 0..k {
        for j in 0..dim {
            means[l * dim + j] /= sizes[l].max(1.0);
        }
    }
    let mut cov = vec![0f64; dim * dim];
    for (i, &l) in labels.iter().enumerate() {
        let row: Vec<f64> = (0..dim)
            .map(|j| data[i * dim + j] - means[l * dim + j])
            .collect();
        for a in 0..dim {
            for b in a..dim {
                cov[a * dim + b] += row[a] * row[b];
            }
        }
    }
    let dof = (n.saturating_sub(if groups.is_some() { k } else { 0 })).max(1) as f64;
    for a in 0..dim {
        for b in a..dim {
            cov[a * dim + b] /= dof;
            cov[b * dim + a] = cov[a * dim + b];
        }
    }
    cov
}

/// The rows of `data` (`dim` wide) times the first `d` columns of `basis` (`[dim, dim]`).
fn transform(data: &[f64], dim: usize, basis: &[f64], d: usize) -> Vec<f64> {
    let n = data.len() / dim;
    let mut out = vec![0f64; n * d];
    for i in 0..n {
        for c in 0..d {
            out[i * d + c] = (0..dim)
                .map(|j| data[i * dim + j] * basis[j * dim + c])
                .sum();
        }
    }
    out
}

/// Eigenvalues (descending) and eigenvectors (as columns of a `[n, n]` matrix, in the same
/// order) of the symmetric matrix `a`, by cyclic Jacobi rotations.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..50 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum();
        if off < 1e-22 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                // The smaller rotation (signum(0) is 1).
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| a[y * n + y].total_cmp(&a[x * n + x]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0f64; n * n];
    for (c, &i) in order.iter().enumerate() {
        for r in 0..n {
            vectors[r * n + c] = v[r * n + i];
        }
    }
    (values, vectors)
}

/// Mean-field inference (VBx without the HMM: embeddings are exchangeable) from the
/// responsibilities `gamma` (`[n, k]`); returns the final responsibilities and speaker shares.
fn infer(
    y: &[f64],
    phi: &[f64],
    mut gamma: Vec<f64>,
    k: usize,
    p: &VbxParams,
) -> (Vec<f64>, Vec<f64>) {
    let d = phi.len();
    let n = y.len() / d;
    let ratio = p.fa / p.fb;
    // rho = y scaled by the square root of the spread; constant part of each log-likelihood.
    let rho: Vec<f64> = (0..n * d).map(|e| y[e] * phi[e % d].sqrt()).collect();
    let g: Vec<f64> = (0..n)
        .map(|i| {
            let sq: f64 = y[i * d..(i + 1) * d].iter().map(|v| v * v).sum();
            -0.5 * (sq + d as f64 * (2.0 * std::f64::consts::PI).ln())
        })
        .collect();
    let mut pi = vec![1.0 / k as f64; k];
    let mut previous = f64::NEG_INFINITY;
    for _ in 0..p.max_iters {
        let counts: Vec<f64> = (0..k)
            .map(|c| (0..n).map(|i| gamma[i * k + c]).sum())
            .collect();
        let inv_l: Vec<f64> = (0..k * d)
            .map(|e| 1.0 / (1.0 + ratio * counts[e / d] * phi[e % d]))
            .collect();
        let alpha: Vec<f64> = (0..k * d)
            .map(|e| {
                let (c, j) = (e / d, e % d);
                ratio
                    * inv_l[e]
                    * (0..n)
                        .map(|i| gamma[i * k + c] * rho[i * d + j])
                        .sum::<f64>()
            })
            .collect();
        let penalty: Vec<f64> = (0..k)
            .map(|c| {
                (0..d)
                    .map(|j| 0.5 * (inv_l[c * d + j] + alpha[c * d + j].powi(2)) * phi[j])
                    .sum()
            })
            .collect();
        let mut total = 0.0;
        for i in 0..n {
            let logs: Vec<f64> = (0..k)
                .map(|c| {
                    let fit: f64 = (0..d).map(|j| rho[i * d + j] * alpha[c * d + j]).sum();
                    p.fa * (fit - penalty[c] + g[i]) + pi[c].max(1e-300).ln()
                })
                .collect();
            let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let norm = top + logs.iter().map(|l| (l - top).exp()).sum::<f64>().ln();
            for c in 0..k {
                gamma[i * k + c] = (logs[c] - norm).exp();
            }
            total += norm;
        }
        for c in 0..k {
            pi[c] = (0..n).map(|i| gamma[i * k + c]).sum::<f64>() / n as f64;
        }
        let prior: f64 = (0..k * d)
            .map(|e| inv_l[e].ln() - inv_l[e] - alpha[e].powi(2) + 1.0)
            .sum();
        let elbo = total + p.fb * 0.5 * prior;
        if elbo - previous < 1e-6 * elbo.abs().max(1.0) {
            break;
        }
        previous = elbo;
    }
    (gamma, pi)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-0.5, 0.5).
    fn noise(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }

    #[test]
    fn eigen_decomposition_rebuilds_the_matrix() {
        let a = vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0];
        let (values, vectors) = symmetric_eigen(a.clone(), 3);
        assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
        for r in 0..3 {
            for c in 0..3 {
                let rebuilt: f64 = (0..3)
                    .map(|k| vectors[r * 3 + k] * values[k] * vectors[c * 3 + k])
                    .sum();
                assert!((rebuilt - a[r * 3 + c]).abs() < 1e-9, "{r},{c}: {rebuilt}");
            }
        }
    }

    /// Three voices, 20 embeddings each, in 16 dimensions: each an axis plus noise.
    fn three_voices() -> (EmbeddingMatrix, Vec<usize>) {
        let mut state = 7u64;
        let mut x = EmbeddingMatrix::new(16);
        let mut truth = Vec::new();
        for i in 0..60 {
            let voice = i % 3;
            let v: Vec<f32> = (0..16)
                .map(|j| f32::from(u8::from(j == voice)) + 0.5 * noise(&mut state))
                .collect();
            x.push(&v);
            truth.push(voice);
        }
        (x, truth)
    }

    #[test]
    fn an_over_split_start_comes_back_to_the_voices() {
        let (x, truth) = three_voices();
        // Each voice split in two halves by order of appearance.
        let init: Vec<usize> = (0..60)
            .map(|i| truth[i] * 2 + usize::from(i >= 30))
            .collect();
        let p = VbxParams {
            fa: 0.5,
            fb: 1.0,
            max_iters: 30,
        };
        let labels = cluster(&x, &init, &truth, &p);
        assert_eq!(labels, renumber(&truth));
        // Merging everything from the start cannot be undone: VBx only removes speakers.
        assert_eq!(cluster(&x, &vec![0; 60], &truth, &p), vec![0; 60]);
    }

    #[test]
    fn too_few_embeddings_keep_their_start() {
        let (x, truth) = three_voices();
        let two = EmbeddingMatrix {
            dim: 16,
            data: x.data[..32].to_vec(),
        };
        let p = VbxParams {
            fa: 0.5,
            fb: 1.0,
            max_iters: 30,
        };
        assert_eq!(cluster(&two, &[3, 1], &truth[..2], &p), vec![0, 1]);
    }
}
