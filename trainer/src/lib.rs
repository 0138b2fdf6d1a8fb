//! DQN trainer for Flappy Bird from pixels, and
//! the host side of quantization (float reference network, PTQ export).
//!
//! Data flows one way: `flappy` frames → [`replay`] → [`agent`] (tch) →
//! checkpoints ([`checkpoint`]) → recordings ([`recording`]) and the
//! quantized blob ([`quant`]) that `policy-core` runs.

pub mod agent;
pub mod alloc;
pub mod atomic;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod env;
pub mod eval;
pub mod fuzz;
pub mod metrics;
pub mod net;
pub mod priority;
pub mod quant;
pub mod recording;
pub mod replay;
pub mod report;
pub mod train;
