//! A scripted controller that reads only the game state (no network).

use crate::game::{Game, GapSource, State, MAX_VEL, PIPE_GAP, PLAYER_H, PLAYER_X};
use crate::sprites::PIPE_W;

/// Pixels kept between the bird's bottom and the lower pipe when deciding to flap.
pub const HEURISTIC_MARGIN: i32 = 8;

/// The heuristic's action for a state: aim at the first pipe whose right edge
/// the bird has not yet passed, and flap when the next move would bring the
/// bird's bottom within [`HEURISTIC_MARGIN`] of that pipe's lower part.
pub fn heuristic(state: &State) -> crate::Action {
    let target = state
        .pipes()
        .iter()
        .find(|p| p.x + PIPE_W > PLAYER_X)
        .map(|p| p.gap_y + PIPE_GAP)
        .unwrap_or(crate::game::GROUND_CRASH_Y + PLAYER_H - 40);
    let next_vel = (state.vel_y + 1).min(MAX_VEL);
    if state.player_y + next_vel + PLAYER_H > target - HEURISTIC_MARGIN {
        crate::Action::Flap
    } else {
        crate::Action::Idle
    }
}

/// [`heuristic`] applied to a game.
pub fn heuristic_action<G: GapSource>(game: &Game<G>) -> crate::Action {
    heuristic(&game.state())
}
