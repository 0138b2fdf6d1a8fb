//! Seeds run side by side (`study train --jobs N`): each seed in a child
//! process of this binary (`--seed-only`), which trains it and writes its
//! own result into its run folder ([`crate::seed_run::SEED_FILE`]); the
//! parent then collects those results into the study's file as it does
//! for seeds finished before. On a 2-core machine two runs with one
//! libtorch thread each make nearly twice the environment steps of one
//! run with two threads (docs/learning.md), and each run stays a run of
//! its own seed: only the wall clock its minutes count changes.
//!
//! Stopping: a Ctrl-C (or SIGINT) to the parent reaches each child once,
//! forwarded; each saves a checkpoint and stops, and the same command
//! continues. Children run in process groups of their own, so a terminal's
//! Ctrl-C is not delivered twice, and a child never treats a second
//! signal as "abort without saving".
//!
//! ```
//! use std::ffi::OsString;
//! use study::jobs::child_args;
//! let parent: Vec<OsString> = ["train", "--seeds", "1,2,3", "--jobs=2", "--threads", "1"]
//!     .iter().map(OsString::from).collect();
//! let child: Vec<String> = child_args(&parent, 2)
//!     .into_iter().map(|a| a.into_string().unwrap()).collect();
//! assert_eq!(child, ["train", "--threads", "1", "--seeds", "2", "--seed-only"]);
//! ```

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the parent prints each running seed's last progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// The arguments (after the program's name) that run seed `seed` alone
/// as a child: the parent's, less `--seeds` and `--jobs`, plus `--seeds
/// SEED --seed-only`.
pub fn child_args(parent: &[OsString], seed: u64) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in parent {
        if skip_value {
            skip_value = false;
            continue;
        }
        let text = a.to_string_lossy();
        if text == "--seeds" || text == "--jobs" {
            skip_value = true;
            continue;
        }
        if text.starts_with("--seeds=") || text.starts_with("--jobs=") {
            continue;
        }
        out.push(a.clone());
    }
    out.push("--seeds".into());
    out.push(seed.to_string().into());
    out.push("--seed-only".into());
    out
}

/// The last non-empty line of the file at `path` (progress bars end lines
/// with `\r`), from its last 4 KiB; `None` when there is none yet.
pub fn last_line(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .split(['\n', '\r'])
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_string)
}

/// A child's stop flag: every SIGINT sets it, however many arrive (the
/// parent forwards one, and `pkill` may send another); the parent alone
/// decides to give up on saving.
pub fn stop_flag_for_child() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if !flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nSIGINT: saving a checkpoint and stopping");
        }
    })
    .context("installing the SIGINT handler")?;
    Ok(stop)
}

/// How the seeds of [`run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every seed finished: its result is in its run folder.
    Finished,
    /// Stopped (a signal): run the same command to continue.
    Stopped,
}

/// One seed's child process.
struct Running {
    seed: u64,
    child: Child,
    log: PathBuf,
    signalled: bool,
}

/// Runs `seeds` at most `jobs` at a time, each as a child process of this
/// binary with [`child_args`] of `parent_args`, its output appended to
/// `log_of(seed)`; `done(seed)` says whether a seed's result was written,
/// and `on_finished(seed)` runs in this process as each seed finishes.
/// Children get `OMP_NUM_THREADS` (and `MKL_NUM_THREADS`) of the cores
/// divided by `jobs` unless the environment sets them.
pub fn run(
    parent_args: &[OsString],
    seeds: &[u64],
    jobs: usize,
    stop: &AtomicBool,
    log_of: impl Fn(u64) -> PathBuf,
    done: impl Fn(u64) -> bool,
    mut on_finished: impl FnMut(u64) -> Result<()>,
) -> Result<Outcome> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs.max(1)).max(1).to_string();
    let mut queue: std::collections::VecDeque<u64> = seeds.iter().copied().collect();
    let mut running: Vec<Running> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut stopped = false;
    let mut last_report = Instant::now();
    loop {
        let halt = stop.load(Ordering::SeqCst) || stopped || !failed.is_empty();
        while !halt && running.len() < jobs {
            let Some(seed) = queue.pop_front() else { break };
            running.push(spawn(&exe, parent_args, seed, &threads, log_of(seed))?);
            let r = running.last().expect("just pushed");
            eprintln!(
                "seed {seed}: running in child process {} ({} at once); its output: {}",
                r.child.id(),
                jobs,
                r.log.display()
            );
        }
        if running.is_empty() {
            break;
        }
        if stop.load(Ordering::SeqCst) || stopped {
            for r in running.iter_mut().filter(|r| !r.signalled) {
                interrupt(&r.child);
                r.signalled = true;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut still = Vec::new();
        for mut r in running.drain(..) {
            match r.child.try_wait().context("waiting for a seed's process")? {
                None => still.push(r),
                Some(status) if status.success() && done(r.seed) => {
                    eprintln!("seed {}: finished", r.seed);
                    if let Err(e) = on_finished(r.seed) {
                        failed.push(format!("seed {}: {e:#}", r.seed));
                    }
                }
                Some(status) if status.success() || interrupted_early(status) => {
                    // Stopped: by the signal the parent forwarded, or by
                    // one it did not send (`kill -INT` to the child), and
                    // then the whole study stops.
                    eprintln!("seed {}: stopped, checkpoint saved", r.seed);
                    stopped = true;
                }
                Some(status) => {
                    let why = format!(
                        "seed {} failed ({status}); its last line: {}; all of it in {}",
                        r.seed,
                        last_line(&r.log).unwrap_or_default(),
                        r.log.display()
                    );
                    eprintln!("{why}");
                    failed.push(why);
                }
            }
        }
        running = still;
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            for r in &running {
                if let Some(l) = last_line(&r.log) {
                    let own = format!("seed {}:", r.seed);
                    if l.starts_with(&own) {
                        eprintln!("{l}");
                    } else {
                        eprintln!("{own} {l}");
                    }
                }
            }
        }
    }
    anyhow::ensure!(failed.is_empty(), "{}", failed.join("\n"));
    Ok(
        if stopped || stop.load(Ordering::SeqCst) || !queue.is_empty() {
            Outcome::Stopped
        } else {
            Outcome::Finished
        },
    )
}

fn spawn(
    exe: &Path,
    parent_args: &[OsString],
    seed: u64,
    threads: &str,
    log: PathBuf,
) -> Result<Running> {
    use std::os::unix::process::CommandExt;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone().context("sharing the log file")?;
    let mut cmd = Command::new(exe);
    cmd.args(child_args(parent_args, seed))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, threads);
        }
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} for seed {seed}", exe.display()))?;
    Ok(Running {
        seed,
        child,
        log,
        signalled: false,
    })
}

/// Whether a child ended by a SIGINT that came before it set its handler
/// (a Ctrl-C just as it started): it had nothing to save yet.
fn interrupted_early(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGINT)
}

/// Sends SIGINT to `child` (it saves a checkpoint and stops).
fn interrupt(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: a signal to a process this one started and has not yet
        // reaped (so its pid cannot have been reused).
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
    }
}
