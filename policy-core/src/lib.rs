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
//! is denied crate-wide). No `unsafe` but in two allowed modules, each with
//! its safety argument in its docs: the Cortex-M4 kernel in assembly
//! (`kernels::dsp`, built only for targets with the DSP extension) and the
//! SIMD hosts' vector intrinsics (`kernels::simd`, with the x86-64 build's
//! AVX2 chosen at run time: [`conv_lanes`]). Host-only helpers live behind
//! the `std`, `trace` and `test-support` features.
#![no_std]
#![deny(unsafe_code)]
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

pub use kernels::conv_lanes;
#[cfg(feature = "test-support")]
pub mod requant;
#[cfg(not(feature = "test-support"))]
mod requant;
#[cfg(feature = "test-support")]
pub mod test_support;

pub use blob::{BlobError, Model};
pub use flappy::{Action, Frame, FrameStack, FRAME_BYTES, FRAME_SIDE, STACK_LEN};
pub use policy::{action_of, argmax, Policy, Scratch, PEAK_RAM_BYTES};
#[cfg(feature = "trace")]
pub use policy::{StageTrace, Trace};
#[cfg(feature = "std")]
pub use requant::{multiplier_value, quantize_multiplier};

/// Capacity: at most this many layers in a blob.
pub const MAX_LAYERS: usize = 8;
/// Capacity: bytes of one u8 activation buffer (two are used, ping-pong).
/// Default: a 20x20x16 map, the first conv's output of `strided` (no pool
/// after it). `caps-m0`: 1024, `tiny`'s largest map (its pooled first conv,
/// 10x10x8 = 800) with room for 10 channels there.
pub const ACT_CAP: usize = if SMALL_RAM { 1024 } else { 6400 };
/// Capacity: accumulators for one output position (conv) or one dense
/// layer's outputs. `caps-m0`: 128 (`tiny`'s widest layer, fc 400 -> 64, twice).
pub const ACC_CAP: usize = if SMALL_RAM { 128 } else { 512 };
/// Capacity: running max accumulators of one pooled output row of the first
/// conv (`pooled width * out_c`). `caps-m0`: 160 (`tiny`: 10 x 8 = 80, twice).
pub const POOL_ROW_CAP: usize = if SMALL_RAM { 160 } else { 1024 };
/// Capacity: row sums of the first conv (`in_c * k * out_c`), the all-ones
/// fast path. `caps-m0`: 256 (`tiny`: 4 x 4 x 8 = 128, twice).
pub const ROWSUM_CAP: usize = if SMALL_RAM { 256 } else { 1024 };
/// Largest kernel side of the first (binary) convolution (it sizes the
/// buffer of padded input rows, `4 * MAX_K1` u128). `caps-m0`: 8 (`tiny`: 4).
pub const MAX_K1: usize = if SMALL_RAM { 8 } else { 16 };
/// Whether this build has the small-RAM capacities (feature `caps-m0`: a
/// 16 KiB Cortex-M0 such as the BBC micro:bit, sized for `netspec`'s `tiny`).
/// Blobs that need more are rejected at load with
/// [`BlobError::CapacityExceeded`], never a panic.
pub const SMALL_RAM: bool = cfg!(feature = "caps-m0");
/// Whether this target runs the u8 convs from weights re-laid at load time
/// in groups of input channels (`kernels::packed`): the SIMD hosts, x86-64
/// (SSE2 always; AVX2 / AVX-512 when the build enables them) and wasm32
/// with `simd128`. The microcontrollers keep the zero-skipping gather
/// kernels (and need no RAM for a copy of the weights).
pub const SIMD_HOST: bool = cfg!(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
));
/// Capacity: packed weight words (4 bytes each) re-laid at load time on
/// [`SIMD_HOST`] targets, 0 elsewhere: 36 KiB, enough for every `netspec`
/// architecture's u8 convs but `classic`'s (a conv that does not fit keeps
/// the portable kernel).
pub const PACK_CAP: usize = if SIMD_HOST { 9216 } else { 0 };
/// Number of actions the policy chooses from (`flappy::Action`: Idle = 0,
/// Flap = 1): the outputs of every `netspec` architecture.
pub use netspec::NUM_ACTIONS;
