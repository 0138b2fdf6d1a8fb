//! Every file the trainer writes goes through here: a hidden temporary
//! sibling, written in full and synced, then renamed over the target. A
//! reader (or a resumed run after a kill) sees the old file or the whole new
//! one, never a partial write; a failed write (a full disk, say) leaves the
//! old file in place, removes its temporary and returns an error naming the
//! file.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |tmp| {
        std::fs::write(tmp, bytes).with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Like [`write_atomic`] for writers that need a path (tch, plotters, the GIF
/// encoder): `write` fills the temporary file it is given, whose name ends
/// with `path`'s extension, so writers that choose a format by extension
/// choose the right one.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_sibling(path)?;
    let res = write(&tmp)
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("syncing {}", tmp.display()))
        })
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| {
        format!(
            "{} was not written (any previous version is intact)",
            path.display()
        )
    })
}

/// Replaces the folder `dir` by one that `fill` writes (into a temporary
/// sibling folder). The old folder is kept as `<dir>.old` until the new one is
/// in place, so a crash at any moment leaves a complete folder under one of
/// the two names (see `checkpoint::resolve`).
pub fn replace_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!(
            "{} was not written (the previous one is intact)",
            dir.display()
        )));
    }
    let old = dir.with_extension("old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        std::fs::rename(dir, &old).with_context(|| format!("renaming {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("renaming {}", tmp.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// `<dir>/.<stem>.<pid>.tmp.<ext>` (or `.<name>.<pid>.tmp` without an extension).
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = path
        .file_stem()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy();
    let pid = std::process::id();
    let name = match path.extension() {
        Some(ext) => format!(".{stem}.{pid}.tmp.{}", ext.to_string_lossy()),
        None => format!(".{stem}.{pid}.tmp"),
    };
    Ok(dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn listing(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// `p` holds `content` and is the only entry of its folder.
    fn assert_only_file(p: &Path, content: &[u8]) {
        assert_eq!(std::fs::read(p).unwrap(), content);
        let name = p.file_name().unwrap().to_string_lossy();
        assert_eq!(listing(p.parent().unwrap()), [name]);
    }

    #[test]
    fn writes_and_replaces_whole_files() {
        let d = scratch("write");
        let p = d.join("a.csv");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two, longer").unwrap();
        assert_only_file(&p, b"two, longer");
    }

    #[test]
    fn a_failed_writer_keeps_the_old_file_and_leaves_no_temporary() {
        let d = scratch("fail");
        let p = d.join("best.safetensors");
        write_atomic(&p, b"old").unwrap();
        let err = write_atomic_with(&p, |tmp| {
            assert!(tmp.to_string_lossy().ends_with(".tmp.safetensors"));
            std::fs::write(tmp, b"half")?;
            anyhow::bail!("No space left on device")
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("best.safetensors was not written"), "{msg}");
        assert!(msg.contains("No space left"), "{msg}");
        assert_only_file(&p, b"old");
    }

    #[test]
    fn a_failed_folder_fill_keeps_the_old_folder() {
        let d = scratch("dir");
        let ck = d.join("checkpoint");
        replace_dir_atomic(&ck, |t| Ok(std::fs::write(t.join("state.json"), b"1")?)).unwrap();
        let err = replace_dir_atomic(&ck, |t| {
            std::fs::write(t.join("state.json"), b"2")?;
            anyhow::bail!("disk full")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("disk full"));
        assert_eq!(std::fs::read(ck.join("state.json")).unwrap(), b"1");
        assert_eq!(listing(&d), ["checkpoint"]);
        replace_dir_atomic(&ck, |t| Ok(std::fs::write(t.join("state.json"), b"3")?)).unwrap();
        assert_eq!(std::fs::read(ck.join("state.json")).unwrap(), b"3");
        assert_eq!(listing(&d), ["checkpoint"]);
    }
}
