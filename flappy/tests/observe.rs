//! The 80x80 observation: known scenes by hand, and the fast path against
//! `raster::reference` (full 288x512 raster + OpenCV's bilinear taps).
//!
//! Tap rule (spec "Observation"): output row r reads source rows
//! floor(6.4 r + 2.7) and the next one; output column c reads source columns
//! floor(3.6 c + 1.3) and the next one; a cell is 1 iff any tap is non-black.

mod common;
use flappy::raster::{self, reference};
use flappy::{Action, Frame, FrameStack, Game, PipePair, State, FRAME_SIDE};
use proptest::prelude::*;

fn scene(y: i32, anim: u8, pipes: &[(i32, i32)]) -> State {
    let mut s = State::fresh(0, 0, 0).unwrap();
    s.player_y = y;
    s.anim_index = anim;
    s.n_pipes = pipes.len() as u8;
    for (i, &(x, gap_y)) in pipes.iter().enumerate() {
        s.pipes[i] = PipePair { x, gap_y };
    }
    s
}

fn observe(s: &State) -> Frame {
    let mut f = Frame::empty();
    raster::observe(s, &mut f);
    f
}

/// The set cells of row `r` as inclusive column ranges.
fn runs(f: &Frame, r: usize) -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, usize)> = Vec::new();
    for c in 0..FRAME_SIDE {
        if f.get(r, c) {
            match v.last_mut() {
                Some(last) if last.1 + 1 == c => last.1 = c,
                _ => v.push((c, c)),
            }
        }
    }
    v
}

#[test]
fn tap_tables_match_the_formula() {
    for i in 0..FRAME_SIDE {
        assert_eq!(
            raster::tap_row(i),
            ((i as f64 + 0.5) * 6.4 - 0.5).floor() as usize
        );
        assert_eq!(
            raster::tap_col(i),
            ((i as f64 + 0.5) * 3.6 - 0.5).floor() as usize
        );
    }
    assert_eq!((raster::tap_row(79), raster::tap_col(79)), (508, 285));
}

#[test]
fn empty_scene_is_only_the_ground_band() {
    // Row 62 reads source rows 399-400, row 63 reads 405-406: the ground
    // (rows 404..) lights rows 63..=79 completely and nothing above.
    let s = scene(-1000, 0, &[]); // bird far above the screen
    let f = observe(&s);
    assert_eq!(f, reference::observe(&s));
    for r in 0..FRAME_SIDE {
        let expect = if r >= 63 { vec![(0, 79)] } else { vec![] };
        assert_eq!(runs(&f, r), expect, "row {r}");
    }
    assert_eq!(f.count_ones(), 17 * 80);
}

#[test]
fn pipe_edges_cap_wider_than_body() {
    // A pipe at x = 99 with gap_y = 100: caps span columns 99..=150, bodies
    // 101..=148. Column 27 reads 98-99 (cap only), column 28 reads 102-103,
    // column 41 reads 148-149, column 42 reads 152-153 (outside).
    // Rows: upper body to row 75, upper cap 76..=99, gap 100..=199, lower cap
    // 200..=223, lower body 224.. (under the ground from 404).
    // Row 11 reads 73-74 (upper body), row 12 reads 79-80 (upper cap),
    // row 15 reads 98-99 (cap), row 16 reads 105-106 (gap), row 30 reads
    // 194-195 (gap), row 31 reads 201-202 (lower cap), row 34 reads 220-221
    // (cap), row 35 reads 226-227 (lower body).
    let s = scene(-1000, 0, &[(99, 100)]);
    let f = observe(&s);
    assert_eq!(f, reference::observe(&s));
    for r in 0..63 {
        let expect = match r {
            0..=11 | 35..=62 => vec![(28, 41)],
            12..=15 | 31..=34 => vec![(27, 41)],
            _ => vec![],
        };
        assert_eq!(runs(&f, r), expect, "row {r}");
    }
}

#[test]
fn pipe_partly_off_screen_left_and_right() {
    for x in [-51, -50, -49, -3, 0, 1, 236, 237, 284, 286, 287, 288] {
        let s = scene(-1000, 0, &[(x, 130)]);
        assert_eq!(observe(&s), reference::observe(&s), "pipe at {x}");
    }
    // x = 287: only cap column 287 is on screen, which no tap reads (last
    // taps are 285/286): nothing but the ground.
    let s = scene(-1000, 0, &[(287, 130)]);
    assert_eq!(observe(&s).count_ones(), 17 * 80);
    // x = 286: cap column 286 is read by column 79 only; the body (288..) is
    // off. Upper cap rows 106..=129: row 16 reads 105-106 (cap), row 15
    // reads 98-99 (body: off screen).
    let s = scene(-1000, 0, &[(286, 130)]);
    let f = observe(&s);
    assert!(f.get(16, 79) && !f.get(15, 79) && !f.get(16, 78));
}

#[test]
fn bird_at_start_position() {
    // Bird frame 0 at (57, 244): rows 244..=267. Row 38 reads 245-246
    // (sprite rows 1-2: columns 12..=23 and 8..=25, i.e. x 65..=82), so
    // columns 18 (reads 66-67) to 22 (reads 80-81); row 37 reads 239-240 and
    // row 42 reads 271-272: outside the bird.
    let s = scene(244, 0, &[]);
    let f = observe(&s);
    assert_eq!(f, reference::observe(&s));
    assert_eq!(runs(&f, 37), vec![]);
    assert_eq!(runs(&f, 38), vec![(18, 22)]);
    assert_eq!(runs(&f, 42), vec![]);
    for r in 38..=41 {
        assert!(!runs(&f, r).is_empty(), "row {r}");
    }
    // The three animation frames differ and each matches the reference.
    let frames: Vec<Frame> = (0..3).map(|a| observe(&scene(244, a, &[]))).collect();
    for (a, fr) in frames.iter().enumerate() {
        assert_eq!(*fr, reference::observe(&scene(244, a as u8, &[])));
    }
}

#[test]
fn bird_at_ceiling_and_near_ground() {
    for y in [0, 1, 2, 3, 4, 5, 378, 379, 380] {
        for a in 0..3 {
            let s = scene(y, a, &[(40, 100), (184, 170)]);
            assert_eq!(observe(&s), reference::observe(&s), "y {y} frame {a}");
        }
    }
}

#[test]
fn observation_along_heuristic_play_matches_reference() {
    common::play(5, 3000, 211, |k, g| {
        if k % 7 == 0 {
            assert_eq!(
                g.frame(),
                reference::observe(&g.state()),
                "step {k}: {:?}",
                g.state()
            );
        }
    });
}

#[test]
fn frame_stack_at_reset_and_after_pushes() {
    let mut g = Game::new(0);
    let first = g.frame();
    let mut stack = FrameStack::new(&first);
    for i in 0..4 {
        assert_eq!(stack.frame(i), &first);
    }
    let mut frames = vec![first];
    for _ in 0..6 {
        g.step(Action::Flap).unwrap();
        let f = g.frame();
        stack.push(&f);
        frames.push(f);
    }
    for i in 0..4 {
        assert_eq!(stack.frame(i), &frames[frames.len() - 4 + i], "channel {i}");
    }
    assert_eq!(stack.newest(), frames.last().unwrap());
}

prop_compose! {
    fn any_state()(
        y in -30i32..=380,
        anim in 0u8..3,
        n in 0u8..=3,
        xs in prop::array::uniform3(-70i32..320),
        ks in prop::array::uniform3(0u8..8),
        score in 0u32..2000,
        loop_iter in 0u8..30,
    ) -> State {
        let mut s = State::fresh(0, 0, 0).unwrap();
        s.player_y = y;
        s.anim_index = anim;
        s.score = score;
        s.loop_iter = loop_iter;
        s.n_pipes = n;
        for i in 0..3 {
            s.pipes[i] = PipePair::new(xs[i], ks[i]).unwrap();
        }
        s
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn fast_observe_equals_reference(s in any_state()) {
        prop_assert_eq!(observe(&s), reference::observe(&s));
    }

    #[test]
    fn fast_observe_equals_reference_for_any_gap(
        y in 0i32..380, x in -60i32..300, gap_y in 0i32..400, anim in 0u8..3,
    ) {
        let s = scene(y, anim, &[(x, gap_y)]);
        prop_assert_eq!(observe(&s), reference::observe(&s));
    }
}
