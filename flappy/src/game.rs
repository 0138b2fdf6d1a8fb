//! The game itself: state, one `step` per frame, exactly as `docs/GAME.md` says.
//!
//! Everything is integer arithmetic, so a game is bit-identical on every
//! platform. The only real number in the spec, `BASEY = 404.48`, is handled
//! exactly in hundredths (see [`BASEY_HUNDREDTHS`] and [`GROUND_CRASH_Y`]).

use crate::obs::Frame;
use crate::sprites::{BIRD_RUNS, PIPE_BODY_INSET, PIPE_CAP_ROWS, PIPE_H, PIPE_W};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

/// Screen width in pixels.
pub const SCREEN_W: i32 = 288;
/// Screen height in pixels.
pub const SCREEN_H: i32 = 512;
/// `BASEY = 512 * 0.79 = 404.48`, in hundredths of a pixel.
pub const BASEY_HUNDREDTHS: i32 = 40448;
/// First screen row covered by the ground (the base is blitted at `int(BASEY)`).
pub const GROUND_ROW: i32 = 404;
/// Bird x (`int(288 * 0.2)`).
pub const PLAYER_X: i32 = 57;
/// Bird y at reset (`int((512 - 24) / 2)`).
pub const PLAYER_START_Y: i32 = 244;
/// Bird width.
pub const PLAYER_W: i32 = 34;
/// Bird height.
pub const PLAYER_H: i32 = 24;
/// `playerMid = 57 + 17`.
pub const PLAYER_MID: i32 = PLAYER_X + PLAYER_W / 2;
/// Velocity set by a flap.
pub const FLAP_VEL: i32 = -9;
/// Terminal (maximum) downward velocity.
pub const MAX_VEL: i32 = 10;
/// Pipes move this many pixels left per step.
pub const PIPE_VEL: i32 = -4;
/// Vertical gap between upper and lower pipe.
pub const PIPE_GAP: i32 = 100;
/// x of a pipe pair spawned during play (`288 + 10`).
pub const SPAWN_X: i32 = SCREEN_W + 10;
/// The gap tops (`gapY`) for gap indices 0..=7: `[20, .., 90][k] + int(BASEY * 0.2)`.
pub const GAP_YS: [i32; 8] = [100, 110, 120, 130, 140, 150, 160, 170];
/// Bird y at or beyond which the ground crash fires.
///
/// The spec's test is `y + 24 >= BASEY - 1`, i.e. `100 y >= 40448 - 100 - 2400`,
/// i.e. `y >= 379.48`; for an integer y that is `y >= 380`. The movement
/// clamp `y += min(velY, BASEY - y - 24)` can leave the original at the real
/// `y = 380.48`, which always crashes at once; we store that case as 380,
/// which crashes the same way (and is never observed: the game resets).
pub const GROUND_CRASH_Y: i32 = {
    let lim = BASEY_HUNDREDTHS - 100 - PLAYER_H * 100; // 37948
    (lim + 99) / 100 // ceil: 380
};
/// Most pipe pairs alive at once (two after reset, a third spawned before the first leaves).
pub const MAX_PIPES: usize = 3;
/// The endless animation sequence.
pub const ANIM_SEQ: [u8; 4] = [0, 1, 2, 1];

/// An action of the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Action {
    /// Do nothing (0).
    Idle = 0,
    /// Flap (1).
    Flap = 1,
}

impl Action {
    /// Both actions, in index order.
    pub const ALL: [Action; 2] = [Action::Idle, Action::Flap];

    /// The action's index (0 or 1), as a network output index.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl TryFrom<u8> for Action {
    type Error = GameError;
    fn try_from(v: u8) -> Result<Self, GameError> {
        match v {
            0 => Ok(Action::Idle),
            1 => Ok(Action::Flap),
            _ => Err(GameError::BadAction(v)),
        }
    }
}

impl From<Action> for u8 {
    fn from(a: Action) -> u8 {
        a as u8
    }
}

/// Everything that can go wrong when driving a game (never a panic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GameError {
    /// An action number other than 0 or 1.
    BadAction(u8),
    /// A gap index above 7.
    BadGap(u8),
    /// A scripted gap source has no index left for a new pipe pair.
    OutOfGaps,
}

impl core::fmt::Display for GameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GameError::BadAction(a) => write!(f, "bad action {a} (expected 0 = idle or 1 = flap)"),
            GameError::BadGap(g) => write!(f, "bad gap index {g} (expected 0..=7)"),
            GameError::OutOfGaps => write!(f, "out of scripted gap indices"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for GameError {}

/// Where the gap index (0..=7) of each new pipe pair comes from.
pub trait GapSource {
    /// The next gap index, in pipe-creation order.
    fn next_gap(&mut self) -> Result<u8, GameError>;
}

/// Seeded gaps: `k = Pcg32::seed_from_u64(seed).next_u32() >> 29`, one per pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeededGaps(Pcg32);

impl SeededGaps {
    /// A gap source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SeededGaps(Pcg32::seed_from_u64(seed))
    }
}

impl GapSource for SeededGaps {
    #[inline]
    fn next_gap(&mut self) -> Result<u8, GameError> {
        Ok((self.0.next_u32() >> 29) as u8)
    }
}

/// Gap indices taken from a slice, in order; [`GameError::OutOfGaps`] once exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScriptedGaps<'a> {
    gaps: &'a [u8],
    pos: usize,
}

impl<'a> ScriptedGaps<'a> {
    /// A source yielding `gaps` in order (each must be 0..=7).
    pub fn new(gaps: &'a [u8]) -> Result<Self, GameError> {
        if let Some(&g) = gaps.iter().find(|&&g| g > 7) {
            return Err(GameError::BadGap(g));
        }
        Ok(ScriptedGaps { gaps, pos: 0 })
    }

    /// How many indices have been used.
    pub fn used(&self) -> usize {
        self.pos
    }

    /// How many indices are left.
    pub fn remaining(&self) -> usize {
        self.gaps.len() - self.pos
    }
}

impl GapSource for ScriptedGaps<'_> {
    #[inline]
    fn next_gap(&mut self) -> Result<u8, GameError> {
        let g = *self.gaps.get(self.pos).ok_or(GameError::OutOfGaps)?;
        self.pos += 1;
        Ok(g)
    }
}

/// The reward of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reward {
    /// Still alive, no pipe passed: 0.1.
    Alive,
    /// Passed a pipe: 1.0.
    Pipe,
    /// Crashed (the step is terminal): -1.0.
    Crash,
}

impl Reward {
    /// The numeric reward: 0.1, 1.0 or -1.0.
    #[inline]
    pub const fn value(self) -> f32 {
        match self {
            Reward::Alive => 0.1,
            Reward::Pipe => 1.0,
            Reward::Crash => -1.0,
        }
    }
}

/// What one step reports.
///
/// On a terminal step the game has already reset: `score` is the new game's
/// score (0), and `final_score` holds the score of the game that just ended
/// (including a point scored in that very step). On other steps `final_score`
/// is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Step {
    /// Reward of this step.
    pub reward: Reward,
    /// Whether the bird crashed (the game has reset).
    pub terminal: bool,
    /// Score of the game after the step (0 after a crash).
    pub score: u32,
    /// On a terminal step, the crashed game's final score.
    pub final_score: Option<u32>,
}

impl Step {
    /// The score of the episode this step belongs to: `final_score` on a
    /// terminal step, else `score`.
    #[inline]
    pub fn episode_score(&self) -> u32 {
        self.final_score.unwrap_or(self.score)
    }
}

/// One upper/lower pipe pair (both share `x`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PipePair {
    /// Left edge of both pipes (screen x, may be negative).
    pub x: i32,
    /// The spec's `gapY`: first free row of the gap (100..=170).
    pub gap_y: i32,
}

impl PipePair {
    /// A pair at `x` for gap index `k` (0..=7).
    pub fn new(x: i32, k: u8) -> Result<Self, GameError> {
        let gap_y = *GAP_YS.get(k as usize).ok_or(GameError::BadGap(k))?;
        Ok(PipePair { x, gap_y })
    }
    /// Top row of the upper pipe sprite (`gapY - 320`, negative).
    #[inline]
    pub const fn upper_y(&self) -> i32 {
        self.gap_y - PIPE_H
    }
    /// Top row of the lower pipe sprite (`gapY + 100`).
    #[inline]
    pub const fn lower_y(&self) -> i32 {
        self.gap_y + PIPE_GAP
    }

    /// Whether the pair shares a screen column with the bird.
    #[inline]
    pub const fn spans_bird_columns(&self) -> bool {
        self.x < PLAYER_X + PLAYER_W && self.x + PIPE_W > PLAYER_X
    }

    /// The pair's opaque area as four world-space rectangles
    /// `[x0, x1, y0, y1]` (inclusive): upper body, upper cap, lower cap, lower body.
    #[inline]
    pub const fn rects(&self) -> [[i32; 4]; 4] {
        let x = self.x;
        let (u, l) = (self.upper_y(), self.lower_y());
        let (bx0, bx1) = (x + PIPE_BODY_INSET, x + PIPE_W - 1 - PIPE_BODY_INSET);
        [
            [bx0, bx1, u, u + PIPE_H - PIPE_CAP_ROWS - 1],
            [
                x,
                x + PIPE_W - 1,
                u + PIPE_H - PIPE_CAP_ROWS,
                u + PIPE_H - 1,
            ],
            [x, x + PIPE_W - 1, l, l + PIPE_CAP_ROWS - 1],
            [bx0, bx1, l + PIPE_CAP_ROWS, l + PIPE_H - 1],
        ]
    }
}

/// A snapshot of the game (everything but the gap source).
///
/// Fields are public for renderers, controllers and tests; [`Game::from_state`]
/// sanitises a hand-made state so no combination can make `step` panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Bird top row (0..=379 between steps).
    pub player_y: i32,
    /// Bird vertical velocity (-9..=10).
    pub vel_y: i32,
    /// Pipes passed in this game.
    pub score: u32,
    /// Frame counter `loopIter`, 0..30.
    pub loop_iter: u8,
    /// Shown animation frame (0, 1 or 2).
    pub anim_index: u8,
    /// Position in the endless sequence 0,1,2,1 of the next advance (0..4); never reset.
    pub anim_seq_pos: u8,
    /// Pipe pairs, the first `n_pipes` are alive, oldest (leftmost) first.
    pub pipes: [PipePair; MAX_PIPES],
    /// Number of live pipe pairs.
    pub n_pipes: u8,
}

impl State {
    /// The live pipe pairs, leftmost first.
    #[inline]
    pub fn pipes(&self) -> &[PipePair] {
        &self.pipes[..(self.n_pipes as usize).min(MAX_PIPES)]
    }

    /// A fresh game's state with the two given gap indices, keeping the
    /// animation sequence position `anim_seq_pos`.
    pub fn fresh(k1: u8, k2: u8, anim_seq_pos: u8) -> Result<Self, GameError> {
        Ok(State {
            player_y: PLAYER_START_Y,
            vel_y: 0,
            score: 0,
            loop_iter: 0,
            anim_index: 0,
            anim_seq_pos: anim_seq_pos % 4,
            pipes: [
                PipePair::new(SCREEN_W, k1)?,
                PipePair::new(SCREEN_W + SCREEN_W / 2, k2)?,
                PipePair::default(),
            ],
            n_pipes: 2,
        })
    }

    /// Whether the bird (with animation frame `anim_index` at `(57, player_y)`)
    /// overlaps a pipe pixel-perfectly.
    pub fn hits_pipe(&self) -> bool {
        let runs = BIRD_RUNS[(self.anim_index % 3) as usize];
        let y = self.player_y;
        for p in self.pipes() {
            if !p.spans_bird_columns() {
                continue;
            }
            for [px0, px1, py0, py1] in p.rects() {
                for r in runs {
                    let (by0, by1) = (y + r.y0 as i32, y + r.y1 as i32);
                    let (bx0, bx1) = (PLAYER_X + r.x0 as i32, PLAYER_X + r.x1 as i32);
                    if by0 <= py1 && py0 <= by1 && bx0 <= px1 && px0 <= bx1 {
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Whether the bird touches the ground (`y + 24 >= BASEY - 1`).
    #[inline]
    pub fn hits_ground(&self) -> bool {
        self.player_y >= GROUND_CRASH_Y
    }
}

/// The bird's move of "One step" (4): gravity unless it flapped (its velocity
/// is already `FLAP_VEL` then), then the move, clamped to the screen.
#[inline]
const fn bird_move(y: i32, vel: i32, flapped: bool) -> (i32, i32) {
    let vel = if vel < MAX_VEL && !flapped {
        vel + 1
    } else {
        vel
    };
    let y = if y + vel < GROUND_CRASH_Y {
        y + vel
    } else {
        GROUND_CRASH_Y
    };
    (if y < 0 { 0 } else { y }, vel)
}

/// What a crash ran into ([`State::crash_site`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Obstacle {
    /// The ground.
    Ground,
    /// The upper pipe of the pair at this index of [`State::pipes`].
    UpperPipe(usize),
    /// The lower pipe of the pair at this index of [`State::pipes`].
    LowerPipe(usize),
}

impl State {
    /// For a step from this state with `action` that crashes: what the bird
    /// runs into (the bird and pipe moves of "One step", then the pipe pair
    /// the bird overlaps, upper or lower by the bird's row against the gap).
    pub fn crash_site(&self, action: Action) -> Obstacle {
        let flapped = action == Action::Flap;
        let vel = if flapped { FLAP_VEL } else { self.vel_y };
        let (y, _) = bird_move(self.player_y, vel, flapped);
        let hit = self.pipes().iter().position(|p| {
            PipePair {
                x: p.x + PIPE_VEL,
                gap_y: p.gap_y,
            }
            .spans_bird_columns()
        });
        match hit {
            Some(j) if y < self.pipes[j].gap_y => Obstacle::UpperPipe(j),
            Some(j) => Obstacle::LowerPipe(j),
            None => Obstacle::Ground,
        }
    }
}

/// A Flappy Bird game; gap indices come from `G` ([`SeededGaps`] by default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Game<G: GapSource = SeededGaps> {
    state: State,
    gaps: G,
}

impl Game<SeededGaps> {
    /// A game whose gap indices come from `Pcg32::seed_from_u64(seed)`.
    pub fn new(seed: u64) -> Self {
        match Game::with_source(SeededGaps::new(seed)) {
            Ok(g) => g,
            // A seeded source yields 0..=7 only.
            Err(_) => unreachable!("seeded gaps never fail"),
        }
    }
}

impl<'a> Game<ScriptedGaps<'a>> {
    /// A game whose gap indices are `gaps`, consumed in pipe-creation order
    /// across resets (two at every reset, one per pair spawned in play).
    /// Errors: [`GameError::BadGap`] if an index exceeds 7,
    /// [`GameError::OutOfGaps`] if fewer than two are given.
    pub fn with_gaps(gaps: &'a [u8]) -> Result<Self, GameError> {
        Game::with_source(ScriptedGaps::new(gaps)?)
    }
}

impl<G: GapSource> Game<G> {
    /// A fresh game drawing two gap indices from `gaps`.
    pub fn with_source(mut gaps: G) -> Result<Self, GameError> {
        let k1 = gaps.next_gap()?;
        let k2 = gaps.next_gap()?;
        Ok(Game {
            state: State::fresh(k1, k2, 0)?,
            gaps,
        })
    }

    /// A game in a given state (tests, replays, what-if controllers).
    /// Out-of-range fields are brought into range (counters wrapped, pipe
    /// count capped at [`MAX_PIPES`], y clamped to the screen).
    pub fn from_state(mut state: State, gaps: G) -> Self {
        state.loop_iter %= 30;
        state.anim_index %= 3;
        state.anim_seq_pos %= 4;
        state.n_pipes = state.n_pipes.min(MAX_PIPES as u8);
        state.player_y = state.player_y.clamp(0, GROUND_CRASH_Y);
        state.vel_y = state.vel_y.clamp(-1000, 1000);
        Game { state, gaps }
    }

    /// Starts a new game now (as after a crash; the animation sequence goes on).
    /// On error the game is unchanged.
    pub fn reset(&mut self) -> Result<(), GameError> {
        let k1 = self.gaps.next_gap()?;
        let k2 = self.gaps.next_gap()?;
        self.state = State::fresh(k1, k2, self.state.anim_seq_pos)?;
        Ok(())
    }

    /// Plays one frame (spec "One step"). A crash resets the game at once.
    ///
    /// Fails only when the gap source fails ([`GameError::OutOfGaps`],
    /// [`GameError::BadGap`]); the game state is then left as before the call.
    /// Seeded games never fail.
    pub fn step(&mut self, action: Action) -> Result<Step, GameError> {
        let mut s = self.state;
        // 1. action
        let flapped = action == Action::Flap;
        if flapped {
            s.vel_y = FLAP_VEL;
        }
        // 2. score, on positions before the move
        let mut reward = Reward::Alive;
        for i in 0..s.pipes().len() {
            let mid = s.pipes[i].x + PIPE_W / 2;
            if mid <= PLAYER_MID && PLAYER_MID < mid + 4 {
                s.score = s.score.saturating_add(1);
                reward = Reward::Pipe;
            }
        }
        // 3. animation
        if (s.loop_iter + 1).is_multiple_of(3) {
            s.anim_index = ANIM_SEQ[(s.anim_seq_pos % 4) as usize];
            s.anim_seq_pos = (s.anim_seq_pos + 1) % 4;
        }
        s.loop_iter = (s.loop_iter + 1) % 30;
        // 4. bird
        (s.player_y, s.vel_y) = bird_move(s.player_y, s.vel_y, flapped);
        // 5. pipes
        let n = s.pipes().len();
        for p in &mut s.pipes[..n] {
            p.x += PIPE_VEL;
        }
        if n > 0 && s.pipes[0].x > 0 && s.pipes[0].x < 5 && n < MAX_PIPES {
            let k = self.gaps.next_gap()?;
            s.pipes[n] = PipePair::new(SPAWN_X, k)?;
            s.n_pipes += 1;
        }
        if n > 0 && s.pipes[0].x < -PIPE_W {
            s.pipes.copy_within(1.., 0);
            s.n_pipes -= 1;
        }
        // 6. crash
        if s.hits_ground() || s.hits_pipe() {
            let final_score = s.score;
            let k1 = self.gaps.next_gap()?;
            let k2 = self.gaps.next_gap()?;
            self.state = State::fresh(k1, k2, s.anim_seq_pos)?;
            return Ok(Step {
                reward: Reward::Crash,
                terminal: true,
                score: 0,
                final_score: Some(final_score),
            });
        }
        self.state = s;
        Ok(Step {
            reward,
            terminal: false,
            score: s.score,
            final_score: None,
        })
    }

    /// Writes the current 80x80 binary observation into `out`.
    #[inline]
    pub fn observe(&self, out: &mut Frame) {
        crate::raster::observe(&self.state, out);
    }

    /// The current 80x80 binary observation.
    pub fn frame(&self) -> Frame {
        let mut f = Frame::empty();
        self.observe(&mut f);
        f
    }

    /// A copy of the current state.
    #[inline]
    pub fn state(&self) -> State {
        self.state
    }

    /// The gap source.
    pub fn gaps(&self) -> &G {
        &self.gaps
    }

    /// Bird top row.
    #[inline]
    pub fn player_y(&self) -> i32 {
        self.state.player_y
    }

    /// Bird vertical velocity.
    #[inline]
    pub fn vel_y(&self) -> i32 {
        self.state.vel_y
    }

    /// Current score.
    #[inline]
    pub fn score(&self) -> u32 {
        self.state.score
    }

    /// Shown animation frame (0, 1, 2).
    #[inline]
    pub fn anim_index(&self) -> u8 {
        self.state.anim_index
    }

    /// Frame counter `loopIter` (0..30).
    #[inline]
    pub fn loop_iter(&self) -> u8 {
        self.state.loop_iter
    }

    /// Live pipe pairs, leftmost first.
    #[inline]
    pub fn pipes(&self) -> &[PipePair] {
        self.state.pipes()
    }
}
