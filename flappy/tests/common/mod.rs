//! Shared test helpers.

use flappy::{agent, Action, Game};

/// Plays `Game::new(seed)` for `steps` steps with the heuristic controller,
/// flapping instead on every `flap_every`-th step (from step 0), and calls
/// `visit(k, &game)` after step `k`.
pub fn play(seed: u64, steps: usize, flap_every: usize, mut visit: impl FnMut(usize, &Game)) {
    let mut g = Game::new(seed);
    for k in 0..steps {
        let a = if k % flap_every == 0 {
            Action::Flap
        } else {
            agent::heuristic_action(&g)
        };
        g.step(a).unwrap();
        visit(k, &g);
    }
}
