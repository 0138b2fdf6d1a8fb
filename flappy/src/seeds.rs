//! The three disjoint sets of game seeds that every experiment keeps apart
//! (`docs/learning.md`, "Three seed sets").
//!
//! * **training**: every seed below [`VALIDATION`]: the games a learner plays
//!   and stores, the distillation games, the calibration and parity
//!   recordings.
//! * **validation**: [`VALIDATION`] up to [`TEST`]: the periodic evaluations
//!   during training ([`PERIODIC_EVAL`]), the end-of-run selection
//!   ([`SELECTION`]), the scores of recipe trials ([`TRIAL`]), and every
//!   setting anyone chooses.
//! * **test**: [`TEST`] up to `TEST + TEST_LEN`: final scores are reported
//!   on these games and nothing is ever chosen on them.
//!
//! A seed only names a pipe course (`Game::new(seed)`); the sets are a
//! protocol, and [`set_of`] says which one a seed belongs to.
//!
//! ```
//! use flappy::seeds::{self, SeedSet};
//! assert_eq!(seeds::set_of(seeds::TEST + 7), SeedSet::Test);
//! assert_eq!(seeds::set_of(seeds::SELECTION), SeedSet::Validation);
//! assert_eq!(seeds::set_of(12_345), SeedSet::Training);
//! assert_eq!(seeds::parse("test"), Ok(seeds::TEST));
//! assert_eq!(seeds::parse("42"), Ok(42));
//! ```

/// First validation seed; every smaller seed is a training seed.
pub const VALIDATION: u64 = 1 << 48;
/// First game of the periodic greedy evaluations during training.
pub const PERIODIC_EVAL: u64 = VALIDATION;
/// First game of the end-of-run selection between snapshots.
pub const SELECTION: u64 = VALIDATION + 1_000_000;
/// First game of the scores of a recipe trial (`study train --score-on
/// validation`): validation games far from the periodic evaluations and
/// the selection, on which recipes are compared and chosen.
pub const TRIAL: u64 = VALIDATION + (1 << 40);
// A trial's games never meet the selection's (a billion games apart).
const _: () = assert!(TRIAL > SELECTION + 1_000_000_000 && TRIAL < TEST);
/// First test seed. The seeds 0..20, which reported scores until
/// 2026-12-05, are spent: settings were chosen on them. They are training
/// seeds now.
pub const TEST: u64 = 3 << 48;
/// Number of test seeds.
pub const TEST_LEN: u64 = 1 << 20;

/// Which set a game seed belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedSet {
    /// Games to learn from (and to calibrate or record on).
    Training,
    /// Games to evaluate on during training and to choose anything with.
    Validation,
    /// Games to report on, and nothing else.
    Test,
    /// Beyond the test seeds: no set.
    Unassigned,
}

/// The set `seed` belongs to.
pub const fn set_of(seed: u64) -> SeedSet {
    if seed < VALIDATION {
        SeedSet::Training
    } else if seed < TEST {
        SeedSet::Validation
    } else if seed - TEST < TEST_LEN {
        SeedSet::Test
    } else {
        SeedSet::Unassigned
    }
}

/// Whether the `n` games `first..first + n` all lie in `set`.
pub const fn range_in(first: u64, n: u64, set: SeedSet) -> bool {
    if n == 0 {
        return true;
    }
    let Some(last) = first.checked_add(n - 1) else {
        return false;
    };
    set_of(first) as u8 == set as u8 && set_of(last) as u8 == set as u8
}

/// Why [`parse`] refused a seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSeed;

impl core::fmt::Display for BadSeed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(
            "a seed is a number or one of `test` (the first test seed) and `validation` \
             (the first validation seed)",
        )
    }
}

/// A seed as written on a command line: a number, `test` ([`TEST`]) or
/// `validation` ([`VALIDATION`]).
pub fn parse(s: &str) -> Result<u64, BadSeed> {
    match s.trim() {
        "test" => Ok(TEST),
        "validation" => Ok(VALIDATION),
        n => n.parse().map_err(|_| BadSeed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sets_are_disjoint_and_ordered() {
        assert_eq!(set_of(0), SeedSet::Training);
        assert_eq!(set_of(VALIDATION - 1), SeedSet::Training);
        assert_eq!(set_of(VALIDATION), SeedSet::Validation);
        assert_eq!(set_of(TEST - 1), SeedSet::Validation);
        assert_eq!(set_of(TEST), SeedSet::Test);
        assert_eq!(set_of(TEST + TEST_LEN - 1), SeedSet::Test);
        assert_eq!(set_of(TEST + TEST_LEN), SeedSet::Unassigned);
        assert_eq!(set_of(u64::MAX), SeedSet::Unassigned);
        assert!(range_in(TEST, 100, SeedSet::Test));
        assert!(!range_in(TEST - 1, 2, SeedSet::Test));
        assert!(!range_in(u64::MAX, 2, SeedSet::Unassigned));
        assert!(range_in(SELECTION, 1000, SeedSet::Validation));
        assert!(range_in(TRIAL, TEST_LEN, SeedSet::Validation));
    }

    #[test]
    fn seeds_parse_by_name_or_number() {
        assert_eq!(parse("validation"), Ok(VALIDATION));
        assert_eq!(parse(" 7 "), Ok(7));
        assert_eq!(parse("-1"), Err(BadSeed));
        assert_eq!(parse("tests"), Err(BadSeed));
    }
}
