//! The end-of-run selection ([`select_final`]): the final policy and the
//! best periodic snapshots played again on fresh validation games; the
//! highest mean is the network the run ships.

use crate::atomic::write_atomic_with;
use crate::checkpoint;
use crate::config::{Config, DistilConfig};
use crate::eval::{evaluate, evaluate_blob_threads};
use crate::metrics::Metrics;
use crate::net::QNetwork;
use crate::progress::human;
use crate::run_dir::{best_model_path, copy_atomic, snapshot_path};
use anyhow::Result;
use std::path::{Path, PathBuf};
use tch::Device;

/// First game seed of the end-of-run selection ([`select_final`]): other
/// validation games than the periodic evaluations'
/// ([`flappy::seeds::SELECTION`]).
pub const SELECT_SEED: u64 = flappy::seeds::SELECTION;

/// The end-of-run choice between the final policy and the best periodic
/// snapshots ([`select_final`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// Games each candidate played.
    pub episodes: usize,
    /// The final policy's mean score on them.
    pub final_mean: f64,
    /// The snapshots that were candidates, best periodic evaluation first.
    pub snapshots: Vec<SnapshotScore>,
    /// The env step of the snapshot kept, or `None` when the final policy was
    /// kept (it wins ties).
    pub kept: Option<u64>,
    /// Whether the candidates played as the int8 blobs they export to
    /// (else as float networks).
    pub int8: bool,
}

/// One snapshot's scores in the end-of-run selection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SnapshotScore {
    /// The env step at which it was evaluated and saved.
    pub step: u64,
    /// Its periodic evaluation mean (`eval_episodes` games).
    pub eval_mean: f64,
    /// Its mean on the selection games.
    pub select_mean: f64,
}

impl Selection {
    /// Whether the final policy was kept.
    pub fn kept_final(&self) -> bool {
        self.kept.is_none()
    }

    /// The kept candidate's mean on the selection games.
    pub fn kept_mean(&self) -> f64 {
        self.kept
            .and_then(|k| self.snapshots.iter().find(|s| s.step == k))
            .map_or(self.final_mean, |s| s.select_mean)
    }

    /// One line for people: every candidate's selection mean and the choice.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        if self.int8 {
            s.push_str("as int8 blobs: ");
        }
        s.push_str(&format!("final policy {:.1}", self.final_mean));
        for c in &self.snapshots {
            s.push_str(&format!(
                ", snapshot at {} (eval {:.1}) {:.1}",
                human(c.step),
                c.eval_mean,
                c.select_mean
            ));
        }
        match self.kept {
            None => s.push_str(": kept the final policy"),
            Some(k) => s.push_str(&format!(": kept the snapshot at {}", human(k))),
        }
        s
    }
}

/// How [`select_final`] chooses: games per candidate, snapshots that are
/// candidates besides the final policy, and the score cap of those games.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelectRule {
    /// Games each candidate plays (seeds [`SELECT_SEED`]..).
    pub episodes: usize,
    /// Snapshots that are candidates: those with the best periodic means,
    /// or with `last` the latest ones.
    pub candidates: usize,
    /// Score cap of each game.
    pub cap: u32,
    /// Whether the candidates are the latest snapshots rather than those
    /// with the best periodic means (docs/learning.md, "Which network a
    /// run ships").
    pub last: bool,
}

impl From<&Config> for SelectRule {
    /// The rule a training config asks for.
    fn from(cfg: &Config) -> SelectRule {
        SelectRule {
            episodes: cfg.select_episodes,
            candidates: cfg.select_candidates,
            cap: cfg.eval_max_score,
            last: cfg.select_last,
        }
    }
}

impl From<&DistilConfig> for SelectRule {
    /// The rule a distillation config asks for.
    fn from(cfg: &DistilConfig) -> SelectRule {
        SelectRule {
            episodes: cfg.select_episodes,
            candidates: cfg.select_candidates,
            cap: cfg.eval_max_score,
            last: false,
        }
    }
}

/// End-of-run selection. The best periodic snapshot is the maximum of ~16
/// noisy 10-game means, so its own score is biased upward (measured: on six
/// 55-minute runs the final policy beat the chosen snapshot on the unseen
/// test seeds every time, by 15 to 104 pipes), and runs peak anywhere
/// between minute 16 and 50. So the final policy and the
/// `cfg.select_candidates` snapshots with the best periodic means (with
/// `cfg.select_last`: the latest snapshots) are each
/// played again on `cfg.select_episodes` fresh games (seeds
/// [`SELECT_SEED`]..); the highest mean is kept as `best.safetensors`, ties
/// going to the final policy, then to the later snapshot. A run that
/// collapsed late still keeps an earlier, better network. A snapshot saved
/// at `final_step` (the step the final policy stands at) is the final
/// policy itself, not a second candidate. Runs without saved snapshots
/// (made before they were kept) offer `best.safetensors`.
pub fn select_final(
    policy: &QNetwork,
    run_dir: &Path,
    metrics: &Metrics,
    rule: SelectRule,
    final_step: u64,
    device: Device,
) -> Result<Selection> {
    let (n, cap) = (rule.episodes, rule.cap);
    let float_mean =
        |net: &QNetwork, _: Option<u64>| Ok(evaluate(net, n, SELECT_SEED, cap)?.mean_score);
    select_final_by(
        policy, run_dir, metrics, rule, final_step, device, float_mean,
    )
}

/// [`select_final`] with every candidate played as the int8 blob the run
/// would ship from it ([`crate::report::default_blob`]), through
/// policy-core, its games shared among `threads` threads: the kept network
/// is the best int8 player (a training run's `select_int8`).
pub fn select_final_int8(
    policy: &QNetwork,
    run_dir: &Path,
    metrics: &Metrics,
    rule: SelectRule,
    final_step: u64,
    device: Device,
    threads: usize,
) -> Result<Selection> {
    let int8_mean = |net: &QNetwork, _: Option<u64>| {
        let blob = crate::report::default_blob(net, threads)?;
        let r = evaluate_blob_threads(&blob, rule.episodes, SELECT_SEED, rule.cap, threads)?;
        Ok(r.mean_score)
    };
    let s = select_final_by(
        policy, run_dir, metrics, rule, final_step, device, int8_mean,
    )?;
    Ok(Selection { int8: true, ..s })
}

/// [`select_final`] with every candidate scored by `score(network, step)`
/// (`step`: `None` for the final policy, else the snapshot's), the mean of
/// its `rule.episodes` games from [`SELECT_SEED`] played the way the
/// caller ships it (a distillation's int8 blob: `distil`'s `select_int8`).
pub fn select_final_by(
    policy: &QNetwork,
    run_dir: &Path,
    metrics: &Metrics,
    rule: SelectRule,
    final_step: u64,
    device: Device,
    mut score: impl FnMut(&QNetwork, Option<u64>) -> Result<f64>,
) -> Result<Selection> {
    let final_mean = score(policy, None)?;
    // (step, periodic mean, file): best periodic mean first, among equals
    // the later; with `rule.last`, the latest first.
    let mut paths: Vec<(u64, f64, PathBuf)> = metrics
        .rows
        .iter()
        .filter(|r| r.step != final_step)
        .filter_map(|r| {
            r.eval
                .map(|e| (r.step, e.mean, snapshot_path(run_dir, r.step)))
        })
        .filter(|(_, _, p)| p.is_file())
        .collect();
    if rule.last {
        paths.sort_by_key(|p| std::cmp::Reverse(p.0));
    } else {
        paths.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
    }
    paths.truncate(rule.candidates);
    if paths.is_empty() && rule.candidates > 0 {
        let best = best_model_path(run_dir);
        if best.is_file() {
            paths.push((0, f64::NAN, best));
        }
    }
    let mut snapshots = Vec::with_capacity(paths.len());
    let mut kept: Option<u64> = None;
    let mut kept_mean = final_mean;
    let mut kept_path = None;
    for (step, eval_mean, path) in &paths {
        let net = checkpoint::load_network(path, device)?;
        let mean = score(&net, Some(*step))?;
        snapshots.push(SnapshotScore {
            step: *step,
            eval_mean: *eval_mean,
            select_mean: mean,
        });
        let later = kept.is_some_and(|k| *step > k);
        if mean > kept_mean || (mean == kept_mean && later) {
            kept = Some(*step);
            kept_mean = mean;
            kept_path = Some(path.clone());
        }
    }
    let best = best_model_path(run_dir);
    match &kept_path {
        None => write_atomic_with(&best, |tmp| Ok(policy.vs.save(tmp)?))?,
        Some(p) if *p != best => copy_atomic(p, &best)?,
        Some(_) => {}
    }
    Ok(Selection {
        episodes: rule.episodes,
        final_mean,
        snapshots,
        kept,
        int8: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{EvalSpread, MetricRow};

    fn reference() -> QNetwork {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/reference/model.safetensors");
        checkpoint::load_network(&p, Device::Cpu).unwrap()
    }

    fn eval_row(step: u64, mean: f64) -> MetricRow {
        MetricRow {
            step,
            episodes: 0,
            mean_score: 0.0,
            eval: Some(EvalSpread {
                mean,
                median: mean,
                min: mean,
                max: mean,
            }),
            loss: 0.0,
            epsilon: 0.0,
            lr: 0.0,
            env_steps_per_s: 0.0,
            updates_per_s: 0.0,
            minutes: 0.0,
        }
    }

    fn bytes_of(net: &QNetwork, dir: &Path, name: &str) -> Vec<u8> {
        let p = dir.join(name);
        net.vs.save(&p).unwrap();
        std::fs::read(&p).unwrap()
    }

    /// The trained reference against untrained networks of the same
    /// architecture: wherever the trained one is (final policy, the snapshot
    /// with the best or with a lower periodic mean), it is kept, and a
    /// snapshot outside the top `select_candidates` is never a candidate.
    /// A fresh run folder `trainer-<tag>-<pid>` with an empty
    /// `snapshots/`, the trained reference and two untrained networks of its
    /// architecture (seeded).
    fn players(tag: &str) -> (PathBuf, QNetwork, QNetwork, QNetwork) {
        let dir = std::env::temp_dir().join(format!("trainer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("snapshots")).unwrap();
        let trained = reference();
        let _seed = crate::torch_seed_lock();
        tch::manual_seed(3);
        let untrained = QNetwork::new(trained.arch, Device::Cpu);
        tch::manual_seed(4);
        let untrained2 = QNetwork::new(trained.arch, Device::Cpu);
        (dir, trained, untrained, untrained2)
    }

    /// Snapshots at steps 100 (`early`), 200 (`trained`) and 300 (`late`)
    /// in `dir`, and periodic means that favour the early one (9, 5, 7).
    fn late_good_snapshot(
        dir: &Path,
        trained: &QNetwork,
        early: &QNetwork,
        late: &QNetwork,
    ) -> Metrics {
        early.vs.save(snapshot_path(dir, 100)).unwrap();
        trained.vs.save(snapshot_path(dir, 200)).unwrap();
        late.vs.save(snapshot_path(dir, 300)).unwrap();
        Metrics {
            rows: vec![eval_row(100, 9.0), eval_row(200, 5.0), eval_row(300, 7.0)],
        }
    }

    #[test]
    fn the_better_player_is_kept_wherever_it_is() {
        let (dir, trained, untrained, untrained2) = players("select");
        let cfg = Config {
            select_episodes: 4,
            select_candidates: 2,
            eval_max_score: 20,
            ..Config::default()
        };
        let best = best_model_path(&dir);
        let metrics = Metrics {
            rows: vec![eval_row(100, 5.0), eval_row(200, 9.0), eval_row(300, 7.0)],
        };
        let trained_bytes = bytes_of(&trained, &dir, "trained.safetensors");

        // The trained network is the second-best periodic snapshot.
        untrained.vs.save(snapshot_path(&dir, 200)).unwrap();
        trained.vs.save(snapshot_path(&dir, 300)).unwrap();
        trained.vs.save(snapshot_path(&dir, 100)).unwrap();
        untrained.vs.save(&best).unwrap();
        let rule = SelectRule::from(&cfg);
        let select = |policy| select_final(policy, &dir, &metrics, rule, 400, Device::Cpu).unwrap();
        let s = select(&untrained2);
        assert_eq!(s.kept, Some(300), "{s:?}");
        // Step 100 (eval 5.0) is not among the two best: not a candidate.
        let steps: Vec<u64> = s.snapshots.iter().map(|c| c.step).collect();
        assert_eq!(steps, vec![200, 300], "{s:?}");
        assert!(s.kept_mean() > s.final_mean, "{s:?}");
        assert_eq!(std::fs::read(&best).unwrap(), trained_bytes);

        // A snapshot at the final policy's own step is that policy, not a
        // second candidate: the next best snapshot takes its place.
        let s = select_final(&untrained2, &dir, &metrics, rule, 300, Device::Cpu).unwrap();
        let steps: Vec<u64> = s.snapshots.iter().map(|c| c.step).collect();
        assert_eq!(steps, vec![200, 100], "{s:?}");
        assert_eq!(s.kept, Some(100), "{s:?}");

        // The final policy is the trained one: it replaces every snapshot.
        untrained2.vs.save(snapshot_path(&dir, 300)).unwrap();
        untrained.vs.save(&best).unwrap();
        let s = select(&trained);
        assert!(s.kept_final(), "{s:?}");
        assert!(
            s.snapshots.iter().all(|c| c.select_mean < s.final_mean),
            "{s:?}"
        );
        let kept = checkpoint::load_network(&best, Device::Cpu).unwrap();
        let stacks = crate::quant::float_model::played_stacks(8, 1);
        let refs: Vec<&flappy::FrameStack> = stacks.iter().collect();
        assert_eq!(kept.act(&refs), trained.act(&refs));

        // A run without saved snapshots offers its best.safetensors.
        std::fs::remove_dir_all(dir.join("snapshots")).unwrap();
        trained.vs.save(&best).unwrap();
        let s = select(&untrained);
        assert_eq!(s.kept, Some(0), "{s:?}");
        assert_eq!(std::fs::read(&best).unwrap(), trained_bytes);

        // With `select_last` the candidates are the latest snapshots, not
        // those with the best periodic means: a good late snapshot with a
        // poor 10-game evaluation is found, an early lucky one is not played.
        std::fs::create_dir_all(dir.join("snapshots")).unwrap();
        let early_luck = late_good_snapshot(&dir, &trained, &untrained, &untrained);
        let steps_of = |s: &Selection| s.snapshots.iter().map(|c| c.step).collect::<Vec<u64>>();
        let by_eval = select_final(&untrained2, &dir, &early_luck, rule, 400, Device::Cpu).unwrap();
        assert_eq!(steps_of(&by_eval), vec![100, 300], "{by_eval:?}");
        assert_ne!(by_eval.kept, Some(200), "{by_eval:?}");
        let last = SelectRule { last: true, ..rule };
        let s = select_final(&untrained2, &dir, &early_luck, last, 400, Device::Cpu).unwrap();
        assert_eq!(steps_of(&s), vec![300, 200], "{s:?}");
        assert_eq!(s.kept, Some(200), "{s:?}");
        assert_eq!(std::fs::read(&best).unwrap(), trained_bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `select_int8` with `select_last`: the candidates (the final policy
    /// and the two latest snapshots, whatever their periodic means) play as
    /// the blobs the run would export from them; the trained one is kept,
    /// and the blob exported from the kept network plays the selection's
    /// games as its candidate did.
    #[test]
    fn the_int8_selection_scores_the_blob_the_run_ships() {
        let (dir, trained, untrained, untrained2) = players("select8");
        let cfg = Config {
            select_episodes: 4,
            select_candidates: 2,
            eval_max_score: 20,
            select_last: true,
            select_int8: true,
            ..Config::default()
        };
        let early_luck = late_good_snapshot(&dir, &trained, &untrained, &untrained2);
        untrained.vs.save(best_model_path(&dir)).unwrap();
        let rule = SelectRule::from(&cfg);
        let s =
            select_final_int8(&untrained, &dir, &early_luck, rule, 400, Device::Cpu, 2).unwrap();
        assert!(s.int8, "{s:?}");
        let steps: Vec<u64> = s.snapshots.iter().map(|c| c.step).collect();
        assert_eq!(steps, vec![300, 200], "{s:?}");
        assert_eq!(s.kept, Some(200), "{s:?}");
        assert!(s.kept_mean() > s.final_mean, "{s:?}");
        let kept = checkpoint::load_network(&best_model_path(&dir), Device::Cpu).unwrap();
        let blob = crate::report::default_blob(&kept, 1).unwrap();
        let shipped = crate::eval::evaluate_blob(&blob, 4, SELECT_SEED, 20).unwrap();
        assert_eq!(shipped.mean_score, s.kept_mean(), "{s:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
