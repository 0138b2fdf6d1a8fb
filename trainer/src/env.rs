//! Several games stepped together, each with its frame stack.

use anyhow::Result;
use flappy::{Action, Frame, FrameStack, Game};

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
    games: Vec<Game>,
    /// Current frame stacks (the agent's states).
    pub stacks: Vec<FrameStack>,
    /// Newest frame of each game.
    pub frames: Vec<Frame>,
    /// Whether the current frame is an episode's first.
    pub first: Vec<bool>,
}

impl VecEnv {
    /// New games seeded `seed + i`.
    pub fn new(n: usize, seed: u64) -> VecEnv {
        let games: Vec<Game> = (0..n as u64)
            .map(|i| Game::new(seed.wrapping_add(i)))
            .collect();
        let frames: Vec<Frame> = games.iter().map(|g| g.frame()).collect();
        let stacks = frames.iter().map(FrameStack::new).collect();
        VecEnv {
            games,
            stacks,
            frames,
            first: vec![true; n],
        }
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
    pub fn game(&self, i: usize) -> &Game {
        &self.games[i]
    }
}
