//! Deterministic, seeded, `no_std` Flappy Bird (see `shared/GAME_SPEC.md`).
#![no_std]

pub mod obs;

pub use obs::{Frame, FrameStack, FRAME_BYTES, FRAME_SIDE, STACK_LEN};
