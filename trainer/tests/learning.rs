//! A tiny end-to-end run must beat random play on a short horizon, with the
//! network the run ships (its policy average, `best.safetensors`).

use flappy::{Action, FrameStack, Game};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use std::sync::atomic::AtomicBool;
use tch::Device;
use trainer::config::Config;

/// Mean frames survived and mean pipes passed over `episodes` games (seeds
/// 100..), each capped at 2 000 frames.
fn play(mut policy: impl FnMut(&FrameStack) -> Action, episodes: u64) -> (f64, f64) {
    let (mut frames, mut pipes) = (0u64, 0u64);
    for e in 0..episodes {
        let mut g = Game::new(100 + e);
        let mut f = g.frame();
        let mut s = FrameStack::new(&f);
        for t in 0..2_000u64 {
            let st = g.step(policy(&s)).unwrap();
            g.observe(&mut f);
            s.push(&f);
            if st.terminal || t == 1_999 {
                frames += t + 1;
                pipes += u64::from(st.final_score.unwrap_or_else(|| g.score()));
                break;
            }
        }
    }
    (
        frames as f64 / episodes as f64,
        pipes as f64 / episodes as f64,
    )
}

#[test]
fn a_short_run_beats_random_play_and_passes_pipes() {
    tch::set_num_threads(1);
    let dir = std::env::temp_dir().join(format!("trainer-learning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = Config {
        net: netspec::TINY,
        seed: 3,
        num_envs: 8,
        lr: 1e-3,
        learning_starts: 2_000,
        total_steps: 100_000,
        steps_per_update: 4,
        eps_decay_steps: 20_000,
        // A shorter average than the default's 10 000 updates, for a run of 24 500.
        policy_ema: 1e-3,
        // The whole run, as the default holds a whole CPU run (no less
        // memory for nothing: 0.1 GB instead of 2.4).
        replay_capacity: 120_000,
        eval_every: 0,
        log_every: 10_000,
        threads: 1,
        ..Config::default()
    };
    let trained = trainer::train::train(cfg.clone(), &dir, false, &AtomicBool::new(false)).unwrap();
    // The run folder stands for the network it ships: the policy average.
    let net = trainer::checkpoint::load_network(&dir, Device::Cpu).unwrap();
    let probe: Vec<FrameStack> = trainer::quant::float_model::played_stacks(64, 5);
    let refs: Vec<&FrameStack> = probe.iter().collect();
    assert_eq!(net.act(&refs), trained.learner.policy().act(&refs));
    assert_ne!(net.act(&refs).1, trained.learner.online.act(&refs).1);
    let (learned, pipes) = play(
        |s| {
            if net.act(&[s]).0[0] == 1 {
                Action::Flap
            } else {
                Action::Idle
            }
        },
        10,
    );
    let mut rng = Pcg32::seed_from_u64(9);
    let (random, random_pipes) = play(
        |_| {
            if (rng.next_u32() as f64) < cfg.flap_prob * 4_294_967_296.0 {
                Action::Flap
            } else {
                Action::Idle
            }
        },
        10,
    );
    println!(
        "frames survived: learned {learned:.1}, random {random:.1}; pipes passed: learned {pipes:.1}, random {random_pipes:.1}"
    );
    // About 24 500 updates of the tiny net (measured: 12.1 pipes a game,
    // every game at least one) against random play, flapping with
    // `flap_prob`, which dies against the ceiling, the ground or the first
    // pipe (0.1 a game).
    assert!(
        learned > 1.2 * random,
        "learned {learned:.1} vs random {random:.1}"
    );
    assert!(pipes >= 1.0, "{pipes:.1} pipes per game");
    std::fs::remove_dir_all(&dir).unwrap();
}
