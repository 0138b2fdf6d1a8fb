//! `parity`: compares the int8 policy blob with the float checkpoint it came
//! from, on recorded frames (layer by layer) and in closed-loop play.

use anyhow::{Context, Result};
use clap::Parser;
use parity::{closed_loop, frame_parity, report, FrameParity, Paired, Verdict};
use policy_core::Policy;
use serde::Serialize;
use std::path::PathBuf;
use trainer::atomic::write_atomic;
use trainer::checkpoint::load_network;
use trainer::recording::Recording;

/// Quantized (policy-core) vs float (tch) network: action agreement, Q
/// errors, per-layer cosine similarity, and closed-loop scores.
#[derive(Parser)]
#[command(name = "parity", version)]
struct Cli {
    /// The float network: a run folder (its best.safetensors: the network
    /// the run ships), a checkpoint folder (its policy average
    /// ema.safetensors, else the online model.safetensors) or a
    /// .safetensors weights file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The int8 blob exported from it.
    #[arg(long)]
    blob: PathBuf,
    /// Recorded frame stacks (`trainer record`).
    #[arg(long)]
    frames: PathBuf,
    /// Closed-loop episodes per policy, paired by seed (0 = skip closed loop).
    #[arg(long, default_value_t = 100)]
    episodes: usize,
    /// With --powered: play more games, 50 at a time up to this many, until
    /// the closed loop can detect a 5 % int8 loss with 80 % power.
    #[arg(long, default_value_t = 400)]
    max_episodes: usize,
    /// Fail (with --strict) when the closed loop cannot detect a 5 % loss
    /// with 80 % power; play more games first (see --max-episodes).
    #[arg(long)]
    powered: bool,
    /// First game seed of the closed loop: `test` (the default: these
    /// scores are reported), `validation` or a number.
    #[arg(long, default_value = "test", value_parser = seed_arg)]
    seed: u64,
    /// Score cap of a closed-loop episode.
    #[arg(long, default_value_t = 200)]
    max_score: u32,
    /// Frames whose float margin |Q0 - Q1| is below this fraction of the Q range count as ties.
    #[arg(long, default_value_t = 0.02)]
    margin_frac: f64,
    /// Write a Markdown report here (and a histogram PNG next to it).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Exit non-zero when a criterion fails.
    #[arg(long)]
    strict: bool,
}

/// The `--json` object: the frame comparison (its fields, without the
/// errors of the histogram), the closed loop's scores (null without one)
/// and the verdict.
#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    frames: &'a FrameParity,
    #[serde(flatten)]
    closed: ClosedJson,
    pass: bool,
    failures: &'a [String],
}

/// The closed loop in the `--json` object (nulls without one).
#[derive(Serialize)]
struct ClosedJson {
    float_mean_score: Option<f64>,
    int_mean_score: Option<f64>,
    first_divergence: Option<(usize, u64)>,
    paired: Option<Paired>,
}

/// A game seed: a number, `test` or `validation` (`flappy::seeds`).
fn seed_arg(s: &str) -> Result<u64, String> {
    flappy::seeds::parse(s).map_err(|e| e.to_string())
}

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<bool> {
    let cli = Cli::parse();
    let net = load_network(&cli.checkpoint, tch::Device::Cpu)?;
    let model = net.to_float_model();
    let bytes =
        std::fs::read(&cli.blob).with_context(|| format!("reading blob {}", cli.blob.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let mut policy = Policy::from_blob(bytes)
        .map_err(|e| anyhow::anyhow!("bad blob {}: {e}", cli.blob.display()))?;
    let rec = Recording::load(&cli.frames)?;
    let f = frame_parity(&net, &model, &mut policy, &rec.stacks, cli.margin_frac)?;
    let c = if cli.episodes > 0 {
        let mut c = closed_loop(&net, &mut policy, cli.episodes, cli.seed, cli.max_score)?;
        while cli.powered
            && c.paired().detectable_loss > Verdict::MAX_DETECTABLE_LOSS
            && c.episodes < cli.max_episodes
        {
            let more = 50.min(cli.max_episodes - c.episodes);
            eprintln!(
                "closed loop: {} games detect a {:.1} % loss; playing {more} more",
                c.episodes,
                100.0 * c.paired().detectable_loss
            );
            let next = closed_loop(
                &net,
                &mut policy,
                more,
                cli.seed + c.episodes as u64,
                cli.max_score,
            )?;
            c = c.extended(next);
        }
        Some(c)
    } else {
        None
    };
    let v = match (&c, cli.powered) {
        (Some(c), true) => Verdict::judge_powered(&f, c),
        _ => Verdict::judge(&f, c.as_ref()),
    };
    if let Some(path) = &cli.report {
        let hist = path.with_extension("png");
        let hist_name = hist.file_name().map(|n| n.to_string_lossy().into_owned());
        report::histogram(&f, &hist)?;
        write_atomic(
            path,
            report::markdown(&f, c.as_ref(), &v, hist_name.as_deref()).as_bytes(),
        )?;
    }
    if cli.json {
        let j = JsonReport {
            frames: &f,
            closed: ClosedJson {
                float_mean_score: c.as_ref().map(|c| c.float_mean_score),
                int_mean_score: c.as_ref().map(|c| c.int_mean_score),
                first_divergence: c.as_ref().and_then(|c| c.first_divergence),
                paired: c.as_ref().map(|c| c.paired()),
            },
            pass: v.pass(),
            failures: &v.failures,
        };
        // Through a `Value`: its keys print sorted.
        println!("{}", serde_json::to_value(&j)?);
    } else {
        print!("{}", report::markdown(&f, c.as_ref(), &v, None));
    }
    Ok(v.pass() || !cli.strict)
}
