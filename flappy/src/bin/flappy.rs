//! `flappy`: trace the game step by step, watch the scripted agent play, or
//! measure the game's speed.

use clap::{Parser, Subcommand, ValueEnum};
use flappy::render::{self, GifOptions, GifRecorder};
use flappy::{agent, Action, Frame, FrameStack, Game, Reward, State};
use std::hint::black_box;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Steps per second of the Python original (unthrottled, with the seed's cv2
/// preprocessing), the yardstick `bench` compares against.
const PYTHON_STEPS_PER_S: f64 = 900.0;

#[derive(Parser, Debug)]
#[command(
    name = "flappy",
    version,
    about = "Deterministic Flappy Bird (the classic DQN environment): trace, play, bench",
    long_about = "Deterministic Flappy Bird, step for step the classic DQN environment \
                  (docs/GAME.md).\n\n\
                  trace  replay scripted gaps and actions and print every step as CSV\n\
                  play   let the scripted heuristic agent play seeded episodes (PNG/GIF output)\n\
                  bench  steps per second on one core, with and without the 80x80 observation"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay a gap sequence and an action string; print one CSV row per step.
    ///
    /// Header: step,action,reward,terminal,score,player_y,vel_y. `step` counts
    /// from 1; each row is the state after that step, i.e. after the automatic
    /// reset when the step crashed (terminal = 1, score = 0, player_y = 244).
    /// Rewards print as 0.1, 1 or -1.
    #[command(
        after_help = "Example:\n  flappy trace --gaps 7,7,3,0,0,0 --actions 0000000000100000000001"
    )]
    Trace {
        /// Gap indices (0..=7), comma-separated, consumed in pipe-creation
        /// order across resets: two at every (re)start, one per pair spawned.
        #[arg(long, value_name = "K,K,...")]
        gaps: String,
        /// Actions, one character per step: 0 = idle, 1 = flap (whitespace ignored).
        #[arg(long, value_name = "0101...")]
        actions: String,
    },
    /// Let a scripted agent play seeded episodes; print scores and a summary.
    ///
    /// Episode i uses seed S + i and ends at a crash or when the score
    /// reaches --max-score.
    Play {
        /// Which controller plays.
        #[arg(long, value_enum, default_value_t = AgentKind::Heuristic)]
        agent: AgentKind,
        /// Number of episodes.
        #[arg(long, default_value_t = 1)]
        episodes: u32,
        /// Seed of the first episode (episode i uses seed + i).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// End an episode once its score reaches this.
        #[arg(long, default_value_t = 1000)]
        max_score: u32,
        /// Write the first episode as an animated GIF (see --gif-stride, --gif-max-frames).
        #[arg(long, value_name = "FILE")]
        gif: Option<PathBuf>,
        /// Record every N-th step in the GIF.
        #[arg(long, default_value_t = 2, value_name = "N")]
        gif_stride: u32,
        /// Stop the GIF after this many frames (the episode plays on).
        #[arg(long, default_value_t = 600, value_name = "N")]
        gif_max_frames: u32,
        /// Full 288x512 GIF frames instead of 144x256.
        #[arg(long)]
        gif_full_size: bool,
        /// Save the last frame of the first episode (before a crash's reset) as a PNG.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
    },
    /// Steps per second on one core: step only, + observation, + frame-stack push.
    ///
    /// Actions come from the reactive rule with 1/256 random flips, so the bird
    /// flies through pipes and crashes now and then (resets are timed too).
    Bench {
        /// Steps per measurement.
        #[arg(long, default_value_t = 3_000_000)]
        steps: u64,
        /// Game seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum AgentKind {
    /// Look-ahead controller from `flappy::agent` (reads only the game state).
    Heuristic,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Trace { gaps, actions } => trace(&gaps, &actions),
        Cmd::Play {
            agent,
            episodes,
            seed,
            max_score,
            gif,
            gif_stride,
            gif_max_frames,
            gif_full_size,
            png,
        } => play(PlayArgs {
            agent,
            episodes,
            seed,
            max_score,
            gif,
            gif_opts: GifOptions {
                stride: gif_stride,
                half: !gif_full_size,
                max_frames: gif_max_frames,
                delay_cs: 0,
            },
            png,
        }),
        Cmd::Bench { steps, seed } => bench(steps, seed),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flappy: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `7,7,3` into gap indices (range checked by the game).
fn parse_gaps(s: &str) -> Result<Vec<u8>, String> {
    s.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, t)| {
            t.parse::<u8>()
                .map_err(|_| format!("--gaps: item {} is {t:?}, not a gap index 0..=7", i + 1))
        })
        .collect()
}

/// Parses `0100` into actions.
fn parse_actions(s: &str) -> Result<Vec<Action>, String> {
    s.chars()
        .filter(|c| !c.is_ascii_whitespace())
        .enumerate()
        .map(|(i, c)| match c {
            '0' => Ok(Action::Idle),
            '1' => Ok(Action::Flap),
            _ => Err(format!(
                "--actions: character {} is {c:?}, expected 0 (idle) or 1 (flap)",
                i + 1
            )),
        })
        .collect()
}

fn reward_str(r: Reward) -> &'static str {
    match r {
        Reward::Alive => "0.1",
        Reward::Pipe => "1",
        Reward::Crash => "-1",
    }
}

fn io_err(e: io::Error) -> String {
    format!("writing output: {e}")
}

fn trace(gaps: &str, actions: &str) -> Result<(), String> {
    let gaps = parse_gaps(gaps)?;
    let actions = parse_actions(actions)?;
    let mut game = Game::with_gaps(&gaps).map_err(|e| format!("--gaps: {e}"))?;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    writeln!(out, "step,action,reward,terminal,score,player_y,vel_y").map_err(io_err)?;
    for (i, &a) in actions.iter().enumerate() {
        let step = match game.step(a) {
            Ok(s) => s,
            Err(e) => {
                out.flush().map_err(io_err)?;
                return Err(format!(
                    "step {}: {e} ({} gap indices given, all used)",
                    i + 1,
                    gaps.len()
                ));
            }
        };
        writeln!(
            out,
            "{},{},{},{},{},{},{}",
            i + 1,
            u8::from(a),
            reward_str(step.reward),
            u8::from(step.terminal),
            step.score,
            game.player_y(),
            game.vel_y()
        )
        .map_err(io_err)?;
    }
    out.flush().map_err(io_err)
}

struct PlayArgs {
    agent: AgentKind,
    episodes: u32,
    seed: u64,
    max_score: u32,
    gif: Option<PathBuf>,
    gif_opts: GifOptions,
    png: Option<PathBuf>,
}

fn play(a: PlayArgs) -> Result<(), String> {
    if a.episodes == 0 {
        return Err("--episodes must be at least 1".into());
    }
    let mut gif = match &a.gif {
        Some(p) => {
            Some(GifRecorder::create(p, a.gif_opts).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let mut scores = Vec::with_capacity(a.episodes as usize);
    for ep in 0..a.episodes {
        let seed = a.seed.wrapping_add(u64::from(ep));
        let mut game = Game::new(seed);
        let mut last: State = game.state();
        let mut steps = 0u64;
        let record = ep == 0;
        if record {
            if let Some(g) = gif.as_mut() {
                g.push(&last).map_err(|e| format!("GIF: {e}"))?;
            }
        }
        let (score, crashed) = loop {
            if game.score() >= a.max_score {
                break (game.score(), false);
            }
            let action = match a.agent {
                AgentKind::Heuristic => agent::heuristic_action(&game),
            };
            let st = game
                .step(action)
                .map_err(|e| format!("episode {ep}: {e}"))?;
            steps += 1;
            if st.terminal {
                break (st.episode_score(), true);
            }
            last = game.state();
            if record {
                if let Some(g) = gif.as_mut() {
                    g.push(&last).map_err(|e| format!("GIF: {e}"))?;
                }
            }
        };
        if record {
            if let Some(p) = &a.png {
                render::save_png(p, &last).map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
        println!(
            "episode {ep}: seed {seed} score {score} steps {steps} {}",
            if crashed { "(crashed)" } else { "(max score)" }
        );
        scores.push(score);
    }
    let n = scores.len() as f64;
    let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    let min = scores.iter().copied().min().unwrap_or(0);
    let max = scores.iter().copied().max().unwrap_or(0);
    println!(
        "episodes {} mean {mean:.1} min {min} max {max}",
        scores.len()
    );
    if let (Some(g), Some(p)) = (gif, &a.gif) {
        let frames = g.finish().map_err(|e| format!("{}: {e}", p.display()))?;
        println!("wrote {} ({frames} frames)", p.display());
    }
    if let Some(p) = &a.png {
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// A tiny xorshift for the bench's random action flips.
struct XorShift(u64);

impl XorShift {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The bench's controller: the reactive rule, flipped with probability 1/256.
#[inline]
fn bench_action(state: &State, rng: &mut XorShift) -> Action {
    let a = agent::reactive(state);
    if rng.next() & 255 == 0 {
        match a {
            Action::Idle => Action::Flap,
            Action::Flap => Action::Idle,
        }
    } else {
        a
    }
}

struct BenchRow {
    name: &'static str,
    steps: u64,
    secs: f64,
    episodes: u64,
    points: u64,
}

fn bench_run(name: &'static str, steps: u64, seed: u64, mode: u8) -> BenchRow {
    let mut game = Game::new(seed);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ seed);
    let mut frame = Frame::empty();
    game.observe(&mut frame);
    let mut stack = FrameStack::new(&frame);
    let (mut episodes, mut points) = (0u64, 0u64);
    let t = Instant::now();
    for _ in 0..steps {
        let a = bench_action(&game.state(), &mut rng);
        // Seeded games never fail.
        let Ok(s) = game.step(a) else { break };
        if s.reward == Reward::Pipe {
            points += 1;
        }
        if mode >= 1 {
            game.observe(&mut frame);
            if mode >= 2 {
                if s.terminal {
                    stack.reset(&frame);
                } else {
                    stack.push(&frame);
                }
            }
        }
        if s.terminal {
            episodes += 1;
        }
        black_box(&frame);
        black_box(&stack);
    }
    let secs = t.elapsed().as_secs_f64();
    BenchRow {
        name,
        steps,
        secs,
        episodes,
        points,
    }
}

fn bench(steps: u64, seed: u64) -> Result<(), String> {
    if steps == 0 {
        return Err("--steps must be at least 1".into());
    }
    let rows = [
        bench_run("step", steps, seed, 0),
        bench_run("step + observe", steps, seed, 1),
        bench_run("step + observe + stack push", steps, seed, 2),
    ];
    println!(
        "{:<30} {:>11} {:>9} {:>13} {:>10}",
        "mode", "steps", "seconds", "steps/s", "x Python"
    );
    for r in &rows {
        let rate = r.steps as f64 / r.secs.max(1e-9);
        println!(
            "{:<30} {:>11} {:>9.3} {:>13.0} {:>9.0}x",
            r.name,
            r.steps,
            r.secs,
            rate,
            rate / PYTHON_STEPS_PER_S
        );
    }
    let r = &rows[0];
    println!(
        "one core; {} episodes, {} pipes passed per run; Python original: {PYTHON_STEPS_PER_S} steps/s",
        r.episodes, r.points
    );
    Ok(())
}
