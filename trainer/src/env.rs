//! Several games stepped together, each with its frame stack, and (when
//! asked) the recent past of each game, so a crashed game can be retried from
//! a few steps before its crash ([`VecEnv::retry`]).

use anyhow::Result;
use flappy::{Action, Frame, FrameStack, Game, GameError, GapSource, SeededGaps, STACK_LEN};
use rand_core::RngCore;
use rand_pcg::Pcg32;
use std::collections::VecDeque;

/// Gap indices of a training game: the game's own seeded gaps
/// ([`SeededGaps`], drawn whatever happens, so that with no dives the games
/// are exactly the real ones), except that after a gap among the three
/// highest (indices 0..=2), with probability `dive` / 2^32, the next is
/// drawn uniformly among the gaps at least 5 indices (50 pixels) lower: a
/// dive, the pipe pair most crashes come from (docs/learning.md, "Where
/// the study's seeds die"). Training games only: evaluations play the
/// real game.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainGaps {
    base: SeededGaps,
    dives: Pcg32,
    dive: u32,
    prev: Option<u8>,
}

impl TrainGaps {
    /// Game `seed`'s gaps, with dives forced with probability `dive_prob`
    /// (in [0, 1]) after each of the three highest gaps.
    pub fn new(seed: u64, dive_prob: f64) -> TrainGaps {
        // 2^32 * p, saturated: p = 1 forces all but one draw in 2^32.
        let dive = (dive_prob.clamp(0.0, 1.0) * 4_294_967_296.0) as u32;
        TrainGaps {
            base: SeededGaps::new(seed),
            dives: Pcg32::new(seed, 0x0d1e_5eed_0d1e_5eed),
            dive,
            prev: None,
        }
    }
}

impl GapSource for TrainGaps {
    fn next_gap(&mut self) -> Result<u8, GameError> {
        let own = self.base.next_gap()?;
        let k = match self.prev {
            Some(p) if p <= 2 && self.dive > 0 && self.dives.next_u32() < self.dive => {
                // Indices p + 5 ..= 7: one to three of them (bias below 2^-31).
                let lo = p + 5;
                lo + (self.dives.next_u32() % u32::from(8 - lo)) as u8
            }
            _ => own,
        };
        self.prev = Some(k);
        Ok(k)
    }
}

/// What one environment reported for one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EnvStep {
    /// Reward of the step.
    pub reward: f32,
    /// The episode ended (the game has already reset).
    pub terminal: bool,
    /// On a terminal step, the finished episode's score.
    pub final_score: Option<u32>,
}

/// `n` games with seeds `seed, seed + 1, ...` and their current stacks.
pub struct VecEnv {
    games: Vec<Game<TrainGaps>>,
    /// Current frame stacks (the agent's states).
    pub stacks: Vec<FrameStack>,
    /// Newest frame of each game.
    pub frames: Vec<Frame>,
    /// Whether the current frame is an episode's first.
    pub first: Vec<bool>,
    /// Per game, the states met in its current (or just crashed) episode, at
    /// most `depth`:
    /// the game before each step and the frame the agent saw there.
    history: Vec<VecDeque<(Game<TrainGaps>, Frame)>>,
    depth: usize,
}

impl VecEnv {
    /// New games seeded `seed + i`: the real games.
    pub fn new(n: usize, seed: u64) -> VecEnv {
        VecEnv::with_dives(n, seed, 0.0)
    }

    /// New games seeded `seed + i`, with dives forced with probability
    /// `dive_prob` after each of the three highest gaps ([`TrainGaps`]).
    pub fn with_dives(n: usize, seed: u64, dive_prob: f64) -> VecEnv {
        let games: Vec<Game<TrainGaps>> = (0..n as u64)
            .map(|i| Game::with_source(TrainGaps::new(seed.wrapping_add(i), dive_prob)))
            .collect::<Result<_, _>>()
            .unwrap_or_else(|_| unreachable!("seeded gaps never fail"));
        let frames: Vec<Frame> = games.iter().map(|g| g.frame()).collect();
        let stacks = frames.iter().map(FrameStack::new).collect();
        VecEnv {
            history: vec![VecDeque::new(); n],
            games,
            stacks,
            frames,
            first: vec![true; n],
            depth: 0,
        }
    }

    /// The same games, keeping the last `back + STACK_LEN` states of each
    /// episode so that [`VecEnv::retry`] can go up to `back` steps back.
    pub fn with_history(mut self, back: usize) -> VecEnv {
        self.depth = if back == 0 { 0 } else { back + STACK_LEN };
        self
    }

    /// Puts game `i`, which has just crashed, back where it was `back` steps
    /// before the crash (the same game, the same pipes to come) with the frame
    /// stack it had there. Returns the stack's three older frames, oldest
    /// first (a replay memory needs them to rebuild that stack), or `None`
    /// when the episode was too short to go that far back with a full stack.
    pub fn retry(&mut self, i: usize, back: usize) -> Option<[Frame; STACK_LEN - 1]> {
        let h = &mut self.history[i];
        let at = h.len().checked_sub(back)?;
        if back == 0 || at < STACK_LEN - 1 {
            return None;
        }
        let older: [Frame; STACK_LEN - 1] = core::array::from_fn(|k| h[at - (STACK_LEN - 1) + k].1);
        let (game, frame) = h[at].clone();
        h.truncate(at);
        let mut stack = FrameStack::new(&older[0]);
        for f in &older[1..] {
            stack.push(f);
        }
        stack.push(&frame);
        self.games[i] = game;
        self.frames[i] = frame;
        self.stacks[i] = stack;
        self.first[i] = false;
        Some(older)
    }

    /// Number of games.
    pub fn len(&self) -> usize {
        self.games.len()
    }

    /// Whether there are no games.
    pub fn is_empty(&self) -> bool {
        self.games.is_empty()
    }

    /// Steps game `i` with `action` (0 idle, 1 flap) and updates its stack.
    pub fn step(&mut self, i: usize, action: u8) -> Result<EnvStep> {
        let act = Action::try_from(action).map_err(|e| anyhow::anyhow!("{e}"))?;
        if self.depth > 0 {
            let h = &mut self.history[i];
            if self.first[i] {
                h.clear();
            }
            if h.len() == self.depth {
                h.pop_front();
            }
            h.push_back((self.games[i].clone(), self.frames[i]));
        }
        let s = self.games[i]
            .step(act)
            .map_err(|e| anyhow::anyhow!("game error: {e}"))?;
        self.games[i].observe(&mut self.frames[i]);
        if s.terminal {
            self.stacks[i].reset(&self.frames[i]);
        } else {
            self.stacks[i].push(&self.frames[i]);
        }
        self.first[i] = s.terminal;
        Ok(EnvStep {
            reward: s.reward.value(),
            terminal: s.terminal,
            final_score: s.final_score,
        })
    }

    /// The game `i` (for rendering).
    pub fn game(&self, i: usize) -> &Game<TrainGaps> {
        &self.games[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(g: &mut impl GapSource, n: usize) -> Vec<u8> {
        (0..n).map(|_| g.next_gap().unwrap()).collect()
    }

    /// Share of the gaps after one of the three highest that are a dive.
    fn dive_share(gaps: &[u8]) -> f64 {
        let after_high: Vec<_> = gaps.windows(2).filter(|w| w[0] <= 2).collect();
        let dives = after_high.iter().filter(|w| w[1] >= w[0] + 5).count();
        dives as f64 / after_high.len() as f64
    }

    #[test]
    fn without_dives_the_training_gaps_are_the_games_own() {
        for seed in [0, 7, 1 << 40] {
            let own = draws(&mut SeededGaps::new(seed), 5000);
            assert_eq!(draws(&mut TrainGaps::new(seed, 0.0), 5000), own);
        }
        // And so are the games, frame for frame.
        let (mut a, mut b) = (VecEnv::new(2, 11), VecEnv::with_dives(2, 11, 0.0));
        let mut real = [Game::new(11), Game::new(12)];
        for t in 0..3000 {
            for (i, g) in real.iter_mut().enumerate() {
                let act = u8::from(t % 17 == 0 || t % 19 == i);
                let (sa, sb) = (a.step(i, act).unwrap(), b.step(i, act).unwrap());
                assert_eq!(sa, sb);
                g.step(Action::try_from(act).unwrap()).unwrap();
                assert_eq!(a.game(i).state(), g.state(), "step {t}, game {i}");
            }
        }
    }

    #[test]
    fn a_retry_restores_the_whole_game_its_gap_source_included() {
        for dive_prob in [0.0, 1.0] {
            let mut env = VecEnv::with_dives(1, 5, dive_prob).with_history(60);
            let mut games = vec![];
            let mut acts = vec![];
            // A simple controller (flap when low in the next gap), so that
            // new pipes, drawn from the gap source, come within the retry.
            for _ in 0..400 {
                let st = env.game(0).state();
                let next = st.pipes().iter().find(|p| p.x + 52 >= 57);
                let a = u8::from(next.is_some_and(|p| st.player_y > p.gap_y + 55));
                games.push(env.game(0).clone());
                acts.push(a);
                if env.step(0, a).unwrap().terminal {
                    break;
                }
            }
            let score = games.last().map_or(0, |g| g.score());
            assert!(score >= 2, "the controller passes pipes: {score}");
            let back = 45;
            env.retry(0, back).expect("long enough");
            let at = games.len() - back;
            // The same game (pipes, bird, and the gaps still to come), step
            // by step to the same crash.
            for (t, &a) in acts[at..].iter().enumerate() {
                assert_eq!(
                    env.game(0),
                    &games[at + t],
                    "dive_prob {dive_prob}, step {t}"
                );
                env.step(0, a).unwrap();
            }
        }
    }

    #[test]
    fn dives_come_as_often_as_asked() {
        let n = 200_000;
        // The real games: after gap 0, 1 or 2, a dive is 3, 2 or 1 of 8 gaps.
        let real = dive_share(&draws(&mut TrainGaps::new(3, 0.0), n));
        assert!((0.22..0.28).contains(&real), "{real}");
        // Forced half the time: 0.5 + 0.5 * 0.25.
        let half = dive_share(&draws(&mut TrainGaps::new(3, 0.5), n));
        assert!((0.60..0.65).contains(&half), "{half}");
        let all = draws(&mut TrainGaps::new(3, 1.0), n);
        assert_eq!(dive_share(&all), 1.0);
        // Every index still comes, and only valid ones.
        assert!((0..8).all(|k| all.contains(&k)));
        assert!(all.iter().all(|&k| k <= 7));
    }

    fn same(a: &FrameStack, b: &FrameStack) -> bool {
        (0..STACK_LEN).all(|k| a.frame(k) == b.frame(k))
    }

    /// Plays game 0 with a fixed flap rhythm until it crashes; returns the
    /// stacks met and the actions taken.
    fn play_to_crash(env: &mut VecEnv, every: usize) -> (Vec<FrameStack>, Vec<u8>) {
        let (mut stacks, mut acts) = (vec![], vec![]);
        for t in 0.. {
            let a = u8::from(every > 0 && t % every == 0);
            stacks.push(env.stacks[0]);
            acts.push(a);
            if env.step(0, a).unwrap().terminal {
                break;
            }
        }
        (stacks, acts)
    }

    #[test]
    fn a_retry_replays_the_same_game_from_the_same_stack() {
        let mut env = VecEnv::new(1, 7).with_history(30);
        let (stacks, acts) = play_to_crash(&mut env, 14);
        assert!(stacks.len() > 40, "the rhythm should pass a few frames");
        let back = 25;
        let older = env.retry(0, back).expect("the episode is long enough");
        let at = stacks.len() - back;
        assert!(
            same(&env.stacks[0], &stacks[at]),
            "the stack of that step comes back"
        );
        for (k, f) in older.iter().enumerate() {
            assert!(f == stacks[at].frame(k));
        }
        assert!(!env.first[0]);
        // The same actions lead to the same crash at the same step.
        for (t, &a) in acts[at..].iter().enumerate() {
            assert!(same(&env.stacks[0], &stacks[at + t]));
            let s = env.step(0, a).unwrap();
            assert_eq!(s.terminal, at + t == acts.len() - 1);
        }
        // A second retry goes back into the retried episode's own past.
        assert!(env.retry(0, 5).is_some());
    }

    #[test]
    fn a_retry_needs_a_full_stack_and_kept_history() {
        let mut env = VecEnv::new(1, 3).with_history(10);
        let (stacks, _) = play_to_crash(&mut env, 14);
        assert!(stacks.len() > 20);
        assert!(env.retry(0, 11 + STACK_LEN).is_none(), "beyond the history");
        assert!(env.retry(0, 0).is_none());
        let mut plain = VecEnv::new(1, 3);
        play_to_crash(&mut plain, 14);
        assert!(plain.retry(0, 5).is_none(), "no history kept");
        // A fall to the ground: a retry cannot start before the fourth frame.
        let mut short = VecEnv::new(1, 3).with_history(40);
        let (stacks, _) = play_to_crash(&mut short, 0);
        assert!(stacks.len() < 30 && stacks.len() > STACK_LEN);
        assert!(short.retry(0, stacks.len() - 2).is_none());
        let older = short.retry(0, stacks.len() - 3).expect("fourth frame");
        assert!(older[0] == *stacks[0].frame(0));
    }
}
