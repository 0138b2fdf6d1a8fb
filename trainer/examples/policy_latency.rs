//! `cargo run --release -p trainer --example policy_latency [-- iters]`: int8
//! policy-core decision latency vs libtorch float forward (batch 1, 1 thread) on
//! a random classic network exported with the PTQ exporter, on frame stacks
//! from real play (heuristic controller) and on synthetic ones.
use trainer::quant::{bench, export, float_model, ExportOptions, FloatModel, LayerShape};

fn main() -> anyhow::Result<()> {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let model = FloatModel::random(&LayerShape::classic(), 1);
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
