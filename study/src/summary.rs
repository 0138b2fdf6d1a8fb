//! A study's results across seeds: `results/study-<name>.json` (everything),
//! `.md` (the tables the README shows) and `.png` (every seed's validation
//! curve and their spread). The Markdown and the plot are drawn from the
//! JSON alone (`study report` redraws them).

use crate::seed_run::{stem, Kind, SeedResult};
use crate::stats::{self, bootstrap, iqm, mean, Interval, BOOTSTRAP_REPS};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use trainer::report::FinalGames;

/// Across-seed figures, each with its 95 % bootstrap interval over runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Runs.
    pub runs: usize,
    /// Mean of the runs' float test means.
    pub float_mean: Interval,
    /// IQM of the runs' float test means.
    pub float_iqm: Interval,
    /// Mean of the runs' int8 test means.
    pub int8_mean: Interval,
    /// IQM of the runs' int8 test means.
    pub int8_iqm: Interval,
    /// Sum of int8 means over sum of float means (1 = the export costs nothing).
    pub int8_over_float: Interval,
    /// Runs whose float test median reached the cap.
    pub float_median_at_cap: usize,
    /// Runs whose int8 test median reached the cap.
    pub int8_median_at_cap: usize,
    /// Runs whose validation median reached the cap during training.
    pub reached_cap: usize,
}

impl Aggregate {
    /// The figures of `runs` (at least one) under `cap`.
    pub fn of(runs: &[SeedResult], cap: u32) -> Aggregate {
        let pairs: Vec<(f64, f64)> = runs.iter().map(|r| (r.float.mean, r.int8.mean)).collect();
        let f = |sel: fn(&(f64, f64)) -> f64, stat: fn(&[f64]) -> f64| {
            move |s: &[(f64, f64)]| stat(&s.iter().map(sel).collect::<Vec<_>>())
        };
        let float = |p: &(f64, f64)| p.0;
        let int8 = |p: &(f64, f64)| p.1;
        let at = |m: f64| m >= cap as f64;
        Aggregate {
            runs: runs.len(),
            float_mean: bootstrap(&pairs, f(float, mean), BOOTSTRAP_REPS),
            float_iqm: bootstrap(&pairs, f(float, iqm), BOOTSTRAP_REPS),
            int8_mean: bootstrap(&pairs, f(int8, mean), BOOTSTRAP_REPS),
            int8_iqm: bootstrap(&pairs, f(int8, iqm), BOOTSTRAP_REPS),
            int8_over_float: bootstrap(
                &pairs,
                |s| s.iter().map(|p| p.1).sum::<f64>() / s.iter().map(|p| p.0).sum::<f64>(),
                BOOTSTRAP_REPS,
            ),
            float_median_at_cap: runs.iter().filter(|r| at(r.float.median)).count(),
            int8_median_at_cap: runs.iter().filter(|r| at(r.int8.median)).count(),
            reached_cap: runs.iter().filter(|r| r.minutes_to_cap.is_some()).count(),
        }
    }
}

/// Everything a study found (`results/study-<name>.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Study {
    /// The study's name.
    pub name: String,
    /// The command that made it.
    pub command: String,
    /// What each seed ran.
    pub kind: Kind,
    /// The seeds asked for, in order.
    pub seeds: Vec<u64>,
    /// First scored game: `games.first_seed()` (`flappy::seeds::TEST`, or
    /// `TRIAL` for a trial), kept as the files before trials had it.
    pub first_test_seed: u64,
    /// Scored games per run.
    pub test_games: usize,
    /// Which games: test games (a study) or validation games (a recipe trial).
    #[serde(default, skip_serializing_if = "FinalGames::is_test")]
    pub games: FinalGames,
    /// Score cap of a scored game.
    pub cap: u32,
    /// The finished seeds' results, in the order of `seeds`.
    pub runs: Vec<SeedResult>,
    /// Across the finished seeds (None before the first is done).
    pub aggregate: Option<Aggregate>,
    /// How the intervals were computed.
    pub method: String,
}

/// How [`Aggregate`]'s intervals are computed, for the JSON and the table.
pub const METHOD: &str = "95 % percentile bootstrap over runs, 10 000 resamples (rliable's stratified bootstrap with one task), implemented in study/src/stats.rs; IQM = mean of the runs left after dropping floor(n/4) from each end (scipy trim_mean 0.25)";

impl Study {
    /// The study's files in `out_dir`: `(json, md, png)`, named
    /// `study-<name>.*`, or `trial-<name>.*` for a recipe trial.
    pub fn paths(out_dir: &Path, games: FinalGames, name: &str) -> (PathBuf, PathBuf, PathBuf) {
        let base = out_dir.join(format!("{}-{name}", stem(games)));
        (
            base.with_extension("json"),
            base.with_extension("md"),
            base.with_extension("png"),
        )
    }

    /// Reads a study's JSON.
    pub fn load(path: &Path) -> Result<Study> {
        crate::seed_run::read_json(path, "a study")
    }

    /// What the study's runs were made with.
    pub fn record(&self) -> crate::seed_run::PlanRecord {
        crate::seed_run::PlanRecord {
            kind: self.kind.clone(),
            test_games: self.test_games,
            games: self.games,
            cap: self.cap,
        }
    }

    /// The study as the JSON `save` writes.
    pub fn json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// Writes the JSON, the Markdown and (with at least one run) the plot.
    pub fn save(&self, out_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("creating {}", out_dir.display()))?;
        let (json, md, png) = Self::paths(out_dir, self.games, &self.name);
        trainer::atomic::write_atomic(&json, self.json()?.as_bytes())?;
        trainer::atomic::write_atomic(&md, self.markdown().as_bytes())?;
        if !self.runs.is_empty() {
            trainer::atomic::write_atomic_with(&png, |tmp| self.plot(tmp))?;
        }
        Ok(())
    }

    /// Gives the study `from` the name `to`: its results in `out_dir`
    /// written again under the new name (the Markdown's title and the plot
    /// say it) and the old files removed, and its run folder in `runs_dir`,
    /// where there is one, moved along, so that `study train --name TO`
    /// continues it. For keeping a study of a recipe that is no longer the
    /// default (the default's name then starts afresh): `recipe`, when
    /// given, is what its runs' settings are now, in words of the new
    /// defaults (a recipe file's TOML: the old value of the setting that
    /// changed), and replaces the study's recipe, so that its files no
    /// longer say "every default". Refuses a name that is taken, in results
    /// or run folders, or a recipe that is no recipe, before changing
    /// anything.
    pub fn rename(
        out_dir: &Path,
        runs_dir: &Path,
        games: FinalGames,
        from: &str,
        to: &str,
        recipe: Option<&str>,
    ) -> Result<Study> {
        anyhow::ensure!(from != to, "the study is already called `{to}`");
        anyhow::ensure!(
            !to.is_empty() && !to.contains(['/', '\\']) && !to.starts_with('.'),
            "`{to}` is not a study name (a name becomes part of file names)"
        );
        let (json, md, png) = Self::paths(out_dir, games, from);
        let mut s = Self::load(&json)?;
        anyhow::ensure!(
            s.name == from && s.games == games,
            "{} holds the study `{}`, not `{from}`",
            json.display(),
            s.name
        );
        let (new_json, new_md, new_png) = Self::paths(out_dir, games, to);
        for p in [&new_json, &new_md, &new_png] {
            anyhow::ensure!(!p.exists(), "{} exists: `{to}` is taken", p.display());
        }
        let folder = |name: &str| runs_dir.join(format!("{}-{name}", stem(games)));
        let (old_runs, new_runs) = (folder(from), folder(to));
        anyhow::ensure!(
            !new_runs.exists(),
            "{} exists: `{to}` is taken",
            new_runs.display()
        );
        if let Some(text) = recipe {
            match &mut s.kind {
                Kind::Train { recipe, .. } => *recipe = crate::seed_run::recipe_of(text)?,
                Kind::Distil { recipe, .. } => *recipe = crate::seed_run::distil_recipe_of(text)?,
            }
        }
        s.name = to.to_string();
        s.save(out_dir)?;
        for p in [&json, &md, &png] {
            if p.exists() {
                std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
        if old_runs.is_dir() {
            std::fs::rename(&old_runs, &new_runs).with_context(|| {
                format!("moving {} to {}", old_runs.display(), new_runs.display())
            })?;
        }
        Ok(s)
    }

    /// What the runs were, in words.
    fn what(&self) -> String {
        match &self.kind {
            Kind::Train { minutes, recipe } => {
                let minutes = minutes
                    .map(|m| format!(" --minutes {m}"))
                    .unwrap_or_default();
                match (minutes.is_empty(), recipe_words(recipe)) {
                    (_, Some(words)) => format!("`trainer train --seed S{minutes}`{words}"),
                    (true, None) => {
                        "`trainer train --seed S` with every default (what `make train` runs)"
                            .into()
                    }
                    (false, None) => {
                        format!("`trainer train --seed S{minutes}`, other settings default")
                    }
                }
            }
            Kind::Distil {
                teacher,
                total_updates,
                recipe,
            } => {
                let command = format!(
                    "`trainer distil --teacher {} --seed S{}`",
                    teacher.display().to_string().replace("{seed}", "S"),
                    total_updates
                        .map(|u| format!(" --total-updates {u}"))
                        .unwrap_or_default()
                );
                match recipe_words(recipe) {
                    Some(words) => format!("{command}{words}"),
                    None => format!("{command} (what `make tiny` runs)"),
                }
            }
        }
    }

    /// The tables: one row per seed, then the figures across seeds.
    pub fn markdown(&self) -> String {
        let cap = self.cap;
        let mut md = String::new();
        let title = match self.games {
            FinalGames::Test => "Study",
            FinalGames::Validation => "Recipe trial",
        };
        let _ = writeln!(md, "# {title} `{}`\n", self.name);
        let _ = writeln!(
            md,
            "Each seed: {}. Scored on {}, capped at {cap} pipes: the shipped float network, and its int8 blob in the firmware loop (`firmware_sim::run_episodes`). Command: `{}`.\n",
            self.what(),
            self.games.describe(self.test_games),
            self.command
        );
        let _ = writeln!(md, "{}\n", self.seed_table());
        let cpus: Vec<String> = (self.runs.iter())
            .filter(|r| !r.cpu.is_empty())
            .map(|r| format!("seed {}: `{}`", r.seed, r.cpu))
            .collect();
        if !cpus.is_empty() {
            let _ = writeln!(
                md,
                "CPU each run finished on (runs of one seed on two CPUs part): {}.\n",
                cpus.join(", ")
            );
        }
        match &self.aggregate {
            Some(a) => {
                let _ = writeln!(md, "{}\n", a.table(self.seeds.len(), self.games.word()));
            }
            None => md.push_str("No seed has finished yet.\n\n"),
        }
        let _ = writeln!(md, "Intervals: {METHOD}.");
        md
    }

    /// One row per finished seed.
    pub fn seed_table(&self) -> String {
        let cap = self.cap;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| seed | float mean | float median | at cap | int8 mean | int8 median | at cap | int8 / float | minutes to validation median {cap} | updates | training minutes | int8 agreement, all recorded frames |"
        );
        t.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.runs {
            let _ = writeln!(
                t,
                "| {} | {:.1} | {:.1} | {}/{} | {:.1} | {:.1} | {}/{} | {:.3} | {} | {} | {:.1} | {:.2} % |",
                r.seed,
                r.float.mean,
                r.float.median,
                r.float.at_cap,
                r.float.scores.len(),
                r.int8.mean,
                r.int8.median,
                r.int8.at_cap,
                r.int8.scores.len(),
                r.int8.mean / r.float.mean,
                r.minutes_to_cap
                    .map(|m| format!("{m:.1}"))
                    .unwrap_or_else(|| "not reached".into()),
                r.updates,
                r.minutes,
                100.0 * r.frames.all
            );
        }
        t.trim_end().to_string()
    }

    /// Every seed's validation median with the spread across seeds, against
    /// environment steps where every point says its step (the budget is in
    /// steps, so the runs line up whatever CPU share each had), else
    /// against training minutes ([`Study::curves`]).
    pub fn plot(&self, path: &Path) -> Result<()> {
        let (curves, x_desc) = self.curves();
        let title = format!(
            "{}: validation median ({} seeds)",
            self.name,
            self.runs.len()
        );
        trainer::metrics::plot_seed_spread(
            &curves,
            &title,
            (x_desc, "pipes"),
            self.cap as f64,
            path,
        )
    }

    /// Each seed's validation medians as `(x, median)` and what x is:
    /// millions of environment steps when every point of every run has its
    /// step, training minutes otherwise.
    pub fn curves(&self) -> (Vec<trainer::metrics::Curve>, &'static str) {
        let by_steps = self
            .runs
            .iter()
            .all(|r| r.curve.iter().all(|p| p.steps.is_some()));
        let x = |p: &crate::seed_run::CurvePoint| match p.steps {
            Some(s) if by_steps => s as f64 / 1e6,
            _ => p.minutes,
        };
        let curves = self
            .runs
            .iter()
            .map(|r| {
                (
                    format!("seed {}", r.seed),
                    r.curve.iter().map(|p| (x(p), p.median)).collect(),
                )
            })
            .collect();
        let desc = if by_steps {
            "environment steps (millions)"
        } else {
            "training minutes"
        };
        (curves, desc)
    }
}

impl Aggregate {
    /// The across-seed table; `word` names the scored games (`test` or
    /// `validation`).
    pub fn table(&self, asked: usize, word: &str) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| across {} of {asked} seeds | float | int8 |",
            self.runs
        );
        t.push_str("|---|---:|---:|\n");
        let _ = writeln!(
            t,
            "| IQM of the runs' {word} means [95 % CI] | {} | {} |",
            self.float_iqm.show(1),
            self.int8_iqm.show(1)
        );
        let _ = writeln!(
            t,
            "| mean of the runs' {word} means [95 % CI] | {} | {} |",
            self.float_mean.show(1),
            self.int8_mean.show(1)
        );
        let _ = writeln!(
            t,
            "| runs with {word} median at the cap | {}/{} | {}/{} |",
            self.float_median_at_cap, self.runs, self.int8_median_at_cap, self.runs
        );
        let _ = writeln!(
            t,
            "| int8 / float (sum of means) [95 % CI] | | {} |",
            self.int8_over_float.show(3)
        );
        let _ = write!(
            t,
            "| runs whose validation median reached the cap | {}/{} | |",
            self.reached_cap, self.runs
        );
        t
    }
}

/// The per-seed mean of `runs`' paired detectable losses (for the docs).
pub fn mean_detectable_loss(runs: &[SeedResult]) -> f64 {
    stats::mean(
        &runs
            .iter()
            .map(|r| r.paired.detectable_loss)
            .collect::<Vec<_>>(),
    )
}

/// A recipe's changes in words (` with `a = 1`, `b = 2`, other settings
/// default`), or `None` for the default recipe.
fn recipe_words(recipe: &str) -> Option<String> {
    let changes: Vec<&str> = recipe.lines().filter(|l| !l.is_empty()).collect();
    (!changes.is_empty())
        .then(|| format!(" with `{}`, other settings default", changes.join("`, `")))
}
