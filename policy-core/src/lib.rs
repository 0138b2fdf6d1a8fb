//! Integer-only DQN inference for microcontrollers.
//!
//! * [`blob`]: the policy blob format (postcard), its encoder and its validating decoder.
//! * [`conv1_table`]: the optional nibble table that speeds up the binary first conv.
//! * [`Policy`]: a loaded, validated blob plus its working buffers; `q_values` / `act`.
//! * `kernels` (one module per operator: binary conv1 + ReLU + max-pool fused,
//!   u8 conv, dense, and the shared multiply-accumulate) and `requant`
//!   (gemmlowp-style fixed-point requantization) are internal; the
//!   `test-support` feature makes them public for the kernel tests.
//!
//! No allocation, no floating point on the inference path (`clippy::float_arithmetic`
//! is denied crate-wide), no `unsafe`. Host-only helpers live behind the `std`,
//! `trace` and `test-support` features.
#![no_std]
#![forbid(unsafe_code)]
#![deny(clippy::float_arithmetic)]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod blob;
pub mod conv1_table;
pub mod crc;
#[cfg(feature = "test-support")]
pub mod kernels;
#[cfg(not(feature = "test-support"))]
mod kernels;
mod policy;
#[cfg(feature = "test-support")]
pub mod requant;
#[cfg(not(feature = "test-support"))]
mod requant;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use blob::{BlobError, Model};
pub use flappy::{Action, Frame, FrameStack, FRAME_BYTES, FRAME_SIDE, STACK_LEN};
pub use policy::{action_of, Policy, Scratch, PEAK_RAM_BYTES};
#[cfg(feature = "trace")]
pub use policy::{StageTrace, Trace};

/// Capacity: at most this many layers in a blob.
pub const MAX_LAYERS: usize = 8;
/// Capacity: bytes of one u8 activation buffer (two are used, ping-pong):
/// a 20x20x16 map, the first conv's output of `strided` (no pool after it).
pub const ACT_CAP: usize = 6400;
/// Capacity: accumulators for one output position (conv) or one dense layer's outputs.
pub const ACC_CAP: usize = 512;
/// Capacity: running max accumulators of one pooled output row of the first conv (`pooled width * out_c`).
pub const POOL_ROW_CAP: usize = 1024;
/// Capacity: row sums of the first conv (`in_c * k * out_c`), the all-ones fast path.
pub const ROWSUM_CAP: usize = 1024;
/// Largest kernel side of the first (binary) convolution.
pub const MAX_K1: usize = 16;
/// Number of actions the policy chooses from (`flappy::Action`: Idle = 0, Flap = 1).
pub const NUM_ACTIONS: usize = 2;
