//! Stages 9 and 11: the blob's layer kinds and weight layouts, and the blob,
//! encoded by policy-core's own writer.

use anyhow::{anyhow, bail, ensure, Result};
use policy_core::blob::{BlobError, Bytes, InputDesc, Layer, LayerKind, Model};

use super::stages::QuantStage;
use crate::float_model::FloatLayer;

/// One layer of the blob, owning its tensors.
pub(super) struct QLayer {
    kind: LayerKind,
    relu: bool,
    out_scale: f32,
    w_scales: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
    weights: Vec<u8>,
    biases: Vec<u8>,
}

impl QLayer {
    /// A conv or dense stage `q` of blob kind `kind` with its `weights` in
    /// the blob's layout: per-channel weight scales (one on the last layer),
    /// multipliers and shifts (none on the last layer), int32 biases.
    pub fn compute(q: &QuantStage, kind: LayerKind, weights: Vec<u8>) -> QLayer {
        let w_scales = if q.last { &q.s_w[..1] } else { &q.s_w[..] };
        QLayer {
            kind,
            relu: q.p.relu,
            out_scale: q.s_out as f32,
            w_scales: w_scales
                .iter()
                .flat_map(|&s| (s as f32).to_bits().to_le_bytes())
                .collect(),
            multipliers: q.mq.iter().flat_map(|m| m.0.to_le_bytes()).collect(),
            shifts: q.mq.iter().map(|m| m.1).collect(),
            weights,
            biases: q.bq.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// A max-pool (no parameters).
    pub fn max_pool(k: usize) -> Result<QLayer> {
        Ok(QLayer {
            kind: LayerKind::MaxPool {
                k: u8::try_from(k)?,
            },
            relu: false,
            out_scale: 0.0,
            w_scales: vec![],
            multipliers: vec![],
            shifts: vec![],
            weights: vec![],
            biases: vec![],
        })
    }

    fn view(&self) -> Layer<'_> {
        Layer {
            kind: self.kind,
            relu: self.relu,
            out_scale: self.out_scale.to_bits(),
            w_scales: Bytes(&self.w_scales),
            multipliers: Bytes(&self.multipliers),
            shifts: Bytes(&self.shifts),
            weights: Bytes(&self.weights),
            biases: Bytes(&self.biases),
        }
    }
}

/// Stage 9: the blob's layer kind and weight layout. Conv weights go from
/// PyTorch's OIHW to policy-core's HWIO; dense rows from PyTorch's NCHW
/// flatten to policy-core's HWC order. Advances `shape` (c, h, w) past the
/// stage (pool included).
pub(super) fn blob_layout(
    layer: &FloatLayer,
    wq: &[i8],
    shape: &mut (usize, usize, usize),
    pool: usize,
    li: usize,
) -> Result<(LayerKind, Vec<u8>)> {
    match layer.shape.layer {
        netspec::Layer::Conv {
            in_c: ic,
            out_c: oc,
            k,
            stride,
            pad,
        } => {
            let mut hwio = vec![0u8; wq.len()];
            for o in 0..oc {
                for c in 0..ic {
                    for ky in 0..k {
                        for kx in 0..k {
                            hwio[((ky * k + kx) * ic + c) * oc + o] =
                                wq[((o * ic + c) * k + ky) * k + kx] as u8;
                        }
                    }
                }
            }
            let out_len = |n: usize| {
                (n + 2 * pad)
                    .checked_sub(k)
                    .map(|v| v / stride + 1)
                    .ok_or_else(|| anyhow!("layer {li}: kernel larger than input"))
            };
            let (oh, ow) = (out_len(shape.1)?, out_len(shape.2)?);
            *shape = (oc, oh / pool, ow / pool);
            let kind = LayerKind::Conv2d {
                in_c: u16::try_from(ic)?,
                out_c: u16::try_from(oc)?,
                k: u8::try_from(k)?,
                stride: u8::try_from(stride)?,
                pad: u8::try_from(pad)?,
            };
            Ok((kind, hwio))
        }
        netspec::Layer::Dense { inp, out } => {
            let (c, h, wd) = *shape;
            ensure!(
                c * h * wd == inp,
                "layer {li}: dense input {inp} != previous output {}",
                c * h * wd
            );
            let mut im = vec![0u8; wq.len()];
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..wd {
                        let j = (ch * h + y) * wd + x; // PyTorch NCHW flatten
                        let i = (y * wd + x) * c + ch; // policy-core HWC
                        for o in 0..out {
                            im[i * out + o] = wq[o * inp + j] as u8;
                        }
                    }
                }
            }
            *shape = (out, 1, 1);
            let kind = LayerKind::Dense {
                inp: u32::try_from(inp)?,
                out: u32::try_from(out)?,
            };
            Ok((kind, im))
        }
        netspec::Layer::MaxPool { .. } => bail!("layer {li}: a MaxPool has no weights"),
    }
}

/// Stage 11: the blob: every layer in order, encoded by policy-core's own
/// writer (which re-checks every rule the reader enforces).
pub(super) fn assemble_blob(qlayers: &[QLayer]) -> Result<Vec<u8>> {
    let mut layers = heapless::Vec::<Layer, { policy_core::MAX_LAYERS }>::new();
    for q in qlayers {
        layers
            .push(q.view())
            .map_err(|_| anyhow!("more than {} layers", policy_core::MAX_LAYERS))?;
    }
    let m = Model {
        input: InputDesc::FLAPPY,
        num_actions: policy_core::NUM_ACTIONS as u8,
        layers,
    };
    let cap = qlayers
        .iter()
        .map(|q| q.weights.len() + q.biases.len() + 16 * q.shifts.len() + 64)
        .sum::<usize>()
        + 256;
    let mut buf = vec![0u8; cap];
    let len = m.encode_into(&mut buf).map_err(|e| match e {
        BlobError::AccumulatorOverflow { layer, channel } => {
            anyhow!("layer {layer} channel {channel}: worst-case accumulator exceeds i32; refusing to export")
        }
        e => anyhow!("the quantized model is not a valid blob: {e}"),
    })?;
    buf.truncate(len);
    Ok(buf)
}
