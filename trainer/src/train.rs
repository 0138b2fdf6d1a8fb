//! The training loop ([`train`]), in one screen like CleanRL's
//! `dqn_atari.py`: several games stepped together, biased epsilon-greedy
//! exploration with retries, replay, Double-DQN n-step updates, periodic
//! greedy evaluation, metrics, checkpoints, resume. Each step of the loop
//! is a named method of `Run`, the loop's state.

use crate::agent::Learner;
use crate::atomic::{write_atomic, write_atomic_with};
use crate::checkpoint::{self, TrainState};
use crate::config::Config;
use crate::device::set_threads;
use crate::env::VecEnv;
use crate::eval::{evaluate, unit};
use crate::metrics::{EvalSpread, MetricRow, Metrics};
use crate::pause::Clock;
use crate::progress::{human, Progress, RecentScores, Window};
use crate::replay::Replay;
use crate::run_dir::{self, best_model_path, copy_atomic, snapshot_path};
use crate::select::{select_final, select_final_int8, SelectRule, Selection};
use anyhow::Result;
use rand_core::RngCore;
use rand_pcg::Pcg32;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::Device;

pub use crate::device::pick_device;
pub use crate::run_dir::load_best;

/// First game seed of the periodic evaluations: validation games
/// ([`flappy::seeds::PERIODIC_EVAL`]).
pub const EVAL_SEED: u64 = flappy::seeds::PERIODIC_EVAL;

/// Why training stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The step or time budget was used up.
    Budget,
    /// Ctrl-C (a checkpoint was saved).
    Interrupted,
}

/// What [`train`] hands back.
pub struct Trained {
    /// The networks and optimizer at the end.
    pub learner: Learner,
    /// Counters at the end.
    pub state: TrainState,
    /// Why the loop ended.
    pub reason: StopReason,
    /// The metrics rows of the whole run.
    pub metrics: Metrics,
    /// The end-of-run selection, when one ran.
    pub selection: Option<Selection>,
}

/// Trains into `run_dir` (created if needed). With `resume`, continues from
/// the checkpoint there (the config comes from the checkpoint). Returns when
/// the budget (`cfg.total_steps` / `cfg.minutes`) is used up or `stop` is set.
pub fn train(cfg: Config, run_dir: &Path, resume: bool, stop: &AtomicBool) -> Result<Trained> {
    crate::alloc::keep_freed_memory();
    let device = pick_device();
    let _lock = run_dir::open(run_dir)?;
    set_threads(cfg.threads);
    let mut run = Run::start(cfg, run_dir, resume, device)?;
    let reason = loop {
        if let Some(reason) = run.tick(stop) {
            break reason;
        }
        let eps = run.act();
        run.step()?;
        run.learn()?;
        run.evaluate_and_log(eps)?;
        run.checkpoint_when_due()?;
    };
    run.finish(reason)
}

/// Per game: the steps left in the replayed stretch of a retry (where
/// greedy actions may be swapped), and whether its current episode is a
/// retry (it does not count in the training score).
struct Retries {
    on: bool,
    replaying: Vec<usize>,
    retried: Vec<bool>,
}

/// The training loop's state.
struct Run<'a> {
    cfg: Config,
    run_dir: &'a Path,
    device: Device,
    learner: Learner,
    state: TrainState,
    metrics: Metrics,
    envs: VecEnv,
    retries: Retries,
    replay: Replay,
    rng: Pcg32,
    recent: RecentScores,
    actions: Vec<u8>,
    /// Learning starts at this env step.
    warmup_until: u64,
    /// Env steps not yet spent on updates.
    update_credit: u64,
    budget_s: f64,
    clock: Clock,
    /// Budget seconds used, as of the current iteration.
    elapsed: f64,
    bar: Progress,
    window: Window,
    last_ckpt: Instant,
    next_log: u64,
    next_eval: u64,
    last_loss: f64,
    last_eval: f64,
    lr: f64,
}

impl<'a> Run<'a> {
    /// A fresh run, or the run saved in `run_dir` (`resume`).
    fn start(cfg: Config, run_dir: &'a Path, resume: bool, device: Device) -> Result<Run<'a>> {
        let (learner, state, metrics) = if resume {
            checkpoint::resume(&cfg, run_dir, device)?
        } else {
            fresh(&cfg, run_dir, device)?
        };
        let cfg = state.config.clone();
        write_atomic(&run_dir.join("config.toml"), cfg.to_toml().as_bytes())?;
        let budget_s = cfg.budget_minutes(device) * 60.0;
        // Environments restart fresh in every session (a resume refills the replay first).
        let env_seed = cfg
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(state.sessions * 10_007);
        let retries_on = cfg.retry_prob > 0.0;
        let envs = VecEnv::with_dives(cfg.num_envs, env_seed, cfg.dive_prob)
            .with_history(if retries_on { cfg.retry_back } else { 0 });
        let mut replay = Replay::new(cfg.replay_capacity, cfg.num_envs);
        if cfg.per_alpha > 0.0 {
            replay = replay.with_priorities(cfg.per_alpha);
        }
        let restored = resume && checkpoint::restore_replay(&mut replay, run_dir)?;
        // A fresh run learns after `learning_starts` steps of biased random play; a
        // resumed one without its replay refills it with that many steps of its policy.
        let warmup_until = state.env_steps + if restored { 0 } else { cfg.learning_starts };
        let next_eval = if cfg.eval_every > 0 {
            state.env_steps + cfg.eval_every
        } else {
            u64::MAX
        };
        let last_eval = metrics.evals().last().map_or(f64::NAN, |(_, e)| e.mean);
        Ok(Run {
            retries: Retries {
                on: retries_on,
                replaying: vec![0; cfg.num_envs],
                retried: vec![false; cfg.num_envs],
            },
            rng: state.rng.clone(),
            recent: RecentScores::from(&state.recent_scores[..]),
            actions: vec![0u8; cfg.num_envs],
            warmup_until,
            update_credit: 0,
            bar: Progress::new(budget_s, cfg.total_steps),
            clock: Clock::start(state.elapsed_s),
            elapsed: state.elapsed_s,
            window: Window::new(state.env_steps, state.updates),
            last_ckpt: Instant::now(),
            next_log: state.env_steps + cfg.log_every,
            next_eval,
            last_loss: f64::NAN,
            last_eval,
            lr: cfg.lr,
            budget_s,
            cfg,
            run_dir,
            device,
            learner,
            state,
            metrics,
            envs,
            replay,
        })
    }

    /// Between two iterations: pauses while asked to (`scripts/quiet`),
    /// reads the clock, and says whether and why to stop.
    fn tick(&mut self, stop: &AtomicBool) -> Option<StopReason> {
        self.elapsed = self.bar.hold(&mut self.clock, stop);
        if stop.load(Ordering::SeqCst) {
            return Some(StopReason::Interrupted);
        }
        let steps_done = self.cfg.total_steps > 0 && self.state.env_steps >= self.cfg.total_steps;
        (self.elapsed >= self.budget_s || steps_done).then_some(StopReason::Budget)
    }

    /// Act: biased epsilon-greedy, one batched forward for all games; in a
    /// retry's replayed stretch a greedy action is swapped with chance
    /// `retry_eps`. Returns the exploration rate.
    fn act(&mut self) -> f64 {
        let (cfg, rng) = (&self.cfg, &mut self.rng);
        let eps = cfg.epsilon(self.state.env_steps);
        let explore: Vec<bool> = (0..cfg.num_envs).map(|_| unit(rng) < eps).collect();
        if explore.iter().any(|e| !e) {
            let stacks: Vec<&flappy::FrameStack> = self.envs.stacks.iter().collect();
            let (greedy, _) = self.learner.online.act(&stacks);
            self.actions.copy_from_slice(&greedy);
        }
        let replaying = &mut self.retries.replaying;
        for (i, a) in self.actions.iter_mut().enumerate() {
            if explore[i] {
                *a = u8::from(unit(rng) < cfg.flap_prob);
            } else if replaying[i] > 0 && unit(rng) < cfg.retry_eps {
                *a ^= 1;
            }
            replaying[i] = replaying[i].saturating_sub(1);
        }
        eps
    }

    /// Step every game; store what each saw, did and got. A crashed game
    /// may be retried from a few steps before the crash.
    fn step(&mut self) -> Result<()> {
        let cfg = &self.cfg;
        for (i, &a) in self.actions.iter().enumerate() {
            let obs = self.envs.frames[i];
            let first = self.envs.first[i];
            let s = self.envs.step(i, a)?;
            self.replay.push(i, &obs, first, a, s.reward, s.terminal);
            let Some(score) = s.final_score else {
                continue;
            };
            let r = &mut self.retries;
            if !r.retried[i] {
                self.state.episodes += 1;
                self.recent.push(score);
            }
            r.retried[i] = false;
            if r.on && unit(&mut self.rng) < cfg.retry_prob {
                let back = 1 + (self.rng.next_u32() as usize) % cfg.retry_back;
                if let Some(older) = self.envs.retry(i, back) {
                    self.replay.push_context(i, &older);
                    r.replaying[i] = back;
                    r.retried[i] = true;
                }
            }
        }
        self.state.env_steps += cfg.num_envs as u64;
        Ok(())
    }

    /// Learn: after the warm-up, one update per `steps_per_update` env
    /// steps, on a uniform or prioritized batch of n-step transitions.
    fn learn(&mut self) -> Result<()> {
        if self.state.env_steps < self.warmup_until {
            return Ok(());
        }
        let cfg = &self.cfg;
        let gamma = cfg.gamma;
        self.update_credit += cfg.num_envs as u64;
        while self.update_credit >= cfg.steps_per_update {
            self.update_credit -= cfg.steps_per_update;
            let progress = if cfg.total_steps > 0 {
                self.state.env_steps as f64 / cfg.total_steps as f64
            } else {
                self.elapsed / self.budget_s
            };
            self.lr = cfg.learning_rate(progress);
            let (learner, replay, rng) = (&mut self.learner, &mut self.replay, &mut self.rng);
            if replay.is_prioritized() {
                let beta = cfg.per_beta + (1.0 - cfg.per_beta) * progress.clamp(0.0, 1.0);
                let (n, g) = (cfg.n_step, gamma as f32);
                let drawn = replay.sample_prioritized(rng, cfg.batch_size, n, g, beta);
                if !drawn.samples.is_empty() {
                    let w = Some(&drawn.weights[..]);
                    let batch = learner.make_batch(replay, &drawn.samples, gamma, w);
                    self.last_loss = learner.update(&batch, cfg, self.lr)?;
                    replay.set_priorities(&drawn.leaves, &learner.last_td_abs);
                }
            } else {
                let samples = replay.sample(rng, cfg.batch_size, cfg.n_step, gamma as f32);
                let batch = learner.make_batch(replay, &samples, gamma, None);
                self.last_loss = learner.update(&batch, cfg, self.lr)?;
            }
            self.state.updates = learner.updates;
        }
        Ok(())
    }

    /// The metrics row of now (`eval`: a periodic evaluation's spread).
    fn row(&mut self, eval: Option<EvalSpread>, eps: f64) -> MetricRow {
        let (sps, ups) = self.window.rates(self.state.env_steps, self.state.updates);
        MetricRow {
            step: self.state.env_steps,
            episodes: self.state.episodes,
            mean_score: self.recent.mean(),
            eval,
            loss: self.last_loss,
            epsilon: eps,
            lr: self.lr,
            env_steps_per_s: sps,
            updates_per_s: ups,
            minutes: self.elapsed / 60.0,
        }
    }

    /// Evaluate every `eval_every` steps (a row of its own, a snapshot, the
    /// best so far), log every `log_every` steps, and show progress.
    fn evaluate_and_log(&mut self, eps: f64) -> Result<()> {
        let evaluate_now = self.state.env_steps >= self.next_eval;
        if evaluate_now {
            self.evaluate(eps)?;
        }
        if self.state.env_steps >= self.next_log {
            self.next_log += self.cfg.log_every;
            // An evaluation row written at this step already logs it.
            let logged = evaluate_now.then(|| self.metrics.rows.last().cloned());
            let r = match logged.flatten() {
                Some(r) => r,
                None => {
                    let r = self.row(None, eps);
                    if !evaluate_now {
                        self.metrics.rows.push(r.clone());
                        self.metrics.save(self.run_dir)?;
                    }
                    r
                }
            };
            self.bar.set_message(format!(
                "step {} | score {:.1} | eval {:.1} | eps {:.3} | {:.0} steps/s {:.0} upd/s | loss {:.4}",
                human(self.state.env_steps),
                r.mean_score,
                self.last_eval,
                eps,
                r.env_steps_per_s,
                r.updates_per_s,
                self.last_loss
            ));
        }
        self.bar.tick(self.state.env_steps, self.elapsed);
        Ok(())
    }

    /// Evaluate: the policy plays `eval_episodes` greedy games; its row,
    /// its snapshot, and it as the best so far when it is.
    fn evaluate(&mut self, eps: f64) -> Result<()> {
        self.next_eval += self.cfg.eval_every;
        let cfg = &self.cfg;
        let r = evaluate(
            self.learner.policy(),
            cfg.eval_episodes,
            EVAL_SEED,
            cfg.eval_max_score,
        )?;
        self.last_eval = r.mean_score;
        let row = self.row(Some(r.spread()), eps);
        self.metrics.rows.push(row);
        self.metrics.save(self.run_dir)?;
        // Serialized once: the snapshot, and the same bytes as the best so far.
        let snap = snapshot_path(self.run_dir, self.state.env_steps);
        let policy = self.learner.policy();
        write_atomic_with(&snap, |tmp| Ok(policy.vs.save(tmp)?))?;
        // Ties go to the later network (more training, lower learning rate).
        if r.mean_score >= self.state.best_eval {
            self.state.best_eval = r.mean_score;
            copy_atomic(&snap, &best_model_path(self.run_dir))?;
        }
        Ok(())
    }

    /// Checkpoint every `checkpoint_min` minutes of wall time.
    fn checkpoint_when_due(&mut self) -> Result<()> {
        if self.last_ckpt.elapsed().as_secs_f64() >= self.cfg.checkpoint_min * 60.0 {
            self.state.elapsed_s = self.elapsed;
            let (learner, rng, recent) = (&self.learner, &self.rng, &self.recent);
            save_checkpoint(
                self.run_dir,
                learner,
                &mut self.state,
                rng,
                recent,
                &self.replay,
            )?;
            self.last_ckpt = Instant::now();
        }
        Ok(())
    }

    /// The end: the clock stops (a selection is not paused), a last
    /// checkpoint and the metrics; then the network the run ships: the
    /// policy itself when no evaluation saved one, else (when the budget ran
    /// out) the end-of-run selection's choice.
    fn finish(self, reason: StopReason) -> Result<Trained> {
        let Run {
            cfg,
            run_dir,
            device,
            mut learner,
            mut state,
            metrics,
            replay,
            rng,
            recent,
            clock,
            bar,
            ..
        } = self;
        state.elapsed_s = clock.elapsed();
        drop(clock);
        save_checkpoint(run_dir, &learner, &mut state, &rng, &recent, &replay)?;
        metrics.save(run_dir)?;
        bar.finish();
        let best = best_model_path(run_dir);
        let mut selection = None;
        if !best.exists() {
            learner.policy().vs.save(&best)?;
        } else if reason == StopReason::Budget && cfg.select_episodes > 0 {
            let rule = SelectRule::from(&cfg);
            let final_step = state.env_steps;
            let policy = learner.policy();
            let s = if cfg.select_int8 {
                // libtorch's threads (set from `cfg.threads`, else from
                // OMP_NUM_THREADS or the cores): a study's one-thread job
                // stays on its core.
                let threads = tch::get_num_threads().max(1) as usize;
                select_final_int8(policy, run_dir, &metrics, rule, final_step, device, threads)?
            } else {
                select_final(policy, run_dir, &metrics, rule, final_step, device)?
            };
            eprintln!("selection on {} fresh games: {}", s.episodes, s.summary());
            selection = Some(s);
        }
        learner.updates = state.updates;
        Ok(Trained {
            learner,
            state,
            reason,
            metrics,
            selection,
        })
    }
}

/// The checkpoint: networks, optimizer, counters, RNG, recent scores,
/// replay memory.
fn save_checkpoint(
    run_dir: &Path,
    learner: &Learner,
    state: &mut TrainState,
    rng: &Pcg32,
    recent: &RecentScores,
    replay: &Replay,
) -> Result<()> {
    state.updates = learner.updates;
    state.adam_t = learner.adam.t;
    state.rng = rng.clone();
    state.recent_scores = recent.to_vec();
    checkpoint::save(&run_dir.join("checkpoint"), learner, state, Some(replay))
}

/// A new run's networks (seeded), counters and empty metrics; refuses a
/// folder that already holds a checkpoint.
fn fresh(cfg: &Config, run_dir: &Path, device: Device) -> Result<(Learner, TrainState, Metrics)> {
    if checkpoint::resolve(run_dir).is_ok() {
        anyhow::bail!(
            "{} already holds a checkpoint: continue it with `train --resume {}` or pick another --name",
            run_dir.display(),
            run_dir.display()
        );
    }
    tch::manual_seed(cfg.seed as i64);
    let mut learner = Learner::new(cfg.net, device)?;
    if cfg.policy_ema > 0.0 {
        learner = learner.with_ema()?;
    }
    Ok((learner, TrainState::new(cfg), Metrics::default()))
}
