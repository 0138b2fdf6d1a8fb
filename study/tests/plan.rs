//! A study folder holds runs of one plan: a second plan under the same name
//! (another teacher, another cap) is refused, the same plan is let through.

use std::path::PathBuf;
use study::{Kind, StudyPlan};

fn plan(runs_dir: PathBuf, teacher: &str, cap: u32) -> StudyPlan {
    StudyPlan {
        name: "tiny".into(),
        kind: Kind::Distil {
            teacher: teacher.into(),
            total_updates: None,
        },
        seeds: vec![1, 2, 3],
        test_games: 100,
        cap,
        runs_dir,
        threads: 1,
    }
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
