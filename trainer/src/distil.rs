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
//!
//! [`distil`] is a sibling of [`crate::train::train`]: the same run folder,
//! clock, progress, evaluations, snapshots and end-of-run selection, and a
//! loop of named steps (play, learn, evaluate) over its state.

use crate::agent::Adam;
use crate::atomic::{write_atomic, write_atomic_with};
use crate::device::set_threads;
use crate::env::VecEnv;
use crate::eval::{evaluate, evaluate_blob, unit};
use crate::metrics::{MetricRow, Metrics};
use crate::net::{to_input, unpack_stack, QNetwork, INPUT_LEN};
use crate::pause::Clock;
use crate::progress::{human, Progress, RecentScores, Window};
use crate::run_dir::{self, best_model_path, snapshot_path};
use crate::select::{select_final, select_final_by, SelectRule, Selection, SELECT_SEED};
use crate::train::EVAL_SEED;
use anyhow::{bail, Context, Result};
use flappy::FrameStack;
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Kind, Reduction, Tensor};

pub use crate::config::DistilConfig;

/// First game seed of the games played while distilling: training games
/// (below [`flappy::seeds::VALIDATION`]), far from those of training runs.
pub const DISTIL_SEED: u64 = 1 << 40;

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
    /// When the kept student trained through the int8 grid (`int8_frac`):
    /// its activation steps, the grid's own calibration of it on remembered
    /// states (by layer, as `ExportOptions::act_steps` takes them).
    pub grid_steps: Option<Vec<f64>>,
    /// With `select_int8`: the blob the selection played for the kept
    /// student, which the end of the run ([`crate::report::finish`] with
    /// [`Distilled::export_options`] and the same `record_frames`) exports
    /// again byte for byte.
    pub selected_blob: Option<Vec<u8>>,
}

impl Distilled {
    /// Whether the kept student trained through the int8 grid.
    pub fn grid_trained(&self) -> bool {
        self.grid_steps.is_some()
    }

    /// How to export the kept student: a grid-trained one keeps the grid's
    /// activation steps and its output layer's rounding (no refit toward
    /// the float Q-values, which it no longer aims at); any other is
    /// calibrated and refit as `trainer export` does by default.
    pub fn export_options(&self) -> crate::quant::ExportOptions {
        export_options_for(self.grid_steps.clone())
    }
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
/// value_scale` times their mean over the two actions, their difference
/// Q(flap) - Q(idle) clipped to `[-adv_clip, adv_clip]` when `adv_clip` > 0
/// (the mean kept, so the greedy action is the teacher's).
pub fn targets(tq: &Tensor, value_scale: f64, adv_clip: f64) -> Tensor {
    let mean = tq.mean_dim(1, true, Kind::Float);
    let half_diff = if adv_clip > 0.0 {
        // Each value less the mean is half the difference, with its sign.
        (tq - &mean).clamp(-adv_clip / 2.0, adv_clip / 2.0)
    } else {
        tq - &mean
    };
    half_diff + mean * value_scale
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

/// Distils `teacher` into a fresh `cfg.net` student (a copy of the teacher
/// with `cfg.init_from_teacher`) in `run_dir`: writes
/// `distil.toml`, `metrics.csv`, `curve.png`, snapshots and `best.safetensors`
/// (the selected student). `record_frames` is the recording of the end of
/// the run ([`crate::report::FinishOptions::record_frames`]): the int8
/// selection calibrates each candidate's blob on it, as the export will.
pub fn distil(
    cfg: &DistilConfig,
    teacher: &QNetwork,
    run_dir: &Path,
    record_frames: usize,
    stop: &AtomicBool,
) -> Result<Distilled> {
    crate::alloc::keep_freed_memory();
    cfg.validate()?;
    if cfg.init_from_teacher && cfg.net.name != teacher.arch.name {
        bail!(
            "--init-from-teacher copies the teacher, a `{}` network: pass --net {}",
            teacher.arch.name,
            teacher.arch.name
        );
    }
    let _lock = run_dir::open(run_dir)?;
    if best_model_path(run_dir).exists() {
        bail!(
            "{} already holds a network: pick another --name",
            run_dir.display()
        );
    }
    let toml = toml::to_string(cfg).context("writing the settings as TOML")?;
    write_atomic(&run_dir.join("distil.toml"), toml.as_bytes())?;
    set_threads(cfg.threads);
    let mut run = Run::start(cfg, teacher, run_dir);
    if cfg.init_from_teacher {
        run.student.copy_from(teacher)?;
        if let Some(avg) = run.avg.as_mut() {
            avg.copy_from(teacher)?;
        }
    }
    let interrupted = loop {
        if let Some(interrupted) = run.tick(stop) {
            break interrupted;
        }
        run.play()?;
        run.learn()?;
        run.evaluate_and_log()?;
    };
    run.finish(interrupted, record_frames)
}

/// The distillation loop's state.
struct Run<'a> {
    cfg: &'a DistilConfig,
    teacher: &'a QNetwork,
    /// The trained student (it drives the student's games).
    student: QNetwork,
    /// Its moving average (`student_ema` > 0), the policy the run keeps.
    avg: Option<QNetwork>,
    adam: Adam,
    run_dir: &'a Path,
    rng: Pcg32,
    envs: VecEnv,
    /// Per game: whether the teacher drives its current episode.
    by_teacher: Vec<bool>,
    memory: Memory,
    metrics: Metrics,
    /// The student's episodes' scores.
    recent: RecentScores,
    updates: u64,
    states: u64,
    student_episodes: u64,
    budget_s: f64,
    clock: Clock,
    /// Share of the budget used, as of the current iteration.
    progress: f64,
    elapsed: f64,
    bar: Progress,
    window: Window,
    next_eval: u64,
    last_loss: f64,
    last_agree: f64,
    last_eval: f64,
    lr: f64,
    /// Batch buffers: unpacked stacks and the teacher's Q-values.
    xbuf: Vec<f32>,
    tbuf: Vec<f32>,
    /// The int8 grid's activation steps, once it trains through the grid.
    act_steps: Option<Vec<f64>>,
    /// Labelled states when the first update through the int8 grid came.
    grid_from: Option<u64>,
}

impl<'a> Run<'a> {
    /// A fresh student (seeded) and its optimizer, the games and the memory.
    fn start(cfg: &'a DistilConfig, teacher: &'a QNetwork, run_dir: &'a Path) -> Run<'a> {
        let device = teacher.device();
        tch::manual_seed(cfg.seed as i64);
        let student = QNetwork::new(cfg.net, device);
        let avg = (cfg.student_ema > 0.0).then(|| {
            let mut avg = QNetwork::new(cfg.net, device);
            avg.copy_from(&student).expect("one architecture");
            avg
        });
        let adam = Adam::new(&student);
        let mut rng = Pcg32::seed_from_u64(cfg.seed ^ 0xD157_1110);
        let env_seed = DISTIL_SEED.wrapping_add(cfg.seed.wrapping_mul(1_000_003));
        let by_teacher = (0..cfg.num_envs)
            .map(|_| unit(&mut rng) < cfg.teacher_share)
            .collect();
        let budget_s = cfg.minutes * 60.0;
        let mut bar = Progress::new(budget_s, cfg.total_updates);
        bar.set_message("collecting the first labelled states".into());
        Run {
            student,
            avg,
            adam,
            rng,
            envs: VecEnv::new(cfg.num_envs, env_seed),
            by_teacher,
            memory: Memory {
                stacks: Vec::new(),
                q: Vec::new(),
                next: 0,
                capacity: cfg.capacity,
            },
            metrics: Metrics::default(),
            recent: RecentScores::default(),
            updates: 0,
            states: 0,
            student_episodes: 0,
            budget_s,
            bar,
            clock: Clock::start(0.0),
            progress: 0.0,
            elapsed: 0.0,
            window: Window::new(0, 0),
            next_eval: if cfg.eval_every > 0 {
                cfg.eval_every
            } else {
                u64::MAX
            },
            last_loss: f64::NAN,
            last_agree: f64::NAN,
            last_eval: f64::NAN,
            lr: cfg.lr,
            xbuf: vec![0f32; cfg.batch_size * INPUT_LEN],
            tbuf: vec![0f32; cfg.batch_size * 2],
            act_steps: None,
            grid_from: None,
            cfg,
            teacher,
            run_dir,
        }
    }

    /// Between two iterations: pauses while asked to (`scripts/quiet`),
    /// reads the clock; `Some(interrupted)` when the run is over.
    fn tick(&mut self, stop: &AtomicBool) -> Option<bool> {
        self.elapsed = self.bar.hold(&mut self.clock, stop);
        let cfg = self.cfg;
        self.progress = if cfg.total_updates > 0 {
            self.updates as f64 / cfg.total_updates as f64
        } else {
            self.elapsed / self.budget_s
        };
        if self.progress >= 1.0 {
            return Some(false);
        }
        stop.load(Ordering::SeqCst).then_some(true)
    }

    /// Play one step of every game (each driven by the teacher or the
    /// student, with a little exploration); label each state with the
    /// teacher's Q-values.
    fn play(&mut self) -> Result<()> {
        let cfg = self.cfg;
        let stacks: Vec<&FrameStack> = self.envs.stacks.iter().collect();
        let (t_act, t_q) = self.teacher.act(&stacks);
        // The student's actions, for the games it drives (none: not asked).
        let s_act = if self.by_teacher.iter().all(|&t| t) {
            Vec::new()
        } else {
            self.student.act(&stacks).0
        };
        for (s, q) in self.envs.stacks.iter().zip(&t_q) {
            self.memory.push(s, *q);
        }
        let rng = &mut self.rng;
        for i in 0..cfg.num_envs {
            let a = if unit(rng) < cfg.eps {
                u8::from(unit(rng) < cfg.flap_prob)
            } else if self.by_teacher[i] {
                t_act[i]
            } else {
                s_act[i]
            };
            let step = self.envs.step(i, a)?;
            if let Some(score) = step.final_score {
                if !self.by_teacher[i] {
                    self.student_episodes += 1;
                    self.recent.push(score);
                }
                self.by_teacher[i] = unit(rng) < cfg.teacher_share;
            }
        }
        self.states += cfg.num_envs as u64;
        Ok(())
    }

    /// Learn: `updates_per_round` Adam steps on uniformly drawn labelled
    /// states (once a batch is remembered); for the last `int8_frac` of the
    /// budget through the int8 grid, recalibrated every `calib_every`, with
    /// the float network's own loss added at `float_anchor`.
    fn learn(&mut self) -> Result<()> {
        let cfg = self.cfg;
        if self.memory.stacks.len() < cfg.batch_size {
            return Ok(());
        }
        let device = self.student.device();
        self.lr = cfg.learning_rate(self.progress);
        for _ in 0..cfg.updates_per_round {
            let (memory, rng) = (&self.memory, &mut self.rng);
            memory.draw(rng, &mut self.xbuf, Some(&mut self.tbuf));
            let xs = to_input(&self.xbuf, cfg.batch_size, device);
            let tq = Tensor::from_slice(&self.tbuf)
                .view([cfg.batch_size as i64, 2])
                .to_device(device);
            let tq = targets(&tq, cfg.value_scale, cfg.adv_clip);
            let recalibrate =
                self.act_steps.is_none() || self.updates.is_multiple_of(cfg.calib_every.max(1));
            if self.progress >= 1.0 - cfg.int8_frac && recalibrate {
                self.act_steps = Some(calibrate(&self.student, memory, rng, device));
                self.grid_from.get_or_insert(self.states);
            }
            let steps = self.act_steps.as_deref();
            let (l, agree) = loss(&self.student, &xs, &tq, cfg.adv_weight, steps);
            let l = if steps.is_some() && cfg.float_anchor > 0.0 {
                let (float_l, _) = loss(&self.student, &xs, &tq, cfg.adv_weight, None);
                l + float_l * cfg.float_anchor
            } else {
                l
            };
            let step = (self.lr, cfg.adam_eps, cfg.grad_clip);
            let lv = (self.adam.minimize(&self.student, &l, step))
                .with_context(|| format!("distillation update {} (diverged)", self.updates))?;
            if let Some(avg) = &mut self.avg {
                avg.polyak_from(&self.student, cfg.student_ema);
            }
            self.updates += 1;
            (self.last_loss, self.last_agree) = (lv, agree);
        }
        Ok(())
    }

    /// The student the run keeps: the average, else the trained one.
    fn policy(&self) -> &QNetwork {
        self.avg.as_ref().unwrap_or(&self.student)
    }

    /// Evaluate every `eval_every` updates (a metrics row and a snapshot),
    /// and show progress.
    fn evaluate_and_log(&mut self) -> Result<()> {
        let cfg = self.cfg;
        if self.updates >= self.next_eval {
            self.next_eval += cfg.eval_every;
            let r = evaluate(
                self.policy(),
                cfg.eval_episodes,
                EVAL_SEED,
                cfg.eval_max_score,
            )?;
            self.last_eval = r.mean_score;
            let (states_per_s, updates_per_s) = self.window.rates(self.states, self.updates);
            self.metrics.rows.push(MetricRow {
                step: self.states,
                episodes: self.student_episodes,
                mean_score: self.recent.mean(),
                eval: Some(r.spread()),
                loss: self.last_loss,
                epsilon: cfg.eps,
                lr: self.lr,
                env_steps_per_s: states_per_s,
                updates_per_s,
                minutes: self.clock.elapsed() / 60.0,
            });
            self.metrics.save(self.run_dir)?;
            let snap = snapshot_path(self.run_dir, self.states);
            let policy = self.policy();
            write_atomic_with(&snap, |tmp| Ok(policy.vs.save(tmp)?))?;
        }
        if self.states.is_multiple_of(cfg.num_envs as u64 * 64) {
            self.bar.set_message(format!(
                "{} states | {} updates | student {:.1} | eval {:.1} | agree {:.3} | loss {:.4}",
                human(self.states),
                human(self.updates),
                self.recent.mean(),
                self.last_eval,
                self.last_agree,
                self.last_loss
            ));
        }
        self.bar.tick(self.updates, self.elapsed);
        Ok(())
    }

    /// The end: the clock stops, the metrics; then the student the run
    /// ships: itself when interrupted or unselected, else the end-of-run
    /// selection's choice.
    fn finish(mut self, interrupted: bool, record_frames: usize) -> Result<Distilled> {
        let minutes = self.clock.elapsed() / 60.0;
        drop(self.clock);
        let (cfg, run_dir) = (self.cfg, self.run_dir);
        let student = self.avg.as_ref().unwrap_or(&self.student);
        self.bar.finish();
        self.metrics.save(run_dir)?;
        let mut selection = None;
        // With `select_int8`: the kept candidate's grid steps and blob, as
        // it played.
        let mut selected_steps = None;
        let mut selected_blob = None;
        if interrupted || cfg.select_episodes == 0 {
            write_atomic_with(&best_model_path(run_dir), |tmp| Ok(student.vs.save(tmp)?))?;
        } else {
            let rule = SelectRule::from(cfg);
            let (device, grid_from, final_step) = (student.device(), self.grid_from, self.states);
            let s = if cfg.select_int8 {
                let (memory, rng) = (&self.memory, &mut self.rng);
                let mut played: Vec<Played> = Vec::new();
                let int8_mean = |net: &QNetwork, step: Option<u64>| {
                    let grid = trained_through_grid(grid_from, step);
                    let steps = grid.then(|| calibrate(net, memory, rng, device));
                    let blob = shipped_blob(net, steps.clone(), cfg.threads, record_frames)?;
                    let mean =
                        evaluate_blob(&blob, rule.episodes, SELECT_SEED, rule.cap)?.mean_score;
                    played.push(Played { step, steps, blob });
                    Ok(mean)
                };
                let metrics = &self.metrics;
                let mut s = select_final_by(
                    student, run_dir, metrics, rule, final_step, device, int8_mean,
                )?;
                s.int8 = true;
                if let Some(p) = played.into_iter().find(|p| p.step == s.kept) {
                    (selected_steps, selected_blob) = (Some(p.steps), Some(p.blob));
                }
                s
            } else {
                select_final(student, run_dir, &self.metrics, rule, final_step, device)?
            };
            eprintln!("selection on {} fresh games: {}", s.episodes, s.summary());
            selection = Some(s);
        }
        let kept = selection.as_ref().and_then(|s| s.kept);
        let grid_trained = trained_through_grid(self.grid_from, kept);
        let grid_steps = match selected_steps {
            Some(steps) => steps,
            None if grid_trained => {
                let device = student.device();
                let kept = crate::checkpoint::load_network(&best_model_path(run_dir), device)?;
                Some(calibrate(&kept, &self.memory, &mut self.rng, device))
            }
            None => None,
        };
        Ok(Distilled {
            grid_steps,
            selected_blob,
            updates: self.updates,
            states: self.states,
            student_episodes: self.student_episodes,
            minutes,
            metrics: self.metrics,
            selection,
            interrupted,
        })
    }
}

/// Whether the candidate at `step` (`None`: the final student) trained
/// through the int8 grid, which it entered at `grid_from` labelled states.
fn trained_through_grid(grid_from: Option<u64>, step: Option<u64>) -> bool {
    match step {
        None => grid_from.is_some(),
        Some(k) => grid_from.is_some_and(|g| k >= g),
    }
}

/// The int8 blob the end of a run ([`crate::report::finish`], recording
/// `record_frames`) exports from `net`: calibrated on `net`'s own play with
/// the output layer refitted, or, for a grid-trained network, through the
/// activation steps `act_steps` it trained with and no refit.
fn shipped_blob(
    net: &QNetwork,
    act_steps: Option<Vec<f64>>,
    threads: usize,
    record_frames: usize,
) -> Result<Vec<u8>> {
    let calib = crate::report::calibration(net, record_frames)?;
    let opts = crate::quant::ExportOptions {
        threads,
        ..export_options_for(act_steps)
    };
    let model = net.to_float_model();
    Ok(crate::quant::export::export(&model, &calib.stacks, &opts)?.blob)
}

/// How a student is exported: through the grid's activation steps
/// `grid_steps` and its output layer's rounding when it trained through the
/// grid, else calibrated and refit as `trainer export` does by default.
fn export_options_for(grid_steps: Option<Vec<f64>>) -> crate::quant::ExportOptions {
    crate::quant::ExportOptions {
        refit_last: grid_steps.is_none(),
        act_steps: grid_steps,
        ..crate::quant::ExportOptions::default()
    }
}

/// A candidate as the int8 selection played it.
struct Played {
    /// Its snapshot's step (None: the final student).
    step: Option<u64>,
    /// The grid's activation steps it exported with (None: calibrated on
    /// its own play).
    steps: Option<Vec<f64>>,
    /// The blob that played.
    blob: Vec<u8>,
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
    if let Some(steps) = &d.grid_steps {
        let list: Vec<String> = steps.iter().map(|s| format!("{s:e}")).collect();
        rows.push_str(&format!(
            "| export | the kept student trained through the int8 grid: its activation steps (`trainer export --no-refit --act-steps {}`), no output-layer refit |\n",
            list.join(",")
        ));
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
    use crate::quant::float_model::played_stacks;
    use tch::Device;

    fn batch(n: usize) -> Tensor {
        let stacks = played_stacks(n, 7);
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
            adam.minimize(&student, &l, (1e-3, 1e-8, 10.0)).unwrap();
        }
        let last = loss(&student, &xs, &tq, 4.0, None).0.double_value(&[]);
        assert!(last < 0.2 * first, "{first} -> {last}");
    }

    /// The targets keep the teacher's difference (centred, or on its
    /// values with `value_scale` 1) up to `adv_clip`, clip it beyond, and
    /// never change the teacher's greedy action.
    #[test]
    fn targets_clip_the_difference_and_keep_the_action() {
        let tq = Tensor::from_slice(&[10.0f32, 12.0, 5.0, 4.5, 3.0, 3.0, -1.0, 7.0]).view([4, 2]);
        let rows = |t: &Tensor| -> Vec<f32> { Vec::<f32>::try_from(t.flatten(0, -1)).unwrap() };
        assert_eq!(
            rows(&targets(&tq, 0.0, 0.0)),
            [-1.0, 1.0, 0.25, -0.25, 0.0, 0.0, -4.0, 4.0]
        );
        assert_eq!(
            rows(&targets(&tq, 0.0, 1.0)),
            [-0.5, 0.5, 0.25, -0.25, 0.0, 0.0, -0.5, 0.5]
        );
        assert_eq!(
            rows(&targets(&tq, 1.0, 1.0)),
            [10.5, 11.5, 5.0, 4.5, 3.0, 3.0, 2.5, 3.5]
        );
        assert_eq!(rows(&targets(&tq, 1.0, 0.0)), rows(&tq));
    }

    #[test]
    fn bad_settings_are_refused() {
        let ok = DistilConfig {
            net: netspec::TINY,
            init_from_teacher: false,
            seed: 1,
            total_updates: 10,
            minutes: 0.0,
            num_envs: 2,
            updates_per_round: 1,
            capacity: 100,
            batch_size: 8,
            lr: 1e-3,
            lr_end: 1e-4,
            adam_eps: 1e-8,
            grad_clip: 10.0,
            adv_weight: 4.0,
            value_scale: 1.0,
            adv_clip: 0.0,
            int8_frac: 0.2,
            float_anchor: 0.0,
            calib_every: 100,
            student_ema: 0.0,
            teacher_share: 0.5,
            eps: 0.02,
            flap_prob: 0.08,
            eval_every: 5,
            eval_episodes: 2,
            eval_max_score: 3,
            select_episodes: 0,
            select_candidates: 0,
            select_int8: false,
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
                adv_clip: -1.0,
                ..ok.clone()
            },
            DistilConfig {
                float_anchor: f64::NAN,
                ..ok.clone()
            },
            DistilConfig {
                lr: f64::NAN,
                ..ok.clone()
            },
            DistilConfig {
                adam_eps: 0.0,
                ..ok.clone()
            },
            DistilConfig {
                grad_clip: -1.0,
                ..ok.clone()
            },
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
        assert!((ok.learning_rate(0.5) - 5.5e-4).abs() < 1e-12);
    }
}
