//! Greedy evaluation: several games played in parallel (one batched forward
//! per step), each stopped at a score cap so evaluation always terminates.
//! One loop plays them all ([`play`]); what is kept of each game (scores,
//! frame stacks, deaths, the states of a GIF) is a [`Watcher`]'s business.

use crate::env::{EnvStep, VecEnv};
use crate::metrics::EvalSpread;
use crate::net::QNetwork;
use anyhow::Result;
use flappy::{FrameStack, Obstacle, State};
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

impl EvalResult {
    /// Mean, median, min and max, as a metrics row keeps them.
    pub fn spread(&self) -> EvalSpread {
        EvalSpread {
            mean: self.mean_score,
            median: self.median_score,
            min: self.min_score as f64,
            max: self.max_score as f64,
        }
    }
}

/// Summarises scores.
pub fn summarize(scores: Vec<u32>) -> EvalResult {
    let n = scores.len();
    let mut sorted = scores.clone();
    sorted.sort_unstable();
    let best = (0..n)
        .max_by_key(|&i| (scores[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    EvalResult {
        episodes: n,
        mean_score: flappy::scores::mean(&scores),
        median_score: flappy::scores::median(&sorted),
        max_score: sorted.last().copied().unwrap_or(0),
        min_score: sorted.first().copied().unwrap_or(0),
        scores,
        best,
    }
}

/// What [`play`] shows of its games as they go; every method does nothing
/// unless implemented. A closure `FnMut(usize, &FrameStack) -> bool` is a
/// watcher of the stacks.
pub trait Watcher {
    /// Game `i`'s stack before it acts; `false` stops the play once every
    /// game of this round has stepped.
    fn stack(&mut self, _i: usize, _stack: &FrameStack) -> bool {
        true
    }

    /// Game `i` is about to play `action` (its Q-values `q`); `env` is as
    /// before the step.
    fn act(&mut self, _i: usize, _env: &VecEnv, _action: u8, _q: [f32; 2]) {}

    /// Game `i` has stepped (`step`); `env` is as after it.
    fn stepped(&mut self, _i: usize, _env: &VecEnv, _step: &EnvStep) {}
}

impl<F: FnMut(usize, &FrameStack) -> bool> Watcher for F {
    fn stack(&mut self, i: usize, stack: &FrameStack) -> bool {
        self(i, stack)
    }
}

/// Plays `episodes` games (seeds `seed + i`) with the policy: greedy, or with
/// exploration `eps` (random actions flap with `flap_prob`). Each episode ends
/// at a crash or at `max_score`; returns every game's score. `watcher` sees
/// each game's every state, action and step.
pub fn play(
    net: &QNetwork,
    episodes: usize,
    seed: u64,
    max_score: u32,
    eps: f64,
    flap_prob: f64,
    watcher: &mut impl Watcher,
) -> Result<Vec<u32>> {
    let mut env = VecEnv::new(episodes, seed);
    let mut rng = Pcg32::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut scores = vec![0u32; episodes];
    let mut live = vec![true; episodes];
    let mut stop = false;
    while live.iter().any(|&l| l) && !stop {
        let idx: Vec<usize> = (0..episodes).filter(|&i| live[i]).collect();
        for &i in &idx {
            if !watcher.stack(i, &env.stacks[i]) {
                stop = true;
            }
        }
        let stacks: Vec<&FrameStack> = idx.iter().map(|&i| &env.stacks[i]).collect();
        let (acts, qs) = net.act(&stacks);
        for ((&i, &a), &q) in idx.iter().zip(&acts).zip(&qs) {
            let a = if eps > 0.0 && unit(&mut rng) < eps {
                u8::from(unit(&mut rng) < flap_prob)
            } else {
                a
            };
            watcher.act(i, &env, a, q);
            let s = env.step(i, a)?;
            watcher.stepped(i, &env, &s);
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
    let mut all = |_: usize, _: &FrameStack| true;
    let scores = play(net, episodes, seed, max_score, 0.0, 0.0, &mut all)?;
    Ok(summarize(scores))
}

/// Greedy evaluation of an int8 blob, the network as it ships, played
/// through policy-core's integer inference: the same `episodes` games
/// (seeds `seed + i`, capped at `max_score`) as [`evaluate`] plays with a
/// float network, one game at a time. A blob policy-core refuses is an error.
pub fn evaluate_blob(
    blob: &[u8],
    episodes: usize,
    seed: u64,
    max_score: u32,
) -> Result<EvalResult> {
    evaluate_blob_threads(blob, episodes, seed, max_score, 1)
}

/// [`evaluate_blob`] with the games shared among `threads` threads (each
/// plays a contiguous block of seeds with its own policy state): the same
/// scores in the same order, sooner.
pub fn evaluate_blob_threads(
    blob: &[u8],
    episodes: usize,
    seed: u64,
    max_score: u32,
    threads: usize,
) -> Result<EvalResult> {
    let threads = threads.clamp(1, episodes.max(1));
    let per = episodes.div_ceil(threads);
    let blocks: Vec<(usize, usize)> = (0..episodes)
        .step_by(per.max(1))
        .map(|a| (a, (a + per).min(episodes)))
        .collect();
    let scores = std::thread::scope(|scope| {
        let handles: Vec<_> = blocks
            .iter()
            .map(|&(a, b)| {
                scope.spawn(move || blob_scores(blob, b - a, seed + a as u64, max_score))
            })
            .collect();
        let mut all = Vec::with_capacity(episodes);
        for h in handles {
            let part = h
                .join()
                .map_err(|_| anyhow::anyhow!("an int8 evaluation thread panicked"))??;
            all.extend(part);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    Ok(summarize(scores))
}

/// The scores of games `seed..seed + episodes` played by the blob, one at a time.
fn blob_scores(blob: &[u8], episodes: usize, seed: u64, max_score: u32) -> Result<Vec<u32>> {
    let mut policy =
        policy_core::Policy::from_blob(blob).map_err(|e| anyhow::anyhow!("the int8 blob: {e}"))?;
    let mut env = VecEnv::new(episodes, seed);
    let mut scores = vec![0u32; episodes];
    for (i, score) in scores.iter_mut().enumerate() {
        *score = loop {
            let action = u8::from(policy.act_index(&env.stacks[i]) == 1);
            let s = env.step(i, action)?;
            if let Some(f) = s.final_score {
                break f;
            }
            if env.game(i).score() >= max_score {
                break env.game(i).score();
            }
        };
    }
    Ok(scores)
}

/// The states of one greedy episode of game seed `seed` (for a GIF), from
/// the first, capped at `max_frames`; the episode's last step (a crash, or
/// the cap `max_score`) is not among them.
pub fn episode_games(
    net: &QNetwork,
    seed: u64,
    max_score: u32,
    max_frames: usize,
) -> Result<Vec<State>> {
    struct Gif {
        states: Vec<State>,
        max_frames: usize,
        max_score: u32,
    }
    impl Watcher for Gif {
        fn stack(&mut self, _: usize, _: &FrameStack) -> bool {
            self.states.len() < self.max_frames
        }
        fn stepped(&mut self, i: usize, env: &VecEnv, step: &EnvStep) {
            let game = env.game(i);
            let over = step.terminal || game.score() >= self.max_score;
            if !over && self.states.len() < self.max_frames {
                self.states.push(game.state());
            }
        }
    }
    let mut gif = Gif {
        states: vec![VecEnv::new(1, seed).game(0).state()],
        max_frames,
        max_score,
    };
    if max_frames > 1 {
        play(net, 1, seed, max_score, 0.0, 0.0, &mut gif)?;
    }
    Ok(gif.states)
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
    /// `gapY` of the pipe before it (the last one passed), if any.
    pub prev_gap_y: Option<i32>,
    /// The network's Q-values (idle, flap) at the fatal step.
    pub q: [f32; 2],
    /// The action it took there.
    pub action: u8,
}

/// Plays `episodes` greedy games (seeds `seed + i`, capped at `max_score`)
/// and reports how each game that crashed ended, in seed order.
pub fn deaths(net: &QNetwork, episodes: usize, seed: u64, max_score: u32) -> Result<Vec<Death>> {
    /// Each game's state, action and Q-values before its last step, and
    /// the gap of the last pipe that left its screen.
    struct Deaths {
        seed: u64,
        before: Vec<Option<(State, u8, [f32; 2])>>,
        gone: Vec<Option<i32>>,
        out: Vec<Death>,
    }
    impl Watcher for Deaths {
        fn act(&mut self, i: usize, env: &VecEnv, action: u8, q: [f32; 2]) {
            let now = env.game(i).state();
            if let Some((was, _, _)) = &self.before[i] {
                // Pipes only move left: a first pipe further right than the
                // last step's first pipe means that one left the screen.
                if let (Some(a), Some(b)) = (was.pipes().first(), now.pipes().first()) {
                    if b.x > a.x {
                        self.gone[i] = Some(a.gap_y);
                    }
                }
            }
            self.before[i] = Some((now, action, q));
        }
        fn stepped(&mut self, i: usize, _: &VecEnv, step: &EnvStep) {
            let (Some(score), Some((before, action, q))) = (step.final_score, &self.before[i])
            else {
                return;
            };
            // Actions come from the network (0 or 1): never `None`.
            let Ok(act) = flappy::Action::try_from(*action) else {
                return;
            };
            let (obstacle, j) = match before.crash_site(act) {
                Obstacle::Ground => ("ground", None),
                Obstacle::UpperPipe(j) => ("upper pipe", Some(j)),
                Obstacle::LowerPipe(j) => ("lower pipe", Some(j)),
            };
            let gap = |j: usize| before.pipes().get(j).map(|p| p.gap_y);
            let prev = match j {
                Some(0) => self.gone[i],
                Some(j) => gap(j - 1),
                None => None,
            };
            self.out.push(Death {
                seed: self.seed + i as u64,
                score,
                obstacle,
                gap_y: j.and_then(gap),
                next_gap_y: j.and_then(|j| gap(j + 1)),
                prev_gap_y: prev,
                q: *q,
                action: *action,
            });
        }
    }
    let mut d = Deaths {
        seed,
        before: vec![None; episodes],
        gone: vec![None; episodes],
        out: Vec::new(),
    };
    play(net, episodes, seed, max_score, 0.0, 0.0, &mut d)?;
    d.out.sort_by_key(|d| d.seed);
    Ok(d.out)
}

/// A uniform float in [0, 1) from 24 random bits.
pub fn unit(rng: &mut Pcg32) -> f64 {
    (rng.next_u32() >> 8) as f64 / (1u32 << 24) as f64
}
