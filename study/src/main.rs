//! `study`: the default recipe over several training seeds, scored on the
//! test seeds, with intervals across seeds (`make study`, `make tiny-study`).

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use study::{seed_run, Kind, Study, StudyPlan};
use trainer::report::FinalGames;

/// Trains (or distils) once per seed with the defaults, scores every run on
/// the test seeds as float and as int8 in the firmware loop, and writes
/// `results/study-<name>.{json,md,png}` after each seed: per-seed scores,
/// IQM and mean across seeds with 95 % bootstrap intervals, the int8/float
/// ratio, every seed's validation curve.
///
/// Seeds run one after another, each with all cores (libtorch's default
/// threads, as `make train`). Stopped at any point (Ctrl-C, a kill), the
/// same command continues: finished seeds are skipped (those in the
/// results file too, so a study goes on from its committed results on
/// another machine; remove a seed there, or its run folder, to run it
/// again), an interrupted training run continues from its last checkpoint
/// with the budget it had left. A compile beside a training run takes its
/// budget: run it through `scripts/quiet`, which pauses the run's clock.
///
/// A recipe trial (`--score-on validation`, with `train --recipe FILE` for
/// other settings) scores the runs on validation games instead
/// (`flappy::seeds::TRIAL..`) and writes `results/trial-<name>.*`: the
/// way to compare recipes without touching the test games.
#[derive(Parser)]
#[command(name = "study", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// `trainer train --seed S` with every default, per seed (what `make train` runs).
    Train(TrainStudy),
    /// `trainer distil --teacher T --seed S` with every default, per seed (what `make tiny` runs).
    Distil(DistilStudy),
    /// Rewrite README.md's include blocks from their files (`make readme`).
    Readme {
        /// The README to rewrite (the repository root is its folder).
        #[arg(long, default_value = "README.md")]
        path: PathBuf,
    },
    /// A recipe trial against its control, seed by seed, and the adoption
    /// rule applied: `<out>/compare-<arm>.md` from `<out>/trial-<arm>.json`
    /// and `<out>/trial-<control>.json` (both on validation games).
    Compare {
        /// The trial's name (its results: `trial-<arm>.json`).
        #[arg(long)]
        arm: String,
        /// Its control's name (`trial-<control>.json`).
        #[arg(long)]
        control: String,
        /// Seeds the trial planned (the rule asks for a majority of them).
        #[arg(long, default_value_t = 3)]
        planned: usize,
        /// Folder of the results.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Give a study another name: `<out>/study-<from>.*` become
    /// `study-<to>.*` (title and plot too) and `<runs-dir>/study-<from>/`
    /// moves to `study-<to>/`. For keeping the study of a recipe that is no
    /// longer the default, so that the default's study starts afresh.
    Rename {
        /// The study's name now.
        #[arg(long)]
        from: String,
        /// Its new name.
        #[arg(long)]
        to: String,
        /// `validation`: the recipe trial `results/trial-<from>.*`.
        #[arg(long, value_enum, default_value_t = FinalGames::Test)]
        score_on: FinalGames,
        /// Folder of the results.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Folder of the run folders.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// A recipe file (TOML) saying how the study's runs differ from the
        /// defaults now: for a study of the old default, renamed after a
        /// trial changed the default (`n_step = 3`).
        #[arg(long)]
        recipe: Option<PathBuf>,
    },
    /// Redraw `results/study-<name>.{md,png}` (or `trial-<name>`) from its JSON.
    Report {
        /// The study's name.
        #[arg(long, default_value = "default")]
        name: String,
        /// `validation`: the recipe trial `results/trial-<name>.*`.
        #[arg(long, value_enum, default_value_t = FinalGames::Test)]
        score_on: FinalGames,
        /// Folder of the results.
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
}

#[derive(Args)]
struct Common {
    /// The study's name: runs in <runs-dir>/study-<name>/seed-<s>/, results
    /// in <out>/study-<name>.{json,md,png}.
    #[arg(long)]
    name: Option<String>,
    /// Training seeds, one run each (below 2^24).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    seeds: Vec<u64>,
    /// Scored games per run (seeds flappy::seeds::TEST + 0..N, or TRIAL + 0..N).
    #[arg(long, default_value_t = 100)]
    test_games: usize,
    /// The games that score the runs: `test` (a study: a report, nothing is
    /// chosen on it) or `validation` (a recipe trial: seeds
    /// flappy::seeds::TRIAL.., to choose between recipes; runs in
    /// <runs-dir>/trial-<name>/, results in <out>/trial-<name>.*).
    #[arg(long, value_enum, default_value_t = FinalGames::Test)]
    score_on: FinalGames,
    /// Score cap of a scored game.
    #[arg(long, default_value_t = 1000)]
    cap: u32,
    /// Folder of the run folders.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Folder of the results.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Threads that play the int8 test games.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seeds run at once, each in a process of its own with the cores
    /// shared out (`OMP_NUM_THREADS` = cores / jobs unless set): on 2
    /// cores, `--jobs 2` runs two seeds with one libtorch thread each,
    /// which together make nearly twice the steps of one run with two
    /// threads. Each seed's output goes to
    /// <runs-dir>/study-<name>/seed-<s>.log, a line of each here every
    /// minute; the results file is written as each seed finishes.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Run the seeds and leave each result in its run folder only, not in
    /// the study's results file (what `--jobs` runs in each child).
    #[arg(long, hide = true)]
    seed_only: bool,
}

#[derive(Args)]
struct TrainStudy {
    #[command(flatten)]
    common: Common,
    /// Another time budget in minutes (0: the default, 55 on a CPU); for
    /// trying the study itself, not for results.
    #[arg(long, default_value_t = 0.0)]
    minutes: f64,
    /// A recipe trial's settings: a TOML file of `trainer train` settings
    /// as `config.toml` names them (e.g. `policy_ema = 3e-5`), the rest
    /// default. Needs `--score-on validation` and a `--name`.
    #[arg(long)]
    recipe: Option<PathBuf>,
}

#[derive(Args)]
struct DistilStudy {
    #[command(flatten)]
    common: Common,
    /// The teacher (a run folder, a checkpoint folder or weights; the
    /// default is `make tiny`'s). `{seed}` in it stands for each seed's
    /// number: one teacher per seed (`runs/trial-nstep5/seed-{seed}`).
    #[arg(long, default_value = "models/teacher")]
    teacher: PathBuf,
    /// Other gradient updates per run (0: the default); for trying the
    /// study itself, not for results.
    #[arg(long, default_value_t = 0)]
    total_updates: u64,
    /// A recipe trial's settings: a TOML file of `trainer distil` settings
    /// as `distil.toml` names them (e.g. `int8_frac = 0.5`), the rest
    /// default. Needs `--score-on validation` and a `--name`.
    #[arg(long)]
    recipe: Option<PathBuf>,
}

fn main() {
    trainer::cli::main_with(run);
}

fn run() -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match Cli::parse().cmd {
        Cmd::Train(a) => {
            let recipe = read_recipe(a.recipe.as_deref(), &a.common, seed_run::recipe_of)?;
            let kind = Kind::Train {
                minutes: (a.minutes > 0.0).then_some(a.minutes),
                recipe,
            };
            run_study(a.common, "default", kind, command)
        }
        Cmd::Distil(a) => {
            let recipe = read_recipe(a.recipe.as_deref(), &a.common, seed_run::distil_recipe_of)?;
            let kind = Kind::Distil {
                teacher: a.teacher,
                total_updates: (a.total_updates > 0).then_some(a.total_updates),
                recipe,
            };
            run_study(a.common, "tiny", kind, command)
        }
        Cmd::Readme { path } => {
            let root = path.parent().unwrap_or(std::path::Path::new("."));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let stale = study::readme::stale(&text, root)?;
            let synced = study::readme::sync(&text, root)?;
            trainer::atomic::write_atomic(&path, synced.as_bytes())?;
            println!(
                "{}: {} include blocks rewritten from their files ({} stale)",
                path.display(),
                study::readme::blocks(&synced)?.len(),
                stale.len()
            );
            Ok(())
        }
        Cmd::Compare {
            arm,
            control,
            planned,
            out,
        } => {
            let load = |name: &str| {
                let (json, _, _) = Study::paths(&out, FinalGames::Validation, name);
                Study::load(&json)
            };
            let c = study::compare::Comparison::of(&load(&arm)?, &load(&control)?, planned)?;
            let md = out.join(format!("compare-{arm}.md"));
            trainer::atomic::write_atomic(&md, c.markdown().as_bytes())?;
            println!("{}\nwrote {}", c.markdown(), md.display());
            Ok(())
        }
        Cmd::Rename {
            from,
            to,
            score_on,
            out,
            runs_dir,
            recipe,
        } => {
            let recipe = match &recipe {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading the recipe {}", p.display()))?,
                ),
                None => None,
            };
            let s = Study::rename(&out, &runs_dir, score_on, &from, &to, recipe.as_deref())?;
            let (json, _, _) = Study::paths(&out, score_on, &to);
            println!(
                "`{from}` is now `{to}`: {} ({} seeds)",
                json.display(),
                s.runs.len()
            );
            Ok(())
        }
        Cmd::Report {
            name,
            score_on,
            out,
        } => {
            let (json, md, png) = Study::paths(&out, score_on, &name);
            let s = Study::load(&json)?;
            // A study is written under its own name: a renamed copy (such
            // as an archived seed) would overwrite the study it came from.
            anyhow::ensure!(
                s.name == name && s.games == score_on,
                "{} holds the study `{}` ({:?} games), which would be written as its own \
                 files, not as this one's",
                json.display(),
                s.name,
                s.games
            );
            s.save(&out)?;
            println!(
                "{}\nwrote {} and {}",
                s.markdown(),
                md.display(),
                png.display()
            );
            Ok(())
        }
    }
}

/// A recipe trial's changes from the file at `path` (none without one),
/// through `changes` (train's or distil's settings); a recipe is refused
/// outside a named trial on validation games.
fn read_recipe(
    path: Option<&std::path::Path>,
    c: &Common,
    changes: fn(&str) -> Result<String>,
) -> Result<String> {
    let Some(path) = path else {
        return Ok(String::new());
    };
    anyhow::ensure!(
        c.score_on == FinalGames::Validation && c.name.is_some(),
        "a --recipe is a trial: give it a --name and --score-on validation \
         (a recipe is chosen on validation games, never on test games)"
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    changes(&text).with_context(|| format!("in the recipe {}", path.display()))
}

fn run_study(c: Common, default_name: &str, kind: Kind, command: String) -> Result<()> {
    let plan = StudyPlan {
        name: c.name.unwrap_or_else(|| default_name.into()),
        kind,
        seeds: c.seeds,
        test_games: c.test_games,
        games: c.score_on,
        cap: c.cap,
        runs_dir: c.runs_dir,
        threads: c.threads.max(1),
    };
    plan.validate()?;
    anyhow::ensure!(c.jobs >= 1, "--jobs is at least 1");
    plan.claim_folder()?;
    // The results of another plan under this name are not written over.
    let (json, _, _) = Study::paths(&c.out, plan.games, &plan.name);
    let reported = if json.is_file() {
        let before = Study::load(&json)?;
        plan.record().same_as(&before.record(), &json)?;
        before.runs
    } else {
        Vec::new()
    };
    // The file is written again from this command's seeds: none it reports
    // may be dropped.
    let dropped: Vec<u64> = reported
        .iter()
        .map(|r| r.seed)
        .filter(|s| !plan.seeds.contains(s))
        .collect();
    anyhow::ensure!(
        dropped.is_empty() || c.seed_only,
        "{} reports seeds {dropped:?}, which --seeds leaves out: name them too, \
         or write elsewhere with --out",
        json.display()
    );
    // The seeds it reports ran with this plan's settings (a default may
    // have changed since); ones that do not say are trusted only while the
    // file gains no seed.
    let adds_seeds = plan
        .seeds
        .iter()
        .any(|s| !reported.iter().any(|r| r.seed == *s));
    for r in &reported {
        plan.check_settings(r, !adds_seeds)
            .with_context(|| format!("in {}", json.display()))?;
    }
    let stop = if c.seed_only {
        study::jobs::stop_flag_for_child()?
    } else {
        trainer::cli::stop_on_ctrl_c(
            "saving a checkpoint and stopping; the same command continues",
        )?
    };
    let mut study = Study {
        name: plan.name.clone(),
        command,
        kind: plan.kind.clone(),
        seeds: plan.seeds.clone(),
        first_test_seed: plan.games.first_seed(),
        test_games: plan.test_games,
        games: plan.games,
        cap: plan.cap,
        runs: Vec::new(),
        aggregate: None,
        method: study::summary::METHOD.into(),
    };
    if c.jobs > 1 && !c.seed_only {
        // The seeds still to run, side by side; the loop below then
        // collects every result as one finished before.
        if run_children(c.jobs, &plan, &reported, &study, &c.out, &stop)?
            == study::jobs::Outcome::Stopped
        {
            eprintln!("stopped; run the same command to continue");
            return Ok(());
        }
    }
    // Whether the file gains a seed: one that only repeats what it reports
    // is left as it is, its command included.
    let mut gained = false;
    for &s in &plan.seeds {
        // A seed the results file already reports (this plan's, as checked
        // above; say from a machine whose run folders are gone) is kept.
        let r = if let Some(r) = reported.iter().find(|r| r.seed == s) {
            eprintln!("seed {s}: reported before ({})", json.display());
            r.clone()
        } else if let Some(r) = seed_run::run_seed(&plan, s, &stop)? {
            if c.seed_only {
                eprintln!(
                    "seed {s} done: its result in {}",
                    plan.seed_dir(s).join(seed_run::SEED_FILE).display()
                );
                continue;
            }
            gained = true;
            r
        } else {
            eprintln!("stopped during seed {s}; run the same command to continue");
            return Ok(());
        };
        study.runs.push(r);
        study.aggregate = Some(study::summary::Aggregate::of(&study.runs, plan.cap));
        if gained {
            study.save(&c.out)?;
        }
        eprintln!(
            "seed {s} done: {} of {} seeds in {}",
            study.runs.len(),
            plan.seeds.len(),
            json.display()
        );
    }
    if !c.seed_only {
        print!("{}", study.markdown());
    }
    Ok(())
}

/// Runs the seeds of `plan` that are neither `reported` nor finished in
/// child processes, `jobs` at a time (one seed alone is left to the caller,
/// which runs it with every core), writing `empty` with every seed
/// reported or finished so far into `out` each time one finishes.
fn run_children(
    jobs: usize,
    plan: &StudyPlan,
    reported: &[study::SeedResult],
    empty: &Study,
    out: &std::path::Path,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<study::jobs::Outcome> {
    let is_reported = |s: u64| reported.iter().find(|r| r.seed == s);
    let todo: Vec<u64> = plan
        .seeds
        .iter()
        .copied()
        .filter(|&s| is_reported(s).is_none())
        .filter(|&s| !plan.seed_dir(s).join(seed_run::SEED_FILE).is_file())
        .collect();
    let jobs = jobs.min(todo.len());
    if jobs < 2 {
        return Ok(study::jobs::Outcome::Finished);
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    study::jobs::run(
        &args,
        &todo,
        jobs,
        stop,
        |s| plan.folder().join(format!("seed-{s}.log")),
        |s| plan.seed_dir(s).join(seed_run::SEED_FILE).is_file(),
        |_| {
            // The results file as far as it goes, in the plan's order.
            let mut runs = Vec::new();
            for &s in &plan.seeds {
                if let Some(r) = is_reported(s) {
                    runs.push(r.clone());
                } else if let Some(r) = seed_run::finished(plan, s)? {
                    runs.push(r);
                }
            }
            let so_far = Study {
                aggregate: Some(study::summary::Aggregate::of(&runs, plan.cap)),
                runs,
                ..empty.clone()
            };
            so_far.save(out)?;
            eprintln!(
                "{} of {} seeds in {}",
                so_far.runs.len(),
                plan.seeds.len(),
                Study::paths(out, plan.games, &plan.name).0.display()
            );
            Ok(())
        },
    )
}
