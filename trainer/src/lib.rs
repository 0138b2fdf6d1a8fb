//! DQN trainer for Flappy Bird from pixels (tch / libtorch).
//!
//! Data flows one way: `flappy` frames → [`replay`] → [`agent`] (tch) →
//! checkpoints ([`checkpoint`]) → recordings and the quantized blob, made by
//! the `quant` crate (re-exported here as [`quant`], with its [`recording`]
//! module) that `policy-core` runs. The replay memory, the run's
//! [`metrics`] and the [`atomic`] file writes are crates of their own,
//! re-exported here.

pub mod agent;
pub mod alloc;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod distil;
pub mod env;
pub mod eval;
pub mod latency;
pub mod net;
pub mod report;
pub mod train;

pub use quant;
pub use quant::recording;
pub use {atomic, metrics, replay};
