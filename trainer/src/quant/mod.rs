//! Host side of quantization: the pure-Rust float reference network and the
//! post-training quantization export to a `policy-core` blob.
