//! What a data directory occupies, where it lives, and the disk's fdatasync floor.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Bytes of the files below a directory (their lengths, not allocated blocks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirBytes {
    /// Every regular file, apart from portlog's journal (below).
    pub total: u64,
    /// Files in a directory named `journal`: portlog's two journal files, a fixed size written
    /// ahead whatever the records, reused round and round (and its checkpoint).
    pub journal: u64,
    /// Files whose name ends with the suffix asked for (`.sst`, `.seg`).
    pub data: u64,
    /// Number of regular files (the journal's apart).
    pub files: u64,
}

/// Sums the lengths of every file below `dir`; `data` counts those ending with `data_suffix`,
/// `journal` those in a `journal` directory (not in `total`).
pub fn dir_bytes(dir: &Path, data_suffix: &str) -> Result<DirBytes> {
    let mut out = DirBytes::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry.with_context(|| format!("listing {}", d.display()))?;
            let meta = entry.metadata().with_context(|| format!("stat {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && d.file_name().is_some_and(|n| n == "journal") {
                out.journal += meta.len();
            } else if meta.is_file() {
                out.total += meta.len();
                out.files += 1;
                if entry.file_name().to_string_lossy().ends_with(data_suffix) {
                    out.data += meta.len();
                }
            }
        }
    }
    Ok(out)
}

/// The file system type (`ext4`, `tmpfs`, ...) of the mount holding `path`, from /proc/mounts.
pub fn fs_type(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_dev, mnt, ty) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mnt).then(|| (mnt.len(), ty.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, ty)| ty)
}

/// Where scratch data directories go: the temp dir, unless it is held in memory (tmpfs or
/// ramfs, where fsync costs nothing), in which case the current directory.
pub fn scratch_base() -> Result<PathBuf> {
    let tmp = std::env::temp_dir();
    match fs_type(&tmp).as_deref() {
        Some("tmpfs" | "ramfs") => std::env::current_dir().context("current directory"),
        _ => Ok(tmp),
    }
}

/// The fdatasync floor of a durable append: `groups` writes of `group_bytes` each followed by
/// an fdatasync, on one file in `dir`, single-threaded. Returns groups per second when
/// appending (each fdatasync also commits the file's new size to the journal) and when
/// overwriting a file written and synced beforehand (an fdatasync then flushes data only).
/// Any engine that makes each group durable with one fdatasync of its own is bounded by these
/// rates at one thread.
pub fn fsync_floor(dir: &Path, group_bytes: usize, groups: usize) -> Result<FsyncFloor> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let buf = vec![0x5au8; group_bytes.max(1)];
    let run = |prewritten: bool| -> Result<f64> {
        let path = dir.join(if prewritten { "fsync-floor-prewritten" } else { "fsync-floor-append" });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        if prewritten {
            std::io::copy(&mut std::io::repeat(0).take((buf.len() * groups) as u64), &mut f)?;
            f.sync_all()?;
            f.seek(SeekFrom::Start(0))?;
        }
        let t = std::time::Instant::now();
        for _ in 0..groups {
            f.write_all(&buf)?;
            f.sync_data()?;
        }
        let rate = groups as f64 / t.elapsed().as_secs_f64();
        drop(f);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        Ok(rate)
    };
    Ok(FsyncFloor { group_bytes, groups, append_groups_per_s: run(false)?, prewritten_groups_per_s: run(true)? })
}

/// What [`fsync_floor`] measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FsyncFloor {
    /// Bytes written per group.
    pub group_bytes: usize,
    /// Groups timed in each mode.
    pub groups: usize,
    /// Groups made durable per second appending to a fresh file.
    pub append_groups_per_s: f64,
    /// Groups made durable per second overwriting a file written and synced beforehand.
    pub prewritten_groups_per_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_floor_measures_both_modes_and_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let f = fsync_floor(d.path(), 4096, 20).unwrap();
        assert_eq!((f.group_bytes, f.groups), (4096, 20));
        for r in [f.append_groups_per_s, f.prewritten_groups_per_s] {
            assert!(r.is_finite() && r > 0.0, "{f:?}");
        }
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0, "scratch files left");
        assert!(fsync_floor(&d.path().join("missing"), 10, 1).is_err());
    }

    #[test]
    fn sums_nested_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/x.sst"), [0u8; 100]).unwrap();
        std::fs::write(d.path().join("y.log"), [0u8; 10]).unwrap();
        std::fs::create_dir(d.path().join("journal")).unwrap();
        std::fs::write(d.path().join("journal/journal-0.log"), [0u8; 1000]).unwrap();
        let b = dir_bytes(d.path(), ".sst").unwrap();
        assert_eq!(b, DirBytes { total: 110, journal: 1000, data: 100, files: 2 });
        assert!(fs_type(d.path()).is_some());
    }
}
