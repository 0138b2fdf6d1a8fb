//! Decision latency of the int8 policy (`policy-core`) against libtorch's float
//! forward ([`QNetwork::forward`]) at batch 1 on one thread, and the
//! pure-Rust float reference.

use std::time::{Duration, Instant};

use anyhow::Result;
use flappy::FrameStack;
use tch::{Device, Tensor};

use crate::net::{to_input, unpack_stack, QNetwork, INPUT_LEN};
use quant::float_model::FloatModel;

/// One row of the latency table.
#[derive(Clone, Debug)]
pub struct LatencyRow {
    /// What was timed.
    pub name: String,
    /// Decisions timed.
    pub iters: usize,
    /// Mean time per decision.
    pub mean: Duration,
    /// Median time per decision.
    pub median: Duration,
    /// 10th percentile time per decision (the least disturbed by other load).
    pub p10: Duration,
}

/// The latency comparison.
#[derive(Clone, Debug)]
pub struct LatencyReport {
    /// int8 policy-core, libtorch float, pure-Rust float.
    pub rows: Vec<LatencyRow>,
    /// int8 median / libtorch median (goal: <= 0.5).
    pub ratio: f64,
    /// int8 mean / libtorch mean.
    pub ratio_mean: f64,
}

impl LatencyReport {
    /// Markdown / terminal table.
    pub fn render(&self) -> String {
        let mut s =
            String::from("| path | decisions | mean | median | p10 |\n|---|---|---|---|---|\n");
        for r in &self.rows {
            s += &format!(
                "| {} | {} | {:.1} us | {:.1} us | {:.1} us |\n",
                r.name,
                r.iters,
                us(r.mean),
                us(r.median),
                us(r.p10)
            );
        }
        s += &format!(
            "\nint8 / libtorch: {:.3}x median, {:.3}x mean (goal <= 0.5x)\n",
            self.ratio, self.ratio_mean
        );
        s
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(name: &str, mut t: Vec<Duration>) -> LatencyRow {
    let iters = t.len();
    let mean = t.iter().sum::<Duration>() / iters.max(1) as u32;
    t.sort();
    LatencyRow {
        name: name.into(),
        iters,
        mean,
        median: t[iters / 2],
        p10: t[iters / 10],
    }
}

/// Times `f(i)` for `i` in `range`, one duration per call.
fn time_calls(range: std::ops::Range<usize>, out: &mut Vec<Duration>, mut f: impl FnMut(usize)) {
    for i in range {
        let s = Instant::now();
        f(i);
        out.push(s.elapsed());
    }
}

/// The network input for `stack` as a `[1, 4, 80, 80]` CPU tensor.
pub fn torch_input(stack: &FrameStack) -> Tensor {
    let mut buf = vec![0f32; INPUT_LEN];
    unpack_stack(stack, &mut buf);
    to_input(&buf, 1, Device::Cpu)
}

/// Times `iters` decisions of the int8 policy loaded from `blob` and of
/// libtorch's float forward of `model` at batch 1 on the CPU
/// (`tch::set_num_threads(1)`), interleaved in 20 rounds so that load from
/// other processes hits both alike, plus the pure-Rust float forward (a tenth
/// of the iterations), cycling through `stacks`. Returns the report; print
/// [`LatencyReport::render`] for the table. Leaves libtorch's intra-op thread
/// count at 1.
pub fn compare_latency(
    model: &FloatModel,
    blob: &[u8],
    stacks: &[FrameStack],
    iters: usize,
) -> Result<LatencyReport> {
    anyhow::ensure!(
        !stacks.is_empty() && iters > 0,
        "no frame stacks or no iterations"
    );
    tch::set_num_threads(1);
    let mut policy =
        policy_core::Policy::from_blob(blob).map_err(|e| anyhow::anyhow!("blob: {e}"))?;
    let inputs: Vec<Tensor> = stacks.iter().map(torch_input).collect();
    let net = QNetwork::from_float_model(model, Device::Cpu)?;
    let mut sink = 0i64;
    let mut int8_call = |i: usize| {
        let q = policy.q_values(&stacks[i % stacks.len()]);
        sink = sink.wrapping_add(q[0] as i64);
    };
    let mut torch_sink = 0f64;
    let mut torch_call = |i: usize| {
        let q = tch::no_grad(|| net.forward(&inputs[i % inputs.len()]));
        torch_sink += q.double_value(&[0, 0]);
    };
    // Warm-up.
    for i in 0..iters.min(20) {
        int8_call(i);
        torch_call(i);
    }
    let rounds = 20.min(iters);
    let (mut t_int8, mut t_torch) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for r in 0..rounds {
        let range = r * iters / rounds..(r + 1) * iters / rounds;
        time_calls(range.clone(), &mut t_int8, &mut int8_call);
        time_calls(range, &mut t_torch, &mut torch_call);
    }
    let mut t_rust = Vec::new();
    time_calls(0..(iters / 10).max(1), &mut t_rust, |i| {
        sink = sink.wrapping_add(model.forward(&stacks[i % stacks.len()])[0] as i64);
    });
    std::hint::black_box((sink, torch_sink));
    let int8 = row("int8 policy-core (1 thread)", t_int8);
    let torch = row("libtorch f32 forward, batch 1, 1 thread", t_torch);
    let rust = row("pure-Rust f32 reference (FloatModel)", t_rust);
    let report = LatencyReport {
        ratio: int8.median.as_secs_f64() / torch.median.as_secs_f64(),
        ratio_mean: int8.mean.as_secs_f64() / torch.mean.as_secs_f64(),
        rows: vec![int8, torch, rust],
    };
    Ok(report)
}
