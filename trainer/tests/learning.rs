//! A tiny end-to-end run must beat random play on a short horizon.

use flappy::{Action, FrameStack, Game};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use std::sync::atomic::AtomicBool;
use trainer::config::Config;
use trainer::net::QNetwork;

/// Mean number of frames survived over `episodes` games (seeds 100..), capped.
fn survival(mut policy: impl FnMut(&FrameStack) -> Action, episodes: u64) -> f64 {
    let mut total = 0u64;
    for e in 0..episodes {
        let mut g = Game::new(100 + e);
        let mut f = g.frame();
        let mut s = FrameStack::new(&f);
        for t in 0..2_000u64 {
            let st = g.step(policy(&s)).unwrap();
            g.observe(&mut f);
            s.push(&f);
            if st.terminal || t == 1_999 {
                total += t + 1;
                break;
            }
        }
    }
    total as f64 / episodes as f64
}

#[test]
fn a_short_run_beats_random_play() {
    tch::set_num_threads(1);
    let dir = std::env::temp_dir().join(format!("trainer-learning-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = Config {
        net: netspec::SMALL,
        seed: 3,
        num_envs: 8,
        lr: 1e-3,
        learning_starts: 2_000,
        total_steps: 24_000,
        steps_per_update: 6,
        eps_decay_steps: 10_000,
        eval_every: 0,
        log_every: 10_000,
        threads: 1,
        ..Config::default()
    };
    let trained = trainer::train::train(cfg.clone(), &dir, false, &AtomicBool::new(false)).unwrap();
    let net: &QNetwork = &trained.learner.online;
    let learned = survival(
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
    let random = survival(
        |_| {
            if (rng.next_u32() as f64) < cfg.flap_prob * 4_294_967_296.0 {
                Action::Flap
            } else {
                Action::Idle
            }
        },
        10,
    );
    println!("frames survived: learned {learned:.1}, random {random:.1}");
    // About 3 600 updates of the small net: enough to hold height and reach the
    // first pipe every time (random play, flapping with `flap_prob`, dies
    // earlier against the ceiling, the ground or the first pipe).
    assert!(
        learned > 1.2 * random,
        "learned {learned:.1} vs random {random:.1}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
