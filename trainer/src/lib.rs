//! DQN trainer for Flappy Bird from pixels (tch / libtorch).
//!
//! Data flows one way: `flappy` frames → [`replay`] → [`agent`] (tch) →
//! checkpoints ([`checkpoint`]) → recordings and the quantized blob, made by
//! the `quant` crate (re-exported here as [`quant`], with its [`recording`]
//! and [`atomic`] modules) that `policy-core` runs.

pub mod agent;
pub mod alloc;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod env;
pub mod eval;
pub mod latency;
pub mod metrics;
pub mod net;
pub mod priority;
pub mod replay;
pub mod report;
pub mod train;

pub use quant;
pub use quant::{atomic, recording};
