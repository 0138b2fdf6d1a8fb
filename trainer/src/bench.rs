//! `trainer bench`: environment steps per second (games + frame stacks + a
//! batched greedy forward, as in training) and gradient updates per second
//! (one Double-DQN n-step update of a batch) on every device present.

use crate::agent::Learner;
use crate::config::Config;
use crate::env::VecEnv;
use crate::net::Arch;
use crate::replay::Replay;
use anyhow::Result;
use rand_core::SeedableRng;
use rand_pcg::Pcg32;
use std::time::Instant;
use tch::Device;

/// One row of the table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    /// `cpu` or `cuda`.
    pub device: String,
    /// Architecture name.
    pub net: String,
    /// Environment steps per second (with a greedy batched forward per step of all games).
    pub env_steps_per_s: f64,
    /// Gradient updates per second.
    pub updates_per_s: f64,
    /// Batch size of the updates.
    pub batch: usize,
}

/// Measures one device for about `seconds` per figure.
pub fn measure(arch: Arch, device: Device, cfg: &Config, seconds: f64) -> Result<BenchRow> {
    tch::manual_seed(0);
    let mut learner = Learner::new(arch, device)?;
    let mut envs = VecEnv::new(cfg.num_envs, 0);
    let mut replay = Replay::new(20_000, cfg.num_envs);
    let mut rng = Pcg32::seed_from_u64(0);
    // Environment throughput: batched greedy forward + one step of every game.
    let t = Instant::now();
    let mut steps = 0u64;
    while t.elapsed().as_secs_f64() < seconds || steps < 4_000 {
        let stacks: Vec<&flappy::FrameStack> = envs.stacks.iter().collect();
        // The forward is timed as in training, but the untrained greedy
        // actions are replaced by biased random ones (flap 10 %), so the
        // games run like real training episodes.
        let _greedy = learner.online.act(&stacks);
        for i in 0..cfg.num_envs {
            let obs = envs.frames[i];
            let first = envs.first[i];
            let a = u8::from(crate::eval::unit(&mut rng) < 0.1);
            let s = envs.step(i, a)?;
            replay.push(i, &obs, first, a, s.reward, s.terminal);
        }
        steps += cfg.num_envs as u64;
    }
    let env_sps = steps as f64 / t.elapsed().as_secs_f64();
    // Update throughput (after a warm-up update).
    let run_update = |learner: &mut Learner, rng: &mut Pcg32| -> Result<()> {
        let samples = replay.sample(rng, cfg.batch_size, cfg.n_step, cfg.gamma as f32);
        let batch = learner.make_batch(&replay, &samples, cfg.gamma, None);
        learner.update(&batch, cfg, cfg.lr)?;
        Ok(())
    };
    run_update(&mut learner, &mut rng)?;
    let t = Instant::now();
    let mut updates = 0u64;
    while t.elapsed().as_secs_f64() < seconds || updates < 5 {
        run_update(&mut learner, &mut rng)?;
        updates += 1;
    }
    if device.is_cuda() {
        tch::Cuda::synchronize(0);
    }
    let ups = updates as f64 / t.elapsed().as_secs_f64();
    Ok(BenchRow {
        device: if device.is_cuda() {
            "cuda".into()
        } else {
            "cpu".into()
        },
        net: arch.name.into(),
        env_steps_per_s: env_sps,
        updates_per_s: ups,
        batch: cfg.batch_size,
    })
}

/// The table as text.
pub fn format_rows(rows: &[BenchRow], threads: i32) -> String {
    let mut s = format!(
        "| device | net | env steps/s ({} games, batched greedy forward) | updates/s (batch {}) |\n|---|---|---:|---:|\n",
        Config::default().num_envs,
        rows.first().map_or(Config::default().batch_size, |r| r.batch)
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} |\n",
            r.device, r.net, r.env_steps_per_s, r.updates_per_s
        ));
    }
    s.push_str(&format!("\nlibtorch CPU threads: {threads}\n"));
    s
}
