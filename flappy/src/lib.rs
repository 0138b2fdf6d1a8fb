//! Deterministic, seeded, `no_std` Flappy Bird (rules: `docs/GAME.md`).
//!
//! * [`Game`]: the game, one [`Game::step`] per frame, integer-only and
//!   bit-identical on every platform; a crash resets it at once.
//! * [`obs`]: the agent's 80x80 bit-packed [`Frame`] and the 4-frame [`FrameStack`].
//! * [`agent`]: a scripted controller reading only the game state.
//! * [`seeds`]: the training, validation and test seed sets; [`scores`]:
//!   mean and median of game scores.
//! * `render` (feature `std`): full-size RGB frames, PNG and GIF output.
#![cfg_attr(not(any(test, feature = "std")), no_std)]

pub mod agent;
pub mod game;
pub mod obs;
pub mod paint;
pub mod raster;
#[cfg(feature = "std")]
pub mod render;
pub mod scores;
pub mod seeds;
pub mod sprites;

pub use game::{
    Action, Game, GameError, GapSource, Obstacle, PipePair, Reward, ScriptedGaps, SeededGaps,
    State, Step,
};
pub use obs::{Frame, FrameStack, FRAME_BYTES, FRAME_SIDE, ROW_BYTES, STACK_LEN};
