//! The device loop: the integer policy playing the game, shared by the host
//! simulator (`firmware-sim` binary, feature `std`) and the Cortex-M4 image
//! (`firmware-sim/mcu`, `default-features = false`), so both run the very same
//! code and agree bit for bit by construction.
//!
//! # Episode plan
//! Episode `i` (0-based) plays `Game::new(base_seed + i)`. It ends at the first
//! crash, when the score reaches `max_score`, or after `max_steps` decisions,
//! whichever comes first.
//!
//! # Checksum
//! [`Fnv64`]: FNV-1a, 64 bit (offset basis `0xcbf2_9ce4_8422_2325`, prime
//! `0x0000_0100_0000_01b3`), folded over the 4 little-endian bytes of every
//! `i32` Q-value computed, in decision order, action 0 (Idle) before action 1
//! (Flap). Two runs with equal checksums computed the same Q-values in the same
//! order. Reports print it as 16 lower-case hex digits (`{:016x}`).
#![cfg_attr(not(feature = "std"), no_std)]

pub mod env;
pub mod marked;
#[cfg(feature = "std")]
pub mod random_blob;

pub use env::{Env, Game, Outcome};
pub use flappy::{Frame, FrameStack};
pub use marked::Marked;
pub use policy_core;
pub use policy_core::{BlobError, Policy, NUM_ACTIONS};

/// A host binary's exit: success, or `error: <message>` on stderr and failure.
#[cfg(feature = "std")]
pub fn exit_code(result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Anything that maps a frame stack to integer Q-values (the policy; fakes in tests).
pub trait QFunction {
    /// Integer Q-values, action 0 = Idle, 1 = Flap.
    fn q_values(&mut self, stack: &FrameStack) -> [i32; NUM_ACTIONS];
}

impl QFunction for Policy<'_> {
    #[inline]
    fn q_values(&mut self, stack: &FrameStack) -> [i32; NUM_ACTIONS] {
        Policy::q_values(self, stack)
    }
}

/// FNV-1a 64-bit hash over bytes (see the crate docs for what is hashed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv64(pub u64);

impl Fnv64 {
    /// FNV-1a 64-bit offset basis.
    pub const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    /// FNV-1a 64-bit prime.
    pub const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The hash of nothing.
    pub const fn new() -> Self {
        Fnv64(Self::OFFSET)
    }

    /// Folds in `bytes`, in order.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Folds in the little-endian bytes of each Q-value, in order.
    pub fn write_q(&mut self, q: &[i32]) {
        for v in q {
            self.write(&v.to_le_bytes());
        }
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

/// Greedy action index: argmax of `q`, ties to the lowest index (Idle).
pub use policy_core::argmax;

/// Which episodes to play (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Seed of episode 0; episode `i` uses `base_seed + i` (wrapping).
    pub base_seed: u64,
    /// Number of episodes.
    pub episodes: u32,
    /// An episode stops once its score reaches this.
    pub max_score: u32,
    /// An episode stops after this many decisions.
    pub max_steps: u32,
}

impl Plan {
    /// Default cap on decisions per episode.
    pub const DEFAULT_MAX_STEPS: u32 = 1_000_000;

    /// The seed of episode `i`.
    pub fn seed(&self, i: u32) -> u64 {
        self.base_seed.wrapping_add(i as u64)
    }
}

/// Why an episode ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpisodeEnd {
    /// The bird crashed.
    Crash,
    /// The score reached [`Plan::max_score`].
    MaxScore,
    /// [`Plan::max_steps`] decisions were made.
    StepCap,
}

/// One finished episode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    /// Index in the plan.
    pub index: u32,
    /// Game seed.
    pub seed: u64,
    /// Pipes passed.
    pub score: u32,
    /// Decisions (policy evaluations) made.
    pub decisions: u32,
    /// Why it ended.
    pub end: EpisodeEnd,
}

/// Hooks into the loop (timing on the device, GIF frames on the host).
/// Every method has an empty default.
pub trait Observer<E: Env> {
    /// Right before a policy evaluation.
    fn before_decision(&mut self) {}
    /// Right after a policy evaluation, with its result and the chosen action.
    fn after_decision(&mut self, _q: &[i32; NUM_ACTIONS], _action: usize) {}
    /// Once at episode start (before any step) and after every step that did
    /// not crash (a crash resets the game, so there is nothing left to show).
    fn frame(&mut self, _env: &E) {}
    /// When an episode ends.
    fn episode_end(&mut self, _episode: &Episode) {}
}

/// An observer that does nothing.
pub struct NoObserver;
impl<E: Env> Observer<E> for NoObserver {}

/// Totals over a whole plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Episodes played.
    pub episodes: u32,
    /// Sum of scores.
    pub total_score: u64,
    /// Best score.
    pub max_score: u32,
    /// Policy evaluations made.
    pub decisions: u64,
    /// [`Fnv64`] over all Q-values (see the crate docs).
    pub checksum: u64,
}

/// Plays `plan` with `policy` choosing greedily (ties to Idle).
///
/// Per episode: `E::start(seed)`, observe, a fresh [`FrameStack`]; then per
/// decision: Q-values, argmax, step, and (unless the episode ended) observe and
/// push the new frame. Integer only; nothing allocates.
pub fn run_episodes<E: Env, Q: QFunction, O: Observer<E>>(
    policy: &mut Q,
    plan: &Plan,
    observer: &mut O,
) -> Result<Summary, E::Error> {
    let mut frame = Frame::empty();
    let mut stack = FrameStack::default();
    let mut hash = Fnv64::new();
    let mut sum = Summary {
        episodes: 0,
        total_score: 0,
        max_score: 0,
        decisions: 0,
        checksum: 0,
    };
    for index in 0..plan.episodes {
        let seed = plan.seed(index);
        let mut env = E::start(seed);
        env.observe(&mut frame);
        stack.reset(&frame);
        observer.frame(&env);
        let mut decisions = 0u32;
        let mut score = 0u32;
        let end = loop {
            if score >= plan.max_score {
                break EpisodeEnd::MaxScore;
            }
            if decisions >= plan.max_steps {
                break EpisodeEnd::StepCap;
            }
            observer.before_decision();
            let q = policy.q_values(&stack);
            let action = argmax(&q);
            observer.after_decision(&q, action);
            hash.write_q(&q);
            decisions += 1;
            let out = env.step(action)?;
            score = out.score;
            if out.crashed {
                break EpisodeEnd::Crash;
            }
            observer.frame(&env);
            env.observe(&mut frame);
            stack.push(&frame);
        };
        let ep = Episode {
            index,
            seed,
            score,
            decisions,
            end,
        };
        observer.episode_end(&ep);
        sum.episodes += 1;
        sum.total_score += score as u64;
        sum.max_score = sum.max_score.max(score);
        sum.decisions += decisions as u64;
    }
    sum.checksum = hash.0;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::env::Outcome;
    use super::*;

    /// A fake game: the bird crashes after `seed % 7 + 3` steps and scores one
    /// point every 2 flaps; the frame encodes the step count.
    struct Fake {
        seed: u64,
        t: u32,
        flaps: u32,
    }
    impl Env for Fake {
        type Error = ();
        fn start(seed: u64) -> Self {
            Fake {
                seed,
                t: 0,
                flaps: 0,
            }
        }
        fn observe(&self, frame: &mut Frame) {
            *frame = Frame::empty();
            frame.0[0] = self.t as u8;
            frame.0[1] = self.seed as u8;
        }
        fn step(&mut self, action: usize) -> Result<Outcome, ()> {
            self.t += 1;
            self.flaps += action as u32;
            Ok(Outcome {
                crashed: self.t as u64 >= self.seed % 7 + 3,
                score: self.flaps / 2,
            })
        }
    }

    /// Q = (newest frame's step byte, oldest frame's step byte): flaps while the
    /// stack is moving, i.e. from the second decision on.
    struct Probe(u32);
    impl QFunction for Probe {
        fn q_values(&mut self, s: &FrameStack) -> [i32; NUM_ACTIONS] {
            self.0 += 1;
            [s.frame(0).0[0] as i32, s.frame(3).0[0] as i32]
        }
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        let mut h = Fnv64::new();
        assert_eq!(h.0, 0xcbf2_9ce4_8422_2325);
        h.write(b"a");
        assert_eq!(h.0, 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv64::new();
        h.write(b"foobar");
        assert_eq!(h.0, 0x8594_4171_f739_67e8);
        let (mut a, mut b) = (Fnv64::new(), Fnv64::new());
        a.write_q(&[1, -2]);
        b.write(&[1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
        assert_eq!(a, b);
    }

    #[test]
    fn argmax_ties_to_idle() {
        assert_eq!(argmax(&[3, 3]), 0);
        assert_eq!(argmax(&[3, 4]), 1);
        assert_eq!(argmax(&[-1, -5]), 0);
    }

    #[test]
    fn plays_the_plan_and_hashes_every_q() {
        let plan = Plan {
            base_seed: 10,
            episodes: 3,
            max_score: 100,
            max_steps: 1000,
        };
        struct Rec(std::vec::Vec<Episode>, std::vec::Vec<[i32; 2]>);
        impl Observer<Fake> for Rec {
            fn after_decision(&mut self, q: &[i32; 2], a: usize) {
                assert_eq!(a, argmax(q));
                self.1.push(*q);
            }
            fn episode_end(&mut self, e: &Episode) {
                self.0.push(*e);
            }
        }
        let mut rec = Rec(vec![], vec![]);
        let mut q = Probe(0);
        let s = run_episodes::<Fake, _, _>(&mut q, &plan, &mut rec).unwrap();
        // Seeds 10, 11, 12 crash after 6, 7, 8 steps.
        let lens: std::vec::Vec<u32> = rec.0.iter().map(|e| e.decisions).collect();
        assert_eq!(lens, [6, 7, 8]);
        assert!(rec.0.iter().all(|e| e.end == EpisodeEnd::Crash));
        assert_eq!(rec.0[1].seed, 11);
        // Decision 0 sees 4 equal frames (tie -> Idle); then it flaps every step.
        assert_eq!(rec.0[0].score, 5 / 2);
        assert_eq!(s.decisions, 21);
        assert_eq!(q.0, 21);
        let mut h = Fnv64::new();
        for v in &rec.1 {
            h.write_q(v);
        }
        assert_eq!(s.checksum, h.0);
        assert_eq!(s.total_score, 2 + 3 + 3);
        assert_eq!(s.max_score, 3);
    }

    #[test]
    fn stops_at_max_score_and_step_cap() {
        let mut plan = Plan {
            base_seed: 6, // crashes after 9 steps
            episodes: 1,
            max_score: 2,
            max_steps: 1000,
        };
        let mut ends = std::vec::Vec::new();
        struct Ends<'a>(&'a mut std::vec::Vec<Episode>);
        impl Observer<Fake> for Ends<'_> {
            fn episode_end(&mut self, e: &Episode) {
                self.0.push(*e);
            }
        }
        run_episodes::<Fake, _, _>(&mut Probe(0), &plan, &mut Ends(&mut ends)).unwrap();
        assert_eq!(ends[0].end, EpisodeEnd::MaxScore);
        assert_eq!((ends[0].score, ends[0].decisions), (2, 5));
        plan.max_steps = 3;
        run_episodes::<Fake, _, _>(&mut Probe(0), &plan, &mut Ends(&mut ends)).unwrap();
        assert_eq!((ends[1].end, ends[1].decisions), (EpisodeEnd::StepCap, 3));
    }

    #[test]
    fn random_blob_loads_and_is_deterministic() {
        let a = random_blob::classic(7);
        assert_eq!(a, random_blob::classic(7));
        let mut p = Policy::from_blob(&a).unwrap();
        let stack = FrameStack::new(&Frame::empty());
        let q1 = p.q_values(&stack);
        assert_eq!(q1, p.q_values(&stack));
    }
}
