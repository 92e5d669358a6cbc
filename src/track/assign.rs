//! Optimal assignment (the Hungarian method, Kuhn 1955, in the O(n³) form
//! with row and column potentials): which detection goes to which track so
//! that the sum of the pairs' scores is greatest. Greedy matching (best pair
//! first) can take a pair that leaves two others unmatched; in crowds, where
//! one box overlaps several tracks, that is where ids swap.

/// Pairs `(row, column, score)` of the best assignment: each row and each
/// column used at most once, only pairs listed in `allowed`, the sum of
/// `score + 1` over the pairs taken as large as possible (so a match always
/// beats no match, and among as many matches the better scores win).
/// `allowed` holds `(row, column, score)` with scores above -1; rows and
/// columns that appear in no pair cost nothing.
pub fn best(allowed: &[(usize, usize, f32)]) -> Vec<(usize, usize, f32)> {
    // Dense indices for the rows and columns in play.
    let dense = |pick: fn(&(usize, usize, f32)) -> usize| {
        let mut ids: Vec<usize> = allowed.iter().map(pick).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let (row_ids, column_ids) = (dense(|p| p.0), dense(|p| p.1));
    let (rows, columns) = (row_ids.len(), column_ids.len());
    let index = |ids: &[usize], id| ids.binary_search(&id).expect("listed");
    // Square costs of side rows + columns: a row may also take its own
    // "unmatched" column at cost 0, a column its own "unmatched" row, and
    // the unmatched-unmatched corner is free.
    let n = rows + columns;
    let forbidden = 1.0e9;
    let mut cost = vec![forbidden; n * n];
    for i in 0..rows {
        cost[i * n + columns + i] = 0.0;
    }
    for j in 0..columns {
        cost[(rows + j) * n + j] = 0.0;
        for k in 0..rows {
            cost[(rows + j) * n + columns + k] = 0.0;
        }
    }
    for &(i, j, s) in allowed {
        cost[index(&row_ids, i) * n + index(&column_ids, j)] = -(f64::from(s) + 1.0);
    }
    let column_of = solve(n, &cost);
    let mut out: Vec<(usize, usize, f32)> = allowed
        .iter()
        .copied()
        .filter(|&(i, j, _)| column_of[index(&row_ids, i)] == index(&column_ids, j))
        .collect();
    out.sort_by_key(|&(i, j, _)| (i, j));
    out
}

/// The minimum-cost perfect matching of an n×n cost matrix: the column of each row.
fn solve(n: usize, cost: &[f64]) -> Vec<usize> {
    // 1-based with a virtual column 0, as in the classic formulation.
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; n + 1]);
    let mut row_of = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut min = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=n {
                if used[j] {
                    continue;
                }
                let reduced = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                if reduced < min[j] {
                    min[j] = reduced;
                    way[j] = j0;
                }
                if min[j] < delta {
                    delta = min[j];
                    j1 = j;
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path.
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut column_of = vec![0; n];
    for j in 1..=n {
        column_of[row_of[j] - 1] = j - 1;
    }
    column_of
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_greedy_where_one_pair_blocks_two() {
        // Greedy takes (0, 0) at 0.9 and leaves row 1 and column 1 alone;
        // the best is (0, 1) + (1, 0).
        let allowed = [(0, 0, 0.9), (0, 1, 0.8), (1, 0, 0.7)];
        assert_eq!(best(&allowed), vec![(0, 1, 0.8), (1, 0, 0.7)]);
    }

    #[test]
    fn takes_the_better_of_competing_pairs_and_leaves_the_rest() {
        let allowed = [(0, 2, 0.3), (1, 2, 0.6), (2, 0, 0.5)];
        assert_eq!(best(&allowed), vec![(1, 2, 0.6), (2, 0, 0.5)]);
        assert_eq!(best(&[]), vec![]);
        // Rectangular both ways, with sparse indices.
        assert_eq!(best(&[(0, 1, 0.2), (0, 2, 0.4)]), vec![(0, 2, 0.4)]);
        assert_eq!(best(&[(7, 3, 0.2), (9, 3, 0.1)]), vec![(7, 3, 0.2)]);
    }

    #[test]
    fn agrees_with_exhaustive_search_on_small_random_cases() {
        // Every assignment of rows to distinct columns (or none), scored by sum of score + 1.
        fn brute(rows: usize, columns: usize, allowed: &[(usize, usize, f32)]) -> f64 {
            fn go(i: usize, rows: usize, taken: &mut Vec<bool>, allowed: &[(usize, usize, f32)]) -> f64 {
                if i == rows {
                    return 0.0;
                }
                let mut best = go(i + 1, rows, taken, allowed);
                for &(r, c, s) in allowed.iter().filter(|p| p.0 == i) {
                    if !taken[c] {
                        taken[c] = true;
                        best = best.max(f64::from(s) + 1.0 + go(r + 1, rows, taken, allowed));
                        taken[c] = false;
                    }
                }
                best
            }
            go(0, rows, &mut vec![false; columns], allowed)
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let (rows, columns) = (1 + next() as usize % 5, 1 + next() as usize % 5);
            let mut allowed = Vec::new();
            for i in 0..rows {
                for j in 0..columns {
                    if next() % 3 != 0 {
                        allowed.push((i, j, (next() % 1000) as f32 / 1000.0));
                    }
                }
            }
            let got = best(&allowed);
            let total: f64 = got.iter().map(|&(_, _, s)| f64::from(s) + 1.0).sum();
            assert!(
                (total - brute(rows, columns, &allowed)).abs() < 1e-4,
                "{allowed:?} → {got:?}"
            );
            let mut seen_rows: Vec<usize> = got.iter().map(|p| p.0).collect();
            let mut seen_columns: Vec<usize> = got.iter().map(|p| p.1).collect();
            seen_rows.dedup();
            seen_columns.sort_unstable();
            seen_columns.dedup();
            assert_eq!((seen_rows.len(), seen_columns.len()), (got.len(), got.len()));
        }
    }
}
