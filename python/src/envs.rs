//! `n` games stepped together, with Gymnasium's episode semantics.
//!
//! * **terminated**: the bird crashed. The game has already restarted
//!   itself (`flappy::Game::step`), so the observation of that step is the
//!   next game's first stack, as the trainer sees it (`docs/GAME.md`, "One
//!   step", 7).
//! * **truncated**: the score reached the cap (`max_score`), without a crash.
//! * **autoreset** (Gymnasium 1.x `NEXT_STEP`): the step after an ended
//!   episode ignores the action, starts the next game and returns its first
//!   stack with reward 0, neither terminated nor truncated. Without
//!   autoreset, stepping an ended game is an error until it is reset.
//! * **reset**: with a seed, `Game::new(seed)`, so the pipe course is a pure
//!   function of the seed; without one, the next game of the same gap
//!   stream (the game that a crash already started, else `Game::reset`).
//!   The autoreset starts the next game the same way.

use crate::obs::ObsFormat;
use flappy::{agent, render, Action, Frame, FrameStack, Game, Reward};

/// Where a game stands between two calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// An episode is under way.
    Running,
    /// The last step crashed; the game has restarted itself and not moved since.
    Crashed,
    /// The last step reached the score cap.
    Truncated,
}

/// Why a step or reset was refused (nothing has changed then).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvError {
    /// An action other than 0 (idle) or 1 (flap).
    BadAction {
        /// Which game.
        env: usize,
        /// The action given.
        action: u8,
    },
    /// Without autoreset, a game whose episode ended was stepped.
    EpisodeOver {
        /// Which game.
        env: usize,
    },
    /// A buffer or list has the wrong length.
    Length {
        /// What it is.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length needed.
        expected: usize,
    },
}

impl core::fmt::Display for EnvError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EnvError::BadAction { env, action } => write!(
                f,
                "bad action {action} for env {env} (expected 0 = idle or 1 = flap)"
            ),
            EnvError::EpisodeOver { env } => write!(
                f,
                "env {env}: the episode is over (terminated or truncated); call reset() first"
            ),
            EnvError::Length {
                what,
                got,
                expected,
            } => write!(f, "{what} has {got} elements, expected {expected}"),
        }
    }
}

impl std::error::Error for EnvError {}

/// The numeric reward, in the spec's decimals: 0.1, 1.0, -1.0.
pub const fn reward_value(r: Reward) -> f64 {
    match r {
        Reward::Alive => 0.1,
        Reward::Pipe => 1.0,
        Reward::Crash => -1.0,
    }
}

/// Where one step writes, one element (or observation) per game.
pub struct StepOut<'a> {
    /// Observations, `n * format.bytes()` bytes.
    pub obs: &'a mut [u8],
    /// Rewards.
    pub reward: &'a mut [f64],
    /// Whether the bird crashed.
    pub terminated: &'a mut [bool],
    /// Whether the score reached the cap.
    pub truncated: &'a mut [bool],
    /// The episode's score after the step (on a crash, the crashed game's).
    pub score: &'a mut [i64],
}

/// `n` games, their frame stacks and phases.
pub struct Envs {
    games: Vec<Game>,
    stacks: Vec<FrameStack>,
    phases: Vec<Phase>,
    format: ObsFormat,
    max_score: Option<u32>,
    autoreset: bool,
    frame: Frame,
}

impl Envs {
    /// `n` games seeded `0..n` (call [`Envs::reset`] to choose the seeds).
    pub fn new(n: usize, format: ObsFormat, max_score: Option<u32>, autoreset: bool) -> Envs {
        let games: Vec<Game> = (0..n as u64).map(Game::new).collect();
        let stacks = games.iter().map(|g| FrameStack::new(&g.frame())).collect();
        Envs {
            games,
            stacks,
            phases: vec![Phase::Running; n],
            format,
            max_score,
            autoreset,
            frame: Frame::empty(),
        }
    }

    /// Number of games.
    pub fn len(&self) -> usize {
        self.games.len()
    }

    /// Whether there are no games.
    pub fn is_empty(&self) -> bool {
        self.games.is_empty()
    }

    /// The observation format.
    pub fn format(&self) -> ObsFormat {
        self.format
    }

    /// The phase of game `i`.
    pub fn phase(&self, i: usize) -> Phase {
        self.phases[i]
    }

    /// Starts a new episode in game `i`: `Game::new(seed)`, or with `None`
    /// the next game of its gap stream (see the module docs).
    pub fn reset(&mut self, i: usize, seed: Option<u64>) {
        match (seed, self.phases[i]) {
            (Some(s), _) => self.games[i] = Game::new(s),
            (None, Phase::Crashed) => {}
            // A seeded game's gap source never fails.
            (None, _) => self.games[i].reset().unwrap_or(()),
        }
        self.games[i].observe(&mut self.frame);
        self.stacks[i].reset(&self.frame);
        self.phases[i] = Phase::Running;
    }

    /// Writes game `i`'s observation into `out` ([`ObsFormat::bytes`] bytes).
    pub fn observe(&self, i: usize, out: &mut [u8]) {
        self.format.write(&self.stacks[i], out);
    }

    /// Writes every game's observation into `out` (`n` observations).
    pub fn observe_all(&self, out: &mut [u8]) -> Result<(), EnvError> {
        check_len("obs", out.len(), self.len() * self.format.bytes())?;
        for (i, o) in out.chunks_exact_mut(self.format.bytes()).enumerate() {
            self.observe(i, o);
        }
        Ok(())
    }

    /// Steps every game with its action (0 idle, 1 flap) and writes what
    /// it reports into `out`. All actions and lengths are checked first: on
    /// an error nothing has moved.
    pub fn step(&mut self, actions: &[u8], out: StepOut) -> Result<(), EnvError> {
        let n = self.len();
        check_len("actions", actions.len(), n)?;
        check_len("obs", out.obs.len(), n * self.format.bytes())?;
        check_len("reward", out.reward.len(), n)?;
        check_len("terminated", out.terminated.len(), n)?;
        check_len("truncated", out.truncated.len(), n)?;
        check_len("score", out.score.len(), n)?;
        for (env, &action) in actions.iter().enumerate() {
            if action > 1 {
                return Err(EnvError::BadAction { env, action });
            }
            if !self.autoreset && self.phases[env] != Phase::Running {
                return Err(EnvError::EpisodeOver { env });
            }
        }
        let obs = out.obs.chunks_exact_mut(self.format.bytes());
        for (i, o) in obs.enumerate() {
            let (reward, terminated, truncated, score) = self.step_one(i, actions[i]);
            out.reward[i] = reward;
            out.terminated[i] = terminated;
            out.truncated[i] = truncated;
            out.score[i] = i64::from(score);
            self.format.write(&self.stacks[i], o);
        }
        Ok(())
    }

    /// One game's step (or autoreset): reward, terminated, truncated, score.
    #[inline]
    fn step_one(&mut self, i: usize, action: u8) -> (f64, bool, bool, u32) {
        if self.phases[i] != Phase::Running {
            self.reset(i, None);
            return (0.0, false, false, 0);
        }
        let act = if action == 0 {
            Action::Idle
        } else {
            Action::Flap
        };
        let game = &mut self.games[i];
        // A seeded game never fails; were it to, the bird would count as crashed.
        let Ok(s) = game.step(act) else {
            self.phases[i] = Phase::Crashed;
            return (reward_value(Reward::Crash), true, false, game.score());
        };
        game.observe(&mut self.frame);
        if s.terminal {
            self.stacks[i].reset(&self.frame);
            self.phases[i] = Phase::Crashed;
            return (reward_value(s.reward), true, false, s.episode_score());
        }
        self.stacks[i].push(&self.frame);
        let truncated = self.max_score.is_some_and(|m| s.score >= m);
        if truncated {
            self.phases[i] = Phase::Truncated;
        }
        (reward_value(s.reward), false, truncated, s.score)
    }

    /// Game `i`'s current score.
    pub fn score(&self, i: usize) -> u32 {
        self.games[i].score()
    }

    /// Game `i` as a 288x512 RGB image (row-major, 3 bytes per pixel), the
    /// pixels of `flappy::render` (`flappy play --png`).
    pub fn render_rgb(&self, i: usize) -> Vec<u8> {
        render::render_rgb(&self.games[i].state())
    }

    /// The action of `flappy`'s scripted look-ahead controller in game `i`.
    pub fn heuristic_action(&self, i: usize) -> u8 {
        agent::heuristic_action(&self.games[i]).into()
    }
}

fn check_len(what: &'static str, got: usize, expected: usize) -> Result<(), EnvError> {
    if got == expected {
        Ok(())
    } else {
        Err(EnvError::Length {
            what,
            got,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buffers for `n` games.
    struct Bufs {
        obs: Vec<u8>,
        reward: Vec<f64>,
        terminated: Vec<bool>,
        truncated: Vec<bool>,
        score: Vec<i64>,
    }

    impl Bufs {
        fn new(n: usize, f: ObsFormat) -> Bufs {
            Bufs {
                obs: vec![0; n * f.bytes()],
                reward: vec![0.0; n],
                terminated: vec![false; n],
                truncated: vec![false; n],
                score: vec![0; n],
            }
        }
        fn out(&mut self) -> StepOut<'_> {
            StepOut {
                obs: &mut self.obs,
                reward: &mut self.reward,
                terminated: &mut self.terminated,
                truncated: &mut self.truncated,
                score: &mut self.score,
            }
        }
    }

    /// The trainer's loop (`trainer::env::VecEnv::step`) for one game.
    struct Reference {
        game: Game,
        stack: FrameStack,
    }

    impl Reference {
        fn new(seed: u64) -> Reference {
            let game = Game::new(seed);
            let stack = FrameStack::new(&game.frame());
            Reference { game, stack }
        }
        fn step(&mut self, a: u8) -> flappy::Step {
            let s = self.game.step(Action::try_from(a).unwrap()).unwrap();
            let f = self.game.frame();
            if s.terminal {
                self.stack.reset(&f);
            } else {
                self.stack.push(&f);
            }
            s
        }
    }

    #[test]
    fn steps_like_the_trainer_and_autoresets_one_step_later() {
        let f = ObsFormat::Cells;
        let mut envs = Envs::new(2, f, None, true);
        envs.reset(0, Some(11));
        envs.reset(1, Some(12));
        let mut refs = [Reference::new(11), Reference::new(12)];
        let mut b = Bufs::new(2, f);
        let (mut crashes, mut pending) = (0, [false; 2]);
        let mut cells = vec![0u8; f.bytes()];
        for t in 0..3000u32 {
            let acts = [u8::from(t % 13 == 0), u8::from(t % 9 == 0)];
            envs.step(&acts, b.out()).unwrap();
            for (i, r) in refs.iter_mut().enumerate() {
                if pending[i] {
                    // The autoreset step: reward 0, the same (new game's) stack.
                    assert_eq!((b.reward[i], b.terminated[i]), (0.0, false));
                    pending[i] = false;
                } else {
                    let s = r.step(acts[i]);
                    assert_eq!(b.reward[i], reward_value(s.reward));
                    assert_eq!(b.terminated[i], s.terminal);
                    assert_eq!(b.score[i], i64::from(s.episode_score()));
                    pending[i] = s.terminal;
                    crashes += usize::from(s.terminal);
                }
                f.write(&r.stack, &mut cells);
                assert!(
                    cells == b.obs[i * f.bytes()..(i + 1) * f.bytes()],
                    "t {t} env {i}"
                );
            }
        }
        assert!(crashes > 10, "{crashes}");
    }

    #[test]
    fn the_cap_truncates_and_the_next_game_follows_the_stream() {
        let f = ObsFormat::Packed;
        let mut envs = Envs::new(1, f, Some(1), false);
        envs.reset(0, Some(5));
        let mut b = Bufs::new(1, f);
        let mut steps = 0;
        while !(b.truncated[0] || b.terminated[0]) {
            let a = envs.heuristic_action(0);
            envs.step(&[a], b.out()).unwrap();
            steps += 1;
        }
        assert!(
            b.truncated[0] && !b.terminated[0],
            "the heuristic passes a pipe"
        );
        assert_eq!((b.score[0], b.reward[0]), (1, 1.0));
        assert!(steps > 40, "{steps}");
        assert_eq!(envs.phase(0), Phase::Truncated);
        assert_eq!(
            envs.step(&[0], b.out()),
            Err(EnvError::EpisodeOver { env: 0 })
        );
        // reset(None): the next game of the same gap stream.
        envs.reset(0, None);
        let mut same = Game::new(5);
        same.reset().unwrap();
        let mut want = vec![0u8; f.bytes()];
        f.write(&FrameStack::new(&same.frame()), &mut want);
        envs.observe(0, &mut b.obs);
        assert_eq!(b.obs, want);
        assert_eq!(envs.score(0), 0);
    }

    #[test]
    fn bad_input_changes_nothing() {
        let f = ObsFormat::Packed;
        let mut envs = Envs::new(2, f, None, true);
        let mut b = Bufs::new(2, f);
        envs.observe_all(&mut b.obs).unwrap();
        let before = b.obs.clone();
        assert_eq!(
            envs.step(&[1, 2], b.out()),
            Err(EnvError::BadAction { env: 1, action: 2 })
        );
        assert!(matches!(
            envs.step(&[1], b.out()),
            Err(EnvError::Length {
                what: "actions",
                ..
            })
        ));
        envs.observe_all(&mut b.obs).unwrap();
        assert_eq!(b.obs, before);
        let mut short = vec![0u8; 3];
        assert!(envs.observe_all(&mut short).is_err());
        assert!(EnvError::BadAction { env: 1, action: 2 }
            .to_string()
            .contains("bad action 2"));
    }
}
