//! `interop`: the policy blob as a TFLite or ONNX file, policy-core's
//! per-layer traces and its latency on recorded frames (no libtorch).

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use interop::{bench, Format};
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
        /// Run one round per line read from stdin and answer each with one
        /// JSON line of per-decision nanoseconds per variant (`make peers`
        /// interleaves these rounds with the other runtimes').
        #[arg(long)]
        serve: bool,
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
        Cmd::Convert { blob, format, out } => {
            println!("{}", interop::convert_file(&blob, format, &out)?);
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
        } => bench_cmd(&read(&blob)?, &load_stacks(&frames, limit)?, rounds, serve)
            .with_context(|| blob.display().to_string())?,
    }
    Ok(())
}

fn bench_cmd(blob: &[u8], stacks: &[flappy::FrameStack], rounds: usize, serve: bool) -> Result<()> {
    let mut table = Vec::new();
    let mut policies = bench::policies(blob, &mut table)?;
    let mut one_round = || -> Vec<Vec<u64>> {
        policies
            .iter_mut()
            .map(|p| bench::round(p, stacks))
            .collect()
    };
    if serve {
        let stdout = std::io::stdout();
        for line in std::io::stdin().lock().lines() {
            line?;
            let times = one_round();
            let obj: serde_json::Map<String, serde_json::Value> = bench::VARIANTS
                .iter()
                .zip(times)
                .map(|(name, t)| (name.to_string(), serde_json::json!(t)))
                .collect();
            let mut out = stdout.lock();
            writeln!(out, "{}", serde_json::Value::Object(obj))?;
            out.flush()?;
        }
        return Ok(());
    }
    let mut all: Vec<Vec<u64>> = vec![Vec::new(); bench::VARIANTS.len()];
    for _ in 0..rounds {
        for (acc, t) in all.iter_mut().zip(one_round()) {
            acc.extend(t);
        }
    }
    println!(
        "{} stacks x {rounds} rounds; timer overhead {} ns",
        stacks.len(),
        bench::timer_overhead_ns()
    );
    for (name, mut t) in bench::VARIANTS.iter().zip(all) {
        println!(
            "{name}: median {:.1} us per decision",
            bench::median(&mut t) as f64 / 1e3
        );
    }
    Ok(())
}
