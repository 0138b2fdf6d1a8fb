//! One seed of a study, from nothing (or from where it stopped) to its
//! [`SeedResult`].
//!
//! A seed's folder is `<runs>/study-<name>/seed-<s>/`, an ordinary run
//! folder. Its `study-seed.json` says the seed is done; a folder without it
//! is continued: a training run from its last checkpoint with the budget it
//! had left (`trainer train --resume`), a distillation from the start (it
//! keeps no checkpoint; it takes about 20 minutes).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use trainer::config::Config;
use trainer::distil::{self, DistilConfig};
use trainer::metrics::Metrics;
use trainer::report::{self, FinalGames, FinishOptions, RunAbout};
use trainer::{checkpoint, train};

/// The file in a seed's folder that says it is done.
pub const SEED_FILE: &str = "study-seed.json";

/// What each seed runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Kind {
    /// `trainer train` with its defaults and `--seed s` (what `make train`
    /// runs), optionally with another time budget (tests) or, for a recipe
    /// trial, other settings.
    Train {
        /// Minutes of training (None: the default budget).
        minutes: Option<f64>,
        /// The settings that differ from the defaults, as TOML (empty: the
        /// default recipe); see [`recipe_of`].
        #[serde(default, skip_serializing_if = "String::is_empty")]
        recipe: String,
    },
    /// `trainer distil` with its defaults, the teacher and `--seed s`
    /// (what `make tiny` runs), optionally with fewer updates (tests) or,
    /// for a recipe trial, other settings.
    Distil {
        /// The teacher's folder or weights.
        teacher: PathBuf,
        /// Gradient updates (None: the default).
        total_updates: Option<u64>,
        /// The settings that differ from the defaults, as TOML (empty: the
        /// default recipe); see [`distil_recipe_of`].
        #[serde(default, skip_serializing_if = "String::is_empty")]
        recipe: String,
    },
}

/// A study's settings.
#[derive(Clone, Debug)]
pub struct StudyPlan {
    /// The study's name: runs in `<runs_dir>/study-<name>/`, results in
    /// `<out_dir>/study-<name>.*`.
    pub name: String,
    /// What each seed runs.
    pub kind: Kind,
    /// Training seeds, one run each.
    pub seeds: Vec<u64>,
    /// Scored games per run (seeds `games.first_seed()..`).
    pub test_games: usize,
    /// Which games score the runs: test games (a study), or validation
    /// games (a recipe trial).
    pub games: FinalGames,
    /// Score cap of a scored game.
    pub cap: u32,
    /// Folder of the run folders.
    pub runs_dir: PathBuf,
    /// Threads that play the int8 games.
    pub threads: usize,
}

impl StudyPlan {
    /// The folder of seed `s`'s run.
    pub fn seed_dir(&self, s: u64) -> PathBuf {
        self.folder().join(format!("seed-{s}"))
    }

    /// The study's folder: `<runs>/study-<name>/`, or `<runs>/trial-<name>/`
    /// for a recipe trial.
    pub fn folder(&self) -> PathBuf {
        self.runs_dir
            .join(format!("{}-{}", stem(self.games), self.name))
    }

    /// Refuses a plan that cannot run or whose scored games leave their set.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(!self.seeds.is_empty(), "a study needs at least one seed");
        anyhow::ensure!(self.cap >= 1, "the score cap must be at least 1");
        self.games.check(self.test_games)?;
        let mut sorted = self.seeds.clone();
        sorted.sort_unstable();
        sorted.dedup();
        anyhow::ensure!(sorted.len() == self.seeds.len(), "a seed is listed twice");
        anyhow::ensure!(
            self.seeds.iter().all(|&s| s < trainer::config::MAX_SEED),
            "training seeds must be below 2^24"
        );
        anyhow::ensure!(
            !self.name.is_empty()
                && self
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "a study name is letters, digits, - and _"
        );
        Ok(())
    }

    /// What the plan's runs are made with.
    pub fn record(&self) -> PlanRecord {
        PlanRecord {
            kind: self.kind.clone(),
            test_games: self.test_games,
            games: self.games,
            cap: self.cap,
        }
    }

    /// Every setting a seed of this plan runs with, as canonical TOML (see
    /// [`settings_of`]): the defaults of the code that runs it, the recipe
    /// and the plan's budget.
    pub fn settings(&self) -> Result<String> {
        canonical(match &self.kind {
            Kind::Train { minutes, recipe } => {
                toml::Table::try_from(train_config(recipe, *minutes, 0)?)?
            }
            Kind::Distil {
                total_updates,
                recipe,
                ..
            } => toml::Table::try_from(distil_config(recipe, *total_updates, 0)?)?,
        })
    }

    /// Refuses a seed that ran with other settings than this plan's
    /// ([`StudyPlan::settings`]): a default changed since it ran, say. A
    /// seed whose settings were not kept (results written before they
    /// were) is let through only when `unknown_ok`.
    pub fn check_settings(&self, r: &SeedResult, unknown_ok: bool) -> Result<()> {
        let settings = self.settings()?;
        if r.settings.is_empty() {
            anyhow::ensure!(
                unknown_ok,
                "seed {} was reported before studies kept each seed's settings, so \
                 nothing tells whether a default has changed since: run new seeds \
                 under another --name",
                r.seed
            );
            return Ok(());
        }
        anyhow::ensure!(
            r.settings == settings,
            "seed {} ran with other settings than this study's seeds would (a default \
             changed since?): use another --name\n  it ran: {}\n  now:    {}",
            r.seed,
            differing(&r.settings, &settings, true),
            differing(&r.settings, &settings, false)
        );
        Ok(())
    }

    /// The file in the study's folder that names what its seeds run.
    pub fn plan_file(&self) -> PathBuf {
        self.folder().join(PLAN_FILE)
    }

    /// Makes sure the study's folder holds runs of this plan: writes what
    /// its seeds run (the kind, teacher included, the test games, the cap)
    /// on the first call, and refuses a plan that differs from the one
    /// written, so that a study never mixes runs of two recipes or two
    /// teachers under one name. A recipe is kept as its changes from the
    /// defaults of the code that runs it, so a study of changed defaults
    /// takes a new name (`make tiny-study`'s did); each seed's result keeps
    /// every setting it ran with, and a study refuses to mix seeds whose
    /// settings differ ([`StudyPlan::check_settings`]).
    pub fn claim_folder(&self) -> Result<()> {
        let path = self.plan_file();
        let mine = self.record();
        if path.is_file() {
            return mine.same_as(&read_json(&path, "a study plan")?, &path);
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = serde_json::to_string_pretty(&mine)?;
        trainer::atomic::write_atomic(&path, text.as_bytes())
    }
}

/// The file in `<runs>/study-<name>/` that names what the study's seeds run.
pub const PLAN_FILE: &str = "study-plan.json";

/// What a study's runs are made with: a study folder's `study-plan.json`
/// ([`StudyPlan::claim_folder`]), and the settings a results file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// What each seed runs, the teacher included.
    pub kind: Kind,
    /// Scored games per run.
    pub test_games: usize,
    /// Which games (test, unless a recipe trial).
    #[serde(default, skip_serializing_if = "FinalGames::is_test")]
    pub games: FinalGames,
    /// Score cap of a scored game.
    pub cap: u32,
}

/// How a study's files begin: `study` (scored on test games) or `trial`
/// (a recipe trial, scored on validation games).
pub fn stem(games: FinalGames) -> &'static str {
    match games {
        FinalGames::Test => "study",
        FinalGames::Validation => "trial",
    }
}

/// A recipe file's settings that differ from the defaults, as canonical
/// TOML (keys sorted; empty when it changes nothing). The file holds
/// `trainer train` settings as `config.toml` names them; unknown keys,
/// values out of range and `seed` (the study sets it) are refused.
///
/// ```
/// let r = study::seed_run::recipe_of("policy_ema = 3e-5\ngamma = 0.99\n").unwrap();
/// assert_eq!(r, "policy_ema = 0.00003\n");
/// assert!(study::seed_run::recipe_of("seed = 3").is_err());
/// assert!(study::seed_run::recipe_of("no_such_setting = 1").is_err());
/// ```
pub fn recipe_of(text: &str) -> Result<String> {
    changes_of(text, Config::from_toml)
}

/// The same for a distillation recipe: `trainer distil` settings as
/// `distil.toml` names them.
///
/// ```
/// let r = study::seed_run::distil_recipe_of("int8_frac = 0.5\nlr = 1e-3\n").unwrap();
/// assert_eq!(r, "int8_frac = 0.5\n");
/// assert!(study::seed_run::distil_recipe_of("seed = 3").is_err());
/// assert!(study::seed_run::distil_recipe_of("total_steps = 1").is_err());
/// ```
pub fn distil_recipe_of(text: &str) -> Result<String> {
    changes_of(text, DistilConfig::from_toml)
}

/// The keys of `text`, parsed by `parse`, whose values differ from
/// `T::default()`'s, as TOML.
fn changes_of<T: Serialize + Default>(text: &str, parse: fn(&str) -> Result<T>) -> Result<String> {
    let table: toml::Table = toml::from_str(text).context("a recipe is TOML")?;
    anyhow::ensure!(
        !table.contains_key("seed"),
        "a recipe does not set `seed`: the study gives each run its seed"
    );
    let (mine, base) = (
        toml::Table::try_from(parse(text)?)?,
        toml::Table::try_from(T::default())?,
    );
    let changed: toml::Table = mine
        .into_iter()
        .filter(|(k, v)| base.get(k) != Some(v))
        .collect();
    Ok(toml::to_string(&changed)?)
}

impl PlanRecord {
    /// Refuses `theirs`, read from `path`, when it is another plan.
    pub fn same_as(&self, theirs: &PlanRecord, path: &Path) -> Result<()> {
        anyhow::ensure!(
            theirs == self,
            "{} holds runs of another plan ({theirs:?}); this study asks for {self:?}: \
             use another --name",
            path.display()
        );
        Ok(())
    }
}

/// A run's settings file (`config.toml` of a training run, `distil.toml`
/// of a distillation; `kind` says which) as canonical TOML: every setting,
/// keys sorted, less `seed` and `threads` (which differ between a study's
/// seeds without changing its recipe).
///
/// ```
/// use study::seed_run::{settings_of, Kind};
/// let kind = Kind::Distil { teacher: "t".into(), total_updates: None, recipe: String::new() };
/// let a = settings_of(&kind, "seed = 1\nthreads = 1\n").unwrap();
/// assert_eq!(a, settings_of(&kind, "seed = 2\n").unwrap());
/// assert_ne!(a, settings_of(&kind, "adv_clip = 0.0\n").unwrap());
/// assert!(a.contains("adv_clip = "));
/// ```
pub fn settings_of(kind: &Kind, text: &str) -> Result<String> {
    canonical(match kind {
        Kind::Train { .. } => toml::Table::try_from(Config::from_toml(text)?)?,
        Kind::Distil { .. } => toml::Table::try_from(DistilConfig::from_toml(text)?)?,
    })
}

/// The settings of the run folder `dir` of `kind` ([`settings_of`] of its
/// `config.toml` or `distil.toml`).
fn folder_settings(kind: &Kind, dir: &Path) -> Result<String> {
    let file = dir.join(match kind {
        Kind::Train { .. } => "config.toml",
        Kind::Distil { .. } => "distil.toml",
    });
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    settings_of(kind, &text).with_context(|| format!("in {}", file.display()))
}

/// What a training seed `s` of a plan runs: its recipe, its budget.
fn train_config(recipe: &str, minutes: Option<f64>, s: u64) -> Result<Config> {
    let mut cfg = Config {
        seed: s,
        ..Config::from_toml(recipe)?
    };
    if let Some(m) = minutes {
        cfg.minutes = m;
    }
    Ok(cfg)
}

/// What a distillation seed `s` of a plan runs: its recipe, its updates.
fn distil_config(recipe: &str, total_updates: Option<u64>, s: u64) -> Result<DistilConfig> {
    let mut hp = DistilConfig {
        seed: s,
        ..DistilConfig::from_toml(recipe)?
    };
    if let Some(u) = total_updates {
        hp.total_updates = u;
    }
    Ok(hp)
}

fn canonical(mut table: toml::Table) -> Result<String> {
    table.remove("seed");
    table.remove("threads");
    // toml::Table is a BTreeMap: the keys come out sorted.
    Ok(toml::to_string(&table)?)
}

/// The lines of `a` (`mine`) or `b` (else) that the other lacks, on one line.
fn differing(a: &str, b: &str, mine: bool) -> String {
    let (x, y) = if mine { (a, b) } else { (b, a) };
    let other: Vec<&str> = y.lines().collect();
    let lines: Vec<&str> = x.lines().filter(|l| !other.contains(l)).collect();
    lines.join(", ")
}

/// The JSON file at `path` (`what` names it in the error).
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", path.display()))
}

/// A score list with its summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean score.
    #[serde(deserialize_with = "parity::f64_or_nan")]
    pub mean: f64,
    /// Median score.
    #[serde(deserialize_with = "parity::f64_or_nan")]
    pub median: f64,
    /// Games that reached the cap.
    pub at_cap: usize,
    /// Game `first + i`'s score at `i` (`first`: the study's first scored game).
    pub scores: Vec<u32>,
}

impl Scores {
    /// The summary of `scores` under `cap`.
    pub fn of(scores: Vec<u32>, cap: u32) -> Scores {
        let f: Vec<f64> = scores.iter().map(|&s| s as f64).collect();
        Scores {
            mean: crate::stats::mean(&f),
            median: crate::stats::median(&f),
            at_cap: scores.iter().filter(|&&s| s >= cap).count(),
            scores,
        }
    }

    /// The scores as floats.
    pub fn values(&self) -> Vec<f64> {
        self.scores.iter().map(|&s| s as f64).collect()
    }
}

/// One periodic validation evaluation during the run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Training minutes (the clock of the budget).
    pub minutes: f64,
    /// Environment steps when it was made (absent in results written
    /// before 2026-12-07's evening, which plot against minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Median of its games.
    pub median: f64,
    /// Mean of its games.
    pub mean: f64,
}

/// The parity of the blob with its float network on the run's recorded frames.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameAgreement {
    /// Frame stacks compared.
    pub frames: usize,
    /// Action agreement on all of them.
    pub all: f64,
    /// Agreement off near-ties (a diagnostic).
    pub non_tie: f64,
    /// Largest |Q error| as a fraction of the Q range.
    pub max_q_err_rel: f64,
}

/// What one seed's run came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedResult {
    /// The training seed.
    pub seed: u64,
    /// The shipped float network on the test games.
    pub float: Scores,
    /// Its int8 blob in the firmware loop on the same games.
    pub int8: Scores,
    /// int8 against float, paired by game.
    pub paired: parity::Paired,
    /// Training minutes to the first periodic validation evaluation whose
    /// median reached the cap (None: never).
    pub minutes_to_cap: Option<f64>,
    /// The periodic validation evaluations.
    pub curve: Vec<CurvePoint>,
    /// Environment steps (training) or labelled states (distillation).
    pub steps: u64,
    /// Gradient updates.
    pub updates: u64,
    /// Minutes of the budget used.
    pub minutes: f64,
    /// The end-of-run selection, in words.
    pub selection: Option<String>,
    /// Parity on recorded frames.
    pub frames: FrameAgreement,
    /// The CPU the run finished on ([`cpu_name`]; empty in results written
    /// before it was kept). Runs of one seed on two CPUs part, so recipe
    /// trials pair their arms seed by seed only on one CPU.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpu: String,
    /// Every setting the run used ([`settings_of`] of its settings file;
    /// empty in results written before they were kept), so that a study
    /// does not mix seeds of two recipes when a default changes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub settings: String,
}

/// This machine's CPU: its `model name` in `/proc/cpuinfo`, with
/// ` +avx512` where it has AVX-512F (one of the features libtorch picks
/// its float kernels by); empty where the file does not say.
///
/// ```
/// let cpu = study::seed_run::cpu_name();
/// assert!(!cpu.contains('\n'));
/// ```
pub fn cpu_name() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return String::new();
    };
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let Some(model) = field("model name") else {
        return String::new();
    };
    let avx512 = field("flags").is_some_and(|f| f.split_whitespace().any(|x| x == "avx512f"));
    if avx512 {
        format!("{model} +avx512")
    } else {
        model
    }
}

/// The curve and the first time its median reached `cap`.
pub fn curve_of(m: &Metrics, cap: u32) -> (Vec<CurvePoint>, Option<f64>) {
    let curve: Vec<CurvePoint> = m
        .eval_rows()
        .map(|(r, e)| CurvePoint {
            minutes: r.minutes,
            steps: Some(r.step),
            median: e.median,
            mean: e.mean,
        })
        .collect();
    let first = curve
        .iter()
        .find(|p| p.median >= cap as f64)
        .map(|p| p.minutes);
    (curve, first)
}

/// Seed `s`'s result when its run folder holds one (written when the seed
/// finished), checked against `plan`: the seed, the number of scored games
/// and every setting; `Ok(None)` when it has not finished.
pub fn finished(plan: &StudyPlan, s: u64) -> Result<Option<SeedResult>> {
    let dir = plan.seed_dir(s);
    let done = dir.join(SEED_FILE);
    if !done.is_file() {
        return Ok(None);
    }
    let mut r: SeedResult = read_json(&done, "a seed result")?;
    anyhow::ensure!(
        r.seed == s && r.float.scores.len() == plan.test_games,
        "{} holds seed {} with {} test games; this study asks for seed {s} with {}: \
         use another --name",
        done.display(),
        r.seed,
        r.float.scores.len(),
        plan.test_games
    );
    if r.settings.is_empty() {
        // Finished before results kept their settings: its folder has them.
        r.settings = folder_settings(&plan.kind, &dir)?;
    }
    plan.check_settings(&r, false)
        .with_context(|| format!("in {}", done.display()))?;
    Ok(Some(r))
}

/// Runs seed `s` of `plan` to its end, or loads its result when it is
/// done ([`finished`]). `Ok(None)`: stopped by `stop` (Ctrl-C) before the
/// end.
pub fn run_seed(plan: &StudyPlan, s: u64, stop: &AtomicBool) -> Result<Option<SeedResult>> {
    if let Some(r) = finished(plan, s)? {
        eprintln!(
            "seed {s}: done before ({})",
            plan.seed_dir(s).join(SEED_FILE).display()
        );
        return Ok(Some(r));
    }
    let dir = plan.seed_dir(s);
    let finish = FinishOptions {
        episodes: plan.test_games,
        games: plan.games,
        cap: plan.cap,
        ..FinishOptions::default()
    };
    let (float, steps, updates, minutes, selection) = match &plan.kind {
        Kind::Train { minutes, recipe } => {
            let resume = checkpoint::resolve(&dir).is_ok();
            let cfg = if resume {
                let mut cfg = checkpoint::load_config(&dir)?;
                if let Some(m) = minutes {
                    cfg.minutes = *m;
                }
                cfg
            } else {
                train_config(recipe, *minutes, s)?
            };
            eprintln!(
                "seed {s}: {} {}",
                if resume { "continuing" } else { "training" },
                dir.display()
            );
            let t = train::train(cfg, &dir, resume, stop)?;
            if t.reason == train::StopReason::Interrupted {
                return Ok(None);
            }
            let about = RunAbout::of_training(&t);
            let r = report::finish(&dir, &about, &finish)?;
            let sel = t.selection.as_ref().map(|x| x.summary());
            (
                r,
                t.state.env_steps,
                t.state.updates,
                t.state.elapsed_s / 60.0,
                sel,
            )
        }
        Kind::Distil {
            teacher,
            total_updates,
            recipe,
        } => {
            if dir.exists() {
                eprintln!("seed {s}: an unfinished distillation; starting it again");
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
            let hp = distil_config(recipe, *total_updates, s)?;
            let device = train::pick_device();
            let teacher = &teacher_of_seed(teacher, s);
            let t = train::load_best(teacher, device)
                .with_context(|| format!("loading the teacher {}", teacher.display()))?;
            eprintln!("seed {s}: distilling into {}", dir.display());
            let d = distil::distil(&hp, &t, &dir, finish.record_frames, stop)?;
            if d.interrupted {
                return Ok(None);
            }
            let about = distil::about(&d, &hp, teacher);
            let opts = FinishOptions {
                export: d.export_options(),
                ..finish.clone()
            };
            let r = report::finish(&dir, &about, &opts)?;
            let sel = d.selection.as_ref().map(|x| x.summary());
            (r, d.states, d.updates, d.minutes, sel)
        }
    };
    let result = score_run(
        plan,
        s,
        &dir,
        float.scores,
        steps,
        updates,
        minutes,
        selection,
    )?;
    trainer::atomic::write_atomic(
        &dir.join(SEED_FILE),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    Ok(Some(result))
}

/// The int8 scores, the parity and the curve of a finished run folder.
#[allow(clippy::too_many_arguments)]
fn score_run(
    plan: &StudyPlan,
    s: u64,
    dir: &Path,
    float_scores: Vec<u32>,
    steps: u64,
    updates: u64,
    minutes: f64,
    selection: Option<String>,
) -> Result<SeedResult> {
    let blob_path = dir.join("policy.bin");
    let blob =
        std::fs::read(&blob_path).with_context(|| format!("reading {}", blob_path.display()))?;
    eprintln!(
        "seed {s}: int8 blob in the firmware loop on {}",
        plan.games.describe(plan.test_games)
    );
    let first = plan.games.first_seed();
    let int8 = crate::int8::scores(&blob, first, plan.test_games, plan.cap, plan.threads)?;
    let float = Scores::of(float_scores, plan.cap);
    let int8 = Scores::of(int8, plan.cap);
    let paired = parity::Paired::of(&float.scores, &int8.scores);
    let metrics = Metrics::load(&dir.join("metrics.csv"))?;
    let (curve, minutes_to_cap) = curve_of(&metrics, plan.cap);
    let frames = frame_agreement(dir, &blob)?;
    Ok(SeedResult {
        seed: s,
        float,
        int8,
        paired,
        minutes_to_cap,
        curve,
        steps,
        updates,
        minutes,
        selection,
        frames,
        cpu: cpu_name(),
        settings: folder_settings(&plan.kind, dir)?,
    })
}

/// Parity of the blob with the shipped float network on `frames.rec`.
fn frame_agreement(dir: &Path, blob: &[u8]) -> Result<FrameAgreement> {
    let net = train::load_best(dir, tch::Device::Cpu)?;
    let model = net.to_float_model();
    let rec = trainer::recording::Recording::load(&dir.join("frames.rec"))?;
    let mut policy =
        firmware_sim::Policy::from_blob(blob).map_err(|e| anyhow::anyhow!("bad blob: {e}"))?;
    let f = parity::frame_parity(&net, &model, &mut policy, &rec.stacks, 0.02)?;
    Ok(FrameAgreement {
        frames: f.frames,
        all: f.agreement,
        non_tie: f.agreement_non_tie,
        max_q_err_rel: f.max_q_err_rel,
    })
}

/// The teacher of seed `s`: `teacher` with every `{seed}` replaced by `s`
/// (one teacher per seed, e.g. `runs/trial-nstep5/seed-{seed}`), else
/// `teacher` itself.
///
/// ```
/// use std::path::Path;
/// use study::seed_run::teacher_of_seed;
/// assert_eq!(teacher_of_seed(Path::new("runs/t/seed-{seed}"), 7), Path::new("runs/t/seed-7"));
/// assert_eq!(teacher_of_seed(Path::new("models/teacher"), 7), Path::new("models/teacher"));
/// ```
pub fn teacher_of_seed(teacher: &Path, s: u64) -> PathBuf {
    PathBuf::from(teacher.to_string_lossy().replace("{seed}", &s.to_string()))
}
