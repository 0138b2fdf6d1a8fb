//! A scripted controller that reads only the game state (no network).
//!
//! [`heuristic`] looks ahead: it simulates the game from the given state for
//! [`LOOKAHEAD`] steps and returns the first action of a trajectory that does
//! not crash, preferring the simple reactive rule [`reactive`] at every step.
//! The lookahead is exact even though future gap indices are unknown: a pair
//! spawned during the lookahead starts at x = 298 and moves 4 pixels a step,
//! so within 52 steps it cannot reach the bird's right edge (x = 90).

use crate::game::{
    Action, Game, GameError, GapSource, State, MAX_VEL, PIPE_GAP, PLAYER_H, PLAYER_X,
};
use crate::sprites::PIPE_W;

/// Pixels kept between the bird's bottom and the lower pipe when deciding to flap.
pub const HEURISTIC_MARGIN: i32 = 8;

/// Steps simulated ahead by [`heuristic`] (at most 52, see the module docs).
pub const LOOKAHEAD: usize = 40;

/// Velocities a bird can have in play: -9..=10.
const VELS: usize = (MAX_VEL + 10) as usize;
/// Bird y values between steps: 0..=380.
const YS: usize = 381;
/// Bits in the failure memo (depth, y, velocity).
const MEMO_BITS: usize = LOOKAHEAD * YS * VELS;

/// The reactive rule: aim at the first pipe whose right edge the bird has
/// not yet passed, and flap when the next move would bring the bird's bottom
/// within [`HEURISTIC_MARGIN`] of that pipe's lower part.
pub fn reactive(state: &State) -> Action {
    let target = state
        .pipes()
        .iter()
        .find(|p| p.x + PIPE_W > PLAYER_X)
        .map(|p| p.gap_y + PIPE_GAP)
        .unwrap_or(crate::game::GROUND_CRASH_Y + PLAYER_H - 40);
    let next_vel = (state.vel_y + 1).min(MAX_VEL);
    if state.player_y + next_vel + PLAYER_H > target - HEURISTIC_MARGIN {
        Action::Flap
    } else {
        Action::Idle
    }
}

/// Gap indices for pairs spawned during the lookahead (they never matter).
struct AnyGaps;

impl GapSource for AnyGaps {
    fn next_gap(&mut self) -> Result<u8, GameError> {
        Ok(0)
    }
}

/// The state after `action`, or `None` if the bird crashes.
fn sim(state: &State, action: Action) -> Option<State> {
    let mut g = Game::from_state(*state, AnyGaps);
    match g.step(action) {
        Ok(s) if !s.terminal => Some(g.state()),
        _ => None,
    }
}

/// Both actions, the reactive rule's choice first.
fn order(state: &State) -> [Action; 2] {
    match reactive(state) {
        Action::Idle => [Action::Idle, Action::Flap],
        Action::Flap => [Action::Flap, Action::Idle],
    }
}

/// Depth-first search for a crash-free continuation, memoising dead ends.
struct Search {
    dead: [u64; MEMO_BITS.div_ceil(64)],
}

impl Search {
    fn key(depth: usize, s: &State) -> Option<usize> {
        let y = usize::try_from(s.player_y).ok().filter(|&y| y < YS)?;
        let v = usize::try_from(s.vel_y + 9).ok().filter(|&v| v < VELS)?;
        Some((depth * YS + y) * VELS + v)
    }

    /// Whether `s`, reached at `depth`, survives until [`LOOKAHEAD`].
    fn survives(&mut self, s: &State, depth: usize) -> bool {
        if depth >= LOOKAHEAD {
            return true;
        }
        let key = Self::key(depth, s);
        if let Some(k) = key {
            if self.dead[k / 64] & (1 << (k % 64)) != 0 {
                return false;
            }
        }
        for a in order(s) {
            if let Some(n) = sim(s, a) {
                if self.survives(&n, depth + 1) {
                    return true;
                }
            }
        }
        if let Some(k) = key {
            self.dead[k / 64] |= 1 << (k % 64);
        }
        false
    }
}

/// The heuristic's action for a state (see the module docs). Falls back to
/// [`reactive`] when every continuation crashes.
pub fn heuristic(state: &State) -> Action {
    // Fast path: the reactive rule alone survives the lookahead.
    let mut s = *state;
    let mut alive = true;
    for _ in 0..LOOKAHEAD {
        match sim(&s, reactive(&s)) {
            Some(n) => s = n,
            None => {
                alive = false;
                break;
            }
        }
    }
    if alive {
        return reactive(state);
    }
    let mut search = Search {
        dead: [0; MEMO_BITS.div_ceil(64)],
    };
    for a in order(state) {
        if let Some(n) = sim(state, a) {
            if search.survives(&n, 1) {
                return a;
            }
        }
    }
    reactive(state)
}

/// [`heuristic`] applied to a game.
pub fn heuristic_action<G: GapSource>(game: &Game<G>) -> Action {
    heuristic(&game.state())
}
