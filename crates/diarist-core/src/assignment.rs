//! Optimal one-to-one assignment (the Hungarian method with potentials, O(n²·m)).

/// Assigns rows to columns one-to-one so that the total score is largest. Returns each row's
/// column; with more rows than columns some rows get `None`. Non-finite scores are never chosen
/// over finite ones.
pub fn max_weight_matching(scores: &[Vec<f64>]) -> Vec<Option<usize>> {
    let rows = scores.len();
    let cols = scores.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    let finite = |v: f64| if v.is_finite() { v } else { -1e12 };
    if rows <= cols {
        let cost: Vec<Vec<f64>> = scores
            .iter()
            .map(|r| r.iter().map(|&v| -finite(v)).collect())
            .collect();
        min_cost_rows_le_cols(&cost).into_iter().map(Some).collect()
    } else {
        // Transpose so that rows <= columns, then invert the result.
        let cost: Vec<Vec<f64>> = (0..cols)
            .map(|c| (0..rows).map(|r| -finite(scores[r][c])).collect())
            .collect();
        let mut out = vec![None; rows];
        for (c, r) in min_cost_rows_le_cols(&cost).into_iter().enumerate() {
            out[r] = Some(c);
        }
        out
    }
}

/// Minimum-cost assignment of every row to a distinct column, for `rows <= cols`.
fn min_cost_rows_le_cols(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    let m = cost[0].len();
    // 1-based potentials and matching, column 0 is a sentinel.
    let mut u = vec![0f64; n + 1];
    let mut v = vec![0f64; m + 1];
    let mut p = vec![0usize; m + 1]; // p[j]: row matched to column j
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![0usize; n];
    for j in 1..=m {
        if p[j] != 0 {
            assignment[p[j] - 1] = j - 1;
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(scores: &[Vec<f64>], a: &[Option<usize>]) -> f64 {
        a.iter()
            .enumerate()
            .filter_map(|(r, c)| c.map(|c| scores[r][c]))
            .sum()
    }

    /// Best total over all one-to-one assignments, by brute force.
    fn brute(scores: &[Vec<f64>]) -> f64 {
        fn go(scores: &[Vec<f64>], r: usize, used: &mut Vec<bool>) -> f64 {
            if r == scores.len() {
                return 0.0;
            }
            let cols = scores[0].len();
            let rows_left = scores.len() - r;
            let free = used.iter().filter(|u| !**u).count();
            // A row may stay unassigned only when there are more rows left than free columns.
            let mut best = if rows_left > free {
                go(scores, r + 1, used)
            } else {
                f64::NEG_INFINITY
            };
            for c in 0..cols {
                if !used[c] {
                    used[c] = true;
                    best = best.max(scores[r][c] + go(scores, r + 1, used));
                    used[c] = false;
                }
            }
            best
        }
        go(scores, 0, &mut vec![false; scores[0].len()])
    }

    #[test]
    fn matches_brute_force_on_random_rectangles() {
        let mut state = 99u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for rows in 1..=5 {
            for cols in 1..=5 {
                for _ in 0..20 {
                    let scores: Vec<Vec<f64>> = (0..rows)
                        .map(|_| (0..cols).map(|_| next() * 2.0 - 1.0).collect())
                        .collect();
                    let a = max_weight_matching(&scores);
                    assert_eq!(a.iter().filter(|c| c.is_some()).count(), rows.min(cols));
                    let mut seen = vec![false; cols];
                    for c in a.iter().flatten() {
                        assert!(!seen[*c], "column used twice");
                        seen[*c] = true;
                    }
                    assert!((total(&scores, &a) - brute(&scores)).abs() < 1e-9);
                }
            }
        }
    }

    #[test]
    fn obvious_and_degenerate_cases() {
        let scores = vec![vec![0.1, 0.9], vec![0.8, 0.2]];
        assert_eq!(max_weight_matching(&scores), vec![Some(1), Some(0)]);
        assert!(max_weight_matching(&[]).is_empty());
        assert_eq!(max_weight_matching(&[vec![], vec![]]), vec![None, None]);
        let nan = vec![vec![f64::NAN, 0.0]];
        assert_eq!(max_weight_matching(&nan), vec![Some(1)]);
    }
}
