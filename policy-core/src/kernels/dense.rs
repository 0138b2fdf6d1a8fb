//! Dense (fully connected) layers.

use super::gather::Gather;
use super::mac::mac_rows;
use super::{init_bias, Requant};

/// Dense layer, int8 input-major weights (`w[i * out + o]`): accumulates into
/// `acc[..out]` (bias included), skipping zero inputs. No requantization.
pub fn dense_acc(
    input: &[u8],
    out_n: usize,
    weights: &[u8],
    biases: &[u8],
    acc: &mut [i32],
    gather: &mut Gather,
) {
    let acc = &mut acc[..out_n];
    init_bias(acc, biases);
    mac_rows(acc, input, &weights[..input.len() * out_n], out_n, gather);
}

/// Dense layer with requantization and ReLU to u8.
#[allow(clippy::too_many_arguments)]
pub fn dense_u8(
    input: &[u8],
    out_n: usize,
    weights: &[u8],
    biases: &[u8],
    rq: Requant,
    acc: &mut [i32],
    gather: &mut Gather,
    out: &mut [u8],
) {
    dense_acc(input, out_n, weights, biases, acc, gather);
    rq.apply(&acc[..out_n], &mut out[..out_n]);
}
