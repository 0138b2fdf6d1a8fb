//! The game as the loop sees it.

use flappy::Frame;

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The bird crashed (the episode is over).
    pub crashed: bool,
    /// Pipes passed in this episode so far (at the crash, if it crashed).
    pub score: u32,
}

/// A game the loop can play: [`flappy::Game`], or a fake in tests.
pub trait Env: Sized {
    /// Error of a step.
    type Error;
    /// A new episode with `seed`.
    fn start(seed: u64) -> Self;
    /// The current observation.
    fn observe(&self, frame: &mut Frame);
    /// Plays action `action` (0 = Idle, 1 = Flap).
    fn step(&mut self, action: usize) -> Result<Outcome, Self::Error>;
}

/// The real game, seeded ([`flappy::Game::new`]).
pub type Game = flappy::Game;

impl Env for flappy::Game {
    type Error = flappy::GameError;

    fn start(seed: u64) -> Self {
        flappy::Game::new(seed)
    }

    fn observe(&self, frame: &mut Frame) {
        flappy::Game::observe(self, frame)
    }

    fn step(&mut self, action: usize) -> Result<Outcome, Self::Error> {
        let a = if action == 0 {
            flappy::Action::Idle
        } else {
            flappy::Action::Flap
        };
        let s = flappy::Game::step(self, a)?;
        Ok(Outcome {
            crashed: s.terminal,
            score: s.episode_score(),
        })
    }
}
