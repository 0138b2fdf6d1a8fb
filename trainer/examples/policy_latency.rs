//! `cargo run --release -p trainer --example policy_latency [-- ITERS [CHECKPOINT]]`:
//! int8 policy-core decision latency vs libtorch float forward (batch 1, 1
//! thread). Without CHECKPOINT: a random classic network; with it (a
//! checkpoint folder or its `model.safetensors`): that trained network. Both
//! are exported with the PTQ exporter, calibrated on frame stacks from real
//! play (heuristic controller), and timed on played and synthetic stacks.
use std::path::Path;

use trainer::latency as bench;
use trainer::quant::{export, float_model, ExportOptions, FloatModel, LayerShape};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let iters: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let model = match args.next() {
        Some(ck) => {
            println!("network: {ck}\n");
            trainer::checkpoint::load_network(Path::new(&ck), tch::Device::Cpu)?.to_float_model()
        }
        None => {
            println!("network: random classic\n");
            FloatModel::random(&LayerShape::of(&netspec::CLASSIC), 1)
        }
    };
    let calib = float_model::played_stacks(512, 2);
    let ex = export(&model, &calib, &ExportOptions::default())?;
    println!("{}", ex.render_table());
    for (name, stacks) in [
        ("played frames", float_model::played_stacks(256, 3)),
        ("synthetic frames", float_model::synthetic_stacks(256, 3)),
    ] {
        println!("## {name}\n");
        let report = bench::compare_latency(&model, &ex.blob, &stacks, iters)?;
        println!("{}", report.render());
    }
    Ok(())
}
