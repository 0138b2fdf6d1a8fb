//! The exact flavour's output is int16 (TFLite has no int8-in, int32-out
//! fully connected kernel), and policy-core's Q-values are int32. While the
//! policy's Q-values stay well inside int16 the file's outputs *are* them;
//! a policy whose Q-values sit higher (a Q step of 2.9e-4 and Q-values near
//! 10 make 35 000) gets its output biases lowered by one constant, the
//! middle of the Q range met in its own play, so the file's outputs are the
//! Q-values less that constant: the same actions, every bit of the
//! difference kept. The range is measured, as a converter's representative
//! dataset would, on games the policy plays itself (training seeds, with a
//! few forced flaps so that crash states are met too).

use anyhow::{Context, Result};
use flappy::{Action, Frame, FrameStack, Game};
use policy_core::Policy;

/// Games played to measure the Q range (game seeds `0..GAMES`).
pub const GAMES: u64 = 4;
/// Decisions per game at most.
pub const MAX_DECISIONS: u32 = 4_000;
/// Q-values within `±LIMIT` need no offset, and the measured range must fit
/// `±LIMIT` once centred: a quarter of int16's range is kept for states
/// that this play did not reach.
pub const LIMIT: i32 = 3 << 13;

/// The smallest and largest Q-value (either action) over the policy's play.
pub fn q_range(blob: &[u8]) -> Result<(i32, i32)> {
    let mut policy = Policy::from_blob(blob).context("not a valid policy blob")?;
    let (mut lo, mut hi) = (i32::MAX, i32::MIN);
    for seed in 0..GAMES {
        let mut game = Game::new(seed);
        let mut frame = Frame::empty();
        game.observe(&mut frame);
        let mut stack = FrameStack::new(&frame);
        for i in 0..MAX_DECISIONS {
            let q = policy.q_values(&stack);
            lo = lo.min(q[0].min(q[1]));
            hi = hi.max(q[0].max(q[1]));
            // About 3 % of the decisions are forced flaps (a fixed pattern:
            // no random generator), which also lead the bird into crashes.
            let forced = (i.wrapping_mul(2_654_435_761) >> 24) % 32 == 0;
            let action = if forced {
                Action::Flap
            } else {
                policy_core::action_of(&q)
            };
            match game.step(action) {
                Ok(step) if !step.terminal => {}
                _ => break,
            }
            game.observe(&mut frame);
            stack.push(&frame);
        }
    }
    Ok((lo, hi))
}

/// Where the policy's Q-values sit against the int16 output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QFit {
    /// Smallest Q-value met in play.
    pub lo: i32,
    /// Largest Q-value met in play.
    pub hi: i32,
    /// The constant the exact flavour's int16 outputs are less than the
    /// Q-values: 0 when the range is inside `±LIMIT`, else its middle.
    pub offset: i32,
}

impl QFit {
    /// Whether the measured range, less the offset, is inside `±LIMIT`
    /// (else the exact flavour's outputs saturate on some states: a random
    /// network, say; the fast flavour's float output does not).
    pub fn fits(&self) -> bool {
        let (lo, hi) = (
            self.lo as i64 - self.offset as i64,
            self.hi as i64 - self.offset as i64,
        );
        -(LIMIT as i64) <= lo && hi <= LIMIT as i64
    }
}

/// The policy's Q range in play and the offset that centres it.
pub fn q_fit(blob: &[u8]) -> Result<QFit> {
    let (lo, hi) = q_range(blob)?;
    let offset = if -LIMIT <= lo && hi <= LIMIT {
        0
    } else {
        ((lo as i64 + hi as i64) / 2) as i32
    };
    Ok(QFit { lo, hi, offset })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_models_get_an_offset_only_when_they_need_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for m in ["reference", "tiny"] {
            let blob = std::fs::read(root.join(format!("models/{m}/policy.bin"))).unwrap();
            let f = q_fit(&blob).unwrap();
            assert!(f.lo < f.hi, "{m}: a range {f:?}");
            assert!(
                f.fits(),
                "{m}: its Q-values fit int16 less the offset: {f:?}"
            );
            if f.offset == 0 {
                assert!(-LIMIT <= f.lo && f.hi <= LIMIT, "{m}: {f:?}");
            } else {
                assert!(
                    f.hi > LIMIT || f.lo < -LIMIT,
                    "{m}: an offset it did not need: {f:?}"
                );
            }
        }
    }

    #[test]
    fn a_range_too_wide_is_reported_not_hidden() {
        let f = QFit {
            lo: -40_000,
            hi: 40_000,
            offset: 0,
        };
        assert!(!f.fits());
        let g = QFit {
            lo: 20_000,
            hi: 40_000,
            offset: 30_000,
        };
        assert!(g.fits());
    }
}
