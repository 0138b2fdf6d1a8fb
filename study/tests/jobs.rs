//! `--jobs 2` runs the seeds side by side in child processes and gives the
//! same study as running them one after another: each seed's scores,
//! agreement and settings are its own, whoever ran it.

use std::path::{Path, PathBuf};
use std::process::Command;
use study::summary::Study;

/// A two-seed distillation study of 60 updates in `dir`, with `jobs`.
fn short_study(dir: &Path, jobs: &str) -> (std::process::Output, PathBuf) {
    let out = Command::new(env!("CARGO_BIN_EXE_study"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["distil", "--teacher", "models/teacher", "--name", "jobs"])
        .args(["--seeds", "1,2", "--total-updates", "60"])
        .args(["--test-games", "3", "--cap", "20", "--threads", "1"])
        .args(["--jobs", jobs, "--runs-dir"])
        .arg(dir.join("runs"))
        .arg("--out")
        .arg(dir.join("out"))
        // One libtorch thread in every process, so that both ways compute
        // alike (the children would get cores / jobs anyway).
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .output()
        .unwrap();
    (out, dir.join("out/study-jobs.json"))
}

#[test]
fn two_jobs_give_the_study_of_one() {
    let dir = std::env::temp_dir().join(format!("study-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (one, one_json) = short_study(&dir.join("one"), "1");
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let (two, two_json) = short_study(&dir.join("two"), "2");
    let stderr = String::from_utf8_lossy(&two.stderr);
    assert!(two.status.success(), "{stderr}");
    // Both seeds ran in children, their output in logs of their own.
    for s in [1, 2] {
        assert!(
            stderr.contains(&format!("seed {s}: running in child process")),
            "{stderr}"
        );
        let log = dir.join(format!("two/runs/study-jobs/seed-{s}.log"));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("wrote "), "{}: {text}", log.display());
    }
    let (a, b) = (
        Study::load(&one_json).unwrap(),
        Study::load(&two_json).unwrap(),
    );
    assert_eq!(a.runs.len(), 2);
    assert_eq!(b.runs.len(), 2);
    for (x, y) in a.runs.iter().zip(&b.runs) {
        assert_eq!(x.seed, y.seed);
        assert_eq!(x.float.scores, y.float.scores, "seed {}", x.seed);
        assert_eq!(x.int8.scores, y.int8.scores, "seed {}", x.seed);
        assert_eq!(x.settings, y.settings, "seed {}", x.seed);
        assert_eq!(x.frames, y.frames, "seed {}", x.seed);
        // The curve's minutes are the wall clock's; its scores are the run's.
        let scores = |r: &study::SeedResult| -> Vec<(f64, f64)> {
            r.curve.iter().map(|p| (p.median, p.mean)).collect()
        };
        assert_eq!(scores(x), scores(y), "seed {}", x.seed);
    }
    assert!(b.command.contains("--jobs 2"), "{}", b.command);
    std::fs::remove_dir_all(&dir).unwrap();
}
