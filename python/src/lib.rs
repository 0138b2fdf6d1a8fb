//! flappy-dqn from Python: the Rust side of the `flappy_dqn` wheel.
//!
//! * [`obs`]: the observation as Python sees it: the trainer's frame stack,
//!   4 x 80 x 80 cells of 0 or 1 (channel 0 the oldest frame), or the same
//!   stack bit-packed (4 x 80 x 10 bytes).
//! * [`envs`]: `n` games stepped together, writing into caller-owned
//!   buffers (NumPy arrays from Python), with Gymnasium's episode
//!   semantics (terminated, truncated at a score cap, next-step autoreset).
//! * [`policy`]: an owned int8 policy (policy-core on a blob held in memory).
//! * `py` (feature `python`, which only maturin turns on): the pyo3 module
//!   `flappy_dqn._native`.
//!
//! Everything but `py` is plain Rust, tested by `cargo test` without Python.

pub mod envs;
pub mod obs;
pub mod policy;
#[cfg(feature = "python")]
mod py;

pub use envs::{EnvError, Envs, Phase, StepOut};
pub use obs::ObsFormat;
pub use policy::OwnedPolicy;
