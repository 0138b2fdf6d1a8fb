//! DQN trainer for Flappy Bird from pixels (tch / libtorch).
//!
//! The training loop is [`train`] (its run folder: [`run_dir`]; its device:
//! [`device`]; what it shows: [`progress`]; its pausable clock: [`pause`];
//! its end-of-run choice: [`select`]); [`distil`] is its sibling for
//! distillation; [`report`] ends both.
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
pub mod cli;
pub mod config;
pub mod device;
pub mod distil;
pub mod env;
pub mod eval;
pub mod latency;
pub mod net;
pub mod pause;
pub mod progress;
pub mod report;
pub mod run_dir;
pub mod select;
pub mod train;

pub use quant;
pub use quant::recording;
pub use {atomic, metrics, replay};

/// Held by the unit tests that seed libtorch's global generator
/// (`tch::manual_seed`) and then draw networks from it, so that tests running
/// on other threads do not draw from it in between.
#[cfg(test)]
pub(crate) fn torch_seed_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
