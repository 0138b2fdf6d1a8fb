//! The `flappy` binary end to end.

use flappy::{agent, Action, Game, Reward};
use std::path::PathBuf;
use std::process::{Command, Output};

fn flappy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flappy"))
        .args(args)
        .output()
        .expect("run flappy")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Asserts a failed run with one clear error line and no panic.
fn assert_clean_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "should fail");
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one error line: {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flappy-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn trace_no_flaps_until_the_ground_crash() {
    let o = flappy(&["trace", "--gaps", "7,7,3,1", "--actions", &"0".repeat(20)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "step,action,reward,terminal,score,player_y,vel_y");
    assert_eq!(lines.len(), 21);
    assert_eq!(lines[1], "1,0,0.1,0,0,245,1");
    assert_eq!(lines[10], "10,0,0.1,0,0,299,10");
    assert_eq!(lines[18], "18,0,0.1,0,0,379,10");
    // Step 19 crashes; the row shows the new game (auto reset).
    assert_eq!(lines[19], "19,0,-1,1,0,244,0");
    assert_eq!(lines[20], "20,0,0.1,0,0,245,1");
}

#[test]
fn trace_first_flap_and_ceiling() {
    let o = flappy(&["trace", "--gaps", "0,0", "--actions", "1 1"]);
    assert!(o.status.success());
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines, ["1,1,0.1,0,0,235,-9", "2,1,0.1,0,0,226,-9"]);
}

#[test]
fn trace_matches_the_library_including_points_and_resets() {
    // Actions from the heuristic for 400 steps, with deliberate crashes
    // (idle stretches) so gap indices are consumed across resets.
    let gaps: Vec<u8> = (0..60).map(|i| ((i * 5 + 3) % 8) as u8).collect();
    let mut g = Game::with_gaps(&gaps).unwrap();
    let mut actions = String::new();
    let mut expect = vec!["step,action,reward,terminal,score,player_y,vel_y".to_string()];
    let (mut points, mut crashes) = (0, 0);
    for k in 1..=400 {
        let a = if (150..175).contains(&k) {
            Action::Idle
        } else {
            agent::heuristic_action(&g)
        };
        let s = g.step(a).unwrap();
        points += (s.reward == Reward::Pipe) as u32;
        crashes += s.terminal as u32;
        actions.push(if a == Action::Flap { '1' } else { '0' });
        let r = match s.reward {
            Reward::Alive => "0.1",
            Reward::Pipe => "1",
            Reward::Crash => "-1",
        };
        expect.push(format!(
            "{k},{},{r},{},{},{},{}",
            u8::from(a),
            s.terminal as u8,
            s.score,
            g.player_y(),
            g.vel_y()
        ));
    }
    assert!(
        points >= 3 && crashes >= 1,
        "points {points} crashes {crashes}"
    );
    let gaps_arg: Vec<String> = gaps.iter().map(|k| k.to_string()).collect();
    let o = flappy(&[
        "trace",
        "--gaps",
        &gaps_arg.join(","),
        "--actions",
        &actions,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got, expect);
}

#[test]
fn trace_errors_are_one_line_and_nonzero() {
    // Out of gaps at the crash's reset (step 19).
    let o = flappy(&["trace", "--gaps", "7,7,3", "--actions", &"0".repeat(25)]);
    assert_clean_error(&o, "out of");
    assert!(stderr(&o).contains("step 19"));
    // Rows before the failing step were printed.
    assert_eq!(stdout(&o).lines().count(), 1 + 18);
    // Bad action character.
    assert_clean_error(
        &flappy(&["trace", "--gaps", "1,2", "--actions", "0120"]),
        "'2'",
    );
    // Bad gap index, and a gap that is not a number.
    assert_clean_error(&flappy(&["trace", "--gaps", "1,8", "--actions", "0"]), "8");
    assert_clean_error(&flappy(&["trace", "--gaps", "1,x", "--actions", "0"]), "x");
    // Fewer than two gaps.
    assert_clean_error(
        &flappy(&["trace", "--gaps", "1", "--actions", "0"]),
        "out of",
    );
}

#[test]
fn help_lists_the_subcommands() {
    let o = flappy(&["--help"]);
    assert!(o.status.success());
    let h = stdout(&o);
    for sub in ["trace", "play", "bench"] {
        assert!(h.contains(sub), "{h}");
    }
    let o = flappy(&["trace", "--help"]);
    assert!(stdout(&o).contains("step,action,reward,terminal,score,player_y,vel_y"));
    // Missing arguments: clap's usage error, non-zero, no panic.
    let o = flappy(&["trace"]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn heuristic_reaches_1000_on_seeds_0_to_5() {
    let o = flappy(&[
        "play",
        "--agent",
        "heuristic",
        "--episodes",
        "6",
        "--seed",
        "0",
        "--max-score",
        "1000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let eps: Vec<&str> = out.lines().filter(|l| l.starts_with("episode ")).collect();
    assert_eq!(eps.len(), 6, "{out}");
    for (i, l) in eps.iter().enumerate() {
        assert!(
            l.starts_with(&format!("episode {i}: seed {i} score 1000 ")),
            "{l}"
        );
    }
    assert!(
        out.contains("episodes 6 mean 1000.0 min 1000 max 1000"),
        "{out}"
    );
}

#[test]
fn play_writes_gif_and_png() {
    let gif = scratch("play.gif");
    let png = scratch("play.png");
    let o = flappy(&[
        "play",
        "--episodes",
        "1",
        "--seed",
        "3",
        "--max-score",
        "2",
        "--gif",
        gif.to_str().unwrap(),
        "--gif-stride",
        "3",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Score 2 is reached at step 97: 98 states (with the first), every 3rd.
    assert!(
        stdout(&o).contains("score 2 steps 97 (max score)"),
        "{}",
        stdout(&o)
    );
    let mut dec = gif::DecodeOptions::new();
    dec.set_color_output(gif::ColorOutput::Indexed);
    let mut d = dec.read_info(std::fs::File::open(&gif).unwrap()).unwrap();
    assert_eq!((d.width(), d.height()), (144, 256));
    let mut n = 0;
    while d.read_next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 33); // ceil(98 / 3)
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let r = dec.read_info().unwrap();
    assert_eq!((r.info().width, r.info().height), (288, 512));
    // Unwritable output: error, no panic.
    let o = flappy(&[
        "play",
        "--max-score",
        "1",
        "--png",
        "/nonexistent/dir/x.png",
    ]);
    assert_clean_error(&o, "x.png");
}

#[test]
fn bench_prints_a_table() {
    let o = flappy(&["bench", "--steps", "20000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for row in ["step ", "step + observe ", "step + observe + stack push"] {
        assert!(out.lines().any(|l| l.starts_with(row)), "{out}");
    }
    assert!(out.contains("steps/s"));
}
