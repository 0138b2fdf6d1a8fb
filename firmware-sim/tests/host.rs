//! The device loop on the real game and a real (random, classic-architecture)
//! policy: determinism of the checksum, agreement with a loop written directly
//! against `flappy` and `policy-core`, the stage marks, bad blobs, and
//! the simulator binary's JSON.

use firmware_sim::{
    random_blob, run_episodes, BlobError, Episode, Fnv64, Frame, FrameStack, Game, Marked,
    NoObserver, Observer, Plan, Policy,
};
use flappy::Action;
use std::process::Command;
use std::sync::OnceLock;

fn blob() -> &'static [u8] {
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    BLOB.get_or_init(|| random_blob::classic(1))
}

fn plan(base_seed: u64, episodes: u32) -> Plan {
    Plan {
        base_seed,
        episodes,
        max_score: 1000,
        max_steps: 400,
    }
}

#[test]
fn checksum_is_deterministic_and_depends_on_the_seeds() {
    let run = |seed| {
        let mut p = Policy::from_blob(blob()).unwrap();
        run_episodes::<Game, _, _>(&mut p, &plan(seed, 3), &mut NoObserver).unwrap()
    };
    let a = run(5);
    assert!(a.decisions > 0);
    assert_eq!(a, run(5));
    // A policy reused across runs (its buffers already dirty) gives the same.
    let mut p = Policy::from_blob(blob()).unwrap();
    let first = run_episodes::<Game, _, _>(&mut p, &plan(5, 3), &mut NoObserver).unwrap();
    let second = run_episodes::<Game, _, _>(&mut p, &plan(5, 3), &mut NoObserver).unwrap();
    assert_eq!((first, second), (a, a));
    assert_ne!(run(6).checksum, a.checksum);
}

/// The episode plan written out by hand with `flappy::Game`, `FrameStack`
/// and `Policy::q_values` / `Policy::act`.
fn direct_loop(blob: &'static [u8], plan: &Plan) -> (Vec<(u32, u32)>, u64, u64) {
    let mut policy = Policy::from_blob(blob).unwrap();
    let mut hash = Fnv64::new();
    let mut episodes = Vec::new();
    let mut total = 0u64;
    for i in 0..plan.episodes {
        let mut game = Game::new(plan.base_seed + i as u64);
        let mut frame = Frame::empty();
        game.observe(&mut frame);
        let mut stack = FrameStack::new(&frame);
        let (mut score, mut decisions) = (0u32, 0u32);
        while score < plan.max_score && decisions < plan.max_steps {
            let q = policy.q_values(&stack);
            let action = policy.act(&stack);
            assert_eq!(action, policy_core::action_of(&q));
            for v in q {
                hash.write(&v.to_le_bytes());
            }
            decisions += 1;
            let step = game.step(action).unwrap();
            score = step.episode_score();
            if step.terminal {
                break;
            }
            game.observe(&mut frame);
            stack.push(&frame);
        }
        total += decisions as u64;
        episodes.push((score, decisions));
    }
    (episodes, total, hash.0)
}

struct Scores(Vec<(u32, u32)>);
impl Observer<Game> for Scores {
    fn episode_end(&mut self, e: &Episode) {
        self.0.push((e.score, e.decisions));
    }
}

#[test]
fn device_loop_equals_a_direct_game_and_policy_loop() {
    for (seed, max_score) in [(0, 1000), (40, 1)] {
        let plan = Plan {
            max_score,
            ..plan(seed, 4)
        };
        let mut p = Policy::from_blob(blob()).unwrap();
        let mut scores = Scores(Vec::new());
        let sum = run_episodes::<Game, _, _>(&mut p, &plan, &mut scores).unwrap();
        let (episodes, decisions, checksum) = direct_loop(blob(), &plan);
        assert_eq!(scores.0, episodes);
        assert_eq!((sum.decisions, sum.checksum), (decisions, checksum));
        assert_eq!(sum.episodes, 4);
    }
}

#[test]
fn marks_bracket_every_stage_and_change_nothing() {
    let mut p = Policy::from_blob(blob()).unwrap();
    let reference = run_episodes::<Game, _, _>(&mut p, &plan(3, 2), &mut NoObserver).unwrap();
    let mut marks = Vec::new();
    let mut marked = Marked::new(&mut p, |i| marks.push(i));
    assert_eq!(marked.stages(), 5); // conv1+pool, conv2, conv3, fc1, fc2
    let sum = run_episodes::<Game, _, _>(&mut marked, &plan(3, 2), &mut NoObserver).unwrap();
    assert_eq!(sum, reference);
    let per: Vec<usize> = (0..=5).collect();
    assert_eq!(marks.len(), 6 * sum.decisions as usize);
    assert!(marks.chunks(6).all(|c| c == per.as_slice()));
}

#[test]
fn conv1_table_changes_nothing_but_speed() {
    // The Cortex-M4 image runs the first conv through policy-core's table:
    // same checksum as the gather kernel, with and without stage marks.
    let plan = plan(5, 3);
    let mut plain = Policy::from_blob(blob()).unwrap();
    let reference = run_episodes::<Game, _, _>(&mut plain, &plan, &mut NoObserver).unwrap();
    let mut table = vec![0u32; plain.conv1_table_len().expect("classic has a table")];
    plain.write_conv1_table(&mut table).unwrap();
    let mut fast = Policy::from_blob(blob()).unwrap();
    fast.attach_conv1_table(&table).unwrap();
    let sum = run_episodes::<Game, _, _>(&mut fast, &plan, &mut NoObserver).unwrap();
    assert_eq!(sum, reference);
    let mut marked = Marked::new(&mut fast, |_| {});
    let sum = run_episodes::<Game, _, _>(&mut marked, &plan, &mut NoObserver).unwrap();
    assert_eq!(sum, reference);
}

#[test]
fn random_tiny_blob_for_the_micro_bit() {
    // `make mcu-m0`'s stand-in blob: `--write-random-blob F --net tiny`, a
    // random netspec `tiny` network, whose 4x4 first conv has a nibble table
    // that changes nothing but speed.
    let dir = std::env::temp_dir().join(format!("fwsim-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("tiny.bin");
    run_ok(
        sim()
            .args(["--write-random-blob", f.to_str().unwrap()])
            .args(["--net", "tiny", "--seed", "1"]),
    );
    let bytes: &'static [u8] = Box::leak(std::fs::read(&f).unwrap().into_boxed_slice());
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(bytes, random_blob::of(&netspec::TINY, 1));
    let mut plain = Policy::from_blob(bytes).unwrap();
    let layers: Vec<_> = plain
        .model()
        .layers
        .iter()
        .map(|l| l.kind.to_netspec())
        .collect();
    assert_eq!(layers, netspec::TINY.layers);
    let plan = plan(0, 3);
    let reference = run_episodes::<Game, _, _>(&mut plain, &plan, &mut NoObserver).unwrap();
    let mut table = vec![0u32; plain.conv1_table_len().expect("tiny has a table")];
    plain.write_conv1_table(&mut table).unwrap();
    let mut fast = Policy::from_blob(bytes).unwrap();
    fast.attach_conv1_table(&table).unwrap();
    let sum = run_episodes::<Game, _, _>(&mut fast, &plan, &mut NoObserver).unwrap();
    assert_eq!(sum, reference);
}

#[test]
fn bad_blobs_are_typed_errors() {
    assert_eq!(
        Policy::from_blob(b"not a blob").unwrap_err(),
        BlobError::BadMagic
    );
    assert!(Policy::from_blob(&[]).is_err());
    let mut corrupt = blob().to_vec();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x40;
    let corrupt: &'static [u8] = Box::leak(corrupt.into_boxed_slice());
    assert!(Policy::from_blob(corrupt).is_err());
    assert!(Policy::from_blob(&blob()[..blob().len() - 1]).is_err());
}

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
}

/// Runs the command, which must succeed.
fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{e}");
    out
}

#[test]
fn binary_prints_json_and_rejects_bad_blobs() {
    let dir = std::env::temp_dir().join(format!("fwsim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("random.bin");
    let st = sim()
        .args(["--write-random-blob", good.to_str().unwrap(), "--seed", "1"])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read(&good).unwrap(), blob());

    let out = run_ok(sim().args(["--blob", good.to_str().unwrap()]).args([
        "--episodes",
        "2",
        "--seed",
        "7",
        "--max-score",
        "3",
        "--json",
    ]));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut p = Policy::from_blob(blob()).unwrap();
    let plan = Plan {
        base_seed: 7,
        episodes: 2,
        max_score: 3,
        max_steps: Plan::DEFAULT_MAX_STEPS,
    };
    let sum = run_episodes::<Game, _, _>(&mut p, &plan, &mut NoObserver).unwrap();
    assert_eq!(j["episodes"], 2);
    assert_eq!(j["decisions"], sum.decisions);
    assert_eq!(j["checksum"], format!("{:016x}", sum.checksum));
    assert_eq!(
        j["mean_score"].as_f64().unwrap(),
        sum.total_score as f64 / 2.0
    );
    assert_eq!(j["blob_bytes"], blob().len());
    for key in [
        "median_score",
        "best_score",
        "latency_ns_per_decision",
        "policy_state_bytes",
    ] {
        assert!(j.get(key).is_some(), "missing {key}");
    }

    let gif = dir.join("first.gif");
    run_ok(
        sim()
            .args(["--blob", good.to_str().unwrap(), "--episodes", "2"])
            .args(["--gif", gif.to_str().unwrap()]),
    );
    let bytes = std::fs::read(&gif).unwrap();
    assert!(bytes.starts_with(b"GIF89a") && bytes.ends_with(b";"));
    assert!(bytes.len() > 1000);

    let bad = dir.join("bad.bin");
    std::fs::write(&bad, b"garbage").unwrap();
    let out = sim()
        .args(["--blob", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&BlobError::BadMagic.to_string()), "{err}");
    assert!(out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn action_indices_match_flappy_actions() {
    use firmware_sim::Env;
    // Env::step(0) is Idle, Env::step(1) is Flap: same game as flappy's own.
    let (mut a, mut b) = (Game::new(9), Game::new(9));
    for t in 0..60 {
        let (idx, act) = if t % 7 == 0 {
            (1, Action::Flap)
        } else {
            (0, Action::Idle)
        };
        let o = Env::step(&mut a, idx).unwrap();
        let s = b.step(act).unwrap();
        assert_eq!((o.crashed, o.score), (s.terminal, s.episode_score()));
    }
}

/// Every file argument given a missing path, an empty file, garbage or a
/// folder, every output unwritable, numbers out of range: a non-zero exit,
/// one error line, no panic.
#[test]
fn every_bad_input_is_one_clear_error() {
    let dir = std::env::temp_dir().join(format!("fwsim-walk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.bin");
    std::fs::write(&good, blob()).unwrap();
    let empty = dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, vec![0x5Au8; 5000]).unwrap();
    let unwritable = empty.join("x");
    let p = |x: &std::path::Path| x.to_str().unwrap().to_string();
    let mut cases: Vec<Vec<String>> = Vec::new();
    for f in [
        dir.join("missing.bin"),
        empty.clone(),
        garbage.clone(),
        dir.clone(),
    ] {
        cases.push(vec!["--blob".into(), p(&f)]);
    }
    let g = p(&good);
    cases.push(vec![
        "--blob".into(),
        g.clone(),
        "--max-score".into(),
        "1".into(),
        "--gif".into(),
        p(&unwritable),
    ]);
    cases.push(vec!["--write-random-blob".into(), p(&unwritable)]);
    cases.push(vec![
        "--write-random-blob".into(),
        p(&dir.join("unknown-net.bin")),
        "--net".into(),
        "nope".into(),
    ]);
    cases.push(vec![
        "--blob".into(),
        g.clone(),
        "--episodes".into(),
        "-1".into(),
    ]);
    cases.push(vec![
        "--blob".into(),
        g.clone(),
        "--seed".into(),
        "x".into(),
    ]);
    cases.push(vec!["--blob".into(), g, "--bogus".into()]);
    cases.push(vec![]);
    for args in &cases {
        // Fails cleanly: not a panic (exit 101, panic text), one error line.
        let o = sim().args(args).output().unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        let errors = e.lines().filter(|l| l.starts_with("error")).count();
        let (status, code) = (o.status, o.status.code());
        assert!(
            !status.success() && code != Some(101) && !e.contains("panicked") && errors == 1,
            "{args:?}: {status}, {errors} error lines: {e}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
