//! Host simulator: plays the integer policy of a blob against the game with
//! the device loop ([`firmware_sim::run_episodes`]), reports scores, latency
//! and memory, and prints the checksum the Cortex-M4 image must reproduce.
use clap::Parser;
use firmware_sim::{
    random_blob, run_episodes, Episode, Frame, FrameStack, Game, Observer, Plan, Policy,
    NUM_ACTIONS,
};
use flappy::render::{GifOptions, GifRecorder};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Plays a quantized policy blob against Flappy Bird with the integer-only
/// firmware loop, on the host.
///
/// Episode i plays the game seeded with SEED + i and ends at the first crash,
/// at MAX_SCORE, or after MAX_STEPS decisions. The checksum is FNV-1a 64 over
/// the little-endian bytes of every i32 Q-value, in order, printed as 16 hex
/// digits; the Cortex-M4 image (`make mcu`) must print the same.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Policy blob (from `trainer export`).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "write_random_blob"
    )]
    blob: Option<PathBuf>,
    /// Episodes to play.
    #[arg(long, default_value_t = 10)]
    episodes: u32,
    /// Seed of episode 0 (episode i uses SEED + i): a number, `test` (the
    /// first test seed: games to report scores on) or `validation`.
    #[arg(long, default_value = "0", value_parser = parse_seed)]
    seed: u64,
    /// An episode stops once its score reaches this.
    #[arg(long, default_value_t = 1000)]
    max_score: u32,
    /// An episode stops after this many decisions.
    #[arg(long, default_value_t = Plan::DEFAULT_MAX_STEPS)]
    max_steps: u32,
    /// Record the first episode as an animated GIF (flappy's renderer: every
    /// 2nd frame, half size, at most 900 frames).
    #[arg(long, value_name = "FILE")]
    gif: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    /// Run the first conv through the gather kernel instead of its nibble
    /// table (policy-core's conv1_table, which the Cortex-M4 image keeps in
    /// flash). The Q-values, and so the checksum, are the same either way.
    #[arg(long)]
    no_table: bool,
    /// Write a blob with random weights (architecture --net, seeded by
    /// --seed) to FILE and exit (a stand-in for a trained blob).
    #[arg(long, value_name = "FILE", conflicts_with = "blob")]
    write_random_blob: Option<PathBuf>,
    /// The architecture of --write-random-blob.
    #[arg(long, value_name = "NAME", default_value = "classic", value_parser = net_arg())]
    net: netspec::Arch,
}

/// A game seed: a number, `test` or `validation` (`flappy::seeds`).
fn parse_seed(s: &str) -> Result<u64, String> {
    flappy::seeds::parse(s).map_err(|e| e.to_string())
}

/// A `netspec` architecture by name (`FromStr`), the names listed in `--help`.
fn net_arg() -> impl clap::builder::TypedValueParser<Value = netspec::Arch> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(netspec::ALL.iter().map(|a| a.name))
        .try_map(|name| name.parse::<netspec::Arch>())
}

/// Decision timing, scores and the GIF of the first episode.
struct HostObserver {
    t0: Option<Instant>,
    busy: Duration,
    scores: Vec<u32>,
    gif: Option<GifRecorder>,
    gif_error: Option<std::io::Error>,
}

impl Observer<Game> for HostObserver {
    fn before_decision(&mut self) {
        self.t0 = Some(Instant::now());
    }
    fn after_decision(&mut self, _q: &[i32; NUM_ACTIONS], _action: usize) {
        if let Some(t0) = self.t0.take() {
            self.busy += t0.elapsed();
        }
    }
    fn frame(&mut self, env: &Game) {
        if !self.scores.is_empty() || self.gif_error.is_some() {
            return;
        }
        if let Some(gif) = &mut self.gif {
            if let Err(e) = gif.push(&env.state()) {
                self.gif_error = Some(e);
            }
        }
    }
    fn episode_end(&mut self, e: &Episode) {
        self.scores.push(e.score);
    }
}

/// The `--json` object (its keys print sorted).
#[derive(serde::Serialize)]
struct Report<'a> {
    episodes: u32,
    seed: u64,
    max_score: u32,
    scores: &'a [u32],
    mean_score: f64,
    median_score: f64,
    best_score: u32,
    decisions: u64,
    latency_ns_per_decision: f64,
    policy_state_bytes: usize,
    frame_buffers_bytes: usize,
    game_state_bytes: usize,
    blob_bytes: usize,
    conv1_table_bytes: usize,
    peak_ram_bytes: usize,
    checksum: &'a str,
}

fn run(args: Args) -> Result<(), String> {
    if let Some(out) = &args.write_random_blob {
        let blob = random_blob::of(&args.net, args.seed);
        return std::fs::write(out, &blob)
            .map_err(|e| format!("cannot write {}: {e}", out.display()));
    }
    let path = args.blob.as_ref().ok_or("--blob is required")?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // The first conv's nibble table, as the Cortex-M4 image has it in flash
    // (built from a first parse of the blob, so that it outlives the policy).
    let table = if args.no_table {
        Vec::new()
    } else {
        let probe =
            Policy::from_blob(&bytes).map_err(|e| format!("bad blob {}: {e}", path.display()))?;
        let mut t = vec![0u32; probe.conv1_table_len().unwrap_or(0)];
        if !t.is_empty() {
            probe
                .write_conv1_table(&mut t)
                .map_err(|e| format!("conv1 table: {e}"))?;
        }
        t
    };
    let mut policy =
        Policy::from_blob(&bytes).map_err(|e| format!("bad blob {}: {e}", path.display()))?;
    if !table.is_empty() {
        policy
            .attach_conv1_table(&table)
            .map_err(|e| format!("conv1 table: {e}"))?;
    }
    let plan = Plan {
        base_seed: args.seed,
        episodes: args.episodes,
        max_score: args.max_score,
        max_steps: args.max_steps,
    };
    let gif = match &args.gif {
        Some(p) => Some(
            GifRecorder::create(p, GifOptions::default())
                .map_err(|e| format!("cannot write {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let mut obs = HostObserver {
        t0: None,
        busy: Duration::ZERO,
        scores: Vec::new(),
        gif,
        gif_error: None,
    };
    let sum = run_episodes::<Game, _, _>(&mut policy, &plan, &mut obs)
        .map_err(|e| format!("game error: {e:?}"))?;
    if let (Some(p), Some(gif)) = (&args.gif, obs.gif.take()) {
        let res = match obs.gif_error.take() {
            Some(e) => Err(e),
            None => gif.finish(),
        };
        res.map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }

    let mut sorted = obs.scores.clone();
    sorted.sort_unstable();
    let mean = sum.total_score as f64 / sum.episodes.max(1) as f64;
    let med = flappy::scores::median(&sorted);
    let latency_ns = obs.busy.as_nanos() as f64 / sum.decisions.max(1) as f64;
    let policy_bytes = std::mem::size_of::<Policy>();
    let buffers = std::mem::size_of::<FrameStack>() + std::mem::size_of::<Frame>();
    let game_bytes = std::mem::size_of::<Game>();
    let checksum = format!("{:016x}", sum.checksum);
    if args.json {
        let j = Report {
            episodes: sum.episodes,
            seed: args.seed,
            max_score: args.max_score,
            scores: &obs.scores,
            mean_score: mean,
            median_score: med,
            best_score: sum.max_score,
            decisions: sum.decisions,
            latency_ns_per_decision: latency_ns,
            policy_state_bytes: policy_bytes,
            frame_buffers_bytes: buffers,
            game_state_bytes: game_bytes,
            blob_bytes: bytes.len(),
            conv1_table_bytes: 4 * table.len(),
            peak_ram_bytes: policy_core::PEAK_RAM_BYTES,
            checksum: &checksum,
        };
        let j = serde_json::to_value(&j).map_err(|e| e.to_string())?;
        println!("{j}");
    } else {
        println!(
            "episodes {}  seeds {}..{}  max score {}",
            sum.episodes,
            args.seed,
            plan.seed(sum.episodes.saturating_sub(1)),
            args.max_score
        );
        println!(
            "score    mean {mean:.2}  median {med}  max {}",
            sum.max_score
        );
        println!(
            "decisions {}  host latency {:.1} us/decision (mean)",
            sum.decisions,
            latency_ns / 1e3
        );
        println!(
            "memory   policy state {policy_bytes} B + frame stack/frame {buffers} B + game {game_bytes} B = {} B static; blob {} B; conv1 table {} B{}",
            policy_bytes + buffers + game_bytes,
            bytes.len(),
            4 * table.len(),
            if table.is_empty() { " (gather kernel)" } else { "" }
        );
        println!("checksum {checksum}  (FNV-1a 64 over all i32 Q-values, LE)");
    }
    Ok(())
}

fn main() -> ExitCode {
    firmware_sim::exit_code(run(Args::parse()))
}
