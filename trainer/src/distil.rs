//! Policy distillation (`trainer distil`): a small student network learns a
//! trained teacher's Q-values, so that a master-level policy fits a small chip.
//!
//! The data are the states both networks meet while playing (DAgger, Ross et
//! al. 2011): each game is driven for a whole episode by the teacher (with
//! probability `teacher_share`) or by the student, both with a little
//! exploration, and every state met is labelled with the teacher's two
//! Q-values. States where the student strays are thus in the data, with the
//! teacher's answer. The loss is the squared error of both Q-values plus
//! `adv_weight` times the squared error of their difference Q(flap) - Q(idle),
//! which alone decides the action: the difference is small beside the values
//! (~10), and a loss on the values alone would spend the small network on
//! them.

use crate::agent::Adam;
use crate::atomic::{write_atomic, write_atomic_with};
use crate::config::arch_arg;
use crate::env::VecEnv;
use crate::eval::{evaluate, unit};
use crate::metrics::{EvalSpread, MetricRow, Metrics};
use crate::net::{to_input, unpack_stack, Arch, QNetwork, INPUT_LEN};
use crate::progress::{human, Progress, Window};
use crate::train::{
    self, best_model_path, mean, push_recent, select_final, snapshot_path, SelectRule, Selection,
    EVAL_SEED,
};
use anyhow::{bail, Context, Result};
use clap::Args;
use flappy::FrameStack;
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Kind, Reduction, Tensor};

/// First game seed of the games played while distilling (far from the final
/// evaluation's 0..N, the periodic evaluations' and the training runs').
pub const DISTIL_SEED: u64 = 1 << 40;

/// Every distillation setting; each is a `distil` flag.
#[derive(Args, Serialize, Clone, Debug, PartialEq)]
pub struct DistilConfig {
    /// The student's architecture, one of `netspec::ALL`.
    #[arg(long, default_value_t = netspec::TINY, value_parser = arch_arg())]
    #[serde(serialize_with = "arch_name")]
    pub net: Arch,
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
    /// Share of the updates, at the end, that train through the exact int8
    /// network the export will make (int8 weights, u8 activations whose
    /// steps are recalibrated every `calib_every` updates on remembered
    /// states as the export does; gradients straight through the rounding),
    /// so that the int8 student plays like the float one. When the kept
    /// student trained so, the export keeps its output layer's rounding (no
    /// refit toward the float Q-values).
    #[arg(long, default_value_t = 0.0)]
    pub int8_frac: f64,
    /// Updates between recalibrations of the int8 grid's activation steps.
    #[arg(long, default_value_t = 1000)]
    pub calib_every: u64,
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
    /// snapshots, candidates of the end-of-run selection).
    #[arg(long, default_value_t = 25_000)]
    pub eval_every: u64,
    /// Games per periodic evaluation.
    #[arg(long, default_value_t = 10)]
    pub eval_episodes: usize,
    /// Score cap of evaluation and selection games.
    #[arg(long, default_value_t = 1000)]
    pub eval_max_score: u32,
    /// Games per candidate in the end-of-run selection (0: keep the final student).
    #[arg(long, default_value_t = 30)]
    pub select_episodes: usize,
    /// Snapshots (best periodic means) that compete with the final student.
    #[arg(long, default_value_t = 2)]
    pub select_candidates: usize,
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

fn arch_name<S: serde::Serializer>(a: &Arch, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name)
}

impl DistilConfig {
    /// Refuses settings that cannot run.
    pub fn validate(&self) -> Result<()> {
        let checks = [
            (
                self.seed >= crate::config::MAX_SEED,
                "--seed must be below 2^24 (its games stay below the validation seeds)",
            ),
            (self.num_envs == 0, "--num-envs must be at least 1"),
            (self.batch_size == 0, "--batch-size must be at least 1"),
            (
                self.capacity < self.batch_size,
                "--capacity must be at least --batch-size",
            ),
            (
                !(self.minutes > 0.0 || self.total_updates > 0),
                "give a positive --minutes or --total-updates",
            ),
            (
                !(self.lr > 0.0 && self.lr_end > 0.0),
                "--lr and --lr-end must be positive",
            ),
            (
                !(self.adv_weight.is_finite() && self.adv_weight >= 0.0),
                "--adv-weight must be 0 or more",
            ),
            (
                !(0.0..=1.0).contains(&self.value_scale),
                "--value-scale must be in [0, 1]",
            ),
            (
                !(0.0..=1.0).contains(&self.int8_frac),
                "--int8-frac must be in [0, 1]",
            ),
            (
                !(0.0..=1.0).contains(&self.teacher_share),
                "--teacher-share must be in [0, 1]",
            ),
            (!(0.0..=1.0).contains(&self.eps), "--eps must be in [0, 1]"),
            (
                !(0.0..=1.0).contains(&self.flap_prob),
                "--flap-prob must be in [0, 1]",
            ),
            (
                self.eval_max_score == 0,
                "--eval-max-score must be at least 1",
            ),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, why)) => bail!("{why}"),
            None => Ok(()),
        }
    }

    /// Learning rate at `progress` in [0, 1] of the budget.
    pub fn learning_rate(&self, progress: f64) -> f64 {
        let p = progress.clamp(0.0, 1.0);
        self.lr + (self.lr_end - self.lr) * p
    }
}

/// What [`distil`] hands back.
pub struct Distilled {
    /// Gradient updates done.
    pub updates: u64,
    /// Labelled states collected.
    pub states: u64,
    /// Episodes the student drove to their end.
    pub student_episodes: u64,
    /// Minutes spent.
    pub minutes: f64,
    /// The run's metrics rows.
    pub metrics: Metrics,
    /// The end-of-run selection, when one ran.
    pub selection: Option<Selection>,
    /// Ctrl-C stopped the run (the student was still saved).
    pub interrupted: bool,
    /// The kept student trained through the int8 grid (`int8_frac`): its
    /// export must keep the grid's rounding, not refit the output layer
    /// toward its float Q-values.
    pub grid_trained: bool,
}

/// Labelled states: frame stacks and the teacher's Q-values, a ring.
struct Memory {
    stacks: Vec<FrameStack>,
    q: Vec<[f32; 2]>,
    next: usize,
    capacity: usize,
}

impl Memory {
    fn push(&mut self, s: &FrameStack, q: [f32; 2]) {
        if self.stacks.len() < self.capacity {
            self.stacks.push(*s);
            self.q.push(q);
        } else {
            self.stacks[self.next] = *s;
            self.q[self.next] = q;
        }
        self.next = (self.next + 1) % self.capacity;
    }

    /// Unpacks uniformly drawn states into `x` (as many as it holds inputs)
    /// and, when given, their teacher Q-values into `q`.
    fn draw(&self, rng: &mut Pcg32, x: &mut [f32], mut q: Option<&mut [f32]>) {
        for (k, dst) in x.chunks_exact_mut(INPUT_LEN).enumerate() {
            let j = (rng.next_u64() % self.stacks.len() as u64) as usize;
            unpack_stack(&self.stacks[j], dst);
            if let Some(q) = q.as_deref_mut() {
                q[2 * k..2 * k + 2].copy_from_slice(&self.q[j]);
            }
        }
    }
}

/// The student's targets: the teacher's Q-values `tq` `[B, 2]` less `1 -
/// value_scale` times their mean over the two actions.
pub fn targets(tq: &Tensor, value_scale: f64) -> Tensor {
    tq - tq.mean_dim(1, true, Kind::Float) * (1.0 - value_scale)
}

/// The distillation loss of `student` on a batch `xs` with targets `tq`
/// `[B, 2]` ([`targets`]), and the share of the batch where the student's
/// greedy action is the teacher's.
/// `act_steps`: through the int8 grid with these activation steps
/// ([`QNetwork::forward_int8_grid`]), else in floats.
pub fn loss(
    student: &QNetwork,
    xs: &Tensor,
    tq: &Tensor,
    adv_weight: f64,
    act_steps: Option<&[f64]>,
) -> (Tensor, f64) {
    let q = match act_steps {
        Some(s) => student.forward_int8_grid(xs, s),
        None => student.forward(xs),
    };
    let adv = q.select(1, 1) - q.select(1, 0);
    let t_adv = tq.select(1, 1) - tq.select(1, 0);
    let agree = adv
        .gt(0.0)
        .eq_tensor(&t_adv.gt(0.0))
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    let l = q.mse_loss(tq, Reduction::Mean) + adv.mse_loss(&t_adv, Reduction::Mean) * adv_weight;
    (l, agree)
}

/// Distils `teacher` into a fresh `cfg.net` student in `run_dir`: writes
/// `distil.toml`, `metrics.csv`, `curve.png`, snapshots and `best.safetensors`
/// (the selected student).
pub fn distil(
    cfg: &DistilConfig,
    teacher: &QNetwork,
    run_dir: &Path,
    stop: &AtomicBool,
) -> Result<Distilled> {
    cfg.validate()?;
    let device = teacher.device();
    std::fs::create_dir_all(train::snapshot_dir(run_dir))
        .with_context(|| format!("creating {}", run_dir.display()))?;
    let _lock = train::RunLock::acquire(run_dir)?;
    if best_model_path(run_dir).exists() {
        bail!(
            "{} already holds a network: pick another --name",
            run_dir.display()
        );
    }
    let toml = toml::to_string(cfg).context("writing the settings as TOML")?;
    write_atomic(&run_dir.join("distil.toml"), toml.as_bytes())?;
    if cfg.threads > 0 {
        tch::set_num_threads(cfg.threads as i32);
    }
    tch::manual_seed(cfg.seed as i64);
    let student = QNetwork::new(cfg.net, device);
    let mut adam = Adam::new(&student);
    let mut rng = Pcg32::seed_from_u64(cfg.seed ^ 0xD157_1110);
    let env_seed = DISTIL_SEED.wrapping_add(cfg.seed.wrapping_mul(1_000_003));
    let mut envs = VecEnv::new(cfg.num_envs, env_seed);
    let mut by_teacher: Vec<bool> = (0..cfg.num_envs)
        .map(|_| unit(&mut rng) < cfg.teacher_share)
        .collect();
    let mut memory = Memory {
        stacks: Vec::new(),
        q: Vec::new(),
        next: 0,
        capacity: cfg.capacity,
    };
    let mut metrics = Metrics::default();
    let mut recent: VecDeque<u32> = VecDeque::new();
    let (mut updates, mut states, mut episodes) = (0u64, 0u64, 0u64);
    let budget_s = cfg.minutes * 60.0;
    let mut bar = Progress::new(budget_s, cfg.total_updates);
    bar.set_message("collecting the first labelled states".into());
    let start = Instant::now();
    let mut window = Window::new(0, 0);
    let (mut last_loss, mut last_agree, mut last_eval, mut lr) =
        (f64::NAN, f64::NAN, f64::NAN, cfg.lr);
    let mut next_eval = cfg.eval_every.max(1);
    let mut xbuf = vec![0f32; cfg.batch_size * INPUT_LEN];
    let mut tbuf = vec![0f32; cfg.batch_size * 2];
    let mut interrupted = false;
    let mut act_steps: Option<Vec<f64>> = None;
    // Labelled states when the first update through the int8 grid came.
    let mut grid_from: Option<u64> = None;
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        let progress = if cfg.total_updates > 0 {
            updates as f64 / cfg.total_updates as f64
        } else {
            elapsed / budget_s
        };
        if progress >= 1.0 {
            break;
        }
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }

        // Play one step of every game; label each state with the teacher's Q.
        let stacks: Vec<&FrameStack> = envs.stacks.iter().collect();
        let (t_act, t_q) = teacher.act(&stacks);
        // The student's actions, for the games it drives (none: not asked).
        let s_act = if by_teacher.iter().all(|&t| t) {
            Vec::new()
        } else {
            student.act(&stacks).0
        };
        for (s, q) in envs.stacks.iter().zip(&t_q) {
            memory.push(s, *q);
        }
        for i in 0..cfg.num_envs {
            let a = if unit(&mut rng) < cfg.eps {
                u8::from(unit(&mut rng) < cfg.flap_prob)
            } else if by_teacher[i] {
                t_act[i]
            } else {
                s_act[i]
            };
            let step = envs.step(i, a)?;
            if let Some(score) = step.final_score {
                if !by_teacher[i] {
                    episodes += 1;
                    push_recent(&mut recent, score);
                }
                by_teacher[i] = unit(&mut rng) < cfg.teacher_share;
            }
        }
        states += cfg.num_envs as u64;

        // Learn from uniformly drawn labelled states.
        if memory.stacks.len() >= cfg.batch_size {
            lr = cfg.learning_rate(progress);
            for _ in 0..cfg.updates_per_round {
                memory.draw(&mut rng, &mut xbuf, Some(&mut tbuf));
                let xs = to_input(&xbuf, cfg.batch_size, device);
                let tq = targets(
                    &Tensor::from_slice(&tbuf)
                        .view([cfg.batch_size as i64, 2])
                        .to_device(device),
                    cfg.value_scale,
                );
                if progress >= 1.0 - cfg.int8_frac
                    && (act_steps.is_none() || updates.is_multiple_of(cfg.calib_every.max(1)))
                {
                    act_steps = Some(calibrate(&student, &memory, &mut rng, device));
                    grid_from.get_or_insert(states);
                }
                let (l, agree) = loss(&student, &xs, &tq, cfg.adv_weight, act_steps.as_deref());
                let lv = l.double_value(&[]);
                if !lv.is_finite() {
                    bail!("the distillation loss is {lv} at update {updates} (diverged)");
                }
                for mut p in student.vs.trainable_variables() {
                    p.zero_grad();
                }
                l.backward();
                adam.step(&student, lr, 1e-8, 10.0)?;
                updates += 1;
                (last_loss, last_agree) = (lv, agree);
            }
        }

        // Evaluate, snapshot and log.
        if updates >= next_eval {
            next_eval += cfg.eval_every.max(1);
            let r = evaluate(&student, cfg.eval_episodes, EVAL_SEED, cfg.eval_max_score)?;
            last_eval = r.mean_score;
            let (states_per_s, updates_per_s) = window.rates(states, updates);
            metrics.rows.push(MetricRow {
                step: states,
                episodes,
                mean_score: mean(&recent),
                eval: Some(EvalSpread {
                    mean: r.mean_score,
                    median: r.median_score,
                    min: r.min_score as f64,
                    max: r.max_score as f64,
                }),
                loss: last_loss,
                epsilon: cfg.eps,
                lr,
                env_steps_per_s: states_per_s,
                updates_per_s,
                minutes: start.elapsed().as_secs_f64() / 60.0,
            });
            metrics.save(run_dir)?;
            let snap = snapshot_path(run_dir, states);
            write_atomic_with(&snap, |tmp| Ok(student.vs.save(tmp)?))?;
        }
        if states.is_multiple_of(cfg.num_envs as u64 * 64) {
            bar.set_message(format!(
                "{} states | {} updates | student {:.1} | eval {:.1} | agree {:.3} | loss {:.4}",
                human(states),
                human(updates),
                mean(&recent),
                last_eval,
                last_agree,
                last_loss
            ));
        }
        bar.tick(updates, elapsed);
    }
    bar.finish();
    metrics.save(run_dir)?;
    let mut selection = None;
    if interrupted || cfg.select_episodes == 0 {
        write_atomic_with(&best_model_path(run_dir), |tmp| Ok(student.vs.save(tmp)?))?;
    } else {
        let rule = SelectRule {
            episodes: cfg.select_episodes,
            candidates: cfg.select_candidates,
            cap: cfg.eval_max_score,
        };
        let s = select_final(&student, run_dir, &metrics, rule, device)?;
        eprintln!("selection on {} fresh games: {}", s.episodes, s.summary());
        selection = Some(s);
    }
    let grid_trained = match selection.as_ref().and_then(|s| s.kept) {
        None => grid_from.is_some(),
        Some(step) => grid_from.is_some_and(|g| step >= g),
    };
    Ok(Distilled {
        grid_trained,
        updates,
        states,
        student_episodes: episodes,
        minutes: start.elapsed().as_secs_f64() / 60.0,
        metrics,
        selection,
        interrupted,
    })
}

/// States drawn for each calibration of the int8 grid.
const CALIB_STATES: usize = 1024;

/// Activation steps of the int8 grid, from the student's largest hidden
/// outputs on remembered states.
fn calibrate(
    student: &QNetwork,
    memory: &Memory,
    rng: &mut Pcg32,
    device: tch::Device,
) -> Vec<f64> {
    let n = CALIB_STATES.min(memory.stacks.len());
    let mut buf = vec![0f32; n * INPUT_LEN];
    memory.draw(rng, &mut buf, None);
    student
        .activation_max(&to_input(&buf, n, device))
        .iter()
        .map(|m| m * crate::quant::ExportOptions::default().headroom / 255.0)
        .collect()
}

/// What the report says of a distillation run.
pub fn about(d: &Distilled, cfg: &DistilConfig, teacher: &Path) -> crate::report::RunAbout {
    let mut rows = String::new();
    rows.push_str(&format!("| student network | `{}` |\n", cfg.net));
    rows.push_str(&format!("| teacher | `{}` |\n", teacher.display()));
    rows.push_str(&format!("| labelled states | {} |\n", d.states));
    rows.push_str(&format!("| gradient updates | {} |\n", d.updates));
    rows.push_str(&format!(
        "| episodes driven by the student | {} |\n",
        d.student_episodes
    ));
    rows.push_str(&format!("| minutes | {:.1} |\n", d.minutes));
    if d.grid_trained {
        rows.push_str(
            "| export | the kept student trained through the int8 grid: no output-layer refit |\n",
        );
    }
    if let Some(sel) = &d.selection {
        rows.push_str(&crate::report::selection_row(sel));
    }
    if let Some(l) = d.metrics.rows.last() {
        rows.push_str(&format!(
            "| throughput (last interval) | {:.0} states/s, {:.1} updates/s |\n",
            l.env_steps_per_s, l.updates_per_s
        ));
    }
    crate::report::RunAbout {
        title: "Distillation report".into(),
        rows,
        config_toml: toml::to_string(cfg).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::unpack_stack;
    use crate::report::sample_stacks;
    use tch::Device;

    fn batch(n: usize) -> Tensor {
        let stacks = sample_stacks(n, 7).unwrap();
        let mut buf = vec![0f32; n * INPUT_LEN];
        for (s, dst) in stacks.iter().zip(buf.chunks_exact_mut(INPUT_LEN)) {
            unpack_stack(s, dst);
        }
        to_input(&buf, n, Device::Cpu)
    }

    /// A student that is a copy of its teacher has no loss and takes every
    /// action the teacher takes; another network has a positive loss, and
    /// the loss falls with training on the teacher's labels.
    #[test]
    fn the_loss_is_zero_for_a_copy_and_falls_with_training() {
        let _seed = crate::torch_seed_lock();
        tch::manual_seed(11);
        let teacher = QNetwork::new(netspec::TINY, Device::Cpu);
        let mut copy = QNetwork::new(netspec::TINY, Device::Cpu);
        copy.copy_from(&teacher).unwrap();
        let xs = batch(64);
        let tq = tch::no_grad(|| teacher.forward(&xs));
        let (l, agree) = loss(&copy, &xs, &tq, 4.0, None);
        assert!(l.double_value(&[]).abs() < 1e-10);
        assert_eq!(agree, 1.0);

        let student = QNetwork::new(netspec::TINY, Device::Cpu);
        let mut adam = Adam::new(&student);
        let (l0, _) = loss(&student, &xs, &tq, 4.0, None);
        let first = l0.double_value(&[]);
        assert!(first > 1e-6, "{first}");
        for _ in 0..50 {
            let (l, _) = loss(&student, &xs, &tq, 4.0, None);
            for mut p in student.vs.trainable_variables() {
                p.zero_grad();
            }
            l.backward();
            adam.step(&student, 1e-3, 1e-8, 10.0).unwrap();
        }
        let last = loss(&student, &xs, &tq, 4.0, None).0.double_value(&[]);
        assert!(last < 0.2 * first, "{first} -> {last}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let ok = DistilConfig {
            net: netspec::TINY,
            seed: 1,
            total_updates: 10,
            minutes: 0.0,
            num_envs: 2,
            updates_per_round: 1,
            capacity: 100,
            batch_size: 8,
            lr: 1e-3,
            lr_end: 1e-4,
            adv_weight: 4.0,
            value_scale: 1.0,
            int8_frac: 0.2,
            calib_every: 100,
            teacher_share: 0.5,
            eps: 0.02,
            flap_prob: 0.08,
            eval_every: 5,
            eval_episodes: 2,
            eval_max_score: 3,
            select_episodes: 0,
            select_candidates: 0,
            threads: 1,
        };
        assert!(ok.validate().is_ok());
        let bad = [
            DistilConfig {
                num_envs: 0,
                ..ok.clone()
            },
            DistilConfig {
                capacity: 4,
                ..ok.clone()
            },
            DistilConfig {
                total_updates: 0,
                ..ok.clone()
            },
            DistilConfig {
                teacher_share: 1.5,
                ..ok.clone()
            },
            DistilConfig {
                value_scale: -0.1,
                ..ok.clone()
            },
            DistilConfig {
                lr: f64::NAN,
                ..ok.clone()
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
        assert!((ok.learning_rate(0.5) - 5.5e-4).abs() < 1e-12);
    }
}
