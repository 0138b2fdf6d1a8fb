//! The end of a run: final greedy evaluation, `best.gif`, a recording of the
//! states the agent meets, the quantized blob, and `report.md` tying them together.

use crate::atomic::write_atomic;
use crate::eval::{self, EvalResult};
use crate::net::QNetwork;
use crate::recording::Recording;
use crate::run_dir::load_best;
use crate::select::Selection;
use crate::train::Trained;
use anyhow::{Context, Result};
use flappy::render::{GifOptions, GifRecorder};
use flappy::FrameStack;
use std::path::Path;
use tch::Device;

/// Exploration used when recording at the end of a run.
pub const RECORD_EPS: f64 = 0.03;
/// Game seed of the end-of-run recording (`frames.rec`, for the parity check).
pub const RECORD_SEED: u64 = 424_242;
/// Game seed of the calibration recording (`calib.rec`, for the export): other
/// games than the parity recording's, so parity is measured on unseen states.
pub const CALIB_SEED: u64 = 100_000;
/// Most frames in a GIF (longer episodes are cut; every second state is kept).
pub const GIF_MAX_FRAMES: usize = 600;

/// What a report says of the run that made the network: its title, the
/// rows of its "Run" table (Markdown) and its config (TOML).
pub struct RunAbout {
    /// The report's title.
    pub title: String,
    /// Rows `| key | value |` of the run table.
    pub rows: String,
    /// The run's settings, as TOML.
    pub config_toml: String,
}

impl RunAbout {
    /// A DQN training run's figures.
    pub fn of_training(t: &Trained) -> RunAbout {
        let s = &t.state;
        let mut rows = String::new();
        rows.push_str(&format!("| network | `{}` |\n", s.config.net));
        rows.push_str(&format!("| environment steps | {} |\n", s.env_steps));
        rows.push_str(&format!("| gradient updates | {} |\n", s.updates));
        rows.push_str(&format!("| episodes | {} |\n", s.episodes));
        rows.push_str(&format!(
            "| training minutes | {:.1} |\n",
            s.elapsed_s / 60.0
        ));
        rows.push_str(&format!(
            "| best periodic eval mean | {:.2} |\n",
            s.best_eval
        ));
        if let Some(sel) = &t.selection {
            rows.push_str(&selection_row(sel));
        }
        if let Some(l) = t.metrics.rows.last() {
            rows.push_str(&format!(
                "| throughput (last interval) | {:.0} env steps/s, {:.1} updates/s |\n",
                l.env_steps_per_s, l.updates_per_s
            ));
        }
        RunAbout {
            title: "Training report".into(),
            rows,
            config_toml: s.config.to_toml(),
        }
    }
}

/// The run-table row of an end-of-run selection.
pub fn selection_row(sel: &Selection) -> String {
    format!(
        "| end-of-run selection ({} fresh games each) | {} |\n",
        sel.episodes,
        sel.summary()
    )
}

/// The games a run's final evaluation plays.
#[derive(
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum FinalGames {
    /// Test games (`flappy::seeds::TEST..`): a report; nothing is chosen on them.
    #[default]
    Test,
    /// Validation games (`flappy::seeds::TRIAL..`): a recipe trial, scored
    /// to choose between recipes; not a report.
    Validation,
}

impl FinalGames {
    /// The first game seed.
    ///
    /// ```
    /// use trainer::report::FinalGames;
    /// assert_eq!(FinalGames::Test.first_seed(), flappy::seeds::TEST);
    /// assert_eq!(FinalGames::Validation.first_seed(), flappy::seeds::TRIAL);
    /// ```
    pub fn first_seed(self) -> u64 {
        match self {
            FinalGames::Test => flappy::seeds::TEST,
            FinalGames::Validation => flappy::seeds::TRIAL,
        }
    }

    /// The seed set the games lie in.
    pub fn set(self) -> flappy::seeds::SeedSet {
        match self {
            FinalGames::Test => flappy::seeds::SeedSet::Test,
            FinalGames::Validation => flappy::seeds::SeedSet::Validation,
        }
    }

    /// Whether these are the test games (serde skips the field then, so the
    /// files written before trials existed keep their bytes).
    pub fn is_test(&self) -> bool {
        *self == FinalGames::Test
    }

    /// `test` or `validation`.
    pub fn word(self) -> &'static str {
        match self {
            FinalGames::Test => "test",
            FinalGames::Validation => "validation",
        }
    }

    /// `n` games of this set, in words: which seeds, and what they are for.
    pub fn describe(self, n: usize) -> String {
        match self {
            FinalGames::Test => format!(
                "{n} games on test seeds (`flappy::seeds::TEST` + 0..{n}, never used to choose anything)"
            ),
            FinalGames::Validation => format!(
                "{n} games on validation seeds (`flappy::seeds::TRIAL` + 0..{n}: a recipe trial, scored to choose on, not a report)"
            ),
        }
    }

    /// Refuses `n` games that would leave the set.
    pub fn check(self, n: usize) -> Result<()> {
        anyhow::ensure!(
            n >= 1 && flappy::seeds::range_in(self.first_seed(), n as u64, self.set()),
            "{} games must be in 1..={}",
            self.word(),
            flappy::seeds::TEST_LEN
        );
        Ok(())
    }
}

/// What the end of a run does: the final evaluation (on test games, or the
/// validation games of a recipe trial), the recordings and the export.
#[derive(Clone, Debug)]
pub struct FinishOptions {
    /// Games of the final greedy evaluation: seeds
    /// `games.first_seed()..+ episodes`.
    pub episodes: usize,
    /// Which games those are (test games unless a recipe trial).
    pub games: FinalGames,
    /// Score cap of those games (a game that reaches it counts as won).
    pub cap: u32,
    /// Frame stacks recorded for the parity check (`frames.rec`); twice as
    /// many calibrate the export (`calib.rec`).
    pub record_frames: usize,
    /// How the blob is made.
    pub export: crate::quant::ExportOptions,
}

impl Default for FinishOptions {
    fn default() -> Self {
        FinishOptions {
            episodes: 100,
            games: FinalGames::Test,
            cap: 1000,
            record_frames: 2000,
            export: crate::quant::ExportOptions::default(),
        }
    }
}

/// Runs the end-of-run pipeline for `run_dir` (its `best.safetensors`) and
/// returns the final evaluation (test seeds).
pub fn finish(run_dir: &Path, about: &RunAbout, o: &FinishOptions) -> Result<EvalResult> {
    let (episodes, cap, record_frames, opts) = (o.episodes, o.cap, o.record_frames, &o.export);
    anyhow::ensure!(episodes >= 1, "the final evaluation needs at least 1 game");
    anyhow::ensure!(
        cap >= 1,
        "the final evaluation's score cap must be at least 1"
    );
    let games = o.games;
    games.check(episodes)?;
    let first = games.first_seed();
    let device = crate::device::pick_device();
    let net = load_best(run_dir, device)?;
    eprintln!(
        "final evaluation: {} greedy games, capped at {cap} pipes",
        games.describe(episodes)
    );
    let r = eval::evaluate(&net, episodes, first, cap)?;
    let gif = run_dir.join("best.gif");
    write_gif(&net, first + r.best as u64, cap, &gif)?;
    let rec = record(&net, record_frames, RECORD_SEED, RECORD_EPS)?;
    let rec_path = run_dir.join("frames.rec");
    rec.save(&rec_path)?;
    let calib = calibration(&net, record_frames)?;
    calib.save(&run_dir.join("calib.rec"))?;
    let cpu_net = load_best(run_dir, Device::Cpu)?;
    let blob_path = run_dir.join("policy.bin");
    let table = export_blob(&cpu_net, &calib, opts, &blob_path)?;
    let md = render(about, &r, games, cap, &table, calib.stacks.len());
    write_atomic(&run_dir.join("report.md"), md.as_bytes())?;
    println!(
        "final greedy score over {} episodes: mean {:.2}, median {:.1}, max {} (cap {cap})",
        r.episodes, r.mean_score, r.median_score, r.max_score
    );
    println!("{table}");
    write_atomic(
        &run_dir.join(FINAL_EVAL_FILE),
        serde_json::to_string_pretty(&FinalEval::of(&r, first, cap))?.as_bytes(),
    )?;
    println!(
        "wrote {}/{{report.md, {FINAL_EVAL_FILE}, curve.png, best.gif, frames.rec, calib.rec, policy.bin, best.safetensors}}",
        run_dir.display()
    );
    Ok(r)
}

/// The file in a run folder holding its final evaluation ([`FinalEval`]).
pub const FINAL_EVAL_FILE: &str = "final-eval.json";

/// The final evaluation as the run folder keeps it (`final-eval.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct FinalEval {
    /// First game seed (the first test seed, or `flappy::seeds::TRIAL` for a
    /// recipe trial).
    pub first_seed: u64,
    /// Score cap.
    pub cap: u32,
    /// Mean score.
    pub mean: f64,
    /// Median score.
    pub median: f64,
    /// Games that reached the cap.
    pub at_cap: usize,
    /// Every game's score, game `first_seed + i` at `i`.
    pub scores: Vec<u32>,
}

impl FinalEval {
    /// The file's content for evaluation `r` of the games from `first_seed`
    /// capped at `cap`.
    pub fn of(r: &EvalResult, first_seed: u64, cap: u32) -> FinalEval {
        FinalEval {
            first_seed,
            cap,
            mean: r.mean_score,
            median: r.median_score,
            at_cap: r.scores.iter().filter(|&&s| s >= cap).count(),
            scores: r.scores.clone(),
        }
    }
}

/// The report's Markdown.
pub fn render(
    about: &RunAbout,
    r: &EvalResult,
    games: FinalGames,
    cap: u32,
    table: &str,
    recorded: usize,
) -> String {
    let mut md = format!(
        "# {}\n\n![learning curve](curve.png)\n\n![best episode](best.gif)\n\n",
        about.title
    );
    md.push_str("## Run\n\n| | |\n|---|---|\n");
    md.push_str(&about.rows);
    md.push_str(&format!(
        "\n## Greedy evaluation of the selected network\n\n{}, capped at {cap} pipes.\n\n",
        games.describe(r.episodes)
    ));
    md.push_str("| mean | median | max | games at the cap |\n|---:|---:|---:|---:|\n");
    md.push_str(&format!(
        "| {:.2} | {:.1} | {} | {} |\n\nScores by seed: {:?}\n",
        r.mean_score,
        r.median_score,
        r.max_score,
        r.scores.iter().filter(|&&s| s >= cap).count(),
        r.scores
    ));
    md.push_str(&format!(
        "\n## Quantized export\n\nCalibrated on {recorded} recorded frame stacks (`calib.rec`, game seeds {CALIB_SEED}..; the parity recording `frames.rec` uses other games); blob `policy.bin`.\n\n{table}\n"
    ));
    md.push_str(&format!(
        "\n## Config\n\n```toml\n{}```\n",
        about.config_toml
    ));
    md
}

/// Writes an animated GIF of one greedy episode of game seed `seed`.
pub fn write_gif(net: &QNetwork, seed: u64, cap: u32, path: &Path) -> Result<()> {
    let states = eval::episode_games(net, seed, cap, 2 * GIF_MAX_FRAMES)?;
    let opts = GifOptions {
        stride: 2,
        half: true,
        max_frames: GIF_MAX_FRAMES as u32,
        delay_cs: 0,
    };
    crate::atomic::write_atomic_with(path, |tmp| {
        let mut gif = GifRecorder::create(tmp, opts)
            .with_context(|| format!("creating {}", tmp.display()))?;
        for s in &states {
            gif.push(s)?;
        }
        gif.finish()
            .with_context(|| format!("writing {}", tmp.display()))?;
        Ok(())
    })
}

/// The recording the end of a run calibrates its export on (`calib.rec`):
/// twice `record_frames` stacks from `net`'s own play, games `CALIB_SEED..`.
pub fn calibration(net: &QNetwork, record_frames: usize) -> Result<Recording> {
    record(net, 2 * record_frames, CALIB_SEED, RECORD_EPS)
}

/// The int8 blob the end of a run ([`finish`] with the default
/// [`FinishOptions`]) exports when `net` is the network it ships:
/// calibrated on the network's own play ([`calibration`]), with the
/// default export options (`threads` only speeds the calibration).
pub fn default_blob(net: &QNetwork, threads: usize) -> Result<Vec<u8>> {
    let o = FinishOptions::default();
    let calib = calibration(net, o.record_frames)?;
    let opts = crate::quant::ExportOptions {
        threads,
        ..o.export
    };
    Ok(crate::quant::export::export(&net.to_float_model(), &calib.stacks, &opts)?.blob)
}

/// Records `frames` frame stacks met while playing with exploration `eps`
/// (four games at a time, seeds `seed..`).
pub fn record(net: &QNetwork, frames: usize, seed: u64, eps: f64) -> Result<Recording> {
    let mut stacks = Vec::with_capacity(frames);
    let mut next_seed = seed;
    while stacks.len() < frames {
        let mut keep = |_: usize, s: &FrameStack| {
            if stacks.len() < frames {
                stacks.push(*s);
            }
            stacks.len() < frames
        };
        eval::play(net, 4, next_seed, 1_000_000, eps, 0.15, &mut keep)?;
        next_seed += 4;
    }
    Ok(Recording { seed, stacks })
}

/// Quantizes `net` calibrated on `rec`, writes the blob to `out` and returns
/// the per-layer table as Markdown.
pub fn export_blob(
    net: &QNetwork,
    rec: &Recording,
    opts: &crate::quant::ExportOptions,
    out: &Path,
) -> Result<String> {
    let model = net.to_float_model();
    let e = crate::quant::export::export_to_file(&model, &rec.stacks, opts, out)?;
    Ok(e.render_table())
}
