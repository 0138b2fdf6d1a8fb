//! A study goes on from its results file: on a machine without the run
//! folders (a fresh clone), the seeds the committed file reports are kept as
//! they are and nothing is trained for them; a results file of another plan
//! is refused before anything runs.

use std::path::Path;
use std::process::Command;

/// `study distil` of `make tiny-study`'s plan with `args`, from the
/// repository root, run folders and results in `dir`.
fn tiny_study(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_study"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args([
            "distil",
            "--teacher",
            "models/teacher",
            "--name",
            "tiny-select",
        ])
        .args(["--threads", "1", "--runs-dir"])
        .arg(dir.join("runs"))
        .arg("--out")
        .arg(dir.join("out"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn reported_seeds_are_kept_and_not_run_again() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let committed = root.join("results/study-tiny-select.json");
    let before = study::summary::Study::load(&committed).unwrap();
    let seeds: Vec<String> = before.runs.iter().map(|r| r.seed.to_string()).collect();
    assert!(!seeds.is_empty(), "the committed study reports no seed");

    let dir = std::env::temp_dir().join(format!("study-reported-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let copy = dir.join("out/study-tiny-select.json");
    std::fs::copy(&committed, &copy).unwrap();

    let out = tiny_study(&dir, &["--seeds", &seeds.join(",")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("reported before"), "{stderr}");
    // Nothing new: the file is left as it was, its command included.
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(&committed).unwrap()
    );
    let after = study::summary::Study::load(&copy).unwrap();
    assert_eq!(after.runs, before.runs, "the reported seeds changed");
    assert_eq!(after.aggregate, before.aggregate);
    for s in &seeds {
        let seed_dir = dir.join(format!("runs/study-tiny-select/seed-{s}"));
        assert!(!seed_dir.exists(), "seed {s} was run again");
    }

    // Seeds that leave out a reported one are refused: the file would lose it.
    let out = tiny_study(&dir, &["--seeds", "99"]);
    assert!(!out.status.success(), "a reported seed was dropped");
    assert!(!dir.join("runs/study-tiny-select/seed-99").exists());
    assert_eq!(
        study::summary::Study::load(&copy).unwrap().runs,
        before.runs
    );

    // Another plan under the name (here another cap) is refused, and the
    // file is left as it was.
    let out = tiny_study(&dir, &["--seeds", &seeds.join(","), "--cap", "200"]);
    assert!(!out.status.success(), "another plan was let through");
    assert_eq!(
        study::summary::Study::load(&copy).unwrap().runs,
        before.runs
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `study report` redraws a study under its own name only: a renamed copy
/// is refused instead of being written over the study it came from.
#[test]
fn a_renamed_copy_is_not_redrawn_over_its_study() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("study-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        root.join("results/study-tiny-select.json"),
        dir.join("study-copy.json"),
    )
    .unwrap();
    let report = |name: &str| {
        Command::new(env!("CARGO_BIN_EXE_study"))
            .args(["report", "--name", name, "--out"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    let out = report("copy");
    assert!(!out.status.success(), "a renamed copy was redrawn");
    assert!(!dir.join("study-tiny-select.md").exists());
    std::fs::rename(
        dir.join("study-copy.json"),
        dir.join("study-tiny-select.json"),
    )
    .unwrap();
    let out = report("tiny-select");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("study-tiny-select.md").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A study adds no seed to seeds that ran with other settings: the
/// committed `tiny-select` seeds (written before each seed kept its
/// settings) take no new seed, and a seed whose kept settings differ from
/// what the plan would run now (a changed default) is refused even when
/// nothing new runs; with the plan's own settings the file is accepted.
#[test]
fn seeds_of_other_settings_are_not_mixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let committed = root.join("results/study-tiny-select.json");
    let before = study::summary::Study::load(&committed).unwrap();
    assert!(
        before.runs.iter().all(|r| r.settings.is_empty()),
        "the committed study now keeps settings: pick another legacy file"
    );
    let seeds: Vec<String> = before.runs.iter().map(|r| r.seed.to_string()).collect();
    let dir = std::env::temp_dir().join(format!("study-settings-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let copy = dir.join("out/study-tiny-select.json");
    std::fs::copy(&committed, &copy).unwrap();

    // Unknown settings: a new seed is refused before anything runs.
    let more = format!("{},99", seeds.join(","));
    let out = tiny_study(&dir, &["--seeds", &more]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a seed was added to unknown settings"
    );
    assert!(stderr.contains("another --name"), "{stderr}");
    assert!(!dir.join("runs/study-tiny-select/seed-99").exists());

    // The plan's settings: what `trainer distil` runs with its defaults.
    let kind = before.kind.clone();
    let now = study::seed_run::settings_of(&kind, "").unwrap();
    let mut study = before.clone();
    for r in &mut study.runs {
        r.settings = now.clone();
    }
    std::fs::write(&copy, study.json().unwrap()).unwrap();
    let out = tiny_study(&dir, &["--seeds", &seeds.join(",")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One seed ran with another value of a setting: refused, named.
    study.runs[0].settings = now.replace("adv_weight = 4.0", "adv_weight = 2.0");
    assert_ne!(study.runs[0].settings, now, "no adv_weight line to change");
    std::fs::write(&copy, study.json().unwrap()).unwrap();
    let out = tiny_study(&dir, &["--seeds", &seeds.join(",")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "seeds of other settings were mixed");
    assert!(stderr.contains("adv_weight = 2.0"), "{stderr}");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        study.json().unwrap().into_bytes()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
