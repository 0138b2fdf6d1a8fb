//! Host side of quantization: the pure-Rust float reference network and the
//! post-training quantization export to a `policy-core` blob.
//!
//! * [`float_model`]: [`FloatModel`], the float network in plain Rust (the
//!   reference the integer policy is compared with).
//! * [`export`]: PTQ to int8 and the blob ([`export::export`]), with a report table.
//! * [`refit`]: the output layer's rounding refit to the float Q-values.
//! * [`bench`]: int8 policy latency vs libtorch float forward ([`bench::compare_latency`]).

pub mod bench;
pub mod export;
pub mod float_model;
pub mod refit;

pub use export::{export, export_to_file, Export, ExportOptions, LayerReport};
pub use float_model::{FloatLayer, FloatModel, LayerShape};
