//! What a data directory occupies, and where it lives.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Bytes of the files below a directory (their lengths, not allocated blocks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirBytes {
    /// Every regular file.
    pub total: u64,
    /// Files whose name ends with the suffix asked for (`.sst`, `.seg`).
    pub data: u64,
    /// Number of regular files.
    pub files: u64,
}

/// Sums the lengths of every file below `dir`; `data` counts those ending with `data_suffix`.
pub fn dir_bytes(dir: &Path, data_suffix: &str) -> Result<DirBytes> {
    let mut out = DirBytes::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry.with_context(|| format!("listing {}", d.display()))?;
            let meta = entry.metadata().with_context(|| format!("stat {}", entry.path().display()))?;
            if meta.is_dir() {
                stack.push(entry.path());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_nested_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/x.sst"), [0u8; 100]).unwrap();
        std::fs::write(d.path().join("y.log"), [0u8; 10]).unwrap();
        let b = dir_bytes(d.path(), ".sst").unwrap();
        assert_eq!(b, DirBytes { total: 110, data: 100, files: 2 });
        assert!(fs_type(d.path()).is_some());
    }
}
