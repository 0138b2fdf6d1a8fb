//! Every rule of `docs/GAME.md`, pinned (numbers computed by hand in
//! the comments).

use flappy::game::{GAP_YS, GROUND_CRASH_Y, MAX_PIPES, PLAYER_START_Y, SPAWN_X};
use flappy::sprites::{bird_opaque, lower_pipe_opaque, upper_pipe_opaque};
use flappy::{agent, Action, Game, GameError, GapSource, PipePair, Reward, SeededGaps, State};
use proptest::prelude::*;
use rand_core::{RngCore, SeedableRng};

/// A state with the bird at `y` moving at `vel`, showing animation frame 1,
/// frame counter 0 (so the next step does not advance the animation), and
/// the given pipe pairs `(x, gap_y)`.
fn scene(y: i32, vel: i32, pipes: &[(i32, i32)]) -> State {
    let mut s = State::fresh(0, 0, 0).unwrap();
    s.player_y = y;
    s.vel_y = vel;
    s.anim_index = 1;
    s.loop_iter = 0;
    s.n_pipes = pipes.len() as u8;
    for (i, &(x, gap_y)) in pipes.iter().enumerate() {
        s.pipes[i] = PipePair { x, gap_y };
    }
    s
}

/// A game in state `s` whose future gap indices are all 3.
fn game(s: State) -> Game<flappy::ScriptedGaps<'static>> {
    Game::from_state(s, flappy::ScriptedGaps::new(&[3; 16]).unwrap())
}

// ---------------------------------------------------------------- bird physics

#[test]
fn reset_state_matches_spec() {
    let g = Game::new(0);
    assert_eq!(g.player_y(), 244); // int((512 - 24) / 2)
    assert_eq!(g.vel_y(), 0);
    assert_eq!(g.score(), 0);
    assert_eq!(g.loop_iter(), 0);
    assert_eq!(g.anim_index(), 0);
    let xs: Vec<i32> = g.pipes().iter().map(|p| p.x).collect();
    assert_eq!(xs, [288, 432]); // 288 and 288 + 144
    for p in g.pipes() {
        assert_eq!(p.upper_y(), p.gap_y - 320);
        assert_eq!(p.lower_y(), p.gap_y + 100);
    }
}

#[test]
fn first_flap_sets_velocity_minus_9_without_gravity() {
    let mut g = Game::new(0);
    let s = g.step(Action::Flap).unwrap();
    assert_eq!(s.reward, Reward::Alive);
    assert_eq!(g.vel_y(), -9); // no +1 on the flap step
    assert_eq!(g.player_y(), 244 - 9);
    // Then gravity: -8, -7, ...
    g.step(Action::Idle).unwrap();
    assert_eq!((g.player_y(), g.vel_y()), (235 - 8, -8));
    g.step(Action::Idle).unwrap();
    assert_eq!((g.player_y(), g.vel_y()), (227 - 7, -7));
    // A flap while rising resets the velocity to -9 again.
    g.step(Action::Flap).unwrap();
    assert_eq!((g.player_y(), g.vel_y()), (220 - 9, -9));
}

#[test]
fn gravity_adds_one_until_terminal_velocity_10() {
    let mut g = Game::new(0);
    let mut y = 244;
    for k in 1..=10 {
        g.step(Action::Idle).unwrap();
        y += k;
        assert_eq!((g.player_y(), g.vel_y()), (y, k), "step {k}");
    }
    g.step(Action::Idle).unwrap();
    assert_eq!((g.player_y(), g.vel_y()), (y + 10, 10), "capped at 10");
    // From a hand-made state: 9 -> 10, and 10 stays 10.
    let mut g = game(scene(100, 9, &[]));
    g.step(Action::Idle).unwrap();
    assert_eq!((g.player_y(), g.vel_y()), (110, 10));
    g.step(Action::Idle).unwrap();
    assert_eq!((g.player_y(), g.vel_y()), (120, 10));
}

#[test]
fn ceiling_clamps_y_to_zero() {
    let mut g = game(scene(5, 0, &[]));
    g.step(Action::Flap).unwrap();
    assert_eq!((g.player_y(), g.vel_y()), (0, -9)); // 5 - 9 = -4 -> 0
    g.step(Action::Idle).unwrap();
    assert_eq!((g.player_y(), g.vel_y()), (0, -8)); // still rising: stays at 0
    for _ in 0..20 {
        g.step(Action::Flap).unwrap(); // flapping at the top never crashes
        assert_eq!(g.player_y(), 0);
    }
}

#[test]
fn ground_crash_from_reset_without_flaps_is_step_19() {
    // By hand: y = 244, velocities 1, 2, ..., 10 then 10, 10, ...
    // after step k <= 10: y = 244 + k(k+1)/2, so step 10: 244 + 55 = 299;
    // steps 11..18 add 10 each: step 18: 379. The crash test is
    // y + 24 >= BASEY - 1 = 403.48, i.e. y >= 379.48: 379 survives.
    // Step 19: y += min(10, 404.48 - 379 - 24 = 1.48) -> 380.48: crash.
    let mut g = Game::new(7);
    for k in 1..=18 {
        let s = g.step(Action::Idle).unwrap();
        assert!(!s.terminal, "step {k}");
    }
    assert_eq!((g.player_y(), g.vel_y()), (379, 10));
    let s = g.step(Action::Idle).unwrap();
    assert!(s.terminal);
    assert_eq!(s.reward, Reward::Crash);
    assert_eq!(GROUND_CRASH_Y, 380);
}

#[test]
fn ground_crash_boundary_is_y_380() {
    // 369 + 10 = 379 < 379.48: alive; 370 + 10 = 380: crash.
    let mut g = game(scene(369, 9, &[]));
    assert!(!g.step(Action::Idle).unwrap().terminal);
    assert_eq!(g.player_y(), 379);
    let mut g = game(scene(370, 9, &[]));
    assert!(g.step(Action::Idle).unwrap().terminal);
}

// ---------------------------------------------------------------- pipes

/// Plays `n` steps of the heuristic from `Game::with_gaps(gaps)`, asserting
/// it never crashes; returns the (state before, step, state after) triples.
fn heuristic_run(gaps: &[u8], n: usize) -> Vec<(State, flappy::Step, State)> {
    let mut g = Game::with_gaps(gaps).unwrap();
    (1..=n)
        .map(|k| {
            let before = g.state();
            let s = g.step(agent::heuristic(&before)).unwrap();
            assert!(!s.terminal, "heuristic crashed at step {k}");
            (before, s, g.state())
        })
        .collect()
}

#[test]
fn pipes_move_4_per_step_and_spawn_at_298_on_step_71() {
    // First pipe after step k: 288 - 4k; a pair is added when it lies in
    // (0, 5): 288 - 4k = 4 at k = 71.
    let run = heuristic_run(&[2, 5, 7, 1, 0, 6], 110);
    for (k, (_, _, after)) in run.iter().enumerate() {
        let k = k as i32 + 1;
        assert_eq!(
            after.pipes()[0].x,
            if k <= 85 { 288 - 4 * k } else { 432 - 4 * k }
        );
        let n = after.pipes().len();
        let expect = if (71..=85).contains(&k) || (107..=121).contains(&k) {
            3
        } else {
            2
        };
        assert_eq!(n, expect, "pairs alive after step {k}");
    }
    let after70 = &run[69].2;
    let after71 = &run[70].2;
    assert_eq!(after70.pipes().len(), 2);
    assert_eq!(after71.pipes()[0].x, 4);
    assert_eq!(after71.pipes()[2].x, SPAWN_X);
    assert_eq!(SPAWN_X, 298);
    // The third gap index (7) went to the spawned pair.
    assert_eq!(after71.pipes()[2].gap_y, GAP_YS[7]);
    assert_eq!(GAP_YS, [100, 110, 120, 130, 140, 150, 160, 170]);
    // The next spawn (the 432 pair at 4: step 107) takes index 1.
    let after107 = &run[106].2;
    assert_eq!(after107.pipes()[2].x, 298);
    assert_eq!(after107.pipes()[2].gap_y, GAP_YS[1]);
}

#[test]
fn first_pipe_removed_only_when_x_below_minus_52() {
    // 288 - 4 * 85 = -52 is kept, 288 - 4 * 86 = -56 is removed.
    let run = heuristic_run(&[0, 0, 0, 0], 90);
    assert_eq!(run[84].2.pipes()[0].x, -52);
    assert_eq!(run[84].2.pipes().len(), 3);
    assert_eq!(run[85].2.pipes()[0].x, 432 - 4 * 86);
    assert_eq!(run[85].2.pipes().len(), 2);
    // Hand-made states around the limit.
    let mut g = game(scene(200, 0, &[(-48, 140), (100, 140)]));
    g.step(Action::Idle).unwrap();
    assert_eq!(g.pipes()[0].x, -52);
    assert_eq!(g.pipes().len(), 2);
    let mut g = game(scene(200, 0, &[(-49, 140), (100, 140)]));
    g.step(Action::Idle).unwrap();
    assert_eq!(g.pipes()[0].x, 96);
    assert_eq!(g.pipes().len(), 1);
}

#[test]
fn spawn_needs_first_pipe_strictly_between_0_and_5() {
    for (pre, spawned) in [(10, false), (9, false), (8, true), (5, true), (4, false)] {
        let mut g = game(scene(200, 0, &[(pre, 140)]));
        g.step(Action::Idle).unwrap();
        assert_eq!(
            g.pipes().len() == 2,
            spawned,
            "first pipe at {pre} before the move"
        );
        if spawned {
            assert_eq!(
                g.pipes()[1],
                PipePair {
                    x: 298,
                    gap_y: GAP_YS[3]
                }
            );
        }
    }
}

#[test]
fn one_point_per_pipe_at_the_right_step() {
    // Starting pairs (288, 432) are at x = 48 before the move of steps 61 and
    // 97. A pair spawns when the first pair reaches (0, 5): the starting
    // pairs reach 4 (steps 71, 107), spawned pairs reach 2 (298 - 4 * 74, so
    // 74 steps after their own spawn: steps 145, 181, 219). A pair spawned
    // after step s is at 298 - 4j before the move of step s + 1 + j, which is
    // 46 for j = 63: points at s + 64 = 135, 171, 209, 245, 283.
    let run = heuristic_run(&[3, 6, 0, 7, 2, 5, 1, 4, 3, 3], 300);
    let points: Vec<usize> = run
        .iter()
        .enumerate()
        .filter(|(_, (_, s, _))| s.reward == Reward::Pipe)
        .map(|(k, _)| k + 1)
        .collect();
    assert_eq!(points, [61, 97, 135, 171, 209, 245, 283]);
    for (k, (before, s, after)) in run.iter().enumerate() {
        let in_window = before
            .pipes()
            .iter()
            .filter(|p| (45..=48).contains(&p.x))
            .count();
        assert!(in_window <= 1);
        assert_eq!(s.reward == Reward::Pipe, in_window == 1, "step {}", k + 1);
        assert_eq!(after.score, before.score + in_window as u32);
        assert_eq!(s.score, after.score);
    }
    assert_eq!(run[60].0.pipes()[0].x, 48);
    assert_eq!(run[134].0.pipes().iter().find(|p| p.x < 60).unwrap().x, 46);
}

#[test]
fn score_window_is_x_45_to_48_before_the_move() {
    // playerMid = 74, pipeMid = x + 26: scored iff x + 26 <= 74 < x + 30.
    for x in 40..=52 {
        let mut g = game(scene(170, 0, &[(x, 140)]));
        let s = g.step(Action::Idle).unwrap();
        assert!(!s.terminal, "x = {x}");
        let scored = (45..=48).contains(&x);
        assert_eq!(s.reward == Reward::Pipe, scored, "x = {x}");
        assert_eq!(g.score(), scored as u32);
    }
}

// ---------------------------------------------------------------- collision

/// Steps a hand-made scene once (idle) and says whether it crashed.
fn crashes(s: State) -> bool {
    game(s).step(Action::Idle).unwrap().terminal
}

#[test]
fn collision_at_lower_cap_top_left_corner_vs_near_misses() {
    // Bird frame 1: its rightmost pixels are column 33 (x = 90) in rows 14-15;
    // rows 16-23 reach column 31 at most (x = 88). Lower cap of gap_y 100
    // starts at row 200 and, for a pipe at x = 90 after the move, column 90.
    // Idle from y, vel 0: the bird ends at y + 1.
    // Bird at 185: row 15 = 200 touches the corner pixel (90, 200).
    assert!(crashes(scene(184, 0, &[(94, 100)])));
    // One pixel right (pipe at 91): miss.
    assert!(!crashes(scene(184, 0, &[(95, 100)])));
    // One pixel up (bird at 184, row 16 at 200, x <= 88): miss.
    assert!(!crashes(scene(183, 0, &[(94, 100)])));
}

#[test]
fn collision_at_upper_cap_bottom_left_corner_vs_near_miss() {
    // Upper cap of gap_y 100 ends at row 99. Bird at 85: row 14 (x up to 90)
    // is row 99: hit. Bird at 86: row 13 is row 99, and rows 12-13 reach
    // x = 88 only: miss.
    assert!(crashes(scene(84, 0, &[(94, 100)])));
    assert!(!crashes(scene(85, 0, &[(94, 100)])));
    assert!(!crashes(scene(84, 0, &[(95, 100)])));
}

#[test]
fn collision_at_cap_right_edge_vs_near_miss() {
    // Frame 1's leftmost pixels: column 0 (x = 57) in rows 12-15; below that
    // columns >= 2. A lower cap at rows from y + 15 and columns up to 57
    // (pipe at 6 after the move) touches; a pipe at 5 (up to 56) misses.
    // gap_y 100: cap at 200, bird at 185 (from 184 + 1).
    assert!(crashes(scene(184, 0, &[(10, 100)])));
    assert!(!crashes(scene(184, 0, &[(9, 100)])));
}

#[test]
fn collision_uses_the_animation_frame_of_this_step() {
    // Frame 2 alone has column 0 in rows 16-19 (x = 57). Lower cap top at
    // row y + 16 with right edge x = 57: only frame 2 touches it. With
    // loop_iter 2 the step advances the animation to ANIM_SEQ[pos].
    let make = |pos: u8| {
        let mut s = scene(183, 0, &[(10, 100)]); // bird ends at 184, cap at 200
        s.loop_iter = 2;
        s.anim_index = 1;
        s.anim_seq_pos = pos;
        s
    };
    assert!(crashes(make(2))); // sequence element 2 = frame 2
    assert!(!crashes(make(1))); // element 1 = frame 1
    assert!(!crashes(make(0))); // frame 0
}

/// Brute force: do the bird's mask and the pipes' masks share a pixel?
fn overlap_brute(s: &State) -> bool {
    let mut hit = false;
    for sy in 0..24 {
        for sx in 0..34 {
            if !bird_opaque(s.anim_index as usize, sx, sy) {
                continue;
            }
            let (x, y) = (57 + sx, s.player_y + sy);
            for p in s.pipes() {
                hit |= upper_pipe_opaque(x - p.x, y - p.upper_y());
                hit |= lower_pipe_opaque(x - p.x, y - p.lower_y());
            }
        }
    }
    hit
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn hits_pipe_is_pixel_perfect(
        y in 0i32..380,
        anim in 0u8..3,
        x in -60i32..120,
        gap_y in 60i32..220,
    ) {
        let mut s = scene(y, 0, &[(x, gap_y)]);
        s.anim_index = anim;
        prop_assert_eq!(s.hits_pipe(), overlap_brute(&s));
    }
}

// ---------------------------------------------------------------- animation

#[test]
fn animation_sequence_continues_across_resets() {
    // Advances happen on the steps where loopIter + 1 is a multiple of 3
    // (steps 3, 6, 9, ... of a game) and take 0, 1, 2, 1, 0, 1, ... in turn.
    // No flaps: the first game lasts 19 steps, so 6 advances (steps 3..18)
    // show 0, 1, 2, 1, 0, 1; the second game's first advance (its step 3)
    // continues with 2, not 0.
    let mut g = Game::new(3);
    let mut shown = Vec::new();
    for _ in 0..19 + 12 {
        let s = g.step(Action::Idle).unwrap();
        shown.push((g.anim_index(), g.loop_iter(), s.terminal));
    }
    let anim: Vec<u8> = shown.iter().map(|t| t.0).collect();
    #[rustfmt::skip]
    let expect = [
        0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 1, 1, 1, 0, 0, 0, 1, // game 1, steps 1-18
        0, // crash: the new game shows frame 0
        0, 0, 2, 2, 2, 1, 1, 1, 0, 0, 0, 1, // game 2, steps 1-12
    ];
    assert_eq!(anim, expect);
    assert!(shown[18].2);
    assert_eq!(shown[18].1, 0, "reset sets loopIter to 0");
    assert_eq!(shown[17].1, 18);
}

#[test]
fn loop_iter_wraps_at_30() {
    let mut g = game(scene(150, -9, &[]));
    for k in 1..=65u32 {
        g.step(if k % 8 == 0 {
            Action::Flap
        } else {
            Action::Idle
        })
        .unwrap();
        assert_eq!(g.loop_iter() as u32, k % 30);
    }
}

// ---------------------------------------------------------------- rewards, reset

#[test]
fn reward_values() {
    assert_eq!(Reward::Alive.value(), 0.1);
    assert_eq!(Reward::Pipe.value(), 1.0);
    assert_eq!(Reward::Crash.value(), -1.0);
}

#[test]
fn crash_resets_at_once_and_reports_final_score() {
    // The bird scores on step 61 and then falls; the crash returns the new game.
    let gaps = [7, 7, 1, 2, 4, 5];
    let mut g = Game::with_gaps(&gaps).unwrap();
    let mut k = 0;
    loop {
        k += 1;
        let a = if g.score() == 0 {
            agent::heuristic(&g.state())
        } else {
            Action::Idle
        };
        let s = g.step(a).unwrap();
        if s.terminal {
            assert_eq!(s.reward, Reward::Crash);
            assert_eq!(s.score, 0);
            assert_eq!(s.final_score, Some(1));
            assert_eq!(s.episode_score(), 1);
            break;
        }
        assert!(k < 200);
    }
    let st = g.state();
    assert_eq!(
        (st.player_y, st.vel_y, st.score, st.loop_iter),
        (PLAYER_START_Y, 0, 0, 0)
    );
    let p: Vec<PipePair> = g.pipes().to_vec();
    // Gaps 7, 7 at the start, 1 spawned at step 71 (if reached), then the
    // reset takes the next two in creation order.
    let used_before_reset = if k > 71 { 3 } else { 2 };
    assert_eq!(
        p,
        [
            PipePair {
                x: 288,
                gap_y: GAP_YS[gaps[used_before_reset] as usize]
            },
            PipePair {
                x: 432,
                gap_y: GAP_YS[gaps[used_before_reset + 1] as usize]
            },
        ]
    );
    assert_eq!(g.gaps().used(), used_before_reset + 2);
}

// ---------------------------------------------------------------- determinism

#[test]
fn seeded_gaps_are_pcg32_top_three_bits() {
    let mut rng = rand_pcg::Pcg32::seed_from_u64(42);
    let mut src = SeededGaps::new(42);
    for _ in 0..1000 {
        assert_eq!(src.next_gap().unwrap() as u32, rng.next_u32() >> 29);
    }
    let g = Game::new(42);
    let mut rng = rand_pcg::Pcg32::seed_from_u64(42);
    for p in g.pipes() {
        assert_eq!(p.gap_y, GAP_YS[(rng.next_u32() >> 29) as usize]);
    }
}

fn trajectory(seed: u64, n: usize) -> Vec<(State, flappy::Step)> {
    let mut g = Game::new(seed);
    (0..n)
        .map(|k| {
            // Heuristic with a deterministic disturbance so episodes end.
            let a = if k % 97 == 0 {
                Action::Flap
            } else {
                agent::heuristic_action(&g)
            };
            let s = g.step(a).unwrap();
            (g.state(), s)
        })
        .collect()
}

#[test]
fn same_seed_same_trajectory_different_seeds_differ() {
    let a = trajectory(11, 3000);
    let b = trajectory(11, 3000);
    assert_eq!(a, b);
    let c = trajectory(12, 3000);
    assert_ne!(a, c);
    // Different seeds give different gap sequences.
    let gaps = |seed| {
        let mut s = SeededGaps::new(seed);
        (0..32).map(|_| s.next_gap().unwrap()).collect::<Vec<_>>()
    };
    assert_ne!(gaps(0), gaps(1));
    assert_eq!(gaps(5), gaps(5));
    // Clones continue identically.
    let mut g1 = Game::new(9);
    for _ in 0..500 {
        g1.step(agent::heuristic_action(&g1)).unwrap();
    }
    let mut g2 = g1.clone();
    for _ in 0..500 {
        let s1 = g1.step(Action::Idle).unwrap();
        let s2 = g2.step(Action::Idle).unwrap();
        assert_eq!((s1, g1.state()), (s2, g2.state()));
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn bad_action_is_an_error() {
    assert_eq!(Action::try_from(2), Err(GameError::BadAction(2)));
    assert_eq!(Action::try_from(255), Err(GameError::BadAction(255)));
    assert_eq!(Action::try_from(0), Ok(Action::Idle));
    assert_eq!(Action::try_from(1), Ok(Action::Flap));
}

#[test]
fn bad_gap_is_an_error() {
    assert_eq!(Game::with_gaps(&[8]).unwrap_err(), GameError::BadGap(8));
    assert_eq!(
        Game::with_gaps(&[0, 1, 9]).unwrap_err(),
        GameError::BadGap(9)
    );
    assert_eq!(PipePair::new(0, 8), Err(GameError::BadGap(8)));
    assert_eq!(State::fresh(0, 200, 0), Err(GameError::BadGap(200)));
}

#[test]
fn running_out_of_gaps_is_an_error_and_leaves_the_game_alone() {
    assert_eq!(Game::with_gaps(&[1]).unwrap_err(), GameError::OutOfGaps);
    assert_eq!(Game::with_gaps(&[]).unwrap_err(), GameError::OutOfGaps);
    // At a reset: two indices, no flaps, the crash at step 19 needs two more.
    let mut g = Game::with_gaps(&[1, 2]).unwrap();
    for _ in 0..18 {
        g.step(Action::Idle).unwrap();
    }
    let before = g.state();
    assert_eq!(g.step(Action::Idle), Err(GameError::OutOfGaps));
    assert_eq!(g.state(), before);
    // At a spawn (step 71).
    let gaps = [4, 4];
    let mut g = Game::with_gaps(&gaps).unwrap();
    for k in 1..=70 {
        assert!(
            !g.step(agent::heuristic_action(&g)).unwrap().terminal,
            "step {k}"
        );
    }
    let before = g.state();
    assert_eq!(
        g.step(agent::heuristic_action(&g)),
        Err(GameError::OutOfGaps)
    );
    assert_eq!(g.state(), before);
    // Explicit reset.
    let mut g = Game::with_gaps(&[1, 2, 3]).unwrap();
    assert_eq!(g.reset(), Err(GameError::OutOfGaps));
}

#[test]
fn from_state_sanitises_so_step_never_panics() {
    let mut s = scene(-500, 5000, &[]);
    s.n_pipes = 200;
    s.loop_iter = 250;
    s.anim_index = 9;
    s.anim_seq_pos = 77;
    let mut g = Game::from_state(s, SeededGaps::new(1));
    assert!(g.pipes().len() <= MAX_PIPES);
    for _ in 0..100 {
        g.step(Action::Idle).unwrap();
        g.step(Action::Flap).unwrap();
    }
}

/// `crash_site` names what the game itself crashes into.
#[test]
fn crash_sites_match_the_games_own_crashes() {
    use flappy::Obstacle::{Ground, LowerPipe, UpperPipe};
    // (bird y, velocity, action, pipes (x, gapY), expected site)
    let flap = Action::Flap;
    let idle = Action::Idle;
    let cases = [
        (185, 4, idle, vec![(66, 110), (210, 170)], LowerPipe(0)),
        (200, 10, idle, vec![(10, 110), (154, 160)], LowerPipe(0)),
        (104, -2, flap, vec![(40, 110), (184, 150)], UpperPipe(0)),
        (
            140,
            7,
            idle,
            vec![(-50, 100), (94, 170), (238, 120)],
            UpperPipe(1),
        ),
        (370, 10, idle, vec![(200, 170)], Ground),
    ];
    for (y, vel, action, pipes, want) in cases {
        let s = scene(y, vel, &pipes);
        let mut game = Game::from_state(s, SeededGaps::new(3));
        assert!(game.step(action).unwrap().terminal, "{y}, {vel}: no crash");
        assert_eq!(s.crash_site(action), want, "{y}, {vel}, {pipes:?}");
    }
}
