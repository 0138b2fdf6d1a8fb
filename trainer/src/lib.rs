//! DQN trainer for Flappy Bird from pixels, the seed's tabular methods, and
//! the host side of quantization (float reference network, PTQ export).

pub mod quant;
