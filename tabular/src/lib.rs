//! The seed tutorial's first half: the 6-room graph MDP and four tabular
//! methods that all reach its well-known converged Q table.
//!
//! Rooms 0..=5 are joined by doors; an action is "go to room `a`" and only
//! exists where there is a door (`R[s][a] >= 0`). Entering room 5 (the goal,
//! outside) pays 100, every other move 0; from 5 the agent may stay in 5.
//! With `gamma = 0.8` the optimal action values are
//! `Q*(s, a) = R[s][a] + gamma * max_b Q*(a, b)`.

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

/// Number of rooms (states and actions).
pub const N: usize = 6;
/// The goal room.
pub const GOAL: usize = 5;
/// Discount.
pub const GAMMA: f64 = 0.8;
/// Rewards: -1 = no door, 0 = door, 100 = door into the goal.
pub const R: [[i32; N]; N] = [
    [-1, -1, -1, -1, 0, -1],
    [-1, -1, -1, 0, -1, 100],
    [-1, -1, -1, 0, -1, -1],
    [-1, 0, 0, -1, 0, -1],
    [0, -1, -1, 0, -1, 100],
    [-1, 0, -1, -1, 0, 100],
];

/// A Q table (zeros where there is no door).
pub type QTable = [[f64; N]; N];

/// Whether action `a` (go to room `a`) exists in state `s`.
pub fn valid(s: usize, a: usize) -> bool {
    R[s][a] >= 0
}

fn reward(s: usize, a: usize) -> f64 {
    R[s][a] as f64
}

fn actions(s: usize) -> impl Iterator<Item = usize> {
    (0..N).filter(move |&a| valid(s, a))
}

fn max_q(q: &QTable, s: usize) -> f64 {
    actions(s)
        .map(|a| q[s][a])
        .fold(f64::NEG_INFINITY, f64::max)
}

fn greedy(q: &QTable, s: usize) -> usize {
    actions(s).fold(GOAL, |best, a| {
        if !valid(s, best) || q[s][a] > q[s][best] {
            a
        } else {
            best
        }
    })
}

/// Value iteration on action values (Bellman optimality backups) until the
/// largest change is below `tol`. Returns the table and the sweeps used.
pub fn value_iteration(tol: f64) -> (QTable, usize) {
    value_iteration_with(GAMMA, tol)
}

/// [`value_iteration`] with another discount `gamma` (in `[0, 1)`).
pub fn value_iteration_with(gamma: f64, tol: f64) -> (QTable, usize) {
    let mut q = [[0.0; N]; N];
    for sweep in 1..100_000 {
        let mut delta: f64 = 0.0;
        let old = q;
        for s in 0..N {
            for a in actions(s) {
                q[s][a] = reward(s, a) + gamma * max_q(&old, a);
                delta = delta.max((q[s][a] - old[s][a]).abs());
            }
        }
        if delta < tol {
            return (q, sweep);
        }
    }
    (q, 100_000)
}

/// Every-visit Monte Carlo evaluation of `policy`'s action values with
/// exploring starts: each episode starts from a random valid `(s, a)`, then
/// follows `policy` for `horizon` steps; Q is the average of the returns
/// observed at every visit in the first `horizon / 2` steps.
pub fn monte_carlo(policy: &QTable, episodes: usize, horizon: usize, seed: u64) -> QTable {
    let mut rng = Pcg32::seed_from_u64(seed);
    let mut sum = [[0.0; N]; N];
    let mut count = [[0u32; N]; N];
    let pairs: Vec<(usize, usize)> = (0..N)
        .flat_map(|s| actions(s).map(move |a| (s, a)))
        .collect();
    for _ in 0..episodes {
        let (s0, a0) = pairs[rng.next_u32() as usize % pairs.len()];
        let mut traj = vec![(s0, a0, reward(s0, a0))];
        let mut s = a0;
        for _ in 1..horizon {
            let a = greedy(policy, s);
            traj.push((s, a, reward(s, a)));
            s = a;
        }
        // Returns of visits in the first half only: their tails beyond the
        // horizon weigh at most gamma^(horizon/2) of the value.
        let mut g = 0.0;
        for (t, &(s, a, r)) in traj.iter().enumerate().rev() {
            g = r + GAMMA * g;
            if t < horizon / 2 {
                sum[s][a] += g;
                count[s][a] += 1;
            }
        }
    }
    let mut q = [[0.0; N]; N];
    for s in 0..N {
        for a in actions(s) {
            if count[s][a] > 0 {
                q[s][a] = sum[s][a] / count[s][a] as f64;
            }
        }
    }
    q
}

/// TD(0) evaluation of `policy`'s action values: after each step
/// `Q(s,a) += alpha * (r + gamma * Q(s', policy(s')) - Q(s,a))`, from random
/// starting pairs, `steps` updates in total.
pub fn td0(policy: &QTable, steps: usize, alpha: f64, seed: u64) -> QTable {
    let mut rng = Pcg32::seed_from_u64(seed);
    let mut q = [[0.0; N]; N];
    let mut s = 0usize;
    let mut a = 4usize;
    for t in 0..steps {
        if t % 20 == 0 {
            s = rng.next_u32() as usize % N;
            let acts: Vec<usize> = actions(s).collect();
            a = acts[rng.next_u32() as usize % acts.len()];
        }
        let next = a;
        let next_a = greedy(policy, next);
        q[s][a] += alpha * (reward(s, a) + GAMMA * q[next][next_a] - q[s][a]);
        s = next;
        a = next_a;
        // Explore a random door now and then so every pair keeps being updated.
        if rng.next_u32() % 4 == 0 {
            let acts: Vec<usize> = actions(s).collect();
            a = acts[rng.next_u32() as usize % acts.len()];
        }
    }
    q
}

/// Tabular Q-learning with a uniformly random behaviour policy (off-policy):
/// `Q(s,a) += alpha * (r + gamma * max_b Q(s', b) - Q(s,a))`. Episodes start
/// in a random room and end on entering the goal (its row is still learned,
/// since 5 -> 5 is an action).
pub fn q_learning(episodes: usize, alpha: f64, seed: u64) -> QTable {
    let mut rng = Pcg32::seed_from_u64(seed);
    let mut q = [[0.0; N]; N];
    for _ in 0..episodes {
        let mut s = rng.next_u32() as usize % N;
        for _ in 0..100 {
            let acts: Vec<usize> = actions(s).collect();
            let a = acts[rng.next_u32() as usize % acts.len()];
            q[s][a] += alpha * (reward(s, a) + GAMMA * max_q(&q, a) - q[s][a]);
            s = a;
            if s == GOAL && rng.next_u32() % 2 == 0 {
                break;
            }
        }
    }
    q
}

/// The table scaled so its maximum is 100.
pub fn normalised(q: &QTable) -> QTable {
    let m = q.iter().flatten().copied().fold(0.0, f64::max);
    let mut out = *q;
    if m > 0.0 {
        for v in out.iter_mut().flatten() {
            *v = *v / m * 100.0;
        }
    }
    out
}

/// The table as text, values rounded to integers, one row per state.
pub fn format_table(q: &QTable) -> String {
    let mut s = String::from("state |    0    1    2    3    4    5\n");
    for (i, row) in q.iter().enumerate() {
        s.push_str(&format!("  {i}   |"));
        for v in row {
            s.push_str(&format!(" {:>4}", v.round() as i64));
        }
        s.push('\n');
    }
    s
}

/// Runs all four methods and returns a printable report.
pub fn report() -> String {
    let (vi, sweeps) = value_iteration(1e-9);
    let methods: [(String, QTable); 4] = [
        (
            format!("Value iteration (Bellman optimality, {sweeps} sweeps)"),
            vi,
        ),
        (
            "Monte Carlo evaluation of the greedy policy (20 000 episodes, exploring starts)"
                .into(),
            monte_carlo(&vi, 20_000, 120, 1),
        ),
        (
            "TD(0) evaluation of the greedy policy (300 000 steps, alpha 0.1)".into(),
            td0(&vi, 300_000, 0.1, 2),
        ),
        (
            "Q-learning (random behaviour, 3 000 episodes, alpha 1)".into(),
            q_learning(3_000, 1.0, 3),
        ),
    ];
    let mut out =
        String::from("The seed's 6-room graph: goal room 5, entering it pays 100, gamma 0.8.\n\n");
    for (name, q) in &methods {
        out.push_str(&format!(
            "{name}\n{}normalised to 100:\n{}\n",
            format_table(q),
            format_table(&normalised(q))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The well-known converged table of this example.
    const KNOWN: [[i64; N]; N] = [
        [0, 0, 0, 0, 400, 0],
        [0, 0, 0, 320, 0, 500],
        [0, 0, 0, 320, 0, 0],
        [0, 400, 256, 0, 400, 0],
        [320, 0, 0, 320, 0, 500],
        [0, 400, 0, 0, 400, 500],
    ];

    fn assert_known(q: &QTable, tol: f64, what: &str) {
        for s in 0..N {
            for a in 0..N {
                assert!(
                    (q[s][a] - KNOWN[s][a] as f64).abs() <= tol,
                    "{what}: Q[{s}][{a}] = {} , expected {}",
                    q[s][a],
                    KNOWN[s][a]
                );
            }
        }
    }

    #[test]
    fn value_iteration_reaches_the_known_table() {
        let (q, sweeps) = value_iteration(1e-9);
        assert_known(&q, 1e-6, "value iteration");
        assert!(sweeps > 10);
        let n = normalised(&q);
        assert_eq!(
            [
                n[1][5].round(),
                n[0][4].round(),
                n[1][3].round(),
                n[3][2].round()
            ],
            [100.0, 80.0, 64.0, 51.0]
        );
    }

    #[test]
    fn monte_carlo_td_and_q_learning_agree() {
        let (vi, _) = value_iteration(1e-9);
        assert_known(&monte_carlo(&vi, 20_000, 120, 1), 0.01, "monte carlo");
        assert_known(&td0(&vi, 300_000, 0.1, 2), 1.0, "td(0)");
        assert_known(&q_learning(3_000, 1.0, 3), 0.01, "q-learning");
    }

    #[test]
    fn a_wrong_discount_would_be_caught() {
        // The known table is the fixed point for gamma = 0.8 only: value
        // iteration run to convergence with 0.75 or 0.85 lands far from it.
        let close = |q: &QTable| {
            (0..N).all(|s| (0..N).all(|a| (q[s][a] - KNOWN[s][a] as f64).abs() <= 1.0))
        };
        assert!(close(&value_iteration_with(GAMMA, 1e-9).0));
        for wrong in [0.75, 0.85] {
            let (q, _) = value_iteration_with(wrong, 1e-9);
            assert!(!close(&q), "gamma {wrong} matched the table");
        }
    }

    /// The 6x6 tables printed in `report`, in order, as integers (each row
    /// labelled with its state).
    fn printed_tables(report: &str) -> Vec<[[i64; N]; N]> {
        let mut tables = Vec::new();
        let mut lines = report.lines();
        while let Some(l) = lines.next() {
            if !l.starts_with("state |") {
                continue;
            }
            let mut t = [[0; N]; N];
            for (s, row) in t.iter_mut().enumerate() {
                let line = lines.next().expect("a table row");
                let (label, values) = line.split_once('|').expect("`state |` columns");
                assert_eq!(label.trim(), s.to_string(), "{line}");
                let v: Vec<i64> = values
                    .split_whitespace()
                    .map(|x| x.parse().expect("an integer"))
                    .collect();
                *row = v.try_into().expect("six values");
            }
            tables.push(t);
        }
        tables
    }

    /// Every method's table and its version normalised to 100, as printed:
    /// the known table (and it over 5), exactly for value iteration, Monte
    /// Carlo and Q-learning, within 1 for TD(0) (within 1.0 before rounding).
    #[test]
    fn report_prints_every_table() {
        let r = report();
        let tables = printed_tables(&r);
        assert_eq!(tables.len(), 8, "four methods, two tables each: {r}");
        for (i, t) in tables.iter().enumerate() {
            let tol = if i / 2 == 2 { 1 } else { 0 };
            let scale = if i % 2 == 0 { 1.0 } else { 100.0 / 500.0 };
            for s in 0..N {
                for a in 0..N {
                    let want = (KNOWN[s][a] as f64 * scale).round() as i64;
                    assert!(
                        (t[s][a] - want).abs() <= tol,
                        "table {i}: [{s}][{a}] = {}, expected {want}\n{r}",
                        t[s][a]
                    );
                }
            }
        }
    }
}
