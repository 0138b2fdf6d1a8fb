//! Post-training quantization, host side, without libtorch: everything
//! between a trained float network and the `policy-core` blob.
//!
//! Data flows one way: a trained network's weights ([`FloatModel`], the
//! plain-Rust float reference) and recorded frame stacks ([`recording`]) →
//! calibration, scales and int8 weights ([`mod@export`], whose stages are named
//! functions) → the output layer's rounding refit ([`refit`]) → the blob,
//! written atomically ([`atomic`]). The trainer (libtorch) produces the
//! weights; `policy-core` runs the blob.

pub use atomic;
pub mod export;
pub mod float_model;
pub mod recording;
pub mod refit;

pub use export::{export, export_to_file, Export, ExportOptions, LayerReport};
pub use float_model::{FloatLayer, FloatModel, LayerShape};
