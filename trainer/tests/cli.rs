//! End-to-end checks of the `trainer` binary: a tiny run, resume, eval,
//! record, export, tabular, and clear errors for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("running trainer")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("trainer-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh temporary folder, its `runs` folder and the run `name` in it.
fn tmp_run(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = tmpdir(name);
    let runs = dir.join("runs");
    let run = runs.join(name);
    (dir, runs, run)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the trainer, which must succeed.
fn trainer_ok(args: &[&str]) -> Output {
    let o = trainer(args);
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// Runs the trainer, which must fail with `needle` in its stderr.
fn trainer_fails(args: &[&str], needle: &str) -> Output {
    let o = trainer(args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    o
}

/// `train --resume run --total-steps total --no-finish`, which must succeed.
fn resume(run: &Path, total: &str) {
    trainer_ok(&[
        "train",
        "--resume",
        s(run),
        "--total-steps",
        total,
        "--no-finish",
    ]);
}

/// `train --runs-dir runs --name name`, then `extra`, then [`TINY`].
fn tiny_args<'a>(runs: &'a Path, name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["train", "--runs-dir", s(runs), "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(TINY);
    args
}

/// A run's `checkpoint/state.json`.
fn state(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("checkpoint/state.json")).unwrap()).unwrap()
}

const TINY: &[&str] = &[
    "--net",
    "small",
    "--num-envs",
    "4",
    "--learning-starts",
    "400",
    "--steps-per-update",
    "8",
    "--batch-size",
    "8",
    "--replay-capacity",
    "4000",
    "--eval-every",
    "800",
    "--eval-episodes",
    "2",
    "--eval-max-score",
    "3",
    "--log-every",
    "400",
    "--threads",
    "1",
];

#[test]
fn the_policy_average_is_checkpointed_and_resumed() {
    let (dir, runs, run) = tmp_run("ema");
    let extra = [
        "--total-steps",
        "1200",
        "--no-finish",
        "--policy-ema",
        "0.01",
    ];
    trainer_ok(&tiny_args(&runs, "ema", &extra));
    assert!(run.join("checkpoint/ema.safetensors").is_file());
    assert!(run.join("best.safetensors").is_file());
    resume(&run, "1600");
    // The saved average is the evaluated policy: eval loads it like any weights.
    trainer_ok(&[
        "eval",
        "--checkpoint",
        s(&run.join("checkpoint/ema.safetensors")),
        "--episodes",
        "2",
        "--max-score",
        "2",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_run_stopped_before_its_first_evaluation_resumes() {
    // No evaluation has happened yet: the best score is -inf, which JSON
    // cannot hold; state.json must still read back.
    let (dir, runs, run) = tmp_run("early");
    let mut args = tiny_args(&runs, "early", &["--total-steps", "800", "--no-finish"]);
    let at = args.iter().position(|a| *a == "--eval-every").unwrap();
    args[at + 1] = "0";
    trainer_ok(&args);
    let text = std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap();
    assert!(text.contains("\"best_eval\": null"), "{text}");
    resume(&run, "1200");
    assert_eq!(state(&run)["env_steps"], 1200);
    // A resume may extend the budget, not change what is learned.
    let o = trainer(&[
        "train",
        "--resume",
        s(&run),
        "--total-steps",
        "1600",
        "--lr",
        "0.01",
        "--no-finish",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("keeps its learning settings") && stderr(&o).contains("lr"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tiny_run_resume_eval_record_export() {
    let (dir, runs, run) = tmp_run("tiny");
    let args = tiny_args(&runs, "tiny", &["--total-steps", "1600", "--no-finish"]);
    trainer_ok(&args);
    for f in [
        "config.toml",
        "metrics.csv",
        "checkpoint/model.safetensors",
        "checkpoint/adam.safetensors",
        "best.safetensors",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let st = state(&run);
    assert_eq!(st["env_steps"], 1600);
    let updates = st["updates"].as_u64().unwrap();
    assert!(updates > 0);

    // Starting the same run again without --resume is refused (nothing is overwritten).
    trainer_fails(&args, "--resume");

    // Resume continues the counters and the metrics.
    resume(&run, "2400");
    let st2 = state(&run);
    assert_eq!(st2["env_steps"], 2400);
    assert_eq!(st2["sessions"], 1);
    assert!(st2["updates"].as_u64().unwrap() > updates);
    assert_eq!(st2["config"]["net"], "small");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let steps: Vec<u64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]) && *steps.last().unwrap() == 2400,
        "{steps:?}"
    );

    // Eval prints the JSON keys.
    let eval = [
        "eval",
        "--checkpoint",
        s(&run),
        "--episodes",
        "3",
        "--seed",
        "5",
        "--max-score",
        "2",
        "--json",
    ];
    let o = trainer_ok(&eval);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "mean_score",
        "median_score",
        "max_score",
        "min_score",
        "scores",
        "episodes",
    ] {
        assert!(!j[k].is_null(), "missing {k} in {j}");
    }
    assert_eq!(j["episodes"], 3);
    let scores: Vec<u64> = j["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(scores.len(), 3);
    assert_eq!(j["min_score"].as_u64(), scores.iter().min().copied());
    assert_eq!(j["max_score"].as_u64(), scores.iter().max().copied());
    // --deaths: one entry per game that crashed before the cap, same seeds.
    let o = trainer_ok(&[&eval[..], &["--deaths"]].concat());
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let crashed: Vec<u64> = (0..3)
        .filter(|&i| scores[i as usize] < 2)
        .map(|i| 5 + i)
        .collect();
    let seeds: Vec<u64> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, crashed, "{d}");
    for x in d.as_array().unwrap() {
        let o = x["obstacle"].as_str().unwrap();
        assert!(["upper pipe", "lower pipe", "ground"].contains(&o), "{x}");
        // The first pipe of a game has none before it; any other's is a gap.
        if let Some(g) = x["prev_gap_y"].as_i64() {
            assert!((100..=170).contains(&g), "{x}");
        }
        if x["score"] == 0 && o != "ground" {
            assert!(x["prev_gap_y"].is_null(), "{x}");
        }
    }

    // Record, then export calibrated on it; policy-core loads the blob.
    let rec = dir.join("f.rec");
    trainer_ok(&[
        "record",
        "--checkpoint",
        s(&run),
        "--frames",
        "120",
        "--seed",
        "1",
        "--out",
        s(&rec),
    ]);
    let blob = dir.join("p.bin");
    let export = |calib: &Path, out: &Path| {
        trainer(&[
            "export",
            "--checkpoint",
            s(&run),
            "--calib",
            s(calib),
            "--out",
            s(out),
        ])
    };
    let o = export(&rec, &blob);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes: &'static [u8] = Box::leak(std::fs::read(&blob).unwrap().into_boxed_slice());
    assert!(policy_core::Policy::from_blob(bytes).is_ok());

    // A truncated recording is a clear error.
    let bad = dir.join("bad.rec");
    let full = std::fs::read(&rec).unwrap();
    std::fs::write(&bad, &full[..full.len() / 2]).unwrap();
    let o = export(&bad, &dir.join("x.bin"));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
    assert!(!dir.join("x.bin").exists(), "no output on error");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `eval`, `record` and `export` of a run folder use the network the run
/// ships (`best.safetensors`), not its checkpoint's online network; of a
/// checkpoint folder, its policy average (`ema.safetensors`) when it has one.
/// Here the shipped network is the trained reference and the others are
/// untrained: each command's output must be the reference's.
#[test]
fn a_run_folder_stands_for_the_network_it_ships() {
    let dir = tmpdir("ships");
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/reference");
    let trained = reference.join("model.safetensors");
    let (run, ckpt) = (dir.join("run"), dir.join("run/checkpoint"));
    std::fs::create_dir_all(&ckpt).unwrap();
    std::fs::copy(&trained, run.join("best.safetensors")).unwrap();
    tch::manual_seed(5);
    let untrained = trainer::net::QNetwork::new(netspec::COMPACT, tch::Device::Cpu);
    untrained.vs.save(ckpt.join("model.safetensors")).unwrap();
    let eval = |path: &Path| {
        let o = trainer_ok(&[
            "eval",
            "--checkpoint",
            s(path),
            "--episodes",
            "3",
            "--max-score",
            "40",
            "--json",
        ]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let (shipped, online) = (eval(&trained), eval(&ckpt.join("model.safetensors")));
    assert_ne!(
        shipped["scores"], online["scores"],
        "the test cannot tell them apart"
    );
    assert_eq!(eval(&run), shipped);
    assert_eq!(eval(&ckpt), online);
    // A checkpoint with a policy average stands for the average.
    std::fs::copy(&trained, ckpt.join("ema.safetensors")).unwrap();
    assert_eq!(eval(&ckpt), shipped);
    std::fs::remove_file(ckpt.join("ema.safetensors")).unwrap();

    let record = |path: &Path, out: &Path| {
        let args = ["--frames", "150", "--seed", "2", "--out", s(out)];
        trainer_ok(&[&["record", "--checkpoint", s(path)][..], &args].concat());
        std::fs::read(out).unwrap()
    };
    let rec = dir.join("ref.rec");
    assert_eq!(record(&run, &dir.join("run.rec")), record(&trained, &rec));
    let export = |path: &Path, out: &Path| {
        let args = ["--calib", s(&rec), "--out", s(out)];
        trainer_ok(&[&["export", "--checkpoint", s(path)][..], &args].concat());
        std::fs::read(out).unwrap()
    };
    let blob = export(&trained, &dir.join("ref.bin"));
    assert_eq!(export(&run, &dir.join("run.bin")), blob);
    assert_ne!(export(&ckpt, &dir.join("online.bin")), blob);
    // --help says what each path loads.
    for cmd in ["eval", "record", "export"] {
        let o = trainer_ok(&[cmd, "--help"]);
        let help = String::from_utf8_lossy(&o.stdout).replace(char::is_whitespace, "");
        assert!(
            help.contains("best.safetensors:thenetworktherunships")
                && help.contains("ema.safetensors,elsetheonlinemodel.safetensors"),
            "{cmd}: {help}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_are_one_clear_error() {
    let dir = tmpdir("bad");
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "learning_rate = 0.1\n").unwrap();
    let unknown = "unknown field `learning_rate`";
    trainer_fails(
        &["train", "--config", s(&cfg), "--runs-dir", s(&dir)],
        unknown,
    );
    trainer_fails(&["train", "--gamma", "2", "--runs-dir", s(&dir)], "gamma");
    let nope = dir.join("nope");
    trainer_fails(&["eval", "--checkpoint", s(&nope)], "no checkpoint found");

    let junk = dir.join("model.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let bad = "bad or truncated checkpoint";
    trainer_fails(&["eval", "--checkpoint", s(&junk)], bad);

    let o = trainer_fails(&["train", "--resume", s(&nope)], "no checkpoint found");
    assert_eq!(
        stderr(&o)
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "one error line: {}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tabular_prints_the_known_table() {
    let o = trainer(&["tabular"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for row in [
        "  1   |    0    0    0  320    0  500",
        "  3   |    0  400  256    0  400    0",
        "  3   |    0   80   51    0   80    0",
    ] {
        assert!(out.contains(row), "{out}");
    }
}

/// SIGKILL in the middle of a run (possibly mid-checkpoint), then `--resume`:
/// it continues from the last checkpoint with its replay memory and finishes
/// with a model and a blob.
#[test]
fn a_killed_run_resumes_with_its_replay_memory_and_finishes() {
    let (dir, runs, run) = tmp_run("killed");
    let args = tiny_args(
        &runs,
        "killed",
        &["--total-steps", "1000000", "--checkpoint-min", "0.01"],
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(&args)
        .env("OMP_NUM_THREADS", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting trainer");
    let try_state = |p: &Path| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(p.join("checkpoint/state.json")).ok()?).ok()
    };
    let t0 = std::time::Instant::now();
    // Wait for a checkpoint past warm-up, then kill without warning.
    loop {
        let steps = try_state(&run).map(|st| st["env_steps"].as_u64().unwrap_or(0));
        if steps.is_some_and(|s| s >= 1200) {
            break;
        }
        assert!(
            t0.elapsed().as_secs() < 120,
            "no checkpoint after 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let ck = if run.join("checkpoint/state.json").is_file() {
        run.join("checkpoint")
    } else {
        run.join("checkpoint.old")
    };
    let before: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("state.json")).unwrap()).unwrap();
    let at_kill = before["env_steps"].as_u64().unwrap();
    assert!(ck.join("replay.bin").is_file());

    let total = (at_kill + 800).to_string();
    let o = trainer(&[
        "train",
        "--resume",
        s(&run),
        "--total-steps",
        &total,
        "--final-episodes",
        "2",
        "--final-max-score",
        "3",
        "--record-frames",
        "64",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("resuming {}", run.display())),
        "{err}"
    );
    assert!(err.contains(&format!("at {at_kill} env steps")), "{err}");
    assert!(
        err.contains("restored") && err.contains("transitions of replay memory"),
        "{err}"
    );
    let after = try_state(&run).unwrap();
    assert_eq!(after["env_steps"].as_u64().unwrap(), at_kill + 800);
    for f in ["best.safetensors", "policy.bin", "report.md"] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Fails cleanly: non-zero exit that is not a panic's (101), no panic or
/// backtrace text, and exactly one line of stderr that is the error.
/// `export --checkpoint ckpt --calib calib --out out`, then `extra`.
fn export_args<'a>(
    ckpt: &'a Path,
    calib: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec![
        "export",
        "--checkpoint",
        s(ckpt),
        "--calib",
        s(calib),
        "--out",
        s(out),
    ];
    a.extend_from_slice(extra);
    a
}

fn assert_clean_failure(o: &Output, what: &str) {
    let e = stderr(o);
    assert!(!o.status.success(), "{what}: succeeded\n{e}");
    assert_ne!(o.status.code(), Some(101), "{what}: panicked\n{e}");
    assert!(
        !e.contains("panicked") && !e.contains("backtrace"),
        "{what}: panic text\n{e}"
    );
    let errors = e.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "{what}: not one error line\n{e}");
}

/// Every subcommand, every file argument given a missing path, an empty file,
/// garbage, a folder, or a valid file of another kind; every output path
/// unwritable; numbers out of range.
#[test]
fn every_subcommand_refuses_bad_inputs_cleanly() {
    let dir = tmpdir("walk");
    let runs = dir.join("runs");
    trainer_ok(&tiny_args(
        &runs,
        "ok",
        &["--total-steps", "800", "--no-finish"],
    ));
    let ok = runs.join("ok");
    let rec = dir.join("ok.rec");
    trainer_ok(&[
        "record",
        "--checkpoint",
        s(&ok),
        "--frames",
        "32",
        "--out",
        s(&rec),
    ]);

    let missing = dir.join("missing");
    let empty = dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let garbage = dir.join("garbage.bin");
    std::fs::write(
        &garbage,
        (0..3000u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let folder = dir.join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    // A path below a regular file can never be created.
    let unwritable = empty.join("out.bin");
    let wrong_kind = rec.clone(); // a recording where weights or a blob are expected
    let bad_files = [&missing, &empty, &garbage, &folder, &wrong_kind];

    let mut cases: Vec<(String, Vec<String>)> = Vec::new();
    let mut add =
        |what: String, a: Vec<&str>| cases.push((what, a.iter().map(|x| x.to_string()).collect()));
    for f in bad_files {
        add(
            format!("eval --checkpoint {}", f.display()),
            vec!["eval", "--checkpoint", s(f), "--episodes", "1"],
        );
        add(
            format!("record --checkpoint {}", f.display()),
            vec![
                "record",
                "--checkpoint",
                s(f),
                "--out",
                s(&dir.join("r.rec")),
            ],
        );
        add(
            format!("export --checkpoint {}", f.display()),
            vec![
                "export",
                "--checkpoint",
                s(f),
                "--calib",
                s(&rec),
                "--out",
                s(&dir.join("p.bin")),
            ],
        );
        add(
            format!("train --resume {}", f.display()),
            vec!["train", "--resume", s(f)],
        );
        // (An empty config is a valid one: all defaults.)
        if f != &empty {
            add(
                format!("train --config {}", f.display()),
                vec!["train", "--config", s(f), "--runs-dir", s(&runs)],
            );
        }
        add(
            format!("curves {}", f.display()),
            vec!["curves", s(f), "--out", s(&dir.join("c.png"))],
        );
        add(
            format!("distil --teacher {}", f.display()),
            vec!["distil", "--teacher", s(f), "--runs-dir", s(&runs)],
        );
    }
    for f in [
        &missing,
        &empty,
        &garbage,
        &folder,
        &ok.join("checkpoint/model.safetensors"),
    ] {
        add(
            format!("export --calib {}", f.display()),
            export_args(&ok, f, &dir.join("p.bin"), &[]),
        );
    }
    add(
        "eval --gif unwritable".into(),
        vec![
            "eval",
            "--checkpoint",
            s(&ok),
            "--episodes",
            "1",
            "--max-score",
            "1",
            "--gif",
            s(&unwritable),
        ],
    );
    add(
        "record --out unwritable".into(),
        vec![
            "record",
            "--checkpoint",
            s(&ok),
            "--frames",
            "8",
            "--out",
            s(&unwritable),
        ],
    );
    add(
        "export --out unwritable".into(),
        export_args(&ok, &rec, &unwritable, &[]),
    );
    add(
        "curves --out unwritable".into(),
        vec!["curves", s(&ok), "--out", s(&unwritable)],
    );
    add(
        "train --runs-dir unwritable".into(),
        vec!["train", "--runs-dir", s(&unwritable), "--total-steps", "10"],
    );
    for (flag, v) in [
        ("--lr", "-1"),
        ("--num-envs", "0"),
        ("--gamma", "NaN"),
        ("--batch-size", "x"),
        ("--minutes", "-3"),
        ("--bogus", "1"),
    ] {
        add(
            format!("train {flag} {v}"),
            vec!["train", "--runs-dir", s(&runs), flag, v],
        );
    }
    add(
        "distil --runs-dir unwritable".into(),
        vec!["distil", "--teacher", s(&ok), "--runs-dir", s(&unwritable)],
    );
    for (flag, v) in [
        ("--teacher-share", "2"),
        ("--total-updates", "-1"),
        ("--batch-size", "0"),
        ("--net", "huge"),
    ] {
        add(
            format!("distil {flag} {v}"),
            vec![
                "distil",
                "--teacher",
                s(&ok),
                "--runs-dir",
                s(&runs),
                flag,
                v,
            ],
        );
    }
    add(
        "eval --episodes -1".into(),
        vec!["eval", "--checkpoint", s(&ok), "--episodes", "-1"],
    );
    add(
        "record --eps 2".into(),
        vec![
            "record",
            "--checkpoint",
            s(&ok),
            "--eps",
            "2",
            "--out",
            s(&dir.join("r.rec")),
        ],
    );
    add(
        "export --percentile 150".into(),
        export_args(&ok, &rec, &dir.join("p.bin"), &["--percentile", "150"]),
    );
    add(
        "bench --seconds -1".into(),
        vec!["bench", "--seconds", "-1"],
    );
    add("bench --net huge".into(), vec!["bench", "--net", "huge"]);
    add("no such subcommand".into(), vec!["fly"]);
    for (what, a) in &cases {
        let a: Vec<&str> = a.iter().map(|x| x.as_str()).collect();
        assert_clean_failure(&trainer(&a), what);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Output piped into a reader that has gone (`trainer eval | head -1`) ends
/// the process without a panic message.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny/model.safetensors");
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "eval",
            "--checkpoint",
            s(&tiny),
            "--episodes",
            "2",
            "--max-score",
            "3",
        ])
        .env("OMP_NUM_THREADS", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running trainer");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waiting for trainer");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
