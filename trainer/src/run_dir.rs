//! A run folder (`runs/<name>/`): its lock, where its networks lie, and the
//! atomic copy between them. What the files hold: `docs/ARCHITECTURE.md`.

use crate::atomic::write_atomic;
use crate::checkpoint;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// An exclusive advisory lock (`flock`) on `<run>/.lock`, held while a
/// trainer writes the run folder: a second trainer on the same folder stops
/// with a clear message instead of writing over the first one's files. The
/// kernel releases it when the process ends, however it ends.
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock of `run_dir`, or says which run is busy.
    pub fn acquire(run_dir: &Path) -> Result<RunLock> {
        use std::os::fd::AsRawFd;
        let path = run_dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a file descriptor this function owns.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            anyhow::bail!(
                "{} is being written by another trainer (its lock {} is held); wait for it or pick another --name",
                run_dir.display(),
                path.display()
            );
        }
        Ok(RunLock { _file: file })
    }
}

/// Creates `run_dir` and its snapshot folder and takes its lock.
pub fn open(run_dir: &Path) -> Result<RunLock> {
    let snapshots = snapshot_dir(run_dir);
    std::fs::create_dir_all(&snapshots)
        .with_context(|| format!("creating {}", snapshots.display()))?;
    RunLock::acquire(run_dir)
}

/// The run's best network so far (by periodic greedy evaluation), and after
/// the end-of-run selection the network the run ships.
pub fn best_model_path(run_dir: &Path) -> PathBuf {
    run_dir.join(checkpoint::BEST_FILE)
}

/// The policy as it was at the periodic evaluation of env step `step`
/// (`<run>/snapshots/step-<step>.safetensors`), a candidate of the
/// end-of-run selection.
pub fn snapshot_path(run_dir: &Path, step: u64) -> PathBuf {
    snapshot_dir(run_dir).join(format!("step-{step:010}.safetensors"))
}

/// The folder of a run's periodic snapshots ([`snapshot_path`]).
pub fn snapshot_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("snapshots")
}

/// Replaces `to` with a copy of `from`, atomically.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_atomic(to, &bytes)
}

/// Loads the network a run ships ([`checkpoint::load_network`] of its folder).
pub use crate::checkpoint::load_network as load_best;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_folder_has_one_writer_at_a_time() {
        let dir = std::env::temp_dir().join(format!("trainer-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = RunLock::acquire(&dir).unwrap();
        let e = RunLock::acquire(&dir).err().unwrap().to_string();
        assert!(e.contains("another trainer"), "{e}");
        drop(first);
        RunLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
