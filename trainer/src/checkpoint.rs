//! Checkpoints: a folder with the online weights (`model.safetensors`), the
//! target weights, the policy average (`ema.safetensors`, the network a run
//! evaluates and exports), Adam's moments (`adam.safetensors`) and the
//! counters, exploration RNG and config (`state.json`). The folder is written
//! as `checkpoint.tmp/` and renamed into place, so a crash mid-write leaves
//! the previous checkpoint intact. [`load_network`] says which network a
//! path (run folder, checkpoint folder, weights file) stands for.

use crate::agent::Learner;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::net::QNetwork;
use crate::replay::Replay;
use anyhow::{bail, Context, Result};
use rand_core::SeedableRng;
use rand_pcg::Pcg32;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// Counters and everything else that is not a tensor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Environment steps taken (summed over environments).
    pub env_steps: u64,
    /// Gradient updates done.
    pub updates: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Adam's step counter.
    pub adam_t: u64,
    /// Training seconds so far (over all sessions).
    pub elapsed_s: f64,
    /// Best greedy evaluation mean so far (`-inf` before the first, written
    /// as `null`: JSON has no infinity).
    #[serde(with = "finite_or_null")]
    pub best_eval: f64,
    /// Scores of the most recent episodes (for the running mean).
    pub recent_scores: Vec<u32>,
    /// The exploration / sampling RNG.
    pub rng: Pcg32,
    /// Number of resumes so far (the environments restart fresh with a new seed offset).
    pub sessions: u64,
    /// The run's config.
    pub config: Config,
}

impl TrainState {
    /// The counters of a new run of `cfg`: all zero, its RNG seeded from
    /// `cfg.seed`.
    pub fn new(cfg: &Config) -> TrainState {
        TrainState {
            env_steps: 0,
            updates: 0,
            episodes: 0,
            adam_t: 0,
            elapsed_s: 0.0,
            best_eval: f64::NEG_INFINITY,
            recent_scores: Vec::new(),
            rng: Pcg32::seed_from_u64(cfg.seed ^ 0x005E_ED0F_D0E5),
            sessions: 0,
            config: cfg.clone(),
        }
    }
}

/// A float that may be `-inf` as JSON: finite values as numbers, anything
/// else as `null`, read back as `-inf`.
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_some(v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
    }
}

/// The replay memory's file in a checkpoint folder.
pub const REPLAY_FILE: &str = "replay.bin";
/// A checkpoint's online network.
pub const MODEL_FILE: &str = "model.safetensors";
/// A checkpoint's policy average (runs with `policy_ema` > 0).
pub const EMA_FILE: &str = "ema.safetensors";
/// A run folder's network: the one the run ships, chosen by its end-of-run
/// selection (until then, the best periodic evaluation's).
pub const BEST_FILE: &str = "best.safetensors";

/// Saves a checkpoint into `dir` (replacing it atomically), with the replay
/// memory when given (`replay.bin`, 806 bytes per stored transition).
pub fn save(
    dir: &Path,
    learner: &Learner,
    state: &TrainState,
    replay: Option<&Replay>,
) -> Result<()> {
    crate::atomic::replace_dir_atomic(dir, |tmp| {
        if let Some(r) = replay {
            r.save(&tmp.join(REPLAY_FILE))?;
        }
        learner
            .online
            .vs
            .save(tmp.join(MODEL_FILE))
            .context("saving model")?;
        learner
            .target
            .vs
            .save(tmp.join("target.safetensors"))
            .context("saving target")?;
        if let Some(ema) = &learner.ema {
            ema.vs
                .save(tmp.join(EMA_FILE))
                .context("saving the policy average")?;
        }
        let mut adam: Vec<(String, Tensor)> = Vec::new();
        for (n, t) in &learner.adam.m {
            adam.push((format!("m.{n}"), t.shallow_clone()));
        }
        for (n, t) in &learner.adam.v {
            adam.push((format!("v.{n}"), t.shallow_clone()));
        }
        Tensor::write_safetensors(&adam, tmp.join("adam.safetensors")).context("saving adam")?;
        std::fs::write(tmp.join("state.json"), serde_json::to_vec_pretty(state)?)
            .context("saving state.json")?;
        Ok(())
    })
}

/// Finds the checkpoint folder for a run folder, a checkpoint folder or a
/// `model.safetensors` path (falls back to `checkpoint.old` after a crash mid-save).
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.parent().unwrap_or(Path::new(".")).to_path_buf());
    }
    for cand in [
        path.join("checkpoint"),
        path.join("checkpoint.old"),
        path.to_path_buf(),
    ] {
        if cand.join(MODEL_FILE).is_file() {
            return Ok(cand);
        }
    }
    bail!("no checkpoint found at {} (expected a run folder, a checkpoint folder or model.safetensors)", path.display())
}

/// The weights file `path` stands for ([`load_network`]):
/// * a weights file (`.safetensors`): that file;
/// * a run folder: its [`BEST_FILE`], the network the run ships;
/// * a checkpoint folder, or a run folder without [`BEST_FILE`] (stopped
///   before its first evaluation): the checkpoint's policy, its average
///   [`EMA_FILE`] when the run keeps one, else the online [`MODEL_FILE`].
pub fn network_file(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let best = path.join(BEST_FILE);
    if best.is_file() {
        return Ok(best);
    }
    let dir = resolve(path)?;
    let ema = dir.join(EMA_FILE);
    Ok(if ema.is_file() {
        ema
    } else {
        dir.join(MODEL_FILE)
    })
}

/// Reads the network `path` stands for ([`network_file`]: a run folder's
/// shipped network, a checkpoint's policy, or a weights file) into a new
/// network, its architecture inferred from the weights' shapes. What `eval`,
/// `record`, `export`, `parity`, `distil --teacher` and a run's own end load.
pub fn load_network(path: &Path, device: Device) -> Result<QNetwork> {
    let file = network_file(path)?;
    let tensors = read_tensors(&file)?;
    let arch = QNetwork::arch_of(&tensors)?;
    let mut net = QNetwork::new(arch, device);
    load_into(&mut net, &tensors, &file)?;
    Ok(net)
}

/// The weight average of several networks of one architecture (each a
/// path `load_network` takes): every variable is the mean of theirs, as
/// stochastic weight averaging does with snapshots of one late run.
pub fn average(paths: &[PathBuf], device: Device) -> Result<QNetwork> {
    let Some((first, rest)) = paths.split_first() else {
        bail!("averaging needs at least one network");
    };
    let sum = load_network(first, device)?;
    for p in rest {
        let net = load_network(p, device)?;
        if net.arch != sum.arch {
            bail!(
                "{} and {} are networks of different architectures: only one averages",
                p.display(),
                first.display()
            );
        }
        let theirs = net.vs.variables();
        tch::no_grad(|| -> Result<()> {
            for (name, t) in sum.vs.variables().iter_mut() {
                // One architecture: the same names and shapes.
                let x = theirs
                    .get(name)
                    .with_context(|| format!("{} has no `{name}`", p.display()))?;
                let _ = t.f_add_(x)?;
            }
            Ok(())
        })?;
    }
    let n = paths.len() as f64;
    tch::no_grad(|| -> Result<()> {
        for (_, t) in sum.vs.variables().iter_mut() {
            let _ = t.f_div_scalar_(n)?;
        }
        Ok(())
    })?;
    Ok(sum)
}

/// The named tensors of a `.safetensors` file, or an error naming it.
fn read_tensors(p: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(p)
        .map_err(|e| anyhow::anyhow!("bad or truncated checkpoint {}: {e}", p.display()))
}

fn load_into(net: &mut QNetwork, tensors: &[(String, Tensor)], file: &Path) -> Result<()> {
    let mut vars = net.vs.variables();
    if tensors.len() != vars.len() {
        bail!(
            "checkpoint {} has {} tensors, the network {}",
            file.display(),
            tensors.len(),
            vars.len()
        );
    }
    tch::no_grad(|| -> Result<()> {
        for (name, t) in tensors {
            copy_checked(vars.get_mut(name), t, "tensor", name, file)?;
        }
        Ok(())
    })
}

/// Copies `t`, the tensor `name` of `file`, into `dst` (the variable it is
/// for; `None`: there is none), which must have its shape. `what` names the
/// kind of tensor in errors.
fn copy_checked(
    dst: Option<&mut Tensor>,
    t: &Tensor,
    what: &str,
    name: &str,
    file: &Path,
) -> Result<()> {
    let Some(dst) = dst else {
        bail!("unexpected {what} `{name}` in {}", file.display())
    };
    if dst.size() != t.size() {
        bail!(
            "{what} `{name}` in {} has shape {:?}, expected {:?}",
            file.display(),
            t.size(),
            dst.size()
        );
    }
    dst.copy_(t);
    Ok(())
}

/// The `state.json` of the checkpoint folder `dir` (no search: see [`resolve`]),
/// its config validated.
pub fn read_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join("state.json");
    let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    let state: TrainState =
        serde_json::from_slice(&text).with_context(|| format!("bad {}", p.display()))?;
    state
        .config
        .validate()
        .with_context(|| format!("bad config in {}", p.display()))?;
    Ok(state)
}

/// The config saved with a checkpoint.
pub fn load_config(dir: &Path) -> Result<Config> {
    Ok(read_state(&resolve(dir)?)?.config)
}

/// Loads a full checkpoint (networks, Adam, counters) for resuming.
pub fn load(dir: &Path, device: Device) -> Result<(Learner, TrainState)> {
    let dir = resolve(dir)?;
    let state = read_state(&dir)?;
    let mut learner = Learner::new(state.config.net, device)?;
    for (file, net) in [
        (MODEL_FILE, &mut learner.online),
        ("target.safetensors", &mut learner.target),
    ] {
        let p = dir.join(file);
        load_into(net, &read_tensors(&p)?, &p)?;
    }
    if state.config.policy_ema > 0.0 {
        learner = learner.with_ema()?;
        let p = dir.join(EMA_FILE);
        // A checkpoint from before the average existed starts it from the online weights.
        if p.is_file() {
            if let Some(ema) = &mut learner.ema {
                load_into(ema, &read_tensors(&p)?, &p)?;
            }
        }
    }
    let p = dir.join("adam.safetensors");
    let t = read_tensors(&p)?;
    tch::no_grad(|| -> Result<()> {
        for (name, t) in t {
            let (map, var) = match (name.strip_prefix("m."), name.strip_prefix("v.")) {
                (Some(var), _) => (&mut learner.adam.m, var),
                (_, Some(var)) => (&mut learner.adam.v, var),
                _ => bail!("unexpected Adam tensor `{name}` in {}", p.display()),
            };
            copy_checked(
                map.get_mut(var),
                &t.to_device(device),
                "Adam tensor",
                &name,
                &p,
            )?;
        }
        Ok(())
    })?;
    learner.adam.t = state.adam_t;
    learner.updates = state.updates;
    Ok((learner, state))
}

/// The run saved in `run_dir`, one session later, with `cfg` (whose
/// learning settings must be the saved ones).
pub fn resume(
    cfg: &Config,
    run_dir: &Path,
    device: Device,
) -> Result<(Learner, TrainState, Metrics)> {
    let (learner, mut state) = load(run_dir, device)?;
    state.sessions += 1;
    // Budget and bookkeeping flags may change on resume; the learning ones
    // may not (the caller checks with `Config::learning_changes`).
    let changed = cfg.learning_changes(&state.config);
    if !changed.is_empty() {
        anyhow::bail!(
            "a resumed run keeps its learning settings; these differ: {}",
            changed.join(", ")
        );
    }
    state.config = cfg.clone();
    let metrics = Metrics::load(&run_dir.join("metrics.csv"))?;
    eprintln!(
        "resuming {} at {} env steps, {} updates ({:.1} min trained)",
        run_dir.display(),
        state.env_steps,
        state.updates,
        state.elapsed_s / 60.0
    );
    Ok((learner, state, metrics))
}

/// Restores the replay memory saved with the checkpoint in `run_dir`;
/// whether it was (a missing or bad file only warns: the run refills it).
pub fn restore_replay(replay: &mut Replay, run_dir: &Path) -> Result<bool> {
    let p = resolve(run_dir)?.join(REPLAY_FILE);
    if !p.is_file() {
        eprintln!("warning: the checkpoint has no replay memory, starting empty");
        return Ok(false);
    }
    match replay.load(&p) {
        Ok(()) => {
            eprintln!("restored {} transitions of replay memory", replay.len());
            Ok(true)
        }
        Err(e) => {
            eprintln!("warning: replay memory not restored, starting empty: {e:#}");
            Ok(false)
        }
    }
}
