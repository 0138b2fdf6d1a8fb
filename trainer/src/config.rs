//! Every training hyperparameter in one struct ([`Config`]): defaults, a TOML
//! file (`--config f.toml`, unknown keys rejected) and command-line flags
//! (which win over the file). Beside it, every distillation setting
//! ([`DistilConfig`], flags only); both validate alike.

use anyhow::{anyhow, Context, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::{Deserialize, Serialize};

pub use netspec::Arch;

/// How the learning rate falls from `lr` to `lr_end` ([`Config::lr_fall`]).
#[derive(clap::ValueEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LrFall {
    /// By the same amount each minute.
    Linear,
    /// By the same factor each minute: halfway it is sqrt(lr * lr_end).
    Geometric,
}

/// A network is named in configs and on the command line, and is an
/// [`Arch`] everywhere else: parsed once, here.
pub(crate) mod arch_by_name {
    use super::Arch;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(a: &Arch, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arch, D::Error> {
        let name = String::deserialize(d)?;
        name.parse()
            .map_err(|e| D::Error::custom(format!("`{name}`: {e}")))
    }
}

/// The `--net` parser: one of the names of `netspec::ALL`, listed in `--help`.
pub fn arch_arg() -> impl clap::builder::TypedValueParser<Value = Arch> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(netspec::ALL.iter().map(|a| a.name))
        .try_map(|name| name.parse::<Arch>())
}

/// Every master seed is below this, so that the training games it seeds
/// (`seed * 1_000_003 + ...`, and `2^40 + seed * 1_000_003 + ...` when
/// distilling) stay below [`flappy::seeds::VALIDATION`].
pub const MAX_SEED: u64 = 1 << 24;

/// Training hyperparameters. Every field is a `train` flag (`--lr 1e-4`) and a
/// key of the TOML config file.
#[derive(Args, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Network architecture, one of `netspec::ALL`: `compact` (default: shaped
    /// for the binary 80x80 input, a quarter of `classic`'s work), `classic`
    /// (the original DQN's), `small` or `tiny` (for small MCUs).
    #[arg(long, default_value_t = Config::default().net, value_parser = arch_arg())]
    #[serde(with = "arch_by_name")]
    pub net: Arch,
    /// Master seed (torch init, environments, exploration and replay
    /// sampling), below 2^24: the training games it seeds then stay below
    /// the validation and test seeds (`flappy::seeds`).
    #[arg(long, default_value_t = Config::default().seed)]
    pub seed: u64,
    /// Environments stepped together (one batched forward picks all their actions).
    #[arg(long, default_value_t = Config::default().num_envs)]
    pub num_envs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = Config::default().lr)]
    pub lr: f64,
    /// Learning rate at the end of the budget: the rate falls from `lr` to
    /// this over the run (time budget, or `total_steps` when set).
    #[arg(long, default_value_t = Config::default().lr_end)]
    pub lr_end: f64,
    /// How the learning rate falls from `lr` to `lr_end`: `linear`, or
    /// `geometric` (by the same factor each minute, so the run spends more of
    /// its time at low rates: halfway it is sqrt(lr * lr_end)).
    #[arg(long, value_enum, default_value_t = Config::default().lr_fall)]
    pub lr_fall: LrFall,
    /// Adam epsilon.
    #[arg(long, default_value_t = Config::default().adam_eps)]
    pub adam_eps: f64,
    /// Discount factor.
    #[arg(long, default_value_t = Config::default().gamma)]
    pub gamma: f64,
    /// Steps of the n-step return (1 = plain one-step Q-learning).
    #[arg(long, default_value_t = Config::default().n_step)]
    pub n_step: usize,
    /// Minibatch size of a gradient update.
    #[arg(long, default_value_t = Config::default().batch_size)]
    pub batch_size: usize,
    /// Replay memory capacity in transitions (one 800-byte frame each; 1M ≈ 0.8 GB,
    /// filled as it is used). The default holds a whole CPU run: nothing is forgotten.
    #[arg(long, default_value_t = Config::default().replay_capacity)]
    pub replay_capacity: usize,
    /// Prioritized replay exponent alpha (0 = uniform replay): transitions are
    /// drawn with probability proportional to (|TD error| + 0.001)^alpha.
    #[arg(long, default_value_t = Config::default().per_alpha)]
    pub per_alpha: f64,
    /// Prioritized replay's importance-sampling exponent at the start; it
    /// rises linearly to 1 over the budget.
    #[arg(long, default_value_t = Config::default().per_beta)]
    pub per_beta: f64,
    /// Environment steps (summed over environments) collected before learning starts.
    #[arg(long, default_value_t = Config::default().learning_starts)]
    pub learning_starts: u64,
    /// Environment steps (summed over environments) per gradient update.
    #[arg(long, default_value_t = Config::default().steps_per_update)]
    pub steps_per_update: u64,
    /// Gradient updates between hard target-network copies (ignored when `tau` > 0).
    #[arg(long, default_value_t = Config::default().target_update)]
    pub target_update: u64,
    /// Polyak coefficient for a soft target update after every gradient update (0 = hard updates).
    #[arg(long, default_value_t = Config::default().tau)]
    pub tau: f64,
    /// Weight of the online network in the policy's moving average after each
    /// update (0 = no average: the online network itself is evaluated and
    /// exported). 1e-4 averages over about 10 000 updates.
    #[arg(long, default_value_t = Config::default().policy_ema)]
    pub policy_ema: f64,
    /// Double DQN target (online argmax, target value); false = max of the target network.
    #[arg(long, default_value_t = Config::default().double_dqn, action = clap::ArgAction::Set)]
    pub double_dqn: bool,
    /// Huber loss threshold: TD errors below it are squared, above it count
    /// linearly. 10 keeps a crash's error (a predicted ~11 against a target of
    /// -1) at its full weight; the classic 1 shrinks it twelvefold against the
    /// small errors of safe steps (docs/learning.md, runs hd1 and hd3).
    #[arg(long, default_value_t = Config::default().huber_delta)]
    pub huber_delta: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = Config::default().grad_clip)]
    pub grad_clip: f64,
    /// Exploration rate when learning starts (before that the policy is the biased random one).
    #[arg(long, default_value_t = Config::default().eps_start)]
    pub eps_start: f64,
    /// Final exploration rate.
    #[arg(long, default_value_t = Config::default().eps_end)]
    pub eps_end: f64,
    /// Environment steps after `learning_starts` over which epsilon decays linearly.
    #[arg(long, default_value_t = Config::default().eps_decay_steps)]
    pub eps_decay_steps: u64,
    /// Probability that a random (exploration) action is a flap. Uniform (0.5) pins the bird
    /// to the ceiling; about 1 flap in 19 frames holds its height, 0.08 drifts gently up.
    #[arg(long, default_value_t = Config::default().flap_prob)]
    pub flap_prob: f64,
    /// Probability that a crashed training game is retried: put back where it
    /// was a few steps before the crash (the same pipes to come, the stack it
    /// had) instead of starting a new game, so the agent practises exactly the
    /// spots where it fails. 0 = never. A retried game's later crashes may be
    /// retried again; only first tries count in the training score.
    #[arg(long, default_value_t = Config::default().retry_prob)]
    pub retry_prob: f64,
    /// The most steps a retry goes back (drawn uniformly from 1..=this).
    #[arg(long, default_value_t = Config::default().retry_back)]
    pub retry_back: usize,
    /// While a retried game replays the steps before its crash, the chance
    /// at each step that the agent's greedy action is swapped for the other
    /// one, so the retry tries what the first attempt did not.
    #[arg(long, default_value_t = Config::default().retry_eps)]
    pub retry_eps: f64,
    /// Probability that a training game's next pipe, after a gap among the
    /// three highest, gets a gap at least 50 pixels lower (a dive, the pipe
    /// pair most crashes come from) instead of the game's own: the dives
    /// come more often while training. 0 = the real games. Training games
    /// only: every evaluation and selection plays the real game.
    #[arg(long, default_value_t = Config::default().dive_prob)]
    pub dive_prob: f64,
    /// Environment steps between greedy evaluations (0 = none during training).
    #[arg(long, default_value_t = Config::default().eval_every)]
    pub eval_every: u64,
    /// Episodes per greedy evaluation.
    #[arg(long, default_value_t = Config::default().eval_episodes)]
    pub eval_episodes: usize,
    /// Score at which an evaluation episode is stopped (so evaluation terminates).
    #[arg(long, default_value_t = Config::default().eval_max_score)]
    pub eval_max_score: u32,
    /// Games on which, at the end of the run, the final policy and the best
    /// periodic snapshots are each played again (fresh seeds); the highest
    /// mean is kept as `best.safetensors` (0 = keep the best snapshot unchecked).
    #[arg(long, default_value_t = Config::default().select_episodes)]
    pub select_episodes: usize,
    /// Periodic snapshots (those with the best evaluation means, saved in
    /// `<run>/snapshots/`) that join the final policy in the end-of-run selection.
    #[arg(long, default_value_t = Config::default().select_candidates)]
    pub select_candidates: usize,
    /// The snapshots in the end-of-run selection are the latest
    /// `select_candidates` instead of those with the best periodic means
    /// (whose 10-game evaluations can favour an early, lucky snapshot).
    #[arg(long, default_value_t = Config::default().select_last, action = clap::ArgAction::Set)]
    pub select_last: bool,
    /// The end-of-run selection plays each candidate as the int8 blob the
    /// run would export from it (calibrated on its own play, through
    /// policy-core) instead of as its float network.
    #[arg(long, default_value_t = Config::default().select_int8, action = clap::ArgAction::Set)]
    pub select_int8: bool,
    /// Minutes between checkpoints (a SIGKILL loses at most this much). Each
    /// checkpoint also saves the replay memory (806 bytes per stored transition).
    #[arg(long, default_value_t = Config::default().checkpoint_min)]
    pub checkpoint_min: f64,
    /// Environment steps between metrics rows.
    #[arg(long, default_value_t = Config::default().log_every)]
    pub log_every: u64,
    /// The budget: environment steps (summed over games; one gradient
    /// update per `steps_per_update`). A budget in steps gives every run the
    /// same amount of learning on any machine, thread count or load; its
    /// wall time is what varies (about 85 minutes with both cores of this
    /// project's 2-core CPU). 0 = a time budget instead (`minutes`).
    #[arg(long, default_value_t = Config::default().total_steps)]
    pub total_steps: u64,
    /// A time limit in minutes (0 = none while `total_steps` is set; with
    /// `total_steps` 0: automatic, 55 on CPU, 14 on CUDA). The run stops at
    /// whichever comes first.
    #[arg(long, default_value_t = Config::default().minutes)]
    pub minutes: f64,
    /// CPU threads for libtorch (0 = all cores).
    #[arg(long, default_value_t = Config::default().threads)]
    pub threads: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            net: netspec::COMPACT,
            seed: 1,
            num_envs: 16,
            lr: 3e-4,
            lr_end: 3e-5,
            lr_fall: LrFall::Linear,
            adam_eps: 1e-4,
            gamma: 0.99,
            n_step: 5,
            batch_size: 64,
            replay_capacity: 3_000_000,
            per_alpha: 0.0,
            per_beta: 0.4,
            learning_starts: 5_000,
            steps_per_update: 8,
            target_update: 2_000,
            tau: 0.0,
            policy_ema: 1e-4,
            double_dqn: true,
            huber_delta: 10.0,
            grad_clip: 10.0,
            eps_start: 0.1,
            eps_end: 0.001,
            eps_decay_steps: 400_000,
            flap_prob: 0.08,
            retry_prob: 0.75,
            retry_back: 48,
            retry_eps: 0.1,
            dive_prob: 0.0,
            eval_every: 100_000,
            eval_episodes: 10,
            eval_max_score: 1000,
            select_episodes: 50,
            select_candidates: 3,
            select_last: false,
            select_int8: false,
            checkpoint_min: 5.0,
            log_every: 10_000,
            total_steps: 2_000_000,
            minutes: 0.0,
            threads: 0,
        }
    }
}

impl Config {
    /// Reads a TOML config file (missing keys keep their defaults).
    pub fn from_toml_file(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Config::from_toml(&text).with_context(|| format!("in config file {}", path.display()))
    }

    /// Parses TOML text (missing keys keep their defaults; unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<Config> {
        let c: Config =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("bad config: {}", e.message()))?;
        c.validate()?;
        Ok(c)
    }

    /// The config as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks ranges (the first rule broken is the error).
    pub fn validate(&self) -> Result<()> {
        let checks = [
            (
                self.seed < MAX_SEED,
                "seed must be below 2^24 (its training games stay below the validation seeds)",
            ),
            (self.num_envs >= 1, "num_envs must be >= 1"),
            (self.lr > 0.0 && self.lr.is_finite(), "lr must be > 0"),
            (
                self.lr_end >= 0.0 && self.lr_end <= self.lr,
                "lr_end must be in [0, lr]",
            ),
            (
                self.gamma > 0.0 && self.gamma <= 1.0,
                "gamma must be in (0, 1]",
            ),
            (self.n_step >= 1, "n_step must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (
                self.replay_capacity >= 16 * self.num_envs,
                "replay_capacity too small for num_envs",
            ),
            (self.steps_per_update >= 1, "steps_per_update must be >= 1"),
            (
                (0.0..=1.0).contains(&self.per_alpha),
                "per_alpha must be in [0, 1]",
            ),
            (
                (0.0..=1.0).contains(&self.per_beta),
                "per_beta must be in [0, 1]",
            ),
            (self.target_update >= 1, "target_update must be >= 1"),
            ((0.0..=1.0).contains(&self.tau), "tau must be in [0, 1]"),
            (
                (0.0..=1.0).contains(&self.policy_ema),
                "policy_ema must be in [0, 1]",
            ),
            (
                (0.0..=1.0).contains(&self.eps_start),
                "eps_start must be in [0, 1]",
            ),
            (
                (0.0..=1.0).contains(&self.eps_end),
                "eps_end must be in [0, 1]",
            ),
            (
                (0.0..=1.0).contains(&self.flap_prob),
                "flap_prob must be in [0, 1]",
            ),
            (
                (0.0..=1.0).contains(&self.retry_prob),
                "retry_prob must be in [0, 1]",
            ),
            (
                (0.0..=1.0).contains(&self.dive_prob),
                "dive_prob must be in [0, 1]",
            ),
            (
                self.retry_back >= 1 || self.retry_prob == 0.0,
                "retry_back must be >= 1 when retry_prob > 0",
            ),
            (
                (0.0..=1.0).contains(&self.retry_eps),
                "retry_eps must be in [0, 1]",
            ),
            (self.grad_clip > 0.0, "grad_clip must be > 0"),
            (self.checkpoint_min > 0.0, "checkpoint_min must be > 0"),
            (
                self.minutes >= 0.0 && self.minutes.is_finite(),
                "minutes must be >= 0",
            ),
            (self.eval_episodes >= 1, "eval_episodes must be >= 1"),
            (self.log_every >= 1, "log_every must be >= 1"),
        ];
        first_broken(&checks).map_or(Ok(()), |msg| Err(anyhow!("bad config: {msg}")))
    }

    /// The time limit in minutes on `device` (see [`Config::minutes`]):
    /// infinite when the budget is in steps and no limit is given.
    pub fn budget_minutes(&self, device: tch::Device) -> f64 {
        match (self.minutes > 0.0, self.total_steps > 0, device.is_cuda()) {
            (true, _, _) => self.minutes,
            (false, true, _) => f64::INFINITY,
            (false, false, true) => 14.0,
            (false, false, false) => 55.0,
        }
    }

    /// Learning rate at `progress` (0 = start, 1 = end of the budget).
    pub fn learning_rate(&self, progress: f64) -> f64 {
        let t = progress.clamp(0.0, 1.0);
        if self.lr_fall == LrFall::Geometric && self.lr_end > 0.0 {
            self.lr * (self.lr_end / self.lr).powf(t)
        } else {
            self.lr * (1.0 - t) + self.lr_end * t
        }
    }

    /// Exploration rate after `env_steps` total environment steps.
    pub fn epsilon(&self, env_steps: u64) -> f64 {
        if env_steps < self.learning_starts {
            return 1.0;
        }
        let t = (env_steps - self.learning_starts) as f64 / self.eps_decay_steps.max(1) as f64;
        self.eps_start + (self.eps_end - self.eps_start) * t.min(1.0)
    }

    /// Settings a resumed run may change: its budget and its bookkeeping.
    /// Every other setting shapes what is learned and stays as saved.
    pub const RESUMABLE: [&'static str; 12] = [
        "minutes",
        "total_steps",
        "threads",
        "checkpoint_min",
        "log_every",
        "eval_every",
        "eval_episodes",
        "eval_max_score",
        "select_episodes",
        "select_candidates",
        "select_last",
        "select_int8",
    ];

    /// The names of the learning settings (all but [`Config::RESUMABLE`]) on
    /// which `self` and `saved` differ.
    pub fn learning_changes(&self, saved: &Config) -> Vec<String> {
        let (Ok(a), Ok(b)) = (toml::Value::try_from(self), toml::Value::try_from(saved)) else {
            return vec!["<unserializable config>".into()];
        };
        let (Some(a), Some(b)) = (a.as_table(), b.as_table()) else {
            return vec!["<unserializable config>".into()];
        };
        a.iter()
            .filter(|(k, v)| !Self::RESUMABLE.contains(&k.as_str()) && b.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Combines `base` (defaults or a file) with the flags given explicitly on
    /// the command line (`matches` are the `train` subcommand's).
    pub fn merge_cli(base: Config, cli: &Config, matches: &ArgMatches) -> Result<Config> {
        let mut table = toml::Value::try_from(&base)?;
        let cli_table = toml::Value::try_from(cli)?;
        if let (Some(t), Some(c)) = (table.as_table_mut(), cli_table.as_table()) {
            for (k, v) in c {
                if matches.value_source(k) == Some(ValueSource::CommandLine) {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
        let merged: Config = table.try_into()?;
        merged.validate()?;
        Ok(merged)
    }
}

/// The message of the first rule `(holds, message)` that does not hold:
/// how [`Config`] and [`DistilConfig`] validate.
fn first_broken<'a>(rules: &[(bool, &'a str)]) -> Option<&'a str> {
    rules.iter().find(|(ok, _)| !ok).map(|(_, msg)| *msg)
}

/// Every distillation setting; each is a `distil` flag and a key of
/// `distil.toml`.
#[derive(Args, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DistilConfig {
    /// The student's architecture, one of `netspec::ALL`.
    #[arg(long, default_value_t = netspec::TINY, value_parser = arch_arg())]
    #[serde(with = "arch_by_name")]
    pub net: Arch,
    /// The student starts as a copy of the teacher instead of a fresh
    /// network (`--net` must name the teacher's architecture): with
    /// `--int8-frac 1`, a fine-tuning of a trained network through the int8
    /// grid (docs/quantization.md, "Where the agreement is lost").
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub init_from_teacher: bool,
    /// Seed of the student's init, the games and the sampling.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Gradient updates to do (about 19 minutes on one core): the same
    /// amount of learning on a slow or busy machine (0: use `minutes`).
    #[arg(long, default_value_t = 100_000)]
    pub total_updates: u64,
    /// A wall-clock budget in minutes instead, when `total_updates` is 0.
    #[arg(long, default_value_t = 20.0)]
    pub minutes: f64,
    /// Games played together (one batched forward of each network per step).
    #[arg(long, default_value_t = 16)]
    pub num_envs: usize,
    /// Gradient updates per step of all games (each adds `num_envs` states).
    #[arg(long, default_value_t = 1)]
    pub updates_per_round: usize,
    /// Labelled states kept, 3.2 KB each (the oldest are overwritten).
    #[arg(long, default_value_t = 400_000)]
    pub capacity: usize,
    /// States per gradient update.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam learning rate at the start.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Learning rate at the end of the budget (falls linearly).
    #[arg(long, default_value_t = 5e-5)]
    pub lr_end: f64,
    /// Adam epsilon.
    #[arg(long, default_value_t = 1e-8)]
    pub adam_eps: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 10.0)]
    pub grad_clip: f64,
    /// Weight of the squared error of Q(flap) - Q(idle) beside that of the
    /// two Q-values.
    #[arg(long, default_value_t = 4.0)]
    pub adv_weight: f64,
    /// How much of the teacher's state value the student learns: its
    /// targets are the teacher's Q-values less `1 - value_scale` times their
    /// mean over the two actions (1: the Q-values, 0: only their difference,
    /// centred on 0). The action is the same; the int8 student keeps more
    /// precision for the difference when the values are not in its range.
    #[arg(long, default_value_t = 0.0)]
    pub value_scale: f64,
    /// Largest teacher Q-difference the student learns: Q(flap) - Q(idle)
    /// is clipped to [-adv_clip, adv_clip] before the targets are made
    /// (0 = no clip). The action is the same; a clearly decided state then
    /// weighs no more in the loss than one near the decision, where the
    /// student's capacity (and the int8 output's range) is spent instead.
    /// 1 (a pipe's reward) since the trial `tiny-clip` on validation games
    /// (docs/learning.md).
    #[arg(long, default_value_t = 1.0)]
    pub adv_clip: f64,
    /// Share of the updates, at the end, that train through the exact int8
    /// network the export will make (int8 weights, u8 activations whose
    /// steps are recalibrated every `calib_every` updates on remembered
    /// states as the export does; gradients straight through the rounding),
    /// so that the int8 student plays like the float one. When the kept
    /// student trained so, the export keeps the activation steps it trained
    /// through and its output layer's rounding (no refit toward the float
    /// Q-values). 0.25 since the trial `tiny-grid` on validation games
    /// (docs/learning.md).
    #[arg(long, default_value_t = 0.25)]
    pub int8_frac: f64,
    /// While training through the int8 grid: weight of the float network's
    /// own loss (the same targets, no rounding) beside the grid's; 0 = the
    /// grid's loss alone. With a weight the float network keeps learning
    /// the teacher as well, so it cannot drift where the rounding hides the
    /// drift from the grid (trial `grid-polish`, seed 7: its int8 blob
    /// played 825.0, its float network 467.5; docs/quantization.md).
    #[arg(long, default_value_t = 0.0)]
    pub float_anchor: f64,
    /// Updates between recalibrations of the int8 grid's activation steps.
    #[arg(long, default_value_t = 1000)]
    pub calib_every: u64,
    /// The student the run evaluates, snapshots, selects and exports is an
    /// exponential moving average of the trained weights, `avg <- (1 - tau)
    /// avg + tau student` after every update (as `train --policy-ema`);
    /// the trained student still drives its games. 0 = none: the trained
    /// student itself. 2e-4 averages over about 5 000 updates.
    #[arg(long, default_value_t = 0.0)]
    pub student_ema: f64,
    /// Share of episodes the teacher drives (the rest: the student).
    #[arg(long, default_value_t = 0.5)]
    pub teacher_share: f64,
    /// Chance of a random action at each step of either driver.
    #[arg(long, default_value_t = 0.02)]
    pub eps: f64,
    /// Chance that a random action is a flap.
    #[arg(long, default_value_t = 0.08)]
    pub flap_prob: f64,
    /// Gradient updates between greedy evaluations of the student (and
    /// snapshots, candidates of the end-of-run selection); 0 = none during
    /// the run, as `train --eval-every 0`. 10 000 since the trial
    /// `tiny-select` (docs/learning.md).
    #[arg(long, default_value_t = 10_000)]
    pub eval_every: u64,
    /// Games per periodic evaluation.
    #[arg(long, default_value_t = 10)]
    pub eval_episodes: usize,
    /// Score cap of evaluation and selection games.
    #[arg(long, default_value_t = 1000)]
    pub eval_max_score: u32,
    /// Games per candidate in the end-of-run selection (0: keep the final student).
    #[arg(long, default_value_t = 50)]
    pub select_episodes: usize,
    /// Snapshots (best periodic means) that compete with the final student.
    #[arg(long, default_value_t = 4)]
    pub select_candidates: usize,
    /// The end-of-run selection plays each candidate as the int8 blob the
    /// run would export from it (a grid-trained one through the activation
    /// steps it trained with, others calibrated on their own play with the
    /// output layer refitted; played through policy-core) instead of as its
    /// float network: the kept student is the best int8 player. On since
    /// the trial `tiny-select` on validation games (docs/learning.md);
    /// `--select-int8 false` plays the float networks.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub select_int8: bool,
    /// CPU threads for libtorch (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl Default for DistilConfig {
    /// The `distil` defaults (those of its flags).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            hp: DistilConfig,
        }
        <Defaults as clap::Parser>::parse_from(["distil"]).hp
    }
}

impl DistilConfig {
    /// Parses TOML text as `distil.toml` names the settings (missing keys
    /// keep their defaults; unknown keys and values out of range are errors).
    ///
    /// ```
    /// use trainer::config::DistilConfig;
    /// let hp = DistilConfig::from_toml("int8_frac = 0.25").unwrap();
    /// assert_eq!(hp.int8_frac, 0.25);
    /// assert_eq!(hp.batch_size, DistilConfig::default().batch_size);
    /// assert!(DistilConfig::from_toml("int8_frac = 2.0").is_err());
    /// assert!(DistilConfig::from_toml("no_such_setting = 1").is_err());
    /// ```
    pub fn from_toml(text: &str) -> Result<DistilConfig> {
        let hp: DistilConfig = toml::from_str(text)
            .map_err(|e| anyhow!("bad distillation settings: {}", e.message()))?;
        hp.validate()?;
        Ok(hp)
    }

    /// Refuses settings that cannot run (the first rule broken).
    pub fn validate(&self) -> Result<()> {
        let unit = |x: f64| (0.0..=1.0).contains(&x);
        first_broken(&[
            (
                self.seed < MAX_SEED,
                "--seed must be below 2^24 (its games stay below the validation seeds)",
            ),
            (self.num_envs >= 1, "--num-envs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (
                self.capacity >= self.batch_size,
                "--capacity must be at least --batch-size",
            ),
            (
                self.minutes > 0.0 || self.total_updates > 0,
                "give a positive --minutes or --total-updates",
            ),
            (
                self.lr > 0.0 && self.lr_end > 0.0,
                "--lr and --lr-end must be positive",
            ),
            (
                self.adam_eps > 0.0 && self.adam_eps.is_finite(),
                "--adam-eps must be positive",
            ),
            (self.grad_clip > 0.0, "--grad-clip must be positive"),
            (
                self.adv_weight.is_finite() && self.adv_weight >= 0.0,
                "--adv-weight must be 0 or more",
            ),
            (unit(self.value_scale), "--value-scale must be in [0, 1]"),
            (
                self.adv_clip.is_finite() && self.adv_clip >= 0.0,
                "--adv-clip must be 0 (no clip) or more",
            ),
            (unit(self.int8_frac), "--int8-frac must be in [0, 1]"),
            (
                self.float_anchor.is_finite() && self.float_anchor >= 0.0,
                "--float-anchor must be 0 (none) or more",
            ),
            (unit(self.student_ema), "--student-ema must be in [0, 1]"),
            (
                unit(self.teacher_share),
                "--teacher-share must be in [0, 1]",
            ),
            (unit(self.eps), "--eps must be in [0, 1]"),
            (unit(self.flap_prob), "--flap-prob must be in [0, 1]"),
            (
                self.eval_max_score >= 1,
                "--eval-max-score must be at least 1",
            ),
        ])
        .map_or(Ok(()), |why| Err(anyhow!("{why}")))
    }

    /// Learning rate at `progress` in [0, 1] of the budget.
    pub fn learning_rate(&self, progress: f64) -> f64 {
        let p = progress.clamp(0.0, 1.0);
        self.lr + (self.lr_end - self.lr) * p
    }
}
