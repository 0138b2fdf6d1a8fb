//! A recipe trial against its control, seed by seed (`study compare`), and
//! the project's adoption rule applied to them, so that a decision is
//! written by a program from the two results files, never by hand.
//!
//! The rule (docs/learning.md, "Recipe trials"; written into each trial's
//! recipe before any result): the arm is **adopted** when its int8 mean on
//! the validation games is higher than the control's on a majority of the
//! planned seeds and on average over them, with no fewer seeds at int8
//! median at the cap. It adopts only once every planned seed is paired (a
//! later seed can still pull the average or the medians below), and
//! rejects as soon as a majority is out of reach. A pair counts only where
//! both runs finished on the same CPU (runs of one seed part across
//! machines).
//!
//! ```
//! use study::compare::{rule, Verdict};
//! // Planned 3 seeds, all paired: 2 higher, on average +23.3, medians 3 vs 2.
//! assert_eq!(rule(&[30.0, 50.0, -10.0], 3, 2, 3), Verdict::Adopted);
//! // 2 of 3 paired, both higher: the third can still undo the average.
//! assert!(matches!(rule(&[30.0, 50.0], 2, 1, 3), Verdict::Pending { .. }));
//! // All paired, 2 higher but lower on average: not adopted.
//! assert_eq!(rule(&[10.0, 5.0, -90.0], 2, 2, 3), Verdict::NotAdopted);
//! // 2 of 3 paired and both lower: it can no longer win a majority.
//! assert_eq!(rule(&[-5.0, -8.0], 0, 0, 3), Verdict::NotAdopted);
//! ```

use crate::seed_run::SeedResult;
use crate::stats::{self, Interval};
use crate::Study;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use trainer::report::FinalGames;

/// What the rule says of a trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// The arm wins: adopt its recipe.
    Adopted,
    /// The arm cannot win (or lost on the full set of seeds).
    NotAdopted,
    /// Not decided yet: more pairs are needed.
    Pending {
        /// Pairs so far.
        paired: usize,
        /// Pairs the trial planned.
        planned: usize,
    },
}

/// The adoption rule on the paired int8 differences `diffs` (arm minus
/// control, one per paired seed), the seeds at int8 median at the cap in
/// each arm, and the number of seeds the trial planned.
pub fn rule(diffs: &[f64], arm_at_cap: usize, control_at_cap: usize, planned: usize) -> Verdict {
    let need = planned / 2 + 1;
    let wins = diffs.iter().filter(|&&d| d > 0.0).count();
    let left = planned.saturating_sub(diffs.len());
    if wins + left < need {
        return Verdict::NotAdopted;
    }
    if left > 0 {
        return Verdict::Pending {
            paired: diffs.len(),
            planned,
        };
    }
    if wins >= need && stats::mean(diffs) > 0.0 && arm_at_cap >= control_at_cap {
        Verdict::Adopted
    } else {
        Verdict::NotAdopted
    }
}

/// One seed of both arms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedPair {
    /// The training (or distillation) seed.
    pub seed: u64,
    /// The arm's int8 mean, median, games at the cap.
    pub arm: (f64, f64, usize),
    /// The control's.
    pub control: (f64, f64, usize),
    /// Arm minus control, int8 mean, with a 95 % percentile-bootstrap
    /// interval over the paired games (same game seeds in both).
    pub diff: Interval,
    /// The float means, arm and control.
    pub float: (f64, f64),
}

/// A trial against its control.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The arm's study name.
    pub arm: String,
    /// The control's study name.
    pub control: String,
    /// Seeds the trial planned.
    pub planned: usize,
    /// Scored games per run.
    pub games: usize,
    /// Score cap.
    pub cap: u32,
    /// The seeds both finished on one CPU.
    pub pairs: Vec<SeedPair>,
    /// Seeds left out, and why.
    pub unpaired: Vec<(u64, String)>,
    /// The rule's verdict.
    pub verdict: Verdict,
}

impl Comparison {
    /// Pairs the seeds of the trial `arm` with those of its `control`
    /// (both scored on the same validation games) and applies the rule.
    pub fn of(arm: &Study, control: &Study, planned: usize) -> Result<Comparison> {
        ensure!(
            arm.games == FinalGames::Validation && control.games == FinalGames::Validation,
            "a trial and its control are scored on validation games (`--score-on validation`)"
        );
        ensure!(
            arm.first_test_seed == control.first_test_seed
                && arm.test_games == control.test_games
                && arm.cap == control.cap,
            "`{}` and `{}` played other games ({} games from {} capped at {}, against {} from {} \
             capped at {})",
            arm.name,
            control.name,
            arm.test_games,
            arm.first_test_seed,
            arm.cap,
            control.test_games,
            control.first_test_seed,
            control.cap
        );
        ensure!(planned > 0, "a trial plans at least one seed");
        let mut pairs = Vec::new();
        let mut unpaired = Vec::new();
        for a in &arm.runs {
            let Some(c) = control.runs.iter().find(|c| c.seed == a.seed) else {
                unpaired.push((a.seed, format!("no control run of seed {}", a.seed)));
                continue;
            };
            if a.cpu != c.cpu {
                unpaired.push((
                    a.seed,
                    format!("the arm ran on `{}`, the control on `{}`", a.cpu, c.cpu),
                ));
                continue;
            }
            pairs.push(pair(a, c));
        }
        let diffs: Vec<f64> = pairs.iter().map(|p| p.diff.point).collect();
        let arm_at_cap = pairs.iter().filter(|p| p.arm.1 >= arm.cap as f64).count();
        let control_at_cap = pairs
            .iter()
            .filter(|p| p.control.1 >= arm.cap as f64)
            .count();
        Ok(Comparison {
            arm: arm.name.clone(),
            control: control.name.clone(),
            planned,
            games: arm.test_games,
            cap: arm.cap,
            verdict: rule(&diffs, arm_at_cap, control_at_cap, planned),
            pairs,
            unpaired,
        })
    }

    /// The comparison as Markdown: a table by seed and the verdict.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Trial `{}` against its control `{}`\n\n\
             Int8 blobs in the firmware loop on the same {} validation games \
             (`flappy::seeds::TRIAL` + 0..{}), capped at {} pipes, from \
             `trial-{}.json` and `trial-{}.json`. Difference: \
             arm minus control, with a 95 % percentile-bootstrap interval over \
             the paired games ({} resamples). Written by `study compare`.\n\n\
             | seed | arm int8 mean / median / at cap | control int8 mean / median / at cap \
             | arm - control [95 % CI] | float means, arm / control |\n\
             |---:|---:|---:|---:|---:|\n",
            self.arm,
            self.control,
            self.games,
            self.games,
            self.cap,
            self.arm,
            self.control,
            stats::BOOTSTRAP_REPS
        );
        for p in &self.pairs {
            s += &format!(
                "| {} | {:.1} / {} / {} | {:.1} / {} / {} | {:+.1} [{:+.1}, {:+.1}] | {:.1} / {:.1} |\n",
                p.seed,
                p.arm.0,
                p.arm.1,
                p.arm.2,
                p.control.0,
                p.control.1,
                p.control.2,
                p.diff.point,
                p.diff.lo,
                p.diff.hi,
                p.float.0,
                p.float.1
            );
        }
        if !self.pairs.is_empty() {
            let d: Vec<f64> = self.pairs.iter().map(|p| p.diff.point).collect();
            s += &format!("| mean | | | {:+.1} | |\n", stats::mean(&d));
        }
        for (seed, why) in &self.unpaired {
            s += &format!("\nSeed {seed} is not paired: {why}.");
        }
        if !self.unpaired.is_empty() {
            s += "\n";
        }
        let need = self.planned / 2 + 1;
        s += &format!(
            "\nRule: adopted when the arm's int8 mean is higher on at least {need} of the {} \
             planned seeds and on average, with no fewer seeds at int8 median {}. ",
            self.planned, self.cap
        );
        s += &match &self.verdict {
            Verdict::Adopted => "**Adopted.**\n".to_string(),
            Verdict::NotAdopted => "**Not adopted.**\n".to_string(),
            Verdict::Pending { paired, planned } => {
                let higher = self.pairs.iter().filter(|p| p.diff.point > 0.0).count();
                format!(
                    "**Pending**: {paired} of {planned} seeds paired, the arm higher on \
                     {higher} of them.\n"
                )
            }
        };
        s
    }
}

/// The pair of runs of one seed.
fn pair(a: &SeedResult, c: &SeedResult) -> SeedPair {
    let per_game: Vec<f64> = a
        .int8
        .scores
        .iter()
        .zip(&c.int8.scores)
        .map(|(&x, &y)| x as f64 - y as f64)
        .collect();
    SeedPair {
        seed: a.seed,
        arm: (a.int8.mean, a.int8.median, a.int8.at_cap),
        control: (c.int8.mean, c.int8.median, c.int8.at_cap),
        diff: stats::bootstrap(&per_game, stats::mean, stats::BOOTSTRAP_REPS),
        float: (a.float.mean, c.float.mean),
    }
}
