//! `trainer distil` end to end: a fresh `tiny` student learns the committed
//! teacher of `make tiny` (models/teacher), the last half of its updates
//! through the int8 grid, and passes pipes after a couple of thousand
//! updates; the run ends with the same report, recording and blob as a
//! training run.

use std::path::Path;
use std::process::Command;

fn trainer(args: &[&str]) -> std::process::Output {
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("running trainer");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Updates of the end-to-end distillation: at 2000 the student passed pipes
/// on one CPU and not yet on another (libtorch's float kernels differ
/// between AVX-512 and AVX2, and so does the path of a short training); at
/// 3000 three seeds on the AVX2 one all played 12.8 to 13.5 on 30 games
/// capped at 20.
const STUDENT_UPDATES: &str = "3000";

#[test]
fn a_tiny_student_learns_the_committed_teacher() {
    let teacher = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/teacher");
    let runs = std::env::temp_dir().join(format!("trainer-distil-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runs);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (teacher_s, runs_s) = (s(&teacher), s(&runs));
    trainer(&[
        "distil",
        "--teacher",
        &teacher_s,
        "--runs-dir",
        &runs_s,
        "--name",
        "d",
        "--threads",
        "1",
        "--total-updates",
        STUDENT_UPDATES,
        "--eval-every",
        "1000",
        "--eval-max-score",
        "20",
        // The last half through the int8 grid; the final student is kept,
        // so its export keeps the grid's rounding.
        "--int8-frac",
        "0.5",
        "--calib-every",
        "200",
        "--select-episodes",
        "0",
        "--final-episodes",
        "10",
        "--final-max-score",
        "20",
        "--record-frames",
        "200",
    ]);
    let run = runs.join("d");
    for f in [
        "distil.toml",
        "metrics.csv",
        "curve.png",
        "best.safetensors",
        "best.gif",
        "frames.rec",
        "calib.rec",
        "policy.bin",
        "report.md",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("# Distillation report"), "{report}");
    assert!(report.contains("| student network | `tiny` |"), "{report}");
    assert!(report.contains("no output-layer refit"), "{report}");
    assert!(!report.contains("output layer refit:"), "{report}");
    // The blob keeps the activation steps the student trained through: the
    // report names them, and `trainer export` with them makes the same blob.
    let steps = report
        .split("--act-steps ")
        .nth(1)
        .and_then(|t| t.split('`').next())
        .expect("the report gives the grid's activation steps");
    let steps_n: Vec<f64> = steps.split(',').map(|x| x.parse().unwrap()).collect();
    assert_eq!(steps_n.len(), netspec::TINY.layers.len(), "{steps}");
    assert!(steps_n.iter().any(|&x| x > 0.0), "{steps}");
    let again = run.join("again.bin");
    trainer(&[
        "export",
        "--checkpoint",
        &s(&run.join("best.safetensors")),
        "--calib",
        &s(&run.join("calib.rec")),
        "--no-refit",
        "--act-steps",
        steps,
        "--out",
        &s(&again),
    ]);
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(run.join("policy.bin")).unwrap(),
        "the run's blob is the export with its grid's steps"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["export", "--checkpoint", &s(&run.join("best.safetensors"))])
        .args(["--calib", &s(&run.join("calib.rec")), "--no-refit"])
        .args(["--out", &s(&run.join("calibrated.bin"))])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_ne!(
        std::fs::read(run.join("calibrated.bin")).unwrap(),
        std::fs::read(run.join("policy.bin")).unwrap(),
        "the export's own calibration gives other steps"
    );
    // The student plays: an untrained network passes no pipe (it idles or
    // flaps into the first obstacle: 0 on all 30 games); the teacher reaches
    // every cap. 30 games, not 10: the first ten seeds are hard ones, and a
    // half-trained student's mean on them swings with a few games.
    let o = trainer(&[
        "eval",
        "--checkpoint",
        &s(&run.join("best.safetensors")),
        "--episodes",
        "30",
        "--max-score",
        "20",
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mean = r["mean_score"].as_f64().unwrap();
    assert!(
        mean >= 5.0,
        "student mean {mean} after {STUDENT_UPDATES} updates"
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

/// The kept student of a 300-update distillation of seed 4 with `extra`
/// flags, into `runs/name` (no evaluation, selection or end).
fn student_bytes(runs: &Path, name: &str, extra: &[&str]) -> Vec<u8> {
    let teacher = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/teacher");
    let mut args = vec![
        "distil",
        "--teacher",
        teacher.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
        "--name",
        name,
        "--seed",
        "4",
        "--threads",
        "1",
        "--total-updates",
        "300",
        "--eval-every",
        "0",
        "--select-episodes",
        "0",
        "--no-finish",
    ];
    args.extend_from_slice(extra);
    trainer(&args);
    std::fs::read(runs.join(name).join("best.safetensors")).unwrap()
}

/// The same seed distils the same student, byte for byte, in two processes
/// (until 2026-12-06 the gradient norm was summed in a HashMap's order,
/// which differs between processes: once the clip acted, runs diverged
/// within 10 updates).
#[test]
fn a_distillation_is_reproducible_across_processes() {
    let runs = std::env::temp_dir().join(format!("trainer-distil-rep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runs);
    let (a, b) = (
        student_bytes(&runs, "a", &[]),
        student_bytes(&runs, "b", &[]),
    );
    assert!(a == b, "two distillations of seed 4 differ");
    std::fs::remove_dir_all(&runs).unwrap();
}

/// `--init-from-teacher`: the student starts as the teacher. With a
/// learning rate too small to move a weight, the kept student is the
/// teacher (its Q-values on random stacks), where a fresh student is not;
/// a student of another architecture is refused, naming the teacher's.
#[test]
fn a_student_can_start_as_its_teacher() {
    use tch::{Device, Kind, Tensor};
    use trainer::checkpoint::load_network;
    let runs = std::env::temp_dir().join(format!("trainer-distil-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runs);
    let frozen = ["--net", "compact", "--lr", "1e-30", "--lr-end", "1e-30"];
    let copy = [&frozen[..], &["--init-from-teacher", "true"]].concat();
    student_bytes(&runs, "copy", &copy);
    student_bytes(&runs, "fresh", &frozen);
    let teacher_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/teacher");
    let q = |p: &Path| {
        let net = load_network(p, Device::Cpu).unwrap();
        tch::manual_seed(3);
        let xs = Tensor::rand([32, 4, 80, 80], (Kind::Float, Device::Cpu)).round();
        tch::no_grad(|| net.forward(&xs))
    };
    let teacher = q(&teacher_dir);
    let gap = |p: &Path| (q(p) - &teacher).abs().max().double_value(&[]);
    let best = |name: &str| runs.join(name).join("best.safetensors");
    assert!(gap(&best("copy")) < 1e-5, "{}", gap(&best("copy")));
    assert!(gap(&best("fresh")) > 1e-2, "{}", gap(&best("fresh")));

    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["distil", "--teacher", teacher_dir.to_str().unwrap()])
        .args(["--runs-dir", runs.to_str().unwrap(), "--name", "tiny"])
        .args(["--init-from-teacher", "true", "--no-finish"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--net compact"),
        "{err}"
    );
    std::fs::remove_dir_all(&runs).unwrap();
}

/// `--float-anchor`: while training through the int8 grid, the float
/// network's own loss is added. It changes the grid's updates (a different
/// student with the grid on all the way) and nothing without the grid.
#[test]
fn the_float_anchor_acts_on_the_grid_updates_only() {
    let runs = std::env::temp_dir().join(format!("trainer-distil-anchor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runs);
    let bytes = |name: &str, frac: &str, anchor: &str| {
        student_bytes(
            &runs,
            name,
            &["--int8-frac", frac, "--float-anchor", anchor],
        )
    };
    assert!(bytes("grid", "1", "0") != bytes("grid-anchored", "1", "1"));
    assert!(bytes("float", "0", "0") == bytes("float-anchored", "0", "1"));
    std::fs::remove_dir_all(&runs).unwrap();
}

/// `--student-ema`: the run keeps a moving average of the trained student
/// and trains exactly as without it: with tau 1 the average is the student
/// (the bytes of a run without one), with a small tau another network.
#[test]
fn the_student_average_is_kept_and_changes_nothing_else() {
    let runs = std::env::temp_dir().join(format!("trainer-distil-ema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&runs);
    let plain = student_bytes(&runs, "plain", &[]);
    let whole = student_bytes(&runs, "whole", &["--student-ema", "1"]);
    let avg = student_bytes(&runs, "avg", &["--student-ema", "0.01"]);
    assert!(whole == plain, "tau 1 is not the student itself");
    assert!(avg != plain, "tau 0.01 kept the student itself");
    std::fs::remove_dir_all(&runs).unwrap();
}

/// `--select-int8`: the end-of-run selection plays every candidate as the
/// blob the run would export from it, and the run ships that blob, byte for
/// byte, which plays the selection's games exactly as the kept candidate
/// did there. With a grid phase the candidates are a float-trained
/// snapshot, a grid-trained one and the final student; without one, every
/// candidate is calibrated on its own play, here with another recording
/// than the default. The snapshot at the final student's own step is not a
/// second candidate.
#[test]
fn the_int8_selection_keeps_the_blob_the_run_ships() {
    for int8_frac in [0.5, 0.0] {
        int8_selection_ships_what_it_played(int8_frac);
    }
}

fn int8_selection_ships_what_it_played(int8_frac: f64) {
    use std::sync::atomic::AtomicBool;
    use tch::Device;
    use trainer::config::DistilConfig;
    use trainer::{distil, eval, report, select};
    let teacher_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/teacher");
    let teacher = trainer::train::load_best(&teacher_dir, Device::Cpu).unwrap();
    let run = std::env::temp_dir().join(format!(
        "trainer-distil-sel-{}-{int8_frac}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&run);
    let cfg = DistilConfig {
        threads: 1,
        total_updates: 1200,
        eval_every: 400,
        eval_episodes: 2,
        eval_max_score: 15,
        int8_frac,
        calib_every: 200,
        select_int8: true,
        select_episodes: 4,
        select_candidates: 2,
        ..DistilConfig::default()
    };
    let record_frames = 300;
    let d = distil::distil(&cfg, &teacher, &run, record_frames, &AtomicBool::new(false)).unwrap();
    let sel = d.selection.clone().expect("a selection");
    assert!(sel.int8, "{sel:?}");
    let steps: Vec<u64> = sel.snapshots.iter().map(|c| c.step).collect();
    assert_eq!(steps.len(), 2, "{sel:?}");
    assert!(
        !steps.contains(&d.states),
        "the final student twice: {sel:?}"
    );
    // The kept candidate decides how the run exports.
    let grid_from = d.states / 2;
    let kept_grid = int8_frac > 0.0 && sel.kept.is_none_or(|k| k >= grid_from);
    assert_eq!(d.grid_trained(), kept_grid, "{sel:?}");
    let about = distil::about(&d, &cfg, &teacher_dir);
    assert!(about.rows.contains("as int8 blobs"), "{}", about.rows);
    let end = report::FinishOptions {
        episodes: 2,
        cap: 15,
        record_frames,
        export: d.export_options(),
        ..report::FinishOptions::default()
    };
    report::finish(&run, &about, &end).unwrap();
    let blob = std::fs::read(run.join("policy.bin")).unwrap();
    assert!(
        d.selected_blob.as_ref() == Some(&blob),
        "int8_frac {int8_frac}: the run ships another blob than the one its selection played"
    );
    let shipped = eval::evaluate_blob(&blob, 4, select::SELECT_SEED, 15).unwrap();
    assert_eq!(shipped.mean_score, sel.kept_mean(), "{sel:?}");
    assert!(shipped.mean_score > 0.0, "{sel:?}");
    eprintln!("{}", sel.summary());
    std::fs::remove_dir_all(&run).unwrap();
}
