//! A study folder holds runs of one plan: a second plan under the same name
//! (another teacher, another cap) is refused, the same plan is let through.

use std::path::PathBuf;
use study::{Kind, StudyPlan};
use trainer::report::FinalGames;

/// A plan of `kind` named `name`; the rest as every test here wants it.
fn plan_of(name: &str, kind: Kind, games: FinalGames, cap: u32, runs_dir: PathBuf) -> StudyPlan {
    StudyPlan {
        name: name.into(),
        kind,
        seeds: vec![1, 2, 3],
        test_games: 100,
        games,
        cap,
        runs_dir,
        threads: 1,
    }
}

fn plan(runs_dir: PathBuf, teacher: &str, cap: u32) -> StudyPlan {
    let kind = Kind::Distil {
        teacher: teacher.into(),
        total_updates: None,
        recipe: String::new(),
    };
    plan_of("tiny", kind, FinalGames::Test, cap, runs_dir)
}

#[test]
fn a_study_folder_refuses_another_teacher_or_cap() {
    let dir = std::env::temp_dir().join(format!("study-plan-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let a = plan(dir.clone(), "models/teacher", 1000);
    a.claim_folder().unwrap();
    assert!(a.plan_file().is_file());
    a.claim_folder()
        .expect("the same plan again is let through");
    let err = plan(dir.clone(), "models/reference", 1000)
        .claim_folder()
        .unwrap_err();
    assert!(err.to_string().contains("use another --name"), "{err}");
    assert!(plan(dir.clone(), "models/teacher", 200)
        .claim_folder()
        .is_err());
    std::fs::write(a.plan_file(), b"not json").unwrap();
    assert!(
        a.claim_folder().is_err(),
        "a damaged plan file is an error, not a pass"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn train_plan(runs_dir: PathBuf, recipe: &str, games: FinalGames) -> StudyPlan {
    let kind = Kind::Train {
        minutes: None,
        recipe: recipe.into(),
    };
    plan_of("default", kind, games, 1000, runs_dir)
}

#[test]
fn a_plan_file_written_before_trials_existed_is_the_default_study() {
    let dir = std::env::temp_dir().join(format!("study-plan-old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = train_plan(dir.clone(), "", FinalGames::Test);
    std::fs::create_dir_all(p.folder()).unwrap();
    // What `study train` wrote for the default study until 2026-12-06.
    std::fs::write(
        p.plan_file(),
        r#"{"kind":{"Train":{"minutes":null}},"test_games":100,"cap":1000}"#,
    )
    .unwrap();
    p.claim_folder()
        .expect("the default study continues in its old folder");
    let other = train_plan(dir.clone(), "policy_ema = 3e-5\n", FinalGames::Test);
    assert!(
        other.claim_folder().is_err(),
        "another recipe in the default study's folder is refused"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recipe_trial_lives_apart_from_the_study_and_scores_on_validation_games() {
    let dir = std::env::temp_dir().join(format!("study-plan-trial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let study = train_plan(dir.clone(), "", FinalGames::Test);
    let trial = train_plan(dir.clone(), "policy_ema = 3e-5\n", FinalGames::Validation);
    assert_ne!(study.folder(), trial.folder());
    assert!(trial.folder().ends_with("trial-default"));
    study.claim_folder().unwrap();
    trial.claim_folder().unwrap();
    let (json, _, _) =
        study::Study::paths(std::path::Path::new("results"), FinalGames::Validation, "x");
    assert_eq!(json, std::path::Path::new("results/trial-x.json"));
    assert_eq!(FinalGames::Validation.first_seed(), flappy::seeds::TRIAL);
    assert_eq!(
        flappy::seeds::set_of(FinalGames::Validation.first_seed()),
        flappy::seeds::SeedSet::Validation
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recipe_is_checked_and_kept_as_its_changes_only() {
    use study::seed_run::recipe_of;
    assert_eq!(recipe_of("").unwrap(), "");
    assert_eq!(
        recipe_of("total_steps = 3000000\npolicy_ema = 0.00003\n").unwrap(),
        "policy_ema = 0.00003\ntotal_steps = 3000000\n"
    );
    assert!(recipe_of("gamma = 2.0").is_err(), "out of range");
    assert!(recipe_of("lr = \"fast\"").is_err(), "wrong type");
    assert!(recipe_of("[[").is_err(), "not TOML");
}

#[test]
fn a_distillation_recipe_is_checked_and_its_plan_differs_from_the_default() {
    use study::seed_run::distil_recipe_of;
    assert_eq!(distil_recipe_of("").unwrap(), "");
    assert_eq!(
        distil_recipe_of("int8_frac = 0.2\nbatch_size = 128\n").unwrap(),
        "int8_frac = 0.2\n",
        "a default value is no change"
    );
    assert!(distil_recipe_of("int8_frac = 1.5").is_err(), "out of range");
    assert!(
        distil_recipe_of("net = \"no-such-net\"").is_err(),
        "unknown net"
    );
    assert!(
        distil_recipe_of("policy_ema = 0.001").is_err(),
        "a training setting"
    );
    assert!(
        distil_recipe_of("seed = 2").is_err(),
        "the study sets the seed"
    );

    let dir = std::env::temp_dir().join(format!("study-plan-distil-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let default = plan(dir.clone(), "models/teacher", 1000);
    std::fs::create_dir_all(default.folder()).unwrap();
    // What `study distil` wrote for the tiny study until 2026-12-06.
    std::fs::write(
        default.plan_file(),
        r#"{"kind":{"Distil":{"teacher":"models/teacher","total_updates":null}},"test_games":100,"cap":1000}"#,
    )
    .unwrap();
    default
        .claim_folder()
        .expect("the tiny study continues in its old folder");
    let kind = Kind::Distil {
        teacher: "models/teacher".into(),
        total_updates: None,
        recipe: "int8_frac = 0.2\n".into(),
    };
    let trial = plan_of("tiny", kind.clone(), FinalGames::Test, 1000, dir.clone());
    assert!(
        trial.claim_folder().is_err(),
        "another distillation recipe in the tiny study's folder is refused"
    );
    let trial = plan_of("tiny", kind, FinalGames::Validation, 1000, dir.clone());
    trial
        .claim_folder()
        .expect("the trial has a folder of its own");
    std::fs::remove_dir_all(&dir).unwrap();
}
