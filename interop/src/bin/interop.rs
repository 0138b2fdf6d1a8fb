//! `interop`: the policy blob as a TFLite or ONNX file, policy-core's
//! per-layer traces and its latency on recorded frames (no libtorch).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use interop::{bench, Flavour, Format};
use quant::recording::Recording;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "interop",
    about = "The policy blob in the standard int8 formats (docs/interop.md)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a blob as a TFLite int8 flatbuffer or an ONNX QDQ graph.
    Convert {
        /// The policy blob.
        #[arg(long)]
        blob: PathBuf,
        /// tflite or onnx.
        #[arg(long)]
        format: Format,
        /// exact (bit-exact under LiteRT's reference kernels and TFLite
        /// Micro) or fast (the operators the optimized runtimes run fastest;
        /// docs/interop.md).
        #[arg(long, default_value = "exact")]
        flavour: Flavour,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a model with one trivial operator (the cost of a runtime call).
    Null {
        /// tflite or onnx.
        #[arg(long)]
        format: Format,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write policy-core's per-layer outputs on recorded frames as .npy files.
    Trace {
        /// The policy blob.
        #[arg(long)]
        blob: PathBuf,
        /// A recording (docs/recording-format.md).
        #[arg(long)]
        frames: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// At most this many stacks (from the start of the recording).
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
    },
    /// Time policy-core's decisions on recorded frames (batch 1, this thread).
    Bench {
        /// The policy blob.
        #[arg(long)]
        blob: PathBuf,
        /// A recording.
        #[arg(long)]
        frames: PathBuf,
        /// At most this many stacks.
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
        /// Rounds (ignored with --serve).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Run one round per line `round` read from stdin and answer each
        /// with one JSON line of per-decision nanoseconds per variant (`make
        /// peers` interleaves these rounds with the other runtimes'); answer
        /// a line `q` with each variant's and engine's outputs on every stack.
        #[arg(long)]
        serve: bool,
        /// Also time tract on an ONNX file, as LABEL=PATH (repeatable; needs
        /// the `tract` feature). Its rows are named `tract:LABEL`.
        #[arg(long)]
        tract: Vec<String>,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load_stacks(frames: &Path, limit: usize) -> Result<Vec<flappy::FrameStack>> {
    let mut stacks = Recording::load(frames)
        .with_context(|| format!("recording {}", frames.display()))?
        .stacks;
    stacks.truncate(limit);
    anyhow::ensure!(!stacks.is_empty(), "{}: no frame stacks", frames.display());
    Ok(stacks)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Convert {
            blob,
            format,
            flavour,
            out,
        } => {
            println!(
                "{}",
                interop::convert_file_as(&blob, format, flavour, &out)?
            );
        }
        Cmd::Null { format, out } => {
            atomic::write_atomic(&out, &interop::null_model(format))?;
            println!("wrote {}", out.display());
        }
        Cmd::Trace {
            blob,
            frames,
            out,
            limit,
        } => {
            let stacks = load_stacks(&frames, limit)?;
            let bytes = read(&blob)?;
            let n = interop::trace::dump(&bytes, &stacks, limit, &out)
                .with_context(|| blob.display().to_string())?;
            println!("wrote the traces of {n} stacks to {}", out.display());
        }
        Cmd::Bench {
            blob,
            frames,
            limit,
            rounds,
            serve,
            tract,
        } => {
            let stacks = load_stacks(&frames, limit)?;
            let mut engines = engines(&tract, &stacks)?;
            bench_cmd(&read(&blob)?, &stacks, &mut engines, rounds, serve)
                .with_context(|| blob.display().to_string())?
        }
    }
    Ok(())
}

/// Engines named on the command line (`--tract LABEL=PATH`), by row name.
type Engines = Vec<(String, Box<dyn bench::Engine>)>;

#[cfg(feature = "tract")]
fn engines(specs: &[String], stacks: &[flappy::FrameStack]) -> Result<Engines> {
    specs
        .iter()
        .map(|spec| {
            let (label, path) = spec
                .split_once('=')
                .with_context(|| format!("--tract {spec:?}: not LABEL=PATH"))?;
            let t = interop::tract::Tract::load(Path::new(path), stacks)?;
            Ok((
                format!("tract:{label}"),
                Box::new(t) as Box<dyn bench::Engine>,
            ))
        })
        .collect()
}

#[cfg(not(feature = "tract"))]
fn engines(specs: &[String], _stacks: &[flappy::FrameStack]) -> Result<Engines> {
    anyhow::ensure!(
        specs.is_empty(),
        "--tract: this interop was built without the `tract` feature \
         (cargo build --release -p interop --features tract)"
    );
    Ok(Vec::new())
}

fn bench_cmd(
    blob: &[u8],
    stacks: &[flappy::FrameStack],
    engines: &mut Engines,
    rounds: usize,
    serve: bool,
) -> Result<()> {
    let mut table = Vec::new();
    let mut policies = bench::policies(blob, &mut table)?;
    if serve {
        let stdout = std::io::stdout();
        for line in std::io::stdin().lock().lines() {
            let obj: serde_json::Map<String, serde_json::Value> = match line?.trim() {
                "q" => outputs(&mut policies, engines, stacks)?,
                _ => one_round(&mut policies, engines, stacks)?
                    .into_iter()
                    .map(|(name, t)| (name, serde_json::json!(t)))
                    .collect(),
            };
            let mut out = stdout.lock();
            writeln!(out, "{}", serde_json::Value::Object(obj))?;
            out.flush()?;
        }
        return Ok(());
    }
    let mut all: Vec<(String, Vec<u64>)> = Vec::new();
    for _ in 0..rounds {
        for (i, (name, t)) in one_round(&mut policies, engines, stacks)?
            .into_iter()
            .enumerate()
        {
            match all.get_mut(i) {
                Some((_, acc)) => acc.extend(t),
                None => all.push((name, t)),
            }
        }
    }
    println!(
        "{} stacks x {rounds} rounds; timer overhead {} ns",
        stacks.len(),
        bench::timer_overhead_ns()
    );
    for (name, mut t) in all {
        println!(
            "{name}: median {:.1} us per decision",
            bench::median(&mut t) as f64 / 1e3
        );
    }
    Ok(())
}

/// One round of every policy-core variant and engine: per-decision nanoseconds by row name.
fn one_round(
    policies: &mut [policy_core::Policy],
    engines: &mut Engines,
    stacks: &[flappy::FrameStack],
) -> Result<Vec<(String, Vec<u64>)>> {
    let mut out: Vec<(String, Vec<u64>)> = bench::VARIANTS
        .iter()
        .zip(policies.iter_mut())
        .map(|(name, p)| (name.to_string(), bench::round(p, stacks)))
        .collect();
    for (name, e) in engines.iter_mut() {
        out.push((name.clone(), e.round()?));
    }
    Ok(out)
}

/// The outputs of every policy-core variant and engine on every stack, by row name.
fn outputs(
    policies: &mut [policy_core::Policy],
    engines: &mut Engines,
    stacks: &[flappy::FrameStack],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut obj = serde_json::Map::new();
    for (name, p) in bench::VARIANTS.iter().zip(policies.iter_mut()) {
        let q: Vec<[i32; policy_core::NUM_ACTIONS]> =
            stacks.iter().map(|s| p.q_values(s)).collect();
        obj.insert(name.to_string(), serde_json::json!(q));
    }
    for (name, e) in engines.iter_mut() {
        let q = (0..stacks.len())
            .map(|i| e.q_values(i))
            .collect::<Result<Vec<_>>>()?;
        obj.insert(name.clone(), serde_json::json!(q));
    }
    Ok(obj)
}
