//! Greedy evaluation: several episodes played in parallel (one batched forward
//! per step), each stopped at a score cap so evaluation always terminates.

use crate::env::VecEnv;
use crate::net::QNetwork;
use anyhow::Result;
use flappy::{Frame, Obstacle};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use serde::Serialize;

/// Scores of an evaluation.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EvalResult {
    /// Episodes played.
    pub episodes: usize,
    /// Mean score.
    pub mean_score: f64,
    /// Median score.
    pub median_score: f64,
    /// Best score.
    pub max_score: u32,
    /// Worst score.
    pub min_score: u32,
    /// Every episode's score, in seed order.
    pub scores: Vec<u32>,
    /// Index of the best episode (its game was seeded `seed + best`).
    pub best: usize,
}

/// Summarises scores.
pub fn summarize(scores: Vec<u32>) -> EvalResult {
    let n = scores.len();
    let mean = scores.iter().map(|&s| s as f64).sum::<f64>() / n.max(1) as f64;
    let mut sorted = scores.clone();
    sorted.sort_unstable();
    let median = if n == 0 {
        0.0
    } else if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0
    };
    let best = (0..n)
        .max_by_key(|&i| (scores[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    EvalResult {
        episodes: n,
        mean_score: mean,
        median_score: median,
        max_score: sorted.last().copied().unwrap_or(0),
        min_score: sorted.first().copied().unwrap_or(0),
        scores,
        best,
    }
}

/// Plays `episodes` games (seeds `seed + i`) with the policy: greedy, or with
/// exploration `eps` (random actions flap with `flap_prob`). Each episode ends
/// at a crash or at `max_score`. `on_step(env, stack)` sees every state met.
pub fn play(
    net: &QNetwork,
    episodes: usize,
    seed: u64,
    max_score: u32,
    eps: f64,
    flap_prob: f64,
    mut on_step: impl FnMut(usize, &flappy::FrameStack) -> bool,
) -> Result<Vec<u32>> {
    let mut env = VecEnv::new(episodes, seed);
    let mut rng = Pcg32::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut scores = vec![0u32; episodes];
    let mut live = vec![true; episodes];
    let mut stop = false;
    while live.iter().any(|&l| l) && !stop {
        let idx: Vec<usize> = (0..episodes).filter(|&i| live[i]).collect();
        for &i in &idx {
            if !on_step(i, &env.stacks[i]) {
                stop = true;
            }
        }
        let stacks: Vec<&flappy::FrameStack> = idx.iter().map(|&i| &env.stacks[i]).collect();
        let (acts, _) = net.act(&stacks);
        for (&i, &a) in idx.iter().zip(&acts) {
            let a = if eps > 0.0 && unit(&mut rng) < eps {
                u8::from(unit(&mut rng) < flap_prob)
            } else {
                a
            };
            let s = env.step(i, a)?;
            if let Some(f) = s.final_score {
                scores[i] = f;
                live[i] = false;
            } else if env.game(i).score() >= max_score {
                scores[i] = env.game(i).score();
                live[i] = false;
            }
        }
    }
    Ok(scores)
}

/// Greedy evaluation over `episodes` games seeded `seed + i`, capped at `max_score`.
pub fn evaluate(net: &QNetwork, episodes: usize, seed: u64, max_score: u32) -> Result<EvalResult> {
    Ok(summarize(play(
        net,
        episodes,
        seed,
        max_score,
        0.0,
        0.0,
        |_, _| true,
    )?))
}

/// The frames of one greedy episode of game seed `seed` (for a GIF), capped at `max_frames`.
pub fn episode_games(
    net: &QNetwork,
    seed: u64,
    max_score: u32,
    max_frames: usize,
) -> Result<Vec<flappy::State>> {
    let mut env = VecEnv::new(1, seed);
    let mut states = vec![env.game(0).state()];
    let mut _f = Frame::empty();
    while states.len() < max_frames {
        let (a, _) = net.act(&[&env.stacks[0]]);
        let s = env.step(0, a[0])?;
        if s.terminal || env.game(0).score() >= max_score {
            break;
        }
        states.push(env.game(0).state());
    }
    Ok(states)
}

/// Where a greedy game ended (`trainer eval --deaths`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Death {
    /// The game's seed.
    pub seed: u64,
    /// Its score.
    pub score: u32,
    /// `upper pipe`, `lower pipe` or `ground`.
    pub obstacle: &'static str,
    /// `gapY` of the pipe hit (none for the ground).
    pub gap_y: Option<i32>,
    /// `gapY` of the pipe after it, when that one is on screen.
    pub next_gap_y: Option<i32>,
    /// The network's Q-values (idle, flap) at the fatal step.
    pub q: [f32; 2],
    /// The action it took there.
    pub action: u8,
}

/// Plays `episodes` greedy games (seeds `seed + i`, capped at `max_score`)
/// and reports how each game that crashed ended, in seed order.
pub fn deaths(net: &QNetwork, episodes: usize, seed: u64, max_score: u32) -> Result<Vec<Death>> {
    let mut env = VecEnv::new(episodes, seed);
    let mut live: Vec<usize> = (0..episodes).collect();
    let mut out = Vec::new();
    while !live.is_empty() {
        let stacks: Vec<&flappy::FrameStack> = live.iter().map(|&i| &env.stacks[i]).collect();
        let (acts, qs) = net.act(&stacks);
        let mut still = Vec::with_capacity(live.len());
        for (k, &i) in live.iter().enumerate() {
            let before = env.game(i).state();
            let s = env.step(i, acts[k])?;
            if let Some(score) = s.final_score {
                let action = acts[k];
                let act = flappy::Action::try_from(action).map_err(|e| anyhow::anyhow!("{e}"))?;
                let site = before.crash_site(act);
                let (obstacle, j) = match site {
                    Obstacle::Ground => ("ground", None),
                    Obstacle::UpperPipe(j) => ("upper pipe", Some(j)),
                    Obstacle::LowerPipe(j) => ("lower pipe", Some(j)),
                };
                let gap = |j: usize| before.pipes().get(j).map(|p| p.gap_y);
                out.push(Death {
                    seed: seed + i as u64,
                    score,
                    obstacle,
                    gap_y: j.and_then(gap),
                    next_gap_y: j.and_then(|j| gap(j + 1)),
                    q: qs[k],
                    action,
                });
            } else if env.game(i).score() < max_score {
                still.push(i);
            }
        }
        live = still;
    }
    out.sort_by_key(|d| d.seed);
    Ok(out)
}

/// A uniform float in [0, 1) from 24 random bits.
pub fn unit(rng: &mut Pcg32) -> f64 {
    (rng.next_u32() >> 8) as f64 / (1u32 << 24) as f64
}
