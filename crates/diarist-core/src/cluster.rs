//! Offline clustering of speaker embeddings: average-linkage agglomerative clustering on cosine
//! distance (nearest-neighbour chain, O(n²) time and memory), a cut by distance threshold or by
//! speaker count, and centroids.

/// A flat matrix of L2-normalised embeddings, `[n, dim]` row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddingMatrix {
    /// Vector dimension.
    pub dim: usize,
    /// The vectors, each of unit length (or all zeros when the input was degenerate).
    pub data: Vec<f32>,
}

impl EmbeddingMatrix {
    /// An empty matrix of `dim`-dimensional vectors.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            data: Vec::new(),
        }
    }

    /// Appends `v` after L2-normalising it. Non-finite or zero vectors are stored as zeros.
    pub fn push(&mut self, v: &[f32]) {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm.is_finite() && norm > 0.0 {
            self.data.extend(v.iter().map(|x| x / norm));
        } else {
            self.data.extend(std::iter::repeat_n(0.0, self.dim));
        }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Vector `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Cosine similarity of two vectors of equal length (of unit length: a dot product).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One merge of the dendrogram: clusters `a` and `b` (ids as in SciPy: leaves are `0..n`, the
/// cluster made by merge `k` is `n + k`) joined at average cosine distance `height`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Merge {
    /// First cluster id.
    pub a: usize,
    /// Second cluster id.
    pub b: usize,
    /// Average-linkage cosine distance between them.
    pub height: f32,
}

/// Average-linkage agglomerative clustering of `x` on cosine distance; merges sorted by height.
pub fn average_linkage(x: &EmbeddingMatrix) -> Vec<Merge> {
    let n = x.len();
    if n < 2 {
        return Vec::new();
    }
    // Condensed symmetric distance matrix, updated in place by Lance-Williams.
    let mut d = vec![0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let v = 1.0 - dot(x.row(i), x.row(j));
            d[i * n + j] = v;
            d[j * n + i] = v;
        }
    }
    let mut size = vec![1usize; n];
    let mut alive = vec![true; n];
    let mut id: Vec<usize> = (0..n).collect();
    let mut merges = Vec::with_capacity(n - 1);
    let mut chain: Vec<usize> = Vec::with_capacity(n);
    while merges.len() < n - 1 {
        if chain.is_empty() {
            chain.push(alive.iter().position(|&a| a).unwrap_or(0));
        }
        loop {
            let top = chain[chain.len() - 1];
            let prev = chain.len().checked_sub(2).map(|i| chain[i]);
            // Nearest alive neighbour of `top`, preferring `prev` on ties so the chain ends.
            let mut best = prev;
            let mut best_d = prev.map_or(f32::INFINITY, |p| d[top * n + p]);
            for j in 0..n {
                if alive[j] && j != top && d[top * n + j] < best_d {
                    best = Some(j);
                    best_d = d[top * n + j];
                }
            }
            let Some(next) = best else { break };
            if Some(next) == prev {
                break;
            }
            chain.push(next);
        }
        let b = chain.pop().unwrap_or(0);
        let a = chain.pop().unwrap_or(0);
        let height = d[a * n + b];
        merges.push(Merge {
            a: id[a],
            b: id[b],
            height,
        });
        // Merge b into a.
        let (sa, sb) = (size[a] as f32, size[b] as f32);
        for k in 0..n {
            if alive[k] && k != a && k != b {
                let v = (sa * d[a * n + k] + sb * d[b * n + k]) / (sa + sb);
                d[a * n + k] = v;
                d[k * n + a] = v;
            }
        }
        alive[b] = false;
        size[a] += size[b];
        id[a] = n + merges.len() - 1;
    }
    sort_merges(merges, n)
}

/// Sorts merges by height and renumbers cluster ids to stay consistent with the new order.
fn sort_merges(merges: Vec<Merge>, n: usize) -> Vec<Merge> {
    let mut order: Vec<usize> = (0..merges.len()).collect();
    order.sort_by(|&i, &j| {
        merges[i]
            .height
            .total_cmp(&merges[j].height)
            .then(i.cmp(&j))
    });
    // Replay the merges in sorted order with a union-find, naming each new cluster by its rank.
    let mut parent: Vec<usize> = (0..n).collect();
    let mut name: Vec<usize> = (0..n).collect();
    let find = |parent: &mut Vec<usize>, mut x: usize| {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    };
    // Any leaf of each original cluster id lets us find its current root.
    let mut leaf = vec![0usize; n + merges.len()];
    for (i, l) in leaf.iter_mut().enumerate().take(n) {
        *l = i;
    }
    for (k, m) in merges.iter().enumerate() {
        leaf[n + k] = leaf[m.a];
    }
    let mut out = Vec::with_capacity(merges.len());
    for (rank, &k) in order.iter().enumerate() {
        let m = merges[k];
        let ra = find(&mut parent, leaf[m.a]);
        let rb = find(&mut parent, leaf[m.b]);
        out.push(Merge {
            a: name[ra],
            b: name[rb],
            height: m.height,
        });
        parent[rb] = ra;
        name[ra] = n + rank;
    }
    out
}

/// Flat labels `0..k` for `n` leaves after applying the first `merges_applied` merges. Labels are
/// numbered in order of first appearance.
pub fn cut(merges: &[Merge], n: usize, merges_applied: usize) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n + merges.len()).collect();
    for (k, m) in merges.iter().take(merges_applied).enumerate() {
        parent[m.a] = n + k;
        parent[m.b] = n + k;
    }
    let roots: Vec<usize> = (0..n)
        .map(|i| {
            let mut r = i;
            while parent[r] != r {
                r = parent[r];
            }
            r
        })
        .collect();
    renumber(&roots)
}

/// Labels renumbered `0..k` in order of first appearance.
pub fn renumber(labels: &[usize]) -> Vec<usize> {
    let mut map = std::collections::HashMap::new();
    (labels.iter())
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

/// How many clusters to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterCount {
    /// Merge while the average cosine distance is below this.
    pub threshold: f32,
    /// Exactly this many clusters, when set.
    pub num: Option<usize>,
    /// At least this many clusters.
    pub min: usize,
    /// At most this many clusters, when set.
    pub max: Option<usize>,
}

/// Number of merges to apply to reach the clustering `count` asks for.
pub fn merges_to_apply(merges: &[Merge], n: usize, count: &ClusterCount) -> usize {
    if n == 0 {
        return 0;
    }
    let by_threshold = merges
        .iter()
        .take_while(|m| m.height < count.threshold)
        .count();
    let clusters = |applied: usize| n - applied;
    let target = match count.num {
        Some(k) => k.clamp(1, n),
        None => {
            let k = clusters(by_threshold);
            let k = k.max(count.min.min(n));
            count.max.map_or(k, |m| k.min(m.max(1)))
        }
    };
    n - target
}

/// Unit-length mean of the rows of `x` carrying each label `0..k`.
pub fn centroids(x: &EmbeddingMatrix, labels: &[usize], k: usize) -> EmbeddingMatrix {
    let mut sums = vec![0f32; k * x.dim];
    for (i, &l) in labels.iter().enumerate() {
        for (s, v) in sums[l * x.dim..(l + 1) * x.dim].iter_mut().zip(x.row(i)) {
            *s += v;
        }
    }
    let mut out = EmbeddingMatrix::new(x.dim);
    for c in 0..k {
        out.push(&sums[c * x.dim..(c + 1) * x.dim]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[&[f32]]) -> EmbeddingMatrix {
        let mut m = EmbeddingMatrix::new(rows[0].len());
        for r in rows {
            m.push(r);
        }
        m
    }

    /// Naive O(n³) average linkage for comparison.
    fn naive_heights(x: &EmbeddingMatrix) -> Vec<f32> {
        let mut clusters: Vec<Vec<usize>> = (0..x.len()).map(|i| vec![i]).collect();
        let mut heights = Vec::new();
        while clusters.len() > 1 {
            let mut best = (0, 1, f32::INFINITY);
            for i in 0..clusters.len() {
                for j in i + 1..clusters.len() {
                    let mut s = 0.0;
                    for &a in &clusters[i] {
                        for &b in &clusters[j] {
                            s += 1.0 - dot(x.row(a), x.row(b));
                        }
                    }
                    let avg = s / (clusters[i].len() * clusters[j].len()) as f32;
                    if avg < best.2 {
                        best = (i, j, avg);
                    }
                }
            }
            let b = clusters.remove(best.1);
            clusters[best.0].extend(b);
            heights.push(best.2);
        }
        heights
    }

    #[test]
    fn two_obvious_groups_split_at_the_threshold() {
        let x = matrix(&[
            &[1.0, 0.0],
            &[0.99, 0.1],
            &[0.0, 1.0],
            &[0.1, 0.98],
            &[0.98, 0.05],
        ]);
        let merges = average_linkage(&x);
        assert_eq!(merges.len(), 4);
        let count = ClusterCount {
            threshold: 0.5,
            num: None,
            min: 1,
            max: None,
        };
        let applied = merges_to_apply(&merges, x.len(), &count);
        let labels = cut(&merges, x.len(), applied);
        assert_eq!(labels, vec![0, 0, 1, 1, 0]);
        let c = centroids(&x, &labels, 2);
        assert!(dot(c.row(0), &[1.0, 0.0]) > 0.99);
        assert!(dot(c.row(1), &[0.0, 1.0]) > 0.99);
    }

    #[test]
    fn speaker_count_overrides_the_threshold() {
        let x = matrix(&[&[1.0, 0.0], &[0.99, 0.1], &[0.0, 1.0], &[0.1, 0.98]]);
        let merges = average_linkage(&x);
        let exact = ClusterCount {
            threshold: 0.5,
            num: Some(1),
            min: 1,
            max: None,
        };
        assert_eq!(
            cut(&merges, 4, merges_to_apply(&merges, 4, &exact)),
            vec![0, 0, 0, 0]
        );
        let at_least = ClusterCount {
            threshold: 0.5,
            num: None,
            min: 3,
            max: None,
        };
        let labels = cut(&merges, 4, merges_to_apply(&merges, 4, &at_least));
        assert_eq!(labels.iter().max(), Some(&2));
        let at_most = ClusterCount {
            threshold: 2.5,
            num: None,
            min: 1,
            max: Some(1),
        };
        assert_eq!(merges_to_apply(&merges, 4, &at_most), 3);
        let many = ClusterCount {
            threshold: 0.0,
            num: Some(9),
            min: 1,
            max: None,
        };
        assert_eq!(
            cut(&merges, 4, merges_to_apply(&merges, 4, &many)),
            vec![0, 1, 2, 3]
        );
    }

    #[test]
    fn heights_match_a_naive_implementation() {
        // Deterministic pseudo-random vectors.
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        for n in [2usize, 3, 7, 15] {
            let mut x = EmbeddingMatrix::new(4);
            for _ in 0..n {
                let v: Vec<f32> = (0..4).map(|_| next()).collect();
                x.push(&v);
            }
            let fast: Vec<f32> = average_linkage(&x).iter().map(|m| m.height).collect();
            let slow = naive_heights(&x);
            assert_eq!(fast.len(), slow.len());
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-5, "{fast:?} vs {slow:?}");
            }
        }
    }

    #[test]
    fn degenerate_inputs() {
        let empty = EmbeddingMatrix::new(3);
        assert!(average_linkage(&empty).is_empty());
        assert!(cut(&[], 0, 0).is_empty());
        let one = matrix(&[&[0.0, 0.0, 0.0]]);
        assert_eq!(one.row(0), &[0.0, 0.0, 0.0]);
        assert_eq!(cut(&average_linkage(&one), 1, 0), vec![0]);
        let nan = matrix(&[&[f32::NAN, 1.0]]);
        assert_eq!(nan.row(0), &[0.0, 0.0]);
    }
}
