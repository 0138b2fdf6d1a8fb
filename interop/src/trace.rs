//! policy-core's per-layer integer outputs on recorded frames, as `.npy`
//! files for the conformance tests (policy-core's `trace` feature; nothing
//! is recomputed here).
//!
//! In the output folder: `input.npy` (uint8 `[N, 80, 80, 4]`, the 0/1
//! pixels in NHWC order, channel `i` = frame `i` of the stack, oldest first),
//! `stage<i>.npy` (int32, `[N, H, W, C]` for a map, `[N, C]` for a vector:
//! the u8 activations of hidden stage `i`, the raw int32 Q-values of the
//! last), and `meta.json` (the stages, their shapes and the names of the
//! matching tensors in the TFLite file).

use crate::npy;
use anyhow::{Context, Result};
use flappy::{FrameStack, FRAME_SIDE, STACK_LEN};
use policy_core::Policy;
use std::path::Path;

/// The 0/1 pixels of a stack in NHWC order (`[80, 80, 4]`).
pub fn nhwc_pixels(stack: &FrameStack) -> Vec<u8> {
    let mut v = Vec::with_capacity(FRAME_SIDE * FRAME_SIDE * STACK_LEN);
    for y in 0..FRAME_SIDE {
        for x in 0..FRAME_SIDE {
            for c in 0..STACK_LEN {
                v.push(stack.frame(c).get(y, x) as u8);
            }
        }
    }
    v
}

/// NCHW values of a `c x h x w` map as NHWC.
fn nchw_to_nhwc(v: &[i32], (c, h, w): (usize, usize, usize)) -> Vec<i32> {
    let mut out = vec![0; v.len()];
    for ci in 0..c {
        for y in 0..h {
            for x in 0..w {
                out[(y * w + x) * c + ci] = v[(ci * h + y) * w + x];
            }
        }
    }
    out
}

/// Writes the traces of the first `limit` stacks into `dir`; returns the
/// number of stacks written.
pub fn dump(blob: &[u8], stacks: &[FrameStack], limit: usize, dir: &Path) -> Result<usize> {
    let mut policy = Policy::from_blob(blob).context("not a valid policy blob")?;
    let stacks = &stacks[..stacks.len().min(limit)];
    let n = stacks.len();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut input = Vec::with_capacity(n * FRAME_SIDE * FRAME_SIDE * STACK_LEN);
    let n_stages = policy.stages().len();
    let mut per_stage: Vec<Vec<i32>> = vec![Vec::new(); n_stages];
    let mut shapes = vec![(0, 0, 0); n_stages];
    for s in stacks {
        input.extend(nhwc_pixels(s));
        let t = policy.q_values_trace(s);
        for (k, st) in t.stages.iter().enumerate() {
            shapes[k] = st.shape;
            per_stage[k].extend(nchw_to_nhwc(&st.values, st.shape));
        }
    }
    npy::write_u8(
        &dir.join("input.npy"),
        &[n, FRAME_SIDE, FRAME_SIDE, STACK_LEN],
        &input,
    )?;
    let q_offset = crate::q_offset::q_fit(blob)?.offset;
    let mut meta = Vec::new();
    for (k, (values, &(c, h, w))) in per_stage.iter().zip(&shapes).enumerate() {
        let last = k + 1 == n_stages;
        let shape = if h * w > 1 {
            vec![n, h, w, c]
        } else {
            vec![n, c]
        };
        npy::write_i32(&dir.join(format!("stage{k}.npy")), &shape, values)?;
        let name = if last {
            "q_values".to_string()
        } else {
            format!("stage{k}")
        };
        meta.push(serde_json::json!({
            "file": format!("stage{k}.npy"),
            "tflite_tensor": name,
            "shape": shape[1..],
            "last": last,
            // The exact TFLite file's int16 outputs are these less q_offset.
            "q_offset": if last { q_offset } else { 0 },
        }));
    }
    let meta = serde_json::json!({ "stacks": n, "stages": meta });
    atomic::write_atomic(
        &dir.join("meta.json"),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_follow_nhwc_with_the_stack_order() {
        let mut s = FrameStack::default();
        let mut f = flappy::Frame::default();
        f.set(3, 5, true);
        s.push(&f);
        let v = nhwc_pixels(&s);
        // The newest frame is channel 3.
        assert_eq!(v[(3 * 80 + 5) * 4 + 3], 1);
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 1);
    }

    #[test]
    fn dump_writes_one_file_per_stage_with_matching_sizes() {
        let blob = policy_core::test_support::random_blob(&netspec::TINY, 4);
        let stacks = vec![FrameStack::default(); 3];
        let dir = std::env::temp_dir().join(format!("interop-trace-{}", std::process::id()));
        let n = dump(&blob, &stacks, 2, &dir).expect("dump");
        assert_eq!(n, 2);
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json")).expect("meta"))
                .expect("json");
        assert_eq!(meta["stacks"], 2);
        assert_eq!(meta["stages"].as_array().map(|a| a.len()), Some(4));
        // tiny's stage 0: conv 4x4/4 -> 8 channels, pooled to 10x10.
        let s0 = std::fs::read(dir.join("stage0.npy")).expect("stage0");
        let hlen = u16::from_le_bytes([s0[8], s0[9]]) as usize;
        assert_eq!(s0.len(), 10 + hlen + 2 * 10 * 10 * 8 * 4);
        std::fs::remove_dir_all(&dir).ok();
    }
}
