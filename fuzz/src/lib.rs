//! Mutation fuzzing of every reader of outside bytes: the policy blob, the
//! recording, the config TOML, a checkpoint's `state.json`, `metrics.csv`, a
//! weights file, a whole checkpoint folder (weights, target, Adam moments,
//! policy average, state) and a saved replay memory. Each case takes a real file, mutates it
//! (truncation, bit flips, byte overwrites, inserted or deleted runs, garbage,
//! an empty file, the same file of another architecture) and runs the
//! reader on it. A reader must return `Ok` or an error; a panic is counted
//! and reported with the case number, so `run` with the same seed replays it.
//!
//! `cargo run --release -p fuzz-readers -- 1000000` runs a million cases;
//! `make test` runs a seeded sample.

use anyhow::{Context, Result};
use flappy::{Action, FrameStack, Game};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tch::Device;
use trainer::agent::Learner;
use trainer::checkpoint::{self, TrainState};
use trainer::config::Config;
use trainer::metrics::{EvalSpread, MetricRow, Metrics};
use trainer::net::QNetwork;
use trainer::recording::Recording;

/// The readers, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// `policy_core::Policy::from_blob`, then one inference if it loads.
    Blob,
    /// `Recording::load`.
    Recording,
    /// `Config::from_toml_file`.
    Config,
    /// `checkpoint::read_state` (`state.json`).
    State,
    /// `Metrics::load` (`metrics.csv`).
    Metrics,
    /// `checkpoint::load_network` on one weights file.
    Weights,
    /// `checkpoint::load` on a folder with one of its five files mutated.
    Checkpoint,
    /// `Replay::load` (`replay.bin` of a checkpoint).
    Replay,
}

impl Reader {
    /// All readers.
    pub const ALL: [Reader; 8] = [
        Reader::Blob,
        Reader::Recording,
        Reader::Config,
        Reader::State,
        Reader::Metrics,
        Reader::Weights,
        Reader::Checkpoint,
        Reader::Replay,
    ];

    /// Relative share of the cases: the slow readers (libtorch tensors of a
    /// whole network) get fewer.
    fn weight(self) -> u32 {
        match self {
            Reader::Blob => 20,
            Reader::Recording => 20,
            Reader::Config => 20,
            Reader::State => 20,
            Reader::Metrics => 15,
            Reader::Weights => 4,
            Reader::Checkpoint => 1,
            Reader::Replay => 15,
        }
    }
}

/// Cases, outcomes and the first panic of one reader.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Cases run.
    pub cases: u64,
    /// Cases the reader accepted.
    pub accepted: u64,
    /// Cases the reader rejected with an error.
    pub rejected: u64,
    /// Cases that panicked.
    pub panics: u64,
    /// The first panic: case number and message.
    pub first_panic: Option<(u64, String)>,
    /// Seconds spent.
    pub seconds: f64,
}

/// The real files every case starts from.
pub struct Bases {
    blob: Vec<u8>,
    /// Length of the blob's header (the payload follows).
    blob_header: usize,
    recording: Vec<u8>,
    config: Vec<u8>,
    state: Vec<u8>,
    metrics: Vec<u8>,
    /// The checkpoint's files by name (compact net).
    checkpoint: Vec<(&'static str, Vec<u8>)>,
    /// A weights file of another architecture (classic).
    other_weights: Vec<u8>,
    /// A saved replay memory of [`REPLAY_SHAPE`].
    replay: Vec<u8>,
    work: PathBuf,
}

/// Capacity and environments of the fuzzed replay memory.
const REPLAY_SHAPE: (usize, usize) = (96, 4);

const CHECKPOINT_FILES: [&str; 5] = [
    "model.safetensors",
    "target.safetensors",
    "ema.safetensors",
    "adam.safetensors",
    "state.json",
];

impl Bases {
    /// Builds the base files in `work` (created; its contents are replaced):
    /// a fresh compact learner's checkpoint (with the policy average), a
    /// classic net's weights, a recording of played frames, the default
    /// config, a metrics file, and the blob exported from the learner's
    /// network calibrated on the recording.
    pub fn new(work: &Path) -> Result<Bases> {
        if work.exists() {
            std::fs::remove_dir_all(work)
                .with_context(|| format!("clearing {}", work.display()))?;
        }
        std::fs::create_dir_all(work)?;
        tch::manual_seed(7);
        let cfg = Config {
            policy_ema: 1e-4,
            ..Config::default()
        };
        let learner = Learner::new(netspec::COMPACT, Device::Cpu)?.with_ema()?;
        let state = TrainState {
            env_steps: 123_456,
            updates: 15_432,
            episodes: 987,
            adam_t: 15_432,
            elapsed_s: 1234.5,
            best_eval: f64::NEG_INFINITY,
            recent_scores: vec![3, 14, 15, 92, 6],
            rng: Pcg32::seed_from_u64(9),
            sessions: 1,
            config: cfg.clone(),
        };
        let ck = work.join("base-checkpoint");
        checkpoint::save(&ck, &learner, &state, None)?;
        let mut files = Vec::new();
        for name in CHECKPOINT_FILES {
            files.push((name, std::fs::read(ck.join(name))?));
        }
        let other = work.join("classic.safetensors");
        QNetwork::new(netspec::CLASSIC, Device::Cpu)
            .vs
            .save(&other)?;

        let mut replay = trainer::replay::Replay::new(REPLAY_SHAPE.0, REPLAY_SHAPE.1);
        let mut game = Game::new(4);
        for t in 0..40u32 {
            for env in 0..REPLAY_SHAPE.1 {
                let a = if (t + env as u32).is_multiple_of(7) {
                    Action::Flap
                } else {
                    Action::Idle
                };
                let step = game.step(a).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                replay.push(
                    env,
                    &game.frame(),
                    t == 0,
                    a as u8,
                    step.reward.value(),
                    step.terminal,
                );
            }
        }
        let mut replay_bytes = Vec::new();
        replay.write_to(&mut replay_bytes)?;
        let stacks = played_stacks(60);
        let recording = Recording { seed: 11, stacks }.to_bytes()?;
        let calib = Recording::from_bytes(&recording)?.stacks;
        let float = learner.policy().to_float_model();
        let ex = trainer::quant::export(&float, &calib, &Default::default())?;
        let blob = ex.blob;
        let blob_header = (1..=policy_core::blob::MAX_HEADER_BYTES)
            .find(|&h| {
                let mut out = vec![0u8; blob.len() + 16];
                policy_core::blob::seal(&blob[h..], policy_core::blob::VERSION, &mut out)
                    .is_ok_and(|n| out[..n] == blob[..])
            })
            .context("the exported blob's header length")?;

        let mut metrics = Metrics::default();
        for i in 1..=6u64 {
            metrics.rows.push(MetricRow {
                step: i * 10_000,
                episodes: i * 40,
                mean_score: i as f64 * 1.5,
                eval: (i % 3 == 0).then_some(EvalSpread {
                    mean: 12.5,
                    median: 11.0,
                    min: 2.0,
                    max: 40.0,
                }),
                loss: 0.01,
                epsilon: 0.05,
                lr: 3e-4,
                env_steps_per_s: 500.0,
                updates_per_s: 60.0,
                minutes: i as f64 * 0.3,
            });
        }
        Ok(Bases {
            blob,
            blob_header,
            recording,
            config: cfg.to_toml().into_bytes(),
            state: files[4].1.clone(),
            metrics: metrics.to_csv().into_bytes(),
            checkpoint: files,
            other_weights: std::fs::read(&other)?,
            replay: replay_bytes,
            work: work.to_path_buf(),
        })
    }
}

/// Frame stacks met by a bird flapping at random, over a few games.
fn played_stacks(n: usize) -> Vec<FrameStack> {
    let mut rng = Pcg32::seed_from_u64(3);
    let mut game = Game::new(3);
    let mut stack = FrameStack::new(&game.frame());
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(stack);
        let a = if rng.next_u32() % 8 == 0 {
            Action::Flap
        } else {
            Action::Idle
        };
        match game.step(a) {
            Ok(s) if s.terminal => stack.reset(&game.frame()),
            _ => stack.push(&game.frame()),
        }
    }
    out
}

/// A mutation of `base`; `other` is a valid file of the same kind but a
/// different content (another architecture), used whole or spliced in.
pub fn mutate(rng: &mut Pcg32, base: &[u8], other: Option<&[u8]>) -> Vec<u8> {
    let below = |rng: &mut Pcg32, n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    let mut b = base.to_vec();
    match below(rng, 10) {
        0 => b.truncate(below(rng, base.len())),
        1 | 2 => {
            for _ in 0..1 + below(rng, 8) {
                let i = below(rng, b.len());
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << below(rng, 8);
                }
            }
        }
        3 => {
            for _ in 0..1 + below(rng, 8) {
                let i = below(rng, b.len());
                if let Some(x) = b.get_mut(i) {
                    *x = rng.next_u32() as u8;
                }
            }
        }
        4 => {
            let at = below(rng, b.len() + 1);
            let n = 1 + below(rng, 64);
            let junk: Vec<u8> = (0..n).map(|_| rng.next_u32() as u8).collect();
            b.splice(at..at, junk);
        }
        5 => {
            let at = below(rng, b.len());
            let n = 1 + below(rng, 64);
            b.drain(at..(at + n).min(b.len()));
        }
        6 => {
            let n = below(rng, 4096);
            b = (0..n).map(|_| rng.next_u32() as u8).collect();
        }
        7 => b.clear(),
        8 => {
            // Digits and text edits: where text formats hide their numbers.
            let i = below(rng, b.len());
            let pieces: [&[u8]; 8] = [
                b"-",
                b"9",
                b"0",
                b"NaN",
                b"1e999",
                b"\"",
                b"\n",
                b"18446744073709551617",
            ];
            let p = pieces[below(rng, pieces.len())];
            let end = (i + below(rng, 3)).min(b.len());
            b.splice(i..end, p.iter().copied());
        }
        _ => match other {
            Some(o) if below(rng, 2) == 0 => b = o.to_vec(),
            Some(o) => {
                let at = below(rng, b.len());
                let from = below(rng, o.len());
                let n = (1 + below(rng, 4096)).min(o.len() - from).min(b.len() - at);
                b[at..at + n].copy_from_slice(&o[from..from + n]);
            }
            None => b.truncate(b.len() / 2),
        },
    }
    b
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs `cases` mutated inputs, spread over the readers by their weights, from
/// `seed`. Panics are caught, counted and silenced (the hook is restored).
pub fn run(
    bases: &Bases,
    cases: u64,
    seed: u64,
    mut progress: impl FnMut(u64),
) -> Vec<(Reader, Tally)> {
    let mut tallies: Vec<(Reader, Tally)> =
        Reader::ALL.iter().map(|&r| (r, Tally::default())).collect();
    let total_weight: u32 = Reader::ALL.iter().map(|r| r.weight()).sum();
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut p) = LAST_PANIC.lock() {
            *p = Some(info.to_string());
        }
    }));
    let mut rng = Pcg32::seed_from_u64(seed);
    for case in 0..cases {
        let mut pick = rng.next_u32() % total_weight;
        let mut k = 0;
        while pick >= Reader::ALL[k].weight() {
            pick -= Reader::ALL[k].weight();
            k += 1;
        }
        let t = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            one_case(bases, Reader::ALL[k], &mut rng)
        }));
        let tally = &mut tallies[k].1;
        tally.cases += 1;
        tally.seconds += t.elapsed().as_secs_f64();
        match outcome {
            Ok(Ok(true)) => tally.accepted += 1,
            Ok(Ok(false)) => tally.rejected += 1,
            Ok(Err(_)) => tally.rejected += 1,
            Err(_) => {
                tally.panics += 1;
                if tally.first_panic.is_none() {
                    let msg = LAST_PANIC
                        .lock()
                        .ok()
                        .and_then(|mut p| p.take())
                        .unwrap_or_default();
                    tally.first_panic = Some((case, msg));
                }
            }
        }
        progress(case + 1);
    }
    std::panic::set_hook(prev_hook);
    tallies
}

/// One case; `Ok(true)` = accepted, `Ok(false)` or `Err` = rejected. Errors
/// of the fuzzer itself (a full temp folder) would count as rejections, so
/// the base files are checked to load first (see the tests).
fn one_case(b: &Bases, reader: Reader, rng: &mut Pcg32) -> Result<bool> {
    let file = |name: &str, bytes: &[u8]| -> Result<PathBuf> {
        let p = b.work.join(name);
        std::fs::write(&p, bytes)?;
        Ok(p)
    };
    match reader {
        Reader::Blob => {
            let mut bytes = mutate(rng, &b.blob, None);
            if rng.next_u32().is_multiple_of(2) && bytes.len() >= b.blob_header {
                // Reseal with a correct CRC so the validator, not the CRC, is tested.
                let payload = mutate(rng, &b.blob[b.blob_header..], None);
                bytes = vec![0u8; payload.len() + policy_core::blob::MAX_HEADER_BYTES];
                let n = policy_core::blob::seal(&payload, policy_core::blob::VERSION, &mut bytes)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                bytes.truncate(n);
            }
            let loaded = match policy_core::Policy::from_blob(&bytes) {
                Ok(mut p) => {
                    p.q_values(&FrameStack::default());
                    true
                }
                Err(_) => false,
            };
            Ok(loaded)
        }
        Reader::Recording => {
            let p = file("case.rec", &mutate(rng, &b.recording, None))?;
            Ok(Recording::load(&p).is_ok())
        }
        Reader::Config => {
            let p = file("case.toml", &mutate(rng, &b.config, None))?;
            Ok(Config::from_toml_file(&p).is_ok())
        }
        Reader::State => {
            let dir = b.work.join("state");
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("state.json"), mutate(rng, &b.state, None))?;
            Ok(checkpoint::read_state(&dir).is_ok())
        }
        Reader::Metrics => {
            let p = file("metrics.csv", &mutate(rng, &b.metrics, None))?;
            Ok(Metrics::load(&p).is_ok())
        }
        Reader::Weights => {
            let base = &b.checkpoint[0].1;
            let p = file(
                "case.safetensors",
                &mutate(rng, base, Some(&b.other_weights)),
            )?;
            Ok(checkpoint::load_network(&p, Device::Cpu).is_ok())
        }
        Reader::Checkpoint => {
            let dir = b.work.join("checkpoint");
            std::fs::create_dir_all(&dir)?;
            let victim = (rng.next_u32() as usize) % b.checkpoint.len();
            for (i, (name, bytes)) in b.checkpoint.iter().enumerate() {
                if i == victim {
                    let other = name
                        .ends_with(".safetensors")
                        .then_some(&b.other_weights[..]);
                    std::fs::write(dir.join(name), mutate(rng, bytes, other))?;
                } else {
                    std::fs::write(dir.join(name), bytes)?;
                }
            }
            Ok(checkpoint::load(&dir, Device::Cpu).is_ok())
        }
        Reader::Replay => {
            let p = file("replay.bin", &mutate(rng, &b.replay, None))?;
            let mut r = trainer::replay::Replay::new(REPLAY_SHAPE.0, REPLAY_SHAPE.1);
            Ok(r.load(&p).is_ok())
        }
    }
}

/// The tallies as a Markdown table.
pub fn table(tallies: &[(Reader, Tally)]) -> String {
    let mut s = String::from("| reader | cases | accepted | rejected | panics | µs/case |\n|---|---:|---:|---:|---:|---:|\n");
    let mut total = Tally::default();
    for (r, t) in tallies {
        s.push_str(&format!(
            "| {r:?} | {} | {} | {} | {} | {:.0} |\n",
            t.cases,
            t.accepted,
            t.rejected,
            t.panics,
            1e6 * t.seconds / t.cases.max(1) as f64
        ));
        total.cases += t.cases;
        total.accepted += t.accepted;
        total.rejected += t.rejected;
        total.panics += t.panics;
        total.seconds += t.seconds;
    }
    s.push_str(&format!(
        "| all | {} | {} | {} | {} | {:.0} |\n",
        total.cases,
        total.accepted,
        total.rejected,
        total.panics,
        1e6 * total.seconds / total.cases.max(1) as f64
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("fuzz-{name}-{}", std::process::id()))
    }

    #[test]
    fn the_base_files_load() {
        let b = Bases::new(&work("bases")).unwrap();
        assert!(policy_core::Policy::from_blob(&b.blob).is_ok());
        assert_eq!(
            Recording::from_bytes(&b.recording).unwrap().stacks.len(),
            60
        );
        let dir = b.work.join("base-checkpoint");
        let (_, state) = checkpoint::load(&dir, Device::Cpu).unwrap();
        assert_eq!(state.updates, 15_432);
        assert!(checkpoint::read_state(&dir).is_ok());
        assert!(Metrics::from_csv(std::str::from_utf8(&b.metrics).unwrap()).is_ok());
        assert!(Config::from_toml(std::str::from_utf8(&b.config).unwrap()).is_ok());
        let mut r = trainer::replay::Replay::new(REPLAY_SHAPE.0, REPLAY_SHAPE.1);
        r.read_from(&mut &b.replay[..]).unwrap();
        assert!(r.len() > REPLAY_SHAPE.0 / 2);
        // The other architecture's weights are a different file, not a corrupt one.
        let p = b.work.join("classic.safetensors");
        assert_eq!(
            checkpoint::load_network(&p, Device::Cpu).unwrap().arch,
            netspec::CLASSIC
        );
    }

    /// The seeded sample `make test` runs (the example runs a million).
    #[test]
    fn a_seeded_sample_of_mutated_files_never_panics() {
        let b = Bases::new(&work("sample")).unwrap();
        let tallies = run(&b, 6_000, 0xF022, |_| {});
        let report = table(&tallies);
        for (r, t) in &tallies {
            assert_eq!(t.panics, 0, "{r:?} panicked: {:?}\n{report}", t.first_panic);
            assert!(
                t.cases > 0 && t.rejected > 0,
                "{r:?} was not exercised\n{report}"
            );
        }
        // Some mutations are harmless (a flipped bit in a float weight, a
        // digit in a comment): the readers must accept those too.
        let accepted: u64 = tallies.iter().map(|(_, t)| t.accepted).sum();
        assert!(accepted > 0, "{report}");
    }
}
