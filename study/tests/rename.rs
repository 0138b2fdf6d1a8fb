//! `study rename`: a study kept under another name, its results and its
//! run folder moved along, and nothing changed where the name is taken.

use std::path::Path;
use std::process::Command;
use study::summary::Study;

fn rename(dir: &Path, from: &str, to: &str) -> std::process::Output {
    rename_with(dir, from, to, &[])
}

/// `study rename` in `dir`'s `out` and `runs`, with `extra` flags.
fn rename_with(dir: &Path, from: &str, to: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_study"))
        .args(["rename", "--from", from, "--to", to, "--out"])
        .arg(dir.join("out"))
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .args(extra)
        .output()
        .unwrap()
}

/// [`rename_with`] `--recipe` a file `<to>.toml` in `dir` holding `recipe`.
fn rename_with_recipe(
    dir: &Path,
    from: &str,
    to: &str,
    recipe: &str,
    extra: &[&str],
) -> std::process::Output {
    let file = dir.join(format!("{to}.toml"));
    std::fs::write(&file, recipe).unwrap();
    let file = file.to_str().expect("a UTF-8 temporary path");
    rename_with(dir, from, to, &[&["--recipe", file], extra].concat())
}

#[test]
fn a_renamed_study_keeps_its_runs_and_moves_its_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    let dir = std::env::temp_dir().join(format!("study-rename-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    for ext in ["json", "md", "png"] {
        std::fs::copy(
            root.join(format!("study-tiny-select.{ext}")),
            dir.join(format!("out/study-tiny-select.{ext}")),
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.join("runs/study-tiny-select/seed-1")).unwrap();
    std::fs::write(dir.join("runs/study-tiny-select/seed-1/mark"), b"x").unwrap();
    let before = Study::load(&dir.join("out/study-tiny-select.json")).unwrap();

    let out = rename(&dir, "tiny-select", "tiny-old");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = Study::load(&dir.join("out/study-tiny-old.json")).unwrap();
    assert_eq!(after.name, "tiny-old");
    assert_eq!(after.runs, before.runs);
    assert_eq!(after.aggregate, before.aggregate);
    assert_eq!(
        after.command, before.command,
        "the command that ran it stays"
    );
    let md = std::fs::read_to_string(dir.join("out/study-tiny-old.md")).unwrap();
    assert!(md.contains("Study `tiny-old`"), "{md}");
    assert!(dir.join("out/study-tiny-old.png").is_file());
    for ext in ["json", "md", "png"] {
        assert!(!dir.join(format!("out/study-tiny-select.{ext}")).exists());
    }
    assert!(dir.join("runs/study-tiny-old/seed-1/mark").is_file());
    assert!(!dir.join("runs/study-tiny-select").exists());

    // A taken name is refused, and both studies stay as they are.
    std::fs::copy(
        root.join("study-tiny-grid.json"),
        dir.join("out/study-tiny-grid.json"),
    )
    .unwrap();
    let out = rename(&dir, "tiny-old", "tiny-grid");
    assert!(!out.status.success(), "a taken name was written over");
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken"));
    assert_eq!(
        Study::load(&dir.join("out/study-tiny-old.json")).unwrap(),
        after
    );
    assert_eq!(
        std::fs::read(dir.join("out/study-tiny-grid.json")).unwrap(),
        std::fs::read(root.join("study-tiny-grid.json")).unwrap()
    );
    // So is a name that is no file name, and a study that is not there.
    assert!(!rename(&dir, "tiny-old", "../x").status.success());
    assert!(!rename(&dir, "missing", "y").status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--recipe`: a study of an old default, renamed after the default
/// changed, says how its runs differ from the defaults now; a recipe that
/// is none is refused before anything changes.
#[test]
fn a_renamed_default_says_how_it_differs_from_the_new_one() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results");
    let dir = std::env::temp_dir().join(format!("study-rename-recipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let json = root.join("trial-nstep5-control.json");
    std::fs::copy(&json, dir.join("out/trial-nstep5-control.json")).unwrap();
    let before = Study::load(&json).unwrap();
    let run = |recipe: &str, to: &str| {
        rename_with_recipe(
            &dir,
            "nstep5-control",
            to,
            recipe,
            &["--score-on", "validation"],
        )
    };
    let bad = run("no_such_setting = 1\n", "bad");
    assert!(!bad.status.success(), "a bad recipe was taken");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no_such_setting"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert_eq!(
        Study::load(&dir.join("out/trial-nstep5-control.json")).unwrap(),
        before
    );
    assert!(!dir.join("out/trial-bad.json").exists());

    let ok = run("huber_delta = 1.0\n", "old-default");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let after = Study::load(&dir.join("out/trial-old-default.json")).unwrap();
    assert_eq!(after.runs, before.runs);
    match &after.kind {
        study::seed_run::Kind::Train { recipe, .. } => assert_eq!(recipe, "huber_delta = 1.0\n"),
        k => panic!("{k:?}"),
    }
    let md = std::fs::read_to_string(dir.join("out/trial-old-default.md")).unwrap();
    assert!(
        md.contains("with `huber_delta = 1.0`, other settings default"),
        "{md}"
    );

    // A distillation study takes a distillation recipe, not a training one.
    for ext in ["json", "md", "png"] {
        std::fs::copy(
            root.join(format!("study-tiny-select.{ext}")),
            dir.join(format!("out/study-tiny-select.{ext}")),
        )
        .unwrap();
    }
    let distil = |recipe: &str, to: &str| rename_with_recipe(&dir, "tiny-select", to, recipe, &[]);
    let wrong = distil("n_step = 3\n", "tiny-x");
    assert!(!wrong.status.success(), "a training setting was taken");
    assert!(dir.join("out/study-tiny-select.json").is_file());
    let ok = distil("int8_frac = 0.125\n", "tiny-old");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    match Study::load(&dir.join("out/study-tiny-old.json"))
        .unwrap()
        .kind
    {
        study::seed_run::Kind::Distil { recipe, .. } => assert_eq!(recipe, "int8_frac = 0.125\n"),
        k => panic!("{k:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
