//! `trainer`: trains the Flappy Bird DQN (the default with no subcommand),
//! evaluates, records observations, exports the int8 blob, runs the seed's
//! tabular methods and benchmarks. `trainer --help` lists everything.

use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use trainer::cli::stop_on_ctrl_c;
use trainer::config::Config;
use trainer::{bench, checkpoint, eval, quant, recording, report, train};

/// Learns Flappy Bird from pixels with a Deep Q-Network (tch / libtorch, CUDA
/// when present), then evaluates, records frames and exports the int8 blob.
///
/// With no subcommand it runs `train` with its defaults.
#[derive(Parser)]
#[command(name = "trainer", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a DQN into runs/<name>/, then evaluate, record, export and report.
    Train(Box<TrainArgs>),
    /// Greedy play of a checkpoint; prints mean/median/max score.
    Eval(EvalArgs),
    /// Record the frame stacks a checkpoint meets while playing (calibration, parity).
    Record(RecordArgs),
    /// Quantize a checkpoint to the int8 policy-core blob, calibrated on a recording.
    Export(ExportArgs),
    /// Distil a trained network (the teacher) into a smaller one (default
    /// `tiny`), then evaluate, record, export and report like `train`.
    Distil(Box<DistilArgs>),
    /// The seed's tabular methods on its 6-room graph (value iteration, MC, TD(0), Q-learning).
    Tabular,
    /// Environment steps/s and updates/s (CPU, and CUDA when present); int8 vs libtorch latency.
    Bench(BenchArgs),
    /// Time to score: the periodic greedy evaluations of several runs
    /// (median and min..max against training minutes) in one PNG.
    Curves(CurvesArgs),
    /// The weight average of several networks of one architecture (e.g. a
    /// run's last snapshots), written as one `.safetensors` file.
    Average(AverageArgs),
}

#[derive(Args)]
struct AverageArgs {
    /// The networks (weights files, run or checkpoint folders), at least one.
    #[arg(required = true)]
    networks: Vec<PathBuf>,
    /// The averaged network's `.safetensors` file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct CurvesArgs {
    /// Run folders (each with a metrics.csv).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
}

/// The end of a run (`train`, `distil`): final evaluation, recordings,
/// export and report.
#[derive(Args)]
struct EndArgs {
    /// Only learn: skip the final evaluation, recording, export and report.
    #[arg(long)]
    no_finish: bool,
    /// Games of the final greedy evaluation, on test seeds (the first N of
    /// `flappy::seeds::TEST..`, which nothing is ever chosen on).
    #[arg(long, default_value_t = report::FinishOptions::default().episodes)]
    final_episodes: usize,
    /// Score cap of the final evaluation (a game that reaches it counts as won).
    #[arg(long, default_value_t = report::FinishOptions::default().cap)]
    final_max_score: u32,
    /// Frame stacks to record at the end (calibration and parity data).
    #[arg(long, default_value_t = report::FinishOptions::default().record_frames)]
    record_frames: usize,
}

impl EndArgs {
    /// Refuses an end that cannot run, before any training.
    fn validate(&self) -> Result<()> {
        if self.final_max_score == 0 {
            bail!("--final-max-score must be at least 1");
        }
        if self.final_episodes == 0 || self.final_episodes as u64 > flappy::seeds::TEST_LEN {
            bail!(
                "--final-episodes must be in 1..={} (the test seeds)",
                flappy::seeds::TEST_LEN
            );
        }
        Ok(())
    }

    /// The end of a run these flags ask for, exporting with `export`.
    fn options(&self, export: quant::ExportOptions) -> report::FinishOptions {
        report::FinishOptions {
            episodes: self.final_episodes,
            games: report::FinalGames::Test,
            cap: self.final_max_score,
            record_frames: self.record_frames,
            export,
        }
    }
}

/// A game seed on the command line: a number, `validation` or `test`.
fn seed_arg(s: &str) -> Result<u64, String> {
    flappy::seeds::parse(s).map_err(|e| e.to_string())
}

#[derive(Args)]
struct TrainArgs {
    /// Run name: files go to <runs-dir>/<name>/ (default: a timestamp).
    #[arg(long)]
    name: Option<String>,
    /// Folder holding the runs.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// TOML file with hyperparameters (flags given here override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Continue the run in this folder after a crash or Ctrl-C.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    end: EndArgs,
    #[command(flatten)]
    hp: Config,
}

#[derive(Args)]
struct DistilArgs {
    /// The teacher: a run folder (its best.safetensors: the network the run
    /// ships), a checkpoint folder (its policy average ema.safetensors, else
    /// the online model.safetensors) or a .safetensors weights file. The
    /// default is the micro:bit policy's teacher (models/teacher/README.md).
    #[arg(long, default_value = "models/teacher")]
    teacher: PathBuf,
    /// Run name: files go to <runs-dir>/<name>/ (default: a timestamp).
    #[arg(long)]
    name: Option<String>,
    /// Folder holding the runs.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    #[command(flatten)]
    end: EndArgs,
    #[command(flatten)]
    hp: trainer::distil::DistilConfig,
}

#[derive(Args)]
struct EvalArgs {
    /// A run folder (its best.safetensors: the network the run ships), a
    /// checkpoint folder (its policy average ema.safetensors, else the
    /// online model.safetensors) or a .safetensors weights file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Episodes (game seeds seed..seed+N).
    #[arg(long, default_value_t = 20)]
    episodes: usize,
    /// First game seed: a number, `validation` (the default: games to
    /// choose settings on) or `test` (games to report on, never to choose
    /// on; docs/learning.md, "Three seed sets").
    #[arg(long, default_value = "validation", value_parser = seed_arg)]
    seed: u64,
    /// Stop an episode at this score.
    #[arg(long, default_value_t = 1000)]
    max_score: u32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write an animated GIF of the best episode.
    #[arg(long)]
    gif: Option<PathBuf>,
    /// Instead of the scores, tell how each game that crashed ended: the
    /// obstacle, the gap of the pipe hit and of the next one, the Q-values.
    #[arg(long)]
    deaths: bool,
}

#[derive(Args)]
struct RecordArgs {
    /// A run folder (its best.safetensors: the network the run ships), a
    /// checkpoint folder (its policy average ema.safetensors, else the
    /// online model.safetensors) or a .safetensors weights file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Number of frame stacks to record.
    #[arg(long, default_value_t = 2000)]
    frames: usize,
    /// First game seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Exploration while recording (random actions flap 15 %), so near-crash states appear.
    #[arg(long, default_value_t = 0.03)]
    eps: f64,
    /// Output file (format: docs/recording-format.md).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ExportArgs {
    /// A run folder (its best.safetensors: the network the run ships), a
    /// checkpoint folder (its policy average ema.safetensors, else the
    /// online model.safetensors) or a .safetensors weights file.
    #[arg(long, required_unless_present = "blob")]
    checkpoint: Option<PathBuf>,
    /// Recording whose frame stacks calibrate the activation scales.
    #[arg(long, required_unless_present = "blob")]
    calib: Option<PathBuf>,
    /// Output file: the blob, or the TFLite / ONNX file (with a checkpoint,
    /// the blob is also written beside it, as `<out>.bin`).
    #[arg(long)]
    out: PathBuf,
    /// `blob` (policy-core's format), `tflite` (int8 flatbuffer) or `onnx`
    /// (QDQ graph): the same integer model (docs/interop.md).
    #[arg(long, default_value = "blob", value_parser = ["blob", "tflite", "onnx"])]
    format: String,
    /// Convert this existing blob instead of exporting a checkpoint
    /// (with --format tflite or onnx; needs no libtorch: `interop convert`).
    #[arg(long, conflicts_with_all = ["checkpoint", "calib"])]
    blob: Option<PathBuf>,
    /// Also write the per-layer table as Markdown here.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Activation range of each layer: this percentile of its calibration
    /// values maps to u8 255 (100 = the maximum, no clipping).
    #[arg(long, default_value_t = quant::ExportOptions::default().percentile)]
    percentile: f64,
    /// Hidden layers' u8 range reaches this multiple of the calibrated value,
    /// so that frames busier than every calibration frame do not clip.
    #[arg(long, default_value_t = quant::ExportOptions::default().headroom)]
    headroom: f64,
    /// Keep the output layer's round-to-nearest weights (skip the refit of its
    /// rounding to the float Q-values on the calibration stacks).
    #[arg(long)]
    no_refit: bool,
    /// Hidden layers' u8 steps, one per layer of the network (comma
    /// separated, by layer index; the output layer's is not used), instead
    /// of calibrating them: the steps a distilled student trained through,
    /// as its report's `export` row gives them.
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["percentile", "headroom"])]
    act_steps: Option<Vec<f64>>,
}

#[derive(Args)]
struct BenchArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Network (one of `netspec::ALL`).
    #[arg(long, default_value_t = netspec::COMPACT, value_parser = trainer::config::arch_arg())]
    net: netspec::Arch,
}

fn main() {
    trainer::cli::main_with(run);
}

fn run() -> Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches)?;
    match cli.cmd {
        None => cmd_train(cli.train, &matches),
        Some(Cmd::Train(a)) => {
            let sub = matches
                .subcommand_matches("train")
                .cloned()
                .unwrap_or_default();
            cmd_train(*a, &sub)
        }
        Some(Cmd::Eval(a)) => cmd_eval(a),
        Some(Cmd::Record(a)) => cmd_record(a),
        Some(Cmd::Export(a)) => cmd_export(a),
        Some(Cmd::Distil(a)) => cmd_distil(*a),
        Some(Cmd::Tabular) => {
            print!("{}", tabular::report());
            Ok(())
        }
        Some(Cmd::Bench(a)) => cmd_bench(a),
        Some(Cmd::Curves(a)) => cmd_curves(a),
        Some(Cmd::Average(a)) => cmd_average(a),
    }
}

fn cmd_average(a: AverageArgs) -> Result<()> {
    let net = checkpoint::average(&a.networks, tch::Device::Cpu)?;
    trainer::atomic::write_atomic_with(&a.out, |tmp| Ok(net.vs.save(tmp)?))?;
    println!(
        "wrote the average of {} networks to {}",
        a.networks.len(),
        a.out.display()
    );
    Ok(())
}

fn cmd_curves(a: CurvesArgs) -> Result<()> {
    let mut runs = Vec::new();
    for dir in &a.runs {
        let m = trainer::metrics::Metrics::load(&dir.join("metrics.csv"))?;
        if m.evals().is_empty() {
            bail!("{} has no evaluation rows in metrics.csv", dir.display());
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        runs.push((name, m));
    }
    trainer::atomic::write_atomic_with(&a.out, |t| trainer::metrics::plot_time_to_score(&runs, t))?;
    println!("wrote {}", a.out.display());
    Ok(())
}

fn cmd_train(a: TrainArgs, matches: &ArgMatches) -> Result<()> {
    a.end.validate()?;
    let stop = stop_on_ctrl_c("saving a checkpoint and stopping")?;
    let (run_dir, cfg, resume) = match &a.resume {
        Some(dir) => {
            // The saved config, with the flags given now on top (e.g. a longer budget).
            let saved = checkpoint::load_config(dir)?;
            let cfg = Config::merge_cli(saved.clone(), &a.hp, matches)?;
            let changed = cfg.learning_changes(&saved);
            if !changed.is_empty() {
                bail!(
                    "a resumed run keeps its learning settings; these differ from the saved ones: {} \
                     (a resume may change only {})",
                    changed.join(", "),
                    Config::RESUMABLE.join(", ")
                );
            }
            (dir.clone(), cfg, true)
        }
        None => {
            let base = match &a.config {
                Some(p) => Config::from_toml_file(p)?,
                None => Config::default(),
            };
            let cfg = Config::merge_cli(base, &a.hp, matches)?;
            let name = a.name.clone().unwrap_or_else(timestamp);
            (a.runs_dir.join(name), cfg, false)
        }
    };
    let device = train::pick_device();
    let limit = cfg.budget_minutes(device);
    let budget = match (cfg.total_steps, limit.is_finite()) {
        (0, _) => format!("{limit:.1} min"),
        (n, false) => format!("{} env steps", trainer::progress::human(n)),
        (n, true) => format!(
            "{} env steps or {limit:.1} min",
            trainer::progress::human(n)
        ),
    };
    eprintln!(
        "training `{}` net on {:?} for {budget} into {}/",
        cfg.net,
        device,
        run_dir.display()
    );
    let trained = train::train(cfg, &run_dir, resume, &stop)?;
    eprintln!(
        "trained {} env steps, {} updates, {} episodes in {:.1} min; best eval mean {:.1}",
        trained.state.env_steps,
        trained.state.updates,
        trained.state.episodes,
        trained.state.elapsed_s / 60.0,
        trained.state.best_eval
    );
    if trained.reason == train::StopReason::Interrupted {
        eprintln!(
            "stopped; continue with: trainer train --resume {}",
            run_dir.display()
        );
        return Ok(());
    }
    if a.end.no_finish {
        return Ok(());
    }
    report::finish(
        &run_dir,
        &report::RunAbout::of_training(&trained),
        &a.end.options(quant::ExportOptions::default()),
    )?;
    Ok(())
}

fn cmd_distil(a: DistilArgs) -> Result<()> {
    use trainer::distil;
    a.hp.validate()?;
    a.end.validate()?;
    let stop = stop_on_ctrl_c("keeping the student as it is and stopping")?;
    let device = train::pick_device();
    let teacher = train::load_best(&a.teacher, device)
        .with_context(|| format!("loading the teacher {}", a.teacher.display()))?;
    let run_dir = a.runs_dir.join(a.name.clone().unwrap_or_else(timestamp));
    eprintln!(
        "distilling the `{}` teacher {} into a `{}` student on {device:?} into {}/",
        teacher.arch,
        a.teacher.display(),
        a.hp.net,
        run_dir.display()
    );
    let d = distil::distil(&a.hp, &teacher, &run_dir, a.end.record_frames, &stop)?;
    eprintln!(
        "distilled {} labelled states, {} updates in {:.1} min",
        d.states, d.updates, d.minutes
    );
    if d.interrupted || a.end.no_finish {
        return Ok(());
    }
    let about = distil::about(&d, &a.hp, &a.teacher);
    report::finish(&run_dir, &about, &a.end.options(d.export_options()))?;
    Ok(())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    if a.episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    let net = checkpoint::load_network(&a.checkpoint, train::pick_device())?;
    if a.deaths {
        let d = eval::deaths(&net, a.episodes, a.seed, a.max_score)?;
        if a.json {
            println!("{}", serde_json::to_string(&d)?);
        }
        for x in d.iter().filter(|_| !a.json) {
            let gaps = x.gap_y.map(|g| {
                format!(
                    ", gap {g}, before {:?}, next {:?}",
                    x.prev_gap_y, x.next_gap_y
                )
            });
            let (q, act) = (x.q, ["idle", "flap"][usize::from(x.action)]);
            let gaps = gaps.unwrap_or_default();
            println!(
                "seed {}: {} pipes, {}{gaps}; Q {q:.2?}, {act}",
                x.seed, x.score, x.obstacle
            );
        }
        return Ok(());
    }
    let r = eval::evaluate(&net, a.episodes, a.seed, a.max_score)?;
    if let Some(gif) = &a.gif {
        report::write_gif(&net, a.seed + r.best as u64, a.max_score, gif)?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} episodes (seeds {}..{}), cap {}: mean {:.2}, median {:.1}, min {}, max {}",
            r.episodes,
            a.seed,
            a.seed + a.episodes as u64,
            a.max_score,
            r.mean_score,
            r.median_score,
            r.min_score,
            r.max_score
        );
        println!("scores: {:?}", r.scores);
    }
    Ok(())
}

fn cmd_record(a: RecordArgs) -> Result<()> {
    if a.frames == 0 {
        bail!("--frames must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.eps) {
        bail!("--eps must be a probability in [0, 1], not {}", a.eps);
    }
    let net = checkpoint::load_network(&a.checkpoint, train::pick_device())?;
    let rec = report::record(&net, a.frames, a.seed, a.eps)?;
    rec.save(&a.out)?;
    println!(
        "recorded {} frame stacks (seed {}) into {}",
        rec.stacks.len(),
        a.seed,
        a.out.display()
    );
    Ok(())
}

fn cmd_export(a: ExportArgs) -> Result<()> {
    let format = match a.format.as_str() {
        "blob" => None,
        f => Some(f.parse::<interop::Format>()?),
    };
    if let Some(blob) = &a.blob {
        let Some(format) = format else {
            bail!("--blob converts a blob: give --format tflite or onnx");
        };
        println!("{}", interop::convert_file(blob, format, &a.out)?);
        return Ok(());
    }
    let (Some(ckpt), Some(calib)) = (&a.checkpoint, &a.calib) else {
        bail!("--checkpoint and --calib are needed (or --blob to convert a blob)");
    };
    let net = checkpoint::load_network(ckpt, tch::Device::Cpu)?;
    let rec = recording::Recording::load(calib)?;
    let opts = quant::ExportOptions {
        percentile: a.percentile,
        headroom: a.headroom,
        refit_last: !a.no_refit,
        act_steps: a.act_steps.clone(),
        ..quant::ExportOptions::default()
    };
    let blob_out = match format {
        None => a.out.clone(),
        Some(_) => a.out.with_extension("bin"),
    };
    let table = report::export_blob(&net, &rec, &opts, &blob_out)?;
    println!("{table}");
    if let Some(t) = &a.table {
        trainer::atomic::write_atomic(t, table.as_bytes())?;
    }
    println!("wrote {}", blob_out.display());
    if let Some(format) = format {
        println!("{}", interop::convert_file(&blob_out, format, &a.out)?);
    }
    Ok(())
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    let arch = a.net;
    let cfg = Config::default();
    let mut rows = vec![bench::measure(arch, tch::Device::Cpu, &cfg, a.seconds)?];
    if train::pick_device().is_cuda() {
        rows.push(bench::measure(arch, tch::Device::Cuda(0), &cfg, a.seconds)?);
    }
    println!("{}", bench::format_rows(&rows, tch::get_num_threads()));
    tch::manual_seed(0);
    let net = trainer::net::QNetwork::new(arch, tch::Device::Cpu);
    let model = net.to_float_model();
    let stacks = quant::float_model::played_stacks(64, 7);
    let exp = quant::export(&model, &stacks, &quant::ExportOptions::default())?;
    tch::set_num_threads(1);
    let lat = trainer::latency::compare_latency(&model, &exp.blob, &stacks, 200)?;
    println!("{}", lat.render());
    Ok(())
}

/// `YYYYMMDD-HHMMSS` (UTC) for default run names.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
