//! `study compare` on the committed trial files: the pairs, the interval
//! over paired games, the adoption rule, and what it refuses.

use std::path::{Path, PathBuf};
use study::compare::{Comparison, Verdict};
use study::Study;

fn results() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../results")
}

fn load(name: &str) -> Study {
    Study::load(&results().join(format!("{name}.json"))).unwrap()
}

#[test]
fn the_clip_trial_against_its_control_of_seed_1() {
    let (arm, control) = (load("trial-tiny-clip"), load("trial-tiny-clip-control"));
    let c = Comparison::of(&arm, &control, 3).unwrap();
    // Only seed 1 has a control run in a results file (seeds 2 and 3 were
    // paired with the shipped networks of another study, by script).
    assert_eq!(c.pairs.len(), 1);
    let p = &c.pairs[0];
    assert_eq!(p.seed, 1);
    let (a, k) = (&arm.runs[0].int8, &control.runs[0].int8);
    assert!((p.diff.point - (a.mean - k.mean)).abs() < 1e-9, "{p:?}");
    assert!(
        p.diff.lo < p.diff.point && p.diff.point < p.diff.hi,
        "{p:?}"
    );
    assert!(
        p.diff.lo > 0.0,
        "a gain of about 240 on 100 games is clear: {p:?}"
    );
    assert_eq!(c.unpaired.len(), 2, "{:?}", c.unpaired);
    assert_eq!(
        c.verdict,
        Verdict::Pending {
            paired: 1,
            planned: 3
        }
    );
    // Planned as a one-seed trial, the same pair decides it.
    assert_eq!(
        Comparison::of(&arm, &control, 1).unwrap().verdict,
        Verdict::Adopted
    );
    // The other way round, the control cannot win.
    assert_eq!(
        Comparison::of(&control, &arm, 1).unwrap().verdict,
        Verdict::NotAdopted
    );
    let md = c.markdown();
    assert!(
        md.contains("| 1 | 912.8 / 1000 / ") && md.contains("**Pending**"),
        "{md}"
    );
}

#[test]
fn a_trial_ahead_on_two_of_three_seeds_waits_for_the_third() {
    // `nstep5`'s first two pairs (seeds 6 and 7), both higher than the
    // control.
    let (mut arm, mut control) = (load("trial-nstep5"), load("trial-nstep5-control"));
    arm.runs.retain(|r| r.seed == 6 || r.seed == 7);
    control.runs.retain(|r| r.seed == 6 || r.seed == 7);
    let c = Comparison::of(&arm, &control, 3).unwrap();
    assert_eq!(c.pairs.len(), 2, "{:?}", c.unpaired);
    assert!(c.pairs.iter().all(|p| p.diff.point > 0.0), "{:?}", c.pairs);
    // A majority won early is not an adoption: the third seed can still
    // pull the average (or the seeds at median 1000) below the control's.
    assert_eq!(
        c.verdict,
        Verdict::Pending {
            paired: 2,
            planned: 3
        }
    );
    let md = c.markdown();
    assert!(md.contains("the arm higher on 2 of them"), "{md}");
    // Planned as two seeds, the same pairs decide it.
    assert_eq!(
        Comparison::of(&arm, &control, 2).unwrap().verdict,
        Verdict::Adopted
    );
}

#[test]
fn runs_of_one_seed_on_two_cpus_are_not_paired() {
    let arm = load("trial-tiny-clip");
    let mut control = load("trial-tiny-clip-control");
    control.runs[0].cpu = "another CPU".into();
    let c = Comparison::of(&arm, &control, 1).unwrap();
    assert!(c.pairs.is_empty());
    assert!(c
        .unpaired
        .iter()
        .any(|(s, why)| *s == 1 && why.contains("another CPU")));
    // Nothing decided: the seed has to be paired on one machine.
    assert_eq!(
        c.verdict,
        Verdict::Pending {
            paired: 0,
            planned: 1
        }
    );
}

#[test]
fn a_study_on_test_games_or_other_games_is_refused() {
    let arm = load("trial-tiny-clip");
    let test = load("study-tiny-clip");
    let e = Comparison::of(&arm, &test, 3).unwrap_err().to_string();
    assert!(e.contains("validation"), "{e}");
    let mut other = load("trial-tiny-clip-control");
    other.cap = 200;
    let e = Comparison::of(&arm, &other, 3).unwrap_err().to_string();
    assert!(e.contains("other games"), "{e}");
    assert!(Comparison::of(&arm, &arm, 0).is_err());
}
