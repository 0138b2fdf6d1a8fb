//! The float reference network in plain Rust (NCHW, PyTorch semantics).

use std::collections::HashMap;

use anyhow::{ensure, Context, Result};
use flappy::FrameStack;
use netspec::Layer;
use rand_core::{RngCore, SeedableRng};

/// A layer's shape without parameters: a `netspec::Layer` with its ReLU flag
/// explicit (so tests can build the models the exporter must refuse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// Kind and sizes.
    pub layer: Layer,
    /// ReLU after the layer (never set on a pool).
    pub relu: bool,
}

impl LayerShape {
    /// The layers of a `netspec` architecture, with its ReLU rule (every conv
    /// and dense layer but the last).
    pub fn of(arch: &netspec::Arch) -> Vec<LayerShape> {
        (0..arch.layers.len())
            .map(|i| LayerShape {
                layer: arch.layers[i],
                relu: arch.relu(i),
            })
            .collect()
    }

    /// Whether the layer has weights and biases (a conv or dense layer).
    pub fn has_params(&self) -> bool {
        !matches!(self.layer, Layer::MaxPool { .. })
    }
}

/// One float layer: its shape and parameters in PyTorch layouts (conv OIHW
/// weights, linear `[out][in]`; `outputs()` biases). A MaxPool has none (both
/// vectors empty).
#[derive(Clone, Debug, PartialEq)]
pub struct FloatLayer {
    /// Kind, sizes and ReLU.
    pub shape: LayerShape,
    /// Weights, `outputs() * fan_in()` of the layer.
    pub weight: Vec<f32>,
    /// Biases, one per output channel.
    pub bias: Vec<f32>,
}

/// A float activation tensor (`c x h x w`, NCHW with N = 1; dense: `n x 1 x 1`).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor3 {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Values, `(c * h + y) * w + x`.
    pub data: Vec<f32>,
}

/// The float network: layers applied in order to the 4x80x80 0/1 input.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatModel {
    /// The layers, input to output.
    pub layers: Vec<FloatLayer>,
}

/// The network input for a frame stack: channel `i` = `stack.frame(i)`, 0.0 / 1.0.
pub fn input_tensor(stack: &FrameStack) -> Tensor3 {
    let mut data = Vec::with_capacity(4 * 6400);
    for c in 0..4 {
        let f = stack.frame(c);
        for y in 0..80 {
            for x in 0..80 {
                data.push(if f.get(y, x) { 1.0 } else { 0.0 });
            }
        }
    }
    Tensor3 {
        c: 4,
        h: 80,
        w: 80,
        data,
    }
}

impl FloatModel {
    /// Random parameters for `arch` (PyTorch's default init: uniform in
    /// `±1/sqrt(fan_in)` for weights and biases), deterministic in `seed`.
    pub fn random(arch: &[LayerShape], seed: u64) -> FloatModel {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let mut uni = |n: usize, bound: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    let u = (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
                    (2.0 * u - 1.0) * bound
                })
                .collect()
        };
        let layers = arch
            .iter()
            .map(|&shape| {
                let (fan_in, out) = (shape.layer.fan_in(), shape.layer.outputs());
                let b = 1.0 / (fan_in as f32).sqrt();
                FloatLayer {
                    shape,
                    weight: uni(out * fan_in, b),
                    bias: uni(out, b),
                }
            })
            .collect();
        FloatModel { layers }
    }

    /// A model of architecture `arch` with the given parameters: one
    /// `(weight, bias)` pair per Conv / Dense layer, input to output, in PyTorch
    /// layouts (conv OIHW, linear `[out][in]`; the first linear layer's input is
    /// the NCHW flatten of the previous output). Feed it from tch with
    /// `Vec::<f32>::try_from(tensor.to_kind(Kind::Float).flatten(0, -1))`.
    /// Sizes and shape chaining are checked ([`FloatModel::validate`]).
    pub fn from_params(
        arch: &[LayerShape],
        params: Vec<(Vec<f32>, Vec<f32>)>,
    ) -> Result<FloatModel> {
        let n_params = arch.iter().filter(|l| l.has_params()).count();
        ensure!(
            params.len() == n_params,
            "{} (weight, bias) pairs for {n_params} conv / linear layers",
            params.len()
        );
        let mut params = params.into_iter();
        let m = FloatModel::from_fn(arch, |_| params.next().unwrap_or_default());
        m.validate()?;
        Ok(m)
    }

    /// A model of architecture `arch` whose conv / dense layer `i` (counting
    /// MaxPool layers too) gets the `(weight, bias)` of `params(i)`, asked in
    /// layer order, unchecked (see [`FloatModel::from_params`]).
    pub fn from_fn(
        arch: &[LayerShape],
        mut params: impl FnMut(usize) -> (Vec<f32>, Vec<f32>),
    ) -> FloatModel {
        let layers = arch
            .iter()
            .enumerate()
            .map(|(i, &shape)| {
                let (weight, bias) = if shape.has_params() {
                    params(i)
                } else {
                    Default::default()
                };
                FloatLayer {
                    shape,
                    weight,
                    bias,
                }
            })
            .collect();
        FloatModel { layers }
    }

    /// Like [`FloatModel::from_params`], with the parameters looked up by name:
    /// layer `i` of `arch` (counting MaxPool layers too) reads `l{i}.weight` and
    /// `l{i}.bias` (the trainer's `VarStore` names).
    pub fn from_named(
        arch: &[LayerShape],
        named: &HashMap<String, Vec<f32>>,
    ) -> Result<FloatModel> {
        let mut params = Vec::new();
        for (i, l) in arch.iter().enumerate() {
            if !l.has_params() {
                continue;
            }
            let get = |what: &str| -> Result<Vec<f32>> {
                named
                    .get(&format!("l{i}.{what}"))
                    .cloned()
                    .with_context(|| format!("no tensor `l{i}.{what}`"))
            };
            params.push((get("weight")?, get("bias")?));
        }
        FloatModel::from_params(arch, params)
    }

    /// The architecture without parameters.
    pub fn shapes(&self) -> Vec<LayerShape> {
        self.layers.iter().map(|l| l.shape).collect()
    }

    /// Checks that the model can run on the 4x80x80 input: shapes chain as
    /// `netspec` chains them ([`netspec::next_shape`]: each layer takes the
    /// previous output, the first linear layer its NCHW flatten), a pool has no
    /// ReLU, parameter vectors have their layer's sizes, all parameters are
    /// finite, and the output is one value per action. [`FloatModel::forward`]
    /// may panic on a model that fails this; the export calls it first.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.layers.is_empty(), "the model has no layers");
        let mut s = netspec::INPUT;
        for (i, l) in self.layers.iter().enumerate() {
            let layer = l.shape.layer;
            s = netspec::next_shape(&layer, s).with_context(|| {
                format!(
                    "layer {i}: {layer:?} does not take its {}x{}x{} input",
                    s.c, s.h, s.w
                )
            })?;
            ensure!(
                l.shape.has_params() || !l.shape.relu,
                "layer {i}: a pool has no ReLU"
            );
            let (layout, what) = match layer {
                Layer::Conv { .. } => ("OIHW", "conv"),
                Layer::MaxPool { .. } => ("none", "pool"),
                Layer::Dense { .. } => ("[out][in]", "linear"),
            };
            let (out, fan_in) = (layer.outputs(), layer.fan_in());
            ensure!(
                l.weight.len() == out * fan_in,
                "layer {i}: {what} weight has {} values, needs {out} x {fan_in} ({layout})",
                l.weight.len()
            );
            ensure!(
                l.bias.len() == out,
                "layer {i}: {what} bias has {} values, needs {out}",
                l.bias.len()
            );
            ensure!(
                l.weight.iter().chain(&l.bias).all(|v| v.is_finite()),
                "layer {i}: non-finite parameter"
            );
        }
        ensure!(
            s.len() == policy_core::NUM_ACTIONS,
            "the model outputs {} values, expected {} (one per action)",
            s.len(),
            policy_core::NUM_ACTIONS
        );
        Ok(())
    }

    /// The Q-values of `stack`.
    pub fn forward(&self, stack: &FrameStack) -> Vec<f32> {
        self.forward_trace(stack).pop().unwrap_or_default()
    }

    /// Every stage's activations (NCHW, flattened), with the same boundaries as
    /// `policy_core::Policy::q_values_trace`: one entry per Conv / Dense layer,
    /// taken after its ReLU and after a MaxPool that directly follows it.
    pub fn forward_trace(&self, stack: &FrameStack) -> Vec<Vec<f32>> {
        self.forward_stages(stack)
            .into_iter()
            .map(|t| t.data)
            .collect()
    }

    /// Like [`FloatModel::forward_trace`], with shapes.
    pub fn forward_stages(&self, stack: &FrameStack) -> Vec<Tensor3> {
        let mut x = input_tensor(stack);
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            x = apply(layer, &x);
            let next_is_pool = self
                .layers
                .get(i + 1)
                .is_some_and(|l| !l.shape.has_params());
            if !next_is_pool {
                out.push(x.clone());
            }
        }
        out
    }
}

/// Applies one layer.
pub fn apply(layer: &FloatLayer, x: &Tensor3) -> Tensor3 {
    let (relu, weight, bias) = (layer.shape.relu, &layer.weight, &layer.bias);
    match layer.shape.layer {
        Layer::Conv {
            in_c: ic,
            out_c: oc,
            k,
            stride: s,
            pad: p,
        } => {
            assert_eq!(x.c, ic, "conv input channels");
            let oh = (x.h + 2 * p - k) / s + 1;
            let ow = (x.w + 2 * p - k) / s + 1;
            // The weights as `[c][ky][kx][o]`: one input value meets every
            // output channel's weight at once. Each output still sums its
            // bias, then channel by channel, row by row, column by column,
            // skipping the padding, as `conv_reference` in the tests does
            // one output at a time: the same floats, bit for bit.
            let taps = ic * k * k;
            let mut wt = vec![0f32; weight.len()];
            for (o, w_o) in weight.chunks_exact(taps.max(1)).enumerate() {
                for (t, &wv) in w_o.iter().enumerate() {
                    wt[t * oc + o] = wv;
                }
            }
            let mut data = vec![0f32; oc * oh * ow];
            let mut acc = vec![0f32; oc];
            for oy in 0..oh {
                for ox in 0..ow {
                    acc.copy_from_slice(bias);
                    for c in 0..ic {
                        for ky in 0..k {
                            let Some(iy) = (oy * s + ky).checked_sub(p).filter(|&y| y < x.h) else {
                                continue;
                            };
                            let xrow = &x.data[(c * x.h + iy) * x.w..][..x.w];
                            for kx in 0..k {
                                let Some(&xv) =
                                    (ox * s + kx).checked_sub(p).and_then(|i| xrow.get(i))
                                else {
                                    continue;
                                };
                                let w_taps = &wt[((c * k + ky) * k + kx) * oc..][..oc];
                                for (a, &wv) in acc.iter_mut().zip(w_taps) {
                                    *a += wv * xv;
                                }
                            }
                        }
                    }
                    for (o, &a) in acc.iter().enumerate() {
                        data[(o * oh + oy) * ow + ox] = if relu { a.max(0.0) } else { a };
                    }
                }
            }
            Tensor3 {
                c: oc,
                h: oh,
                w: ow,
                data,
            }
        }
        Layer::MaxPool { k } => {
            let (ph, pw) = (x.h / k, x.w / k);
            let mut data = vec![0f32; x.c * ph * pw];
            for c in 0..x.c {
                for py in 0..ph {
                    for px in 0..pw {
                        let mut m = f32::NEG_INFINITY;
                        for dy in 0..k {
                            for dx in 0..k {
                                m = m.max(x.data[(c * x.h + py * k + dy) * x.w + px * k + dx]);
                            }
                        }
                        data[(c * ph + py) * pw + px] = m;
                    }
                }
            }
            Tensor3 {
                c: x.c,
                h: ph,
                w: pw,
                data,
            }
        }
        Layer::Dense { inp, out } => {
            assert_eq!(x.data.len(), inp, "dense input size");
            // Eight outputs at a time, each its own running sum over the
            // inputs in order from -0.0 (as `Iterator::sum` of `f32` adds),
            // then the bias: `dense_reference` in the tests, bit for bit,
            // with eight independent additions in flight instead of one.
            const BLOCK: usize = 8;
            let x = &x.data;
            let mut sums = Vec::with_capacity(out);
            if inp == 0 {
                sums.resize(out, -0.0);
            }
            let mut blocks = weight.chunks_exact((BLOCK * inp).max(1));
            for rows in &mut blocks {
                let rows: [&[f32]; BLOCK] = core::array::from_fn(|j| &rows[j * inp..][..inp]);
                let mut acc = [-0.0f32; BLOCK];
                for (i, &xv) in x.iter().enumerate() {
                    for (a, row) in acc.iter_mut().zip(rows) {
                        *a += row[i] * xv;
                    }
                }
                sums.extend(acc);
            }
            for row in blocks.remainder().chunks_exact(inp.max(1)) {
                let mut acc = -0.0f32;
                for (&wv, &xv) in row.iter().zip(x) {
                    acc += wv * xv;
                }
                sums.push(acc);
            }
            let data = bias
                .iter()
                .zip(sums)
                .map(|(&b, a)| if relu { (b + a).max(0.0) } else { b + a })
                .collect();
            Tensor3 {
                c: out,
                h: 1,
                w: 1,
                data,
            }
        }
    }
}

/// `n` frame stacks from real play: the game seeded with `seed`, driven by
/// `flappy`'s heuristic controller, one stack per step (episodes restart on a
/// crash). A calibration / benchmark set when no recording is at hand.
pub fn played_stacks(n: usize, seed: u64) -> Vec<FrameStack> {
    let mut game = flappy::Game::new(seed);
    let mut frame = game.frame();
    let mut stack = FrameStack::new(&frame);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(stack);
        let terminal = match game.step(flappy::agent::heuristic_action(&game)) {
            Ok(step) => step.terminal,
            Err(_) => true,
        };
        game.observe(&mut frame);
        if terminal {
            stack.reset(&frame);
        } else {
            stack.push(&frame);
        }
    }
    out
}

/// Synthetic frame stacks for tests and benchmarks until recordings exist:
/// a ground band, pipe columns with a gap, a bird blob and sparse noise, the
/// scene scrolling left frame by frame. Deterministic in `seed`.
pub fn synthetic_stacks(n: usize, seed: u64) -> Vec<FrameStack> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut r = move |m: u32| rng.next_u32() % m;
    (0..n)
        .map(|_| {
            let ground = 62 + r(10) as usize;
            let pipe_x = r(80) as isize;
            let gap_y = 10 + r(35) as usize;
            let bird_y = 5 + r(50) as usize;
            let noise = r(3);
            let frame = |t: isize, r: &mut dyn FnMut(u32) -> u32| {
                let mut f = flappy::Frame::empty();
                for y in ground..80 {
                    for x in 0..80 {
                        f.set(y, x, true);
                    }
                }
                for px in [pipe_x - 2 * t, pipe_x - 2 * t + 40] {
                    for x in px..px + 8 {
                        if (0..80).contains(&x) {
                            for y in (0..ground).filter(|&y| y < gap_y || y >= gap_y + 18) {
                                f.set(y, x as usize, true);
                            }
                        }
                    }
                }
                let by = (bird_y as isize + t).clamp(0, 75) as usize;
                for y in by..by + 4 {
                    for x in 14..19 {
                        f.set(y, x, true);
                    }
                }
                for _ in 0..noise * 20 {
                    f.set(r(80) as usize, r(80) as usize, true);
                }
                f
            };
            let mut s = FrameStack::new(&frame(0, &mut r));
            for t in 1..4 {
                s.push(&frame(t, &mut r));
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params_of(m: &FloatModel) -> Vec<(Vec<f32>, Vec<f32>)> {
        m.layers
            .iter()
            .filter(|l| l.shape.has_params())
            .map(|l| (l.weight.clone(), l.bias.clone()))
            .collect()
    }

    #[test]
    fn from_params_and_from_named_rebuild_the_model() {
        let m = FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 3);
        let arch = m.shapes();
        assert_eq!(arch, LayerShape::of(&netspec::CLASSIC));
        assert_eq!(FloatModel::from_params(&arch, params_of(&m)).unwrap(), m);
        let mut named = HashMap::new();
        let mut p = params_of(&m).into_iter();
        for (i, l) in arch.iter().enumerate() {
            if l.has_params() {
                let (w, b) = p.next().unwrap();
                named.insert(format!("l{i}.weight"), w);
                named.insert(format!("l{i}.bias"), b);
            }
        }
        assert_eq!(FloatModel::from_named(&arch, &named).unwrap(), m);
        named.remove("l3.bias");
        assert!(FloatModel::from_named(&arch, &named)
            .unwrap_err()
            .to_string()
            .contains("l3.bias"));
        // Wrong count, wrong sizes.
        let mut p = params_of(&m);
        p.pop();
        assert!(FloatModel::from_params(&arch, p).is_err());
        let mut p = params_of(&m);
        p[2].0.truncate(10);
        assert!(FloatModel::from_params(&arch, p)
            .unwrap_err()
            .to_string()
            .contains("OIHW"));
    }

    /// The convolution as first written: one output at a time, a bounds
    /// test per product; [`apply`] must give the same floats bit for bit.
    fn conv_reference(layer: &FloatLayer, x: &Tensor3) -> Vec<f32> {
        let Layer::Conv {
            in_c: ic,
            out_c: oc,
            k,
            stride: s,
            pad: p,
        } = layer.shape.layer
        else {
            panic!("not a conv")
        };
        let oh = (x.h + 2 * p - k) / s + 1;
        let ow = (x.w + 2 * p - k) / s + 1;
        let mut data = vec![0f32; oc * oh * ow];
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = layer.bias[o];
                    for c in 0..ic {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - p as isize;
                                let ix = (ox * s + kx) as isize - p as isize;
                                if (0..x.h as isize).contains(&iy)
                                    && (0..x.w as isize).contains(&ix)
                                {
                                    acc += layer.weight[((o * ic + c) * k + ky) * k + kx]
                                        * x.data[(c * x.h + iy as usize) * x.w + ix as usize];
                                }
                            }
                        }
                    }
                    data[(o * oh + oy) * ow + ox] =
                        if layer.shape.relu { acc.max(0.0) } else { acc };
                }
            }
        }
        data
    }

    #[test]
    fn conv_equals_the_one_output_at_a_time_reference_bit_for_bit() {
        let mut rng = rand_pcg::Pcg32::seed_from_u64(5);
        let mut geometries = 0;
        for (ic, oc, k, s, p, h, w) in [
            (4, 16, 4, 4, 0, 80, 80),
            (4, 8, 8, 4, 2, 80, 80),
            (16, 32, 3, 1, 1, 10, 10),
            (32, 32, 3, 2, 1, 10, 10),
            (3, 5, 5, 3, 2, 11, 13),
            (2, 3, 3, 2, 2, 4, 7),
            (1, 2, 2, 1, 0, 2, 2),
        ] {
            for relu in [true, false] {
                let shape = LayerShape {
                    layer: Layer::conv(ic, oc, k, s, p),
                    relu,
                };
                let layer = FloatModel::random(&[shape], rng.next_u64())
                    .layers
                    .remove(0);
                // Sparse 0/1 inputs (frames) and dense signed ones (hidden layers).
                for binary in [true, false] {
                    let data = (0..ic * h * w)
                        .map(|_| {
                            let u = rng.next_u32();
                            if binary {
                                f32::from(u8::from(u % 5 == 0))
                            } else {
                                (u >> 8) as f32 / (1u32 << 23) as f32 - 1.0
                            }
                        })
                        .collect();
                    let x = Tensor3 { c: ic, h, w, data };
                    let got = apply(&layer, &x).data;
                    let want = conv_reference(&layer, &x);
                    assert_eq!(got.len(), want.len());
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "conv {ic}->{oc} k{k} s{s} p{p} on {h}x{w}, relu {relu}"
                    );
                    geometries += 1;
                }
            }
        }
        assert_eq!(geometries, 28);
    }

    /// The dense layer as first written: one output at a time, `Iterator::sum`.
    fn dense_reference(layer: &FloatLayer, x: &[f32]) -> Vec<f32> {
        let inp = x.len();
        layer
            .bias
            .iter()
            .enumerate()
            .map(|(o, &b)| {
                let row = &layer.weight[o * inp..][..inp];
                let acc = b + row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>();
                if layer.shape.relu {
                    acc.max(0.0)
                } else {
                    acc
                }
            })
            .collect()
    }

    #[test]
    fn dense_equals_the_one_output_at_a_time_reference_bit_for_bit() {
        let mut rng = rand_pcg::Pcg32::seed_from_u64(6);
        let mut cases = 0;
        for (inp, out) in [
            (800, 256),
            (400, 64),
            (64, 2),
            (256, 2),
            (3, 5),
            (9, 17),
            (1, 1),
            (0, 3),
        ] {
            for relu in [true, false] {
                let shape = LayerShape {
                    layer: Layer::dense(inp, out),
                    relu,
                };
                let mut layer = FloatModel::random(&[shape], rng.next_u64())
                    .layers
                    .remove(0);
                // ReLU outputs (zeros among positives), signed values, all
                // zeros (sums of signed zeros), and zero biases.
                for kind in 0..4 {
                    if kind == 3 {
                        layer.bias.iter_mut().for_each(|b| *b = 0.0);
                    }
                    let x: Vec<f32> = (0..inp)
                        .map(|_| {
                            let v = (rng.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
                            match kind {
                                0 => v.max(0.0),
                                1 => v,
                                _ => 0.0,
                            }
                        })
                        .collect();
                    let t = Tensor3 {
                        c: inp,
                        h: 1,
                        w: 1,
                        data: x.clone(),
                    };
                    let got = apply(&layer, &t).data;
                    let want = dense_reference(&layer, &x);
                    assert_eq!(got.len(), out);
                    let same = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "dense {inp}->{out}, relu {relu}, inputs {kind}");
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 64);
    }

    #[test]
    fn played_stacks_are_real_varied_frames() {
        let s = played_stacks(300, 1);
        assert_eq!(s.len(), 300);
        assert_eq!(s, played_stacks(300, 1));
        let ones: Vec<u32> = s.iter().map(|st| st.newest().count_ones()).collect();
        assert!(ones.iter().all(|&n| n > 0 && n < 6400));
        assert!(s.windows(2).filter(|w| w[0] != w[1]).count() > 250);
    }

    #[test]
    fn conv_and_dense_follow_pytorch_layouts() {
        // A 1-channel-in-use conv whose only non-zero weight is w[o=0][c=3][ky=1][kx=2]:
        // output (0, y, x) = input channel 3 at (y*s + 1 - p, x*s + 2 - p).
        let arch = [
            LayerShape {
                layer: Layer::conv(4, 2, 3, 2, 1),
                relu: true,
            },
            LayerShape {
                layer: Layer::dense(2 * 40 * 40, 2),
                relu: false,
            },
        ];
        let mut w = vec![0f32; 2 * 4 * 3 * 3];
        w[((3 * 3) + 1) * 3 + 2] = 1.0;
        let mut dw = vec![0f32; 2 * 3200];
        // Dense output 1 reads NCHW flat index (c=0, y=5, x=7).
        dw[3200 + 5 * 40 + 7] = 2.0;
        let m = FloatModel::from_params(&arch, vec![(w, vec![0.0; 2]), (dw, vec![0.5, -0.25])])
            .unwrap();
        let mut f = flappy::Frame::empty();
        f.set(5 * 2 + 1 - 1, 7 * 2 + 2 - 1, true);
        let blank = flappy::Frame::empty();
        let mut s = FrameStack::new(&blank);
        s.push(&blank);
        s.push(&blank);
        s.push(&f);
        assert_eq!(m.forward(&s), vec![0.5, 1.75]);
        let st = m.forward_stages(&s);
        assert_eq!((st[0].c, st[0].h, st[0].w), (2, 40, 40));
        assert_eq!(st[0].data.iter().filter(|&&v| v != 0.0).count(), 1);
    }
}
