//! Host latency of the integer policy, per decision and per layer: batch 1,
//! one thread, on frame stacks recorded from the policy's own games.
//!
//! ```text
//! cargo run --release -p firmware-sim --bin policy-latency -- \
//!     --blob models/reference/policy.bin [--stacks 2000] [--rounds 30] [--results results/policy-latency]
//! ```
//!
//! The policy runs as the firmware runs it (the conv1 nibble table
//! attached). Each round times `Policy::q_values` over every recorded stack
//! (the decision), then `Policy::q_values_marked` with a clock read at each
//! stage boundary (the layers; their sum exceeds the decision by the clock
//! reads, reported as `marks overhead`). Medians over rounds are reported,
//! with the fastest round. The kernels the build compiled in (SSE2 only, or
//! AVX2 / AVX-512 with `RUSTFLAGS="-C target-cpu=native"`) are listed with
//! the figures. `make bench-host` runs both builds.
use clap::Parser;
use firmware_sim::{Frame, FrameStack, Policy};
use flappy::{Action, Game};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Times the integer policy of a blob on the host, per decision and per layer.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Policy blob (from `trainer export`).
    #[arg(long, value_name = "FILE")]
    blob: PathBuf,
    /// Frame stacks to record and time, from games the policy plays.
    #[arg(long, default_value_t = 2000)]
    stacks: usize,
    /// Timed rounds over all stacks.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Seed of the first recorded game (game i: seed + i), a number or
    /// `test` (the first test seed).
    #[arg(long, default_value = "test", value_parser = parse_seed)]
    seed: u64,
    /// Write PREFIX.json and PREFIX.md.
    #[arg(long, value_name = "PREFIX")]
    results: Option<PathBuf>,
    /// How the binary was built (the results state it, e.g. the RUSTFLAGS;
    /// the instruction-set extensions compiled in are listed anyway).
    #[arg(long, value_name = "TEXT", default_value = "")]
    build: String,
}

fn parse_seed(s: &str) -> Result<u64, String> {
    flappy::seeds::parse(s).map_err(|e| e.to_string())
}

/// The instruction-set extensions this build compiled in (what the SIMD
/// kernels use), and AVX2 where an x86-64 build without it found it at run
/// time for the packed convs (`policy_core::conv_lanes`).
fn features() -> Vec<&'static str> {
    let mut f = Vec::new();
    macro_rules! on {
        ($($name:tt),*) => {$( if cfg!(target_feature = $name) { f.push($name); } )*};
    }
    on!(
        "sse2",
        "sse4.1",
        "avx2",
        "avxvnni",
        "avx512f",
        "avx512bw",
        "avx512vnni",
        "simd128"
    );
    if !cfg!(target_feature = "avx2") && firmware_sim::policy_core::conv_lanes() == 8 {
        f.push("avx2 at run time (packed convs)");
    }
    f
}

/// The CPU's model name (Linux), or `unknown`.
fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Stacks from games the policy plays itself (seed, seed + 1, ...), every
/// decision's stack, until `n` are recorded.
fn record(policy: &mut Policy, seed: u64, n: usize) -> Result<Vec<FrameStack>, String> {
    let mut stacks = Vec::with_capacity(n);
    let mut frame = Frame::empty();
    'games: for g in 0.. {
        let mut game = Game::new(seed + g);
        game.observe(&mut frame);
        let mut stack = FrameStack::new(&frame);
        loop {
            stacks.push(stack);
            if stacks.len() == n {
                break 'games;
            }
            let action: Action = policy.act(&stack);
            let step = game
                .step(action)
                .map_err(|e| format!("game error: {e:?}"))?;
            if step.terminal {
                continue 'games;
            }
            game.observe(&mut frame);
            stack.push(&frame);
        }
    }
    Ok(stacks)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    flappy::scores::median(v)
}

fn run(args: Args) -> Result<(), String> {
    let bytes = std::fs::read(&args.blob)
        .map_err(|e| format!("cannot read {}: {e}", args.blob.display()))?;
    let bad = |e| format!("bad blob {}: {e}", args.blob.display());
    let probe = Policy::from_blob(&bytes).map_err(bad)?;
    let mut table = vec![0u32; probe.conv1_table_len().unwrap_or(0)];
    if !table.is_empty() {
        probe
            .write_conv1_table(&mut table)
            .map_err(|e| format!("conv1 table: {e}"))?;
    }
    let mut policy = Box::new(Policy::from_blob(&bytes).map_err(bad)?);
    if !table.is_empty() {
        policy
            .attach_conv1_table(&table)
            .map_err(|e| format!("conv1 table: {e}"))?;
    }
    let stages = policy.stages().len();
    let names: Vec<String> = policy
        .stages()
        .iter()
        .map(|st| stage_name(&policy, st))
        .collect();
    let stacks = record(&mut policy, args.seed, args.stacks.max(1))?;
    let n = stacks.len() as f64;
    let (mut whole, mut marked, mut layers) = (Vec::new(), Vec::new(), vec![Vec::new(); stages]);
    let mut sink = 0i64;
    for _ in 0..args.rounds.max(1) {
        let t0 = Instant::now();
        for s in &stacks {
            let q = policy.q_values(s);
            sink = sink.wrapping_add(q[0] as i64);
        }
        whole.push(t0.elapsed().as_secs_f64() / n);
        let mut sums = vec![0f64; stages];
        let t0 = Instant::now();
        for s in &stacks {
            let mut last = Instant::now();
            let q = policy.q_values_marked(s, |i| {
                let now = Instant::now();
                if i > 0 {
                    sums[i - 1] += (now - last).as_secs_f64();
                }
                last = now;
            });
            sink = sink.wrapping_add(q[1] as i64);
        }
        marked.push(t0.elapsed().as_secs_f64() / n);
        for (l, s) in layers.iter_mut().zip(&sums) {
            l.push(s / n);
        }
    }
    std::hint::black_box(sink);
    let us = |s: f64| s * 1e6;
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let dec_min = best(&whole);
    let dec = median(&mut whole.clone());
    let over = median(&mut marked.clone()) - dec;
    let per_layer: Vec<(f64, f64)> = layers
        .iter()
        .map(|l| (median(&mut l.clone()), best(l)))
        .collect();
    let feats = features();
    let cpu = cpu();
    println!(
        "policy-latency: {} ({} B), {} stacks x {} rounds, batch 1, one thread",
        args.blob.display(),
        bytes.len(),
        stacks.len(),
        args.rounds
    );
    println!("build: {}; cpu: {cpu}", feats.join(" "));
    println!("{:<26} {:>12} {:>12}", "layer", "median us", "best us");
    for (name, (m, b)) in names.iter().zip(&per_layer) {
        println!("{name:<26} {:>12.2} {:>12.2}", us(*m), us(*b));
    }
    println!("{:<26} {:>12.2} {:>12.2}", "decision", us(dec), us(dec_min));
    println!(
        "marks overhead (layers' sum - decision): {:.2} us",
        us(over)
    );
    if let Some(prefix) = &args.results {
        write_results(
            prefix,
            &args,
            &bytes,
            &feats,
            &cpu,
            &names,
            &per_layer,
            (dec, dec_min),
            over,
        )?;
    }
    Ok(())
}

/// `conv4x4/4 4->16 +pool2`, `fc 800->256`: as the firmware prints a stage.
fn stage_name(policy: &Policy, st: &firmware_sim::policy_core::blob::Stage) -> String {
    use firmware_sim::policy_core::blob::LayerKind;
    let mut s = match policy.model().layers[st.layer].kind {
        LayerKind::Conv2d {
            in_c,
            out_c,
            k,
            stride,
            ..
        } => format!("conv{k}x{k}/{stride} {in_c}->{out_c}"),
        LayerKind::Dense { inp, out } => format!("fc {inp}->{out}"),
        LayerKind::MaxPool { k } => format!("pool{k}"),
    };
    if st.pool > 1 {
        s.push_str(&format!(" +pool{}", st.pool));
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn write_results(
    prefix: &std::path::Path,
    args: &Args,
    bytes: &[u8],
    feats: &[&str],
    cpu: &str,
    names: &[String],
    layers: &[(f64, f64)],
    (dec, dec_min): (f64, f64),
    over: f64,
) -> Result<(), String> {
    let us = |s: f64| (s * 1e8).round() / 100.0;
    let json = serde_json::json!({
        "what": "host latency of policy-core's q_values, batch 1, one thread, microseconds per decision: median over rounds (and the fastest round) of the mean over the recorded stacks",
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "blob": args.blob.display().to_string(),
        "blob_bytes": bytes.len(),
        "stacks": args.stacks,
        "rounds": args.rounds,
        "seed": args.seed,
        "conv1_table": true,
        "build": args.build,
        "build_features": feats,
        "cpu": cpu,
        "decision_us": {"median": us(dec), "best": us(dec_min)},
        "marks_overhead_us": us(over),
        "layers": names.iter().zip(layers).map(|(n, (m, b))| serde_json::json!({
            "stage": n, "median_us": us(*m), "best_us": us(*b)
        })).collect::<Vec<_>>(),
    });
    let err = |e: std::io::Error| format!("cannot write {}: {e}", prefix.display());
    let (json_path, md_path) = (
        format!("{}.json", prefix.display()),
        format!("{}.md", prefix.display()),
    );
    if let Some(dir) = prefix.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())? + "\n";
    std::fs::write(&json_path, text).map_err(err)?;
    let mut md = format!(
        "# policy-core on the host: microseconds per decision\n\n\
         Batch 1, one thread, `{}` ({} B, conv1 nibble table attached), {} stacks recorded \
         from the policy's own games (seed {}), {} rounds; median over rounds (fastest round).\n\
         Build: {}{}. CPU: {}.\n\n| layer | median us | best us |\n|---|---:|---:|\n",
        args.blob.display(),
        bytes.len(),
        args.stacks,
        args.seed,
        args.rounds,
        if args.build.is_empty() {
            String::new()
        } else {
            format!("{}; ", args.build)
        },
        feats.join(", "),
        cpu
    );
    for (n, (m, b)) in names.iter().zip(layers) {
        md.push_str(&format!("| {n} | {:.2} | {:.2} |\n", us(*m), us(*b)));
    }
    md.push_str(&format!(
        "| **decision** | **{:.2}** | {:.2} |\n\nThe layers are timed in a second pass with a clock read at each stage boundary; their sum exceeds the decision by {:.2} us.\n\nCommand: `{}`\n",
        us(dec),
        us(dec_min),
        us(over),
        json["command"].as_str().unwrap_or("")
    ));
    std::fs::write(&md_path, md).map_err(err)?;
    println!("results: {json_path}, {md_path}");
    Ok(())
}

fn main() -> ExitCode {
    firmware_sim::exit_code(run(Args::parse()))
}
