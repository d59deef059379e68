//! A shard: its directory of segments and the in-memory catalogue of them. The directory is the
//! durable catalogue: a segment exists exactly when its file does, and every change of state is
//! one atomic rename or unlink (docs/architecture.md, "Catalogue").

use super::frame::SegmentHeader;
use super::open_segment::OpenSegment;
use super::sealed::SealedSegment;
use crate::crypto::{KeyRing, SegmentCipher};
use crate::error::{Error, Result};
use crate::io::{Io, SharedIo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// (bucket start, generation): a segment's key within its shard.
pub type SegKey = (i64, u32);

/// The segments of a shard.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Sealed segments.
    pub sealed: BTreeMap<SegKey, Arc<SealedSegment>>,
    /// Open segments (including those queued for sealing).
    pub open: BTreeMap<SegKey, Arc<OpenSegment>>,
}

impl Catalog {
    /// Next free generation of `bucket`.
    pub fn next_gen(&self, bucket: i64) -> u32 {
        let range = (bucket, 0)..=(bucket, u32::MAX);
        let sealed = self.sealed.range(range.clone()).next_back().map_or(0, |(k, _)| k.1 + 1);
        let open = self.open.range(range).next_back().map_or(0, |(k, _)| k.1 + 1);
        sealed.max(open)
    }
}

/// What opening a shard found.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Open segments recovered (their tails scanned).
    pub open_segments: usize,
    /// Sealed segments mapped (footers verified only).
    pub sealed_segments: usize,
    /// Bytes cut from torn tails.
    pub bytes_cut: u64,
    /// Leftovers of interrupted seals removed.
    pub leftovers_removed: usize,
    /// Segments whose expiry was interrupted after their rename to `.seg.expired`: unlinked
    /// (the expiry finished).
    pub expired_removed: usize,
    /// Sealed segments that failed verification at open: `(path, error)`. They are left in
    /// place, untouched, and not served.
    pub damaged: Vec<(PathBuf, String)>,
    /// Journal frames replayed (appended since the journal's last checkpoint).
    pub journal_frames: u64,
    /// Records in them.
    pub journal_records: u64,
    /// Bytes cut from open segments back to the journal's checkpoint (never synced; their
    /// records are in the replayed frames).
    pub journal_rewound_bytes: u64,
    /// Open segments created after the journal's checkpoint, removed (their records replayed).
    pub journal_removed_segments: usize,
}

/// One shard.
#[derive(Debug)]
pub struct Shard {
    /// Shard number.
    pub id: u32,
    /// Its directory.
    pub dir: PathBuf,
    /// Its segments.
    pub catalog: RwLock<Catalog>,
    /// Set when the writer failed to make data durable; appends are refused from then on.
    pub poisoned: Mutex<Option<String>>,
    /// The file operations of the shard's writer, sealer and retention.
    pub io: SharedIo,
    /// The key ring: with one, new segments are encrypted with its active key.
    pub keys: Option<Arc<KeyRing>>,
}

/// Suffix a sealed segment's file takes when retention removes it from the catalogue
/// (`X.seg` → `X.seg.expired`), before it is unlinked.
pub const EXPIRED_SUFFIX: &str = ".seg.expired";

/// File name stem of a segment.
pub fn seg_stem(bucket_start_ms: i64, gen: u32, tz_offset_ms: i64) -> String {
    format!("{}-{:06}", crate::time::compact_local(bucket_start_ms, tz_offset_ms), gen)
}

impl Shard {
    /// Opens (creating if needed) shard `id` in `dir` and recovers its segments.
    pub fn open(
        id: u32,
        dir: PathBuf,
        now_ms: i64,
        io: SharedIo,
        keys: Option<Arc<KeyRing>>,
    ) -> Result<(Self, RecoveryReport)> {
        std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        let mut report = RecoveryReport::default();
        let mut names: Vec<String> = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(Error::io("list", &dir))? {
            let e = e.map_err(Error::io("list", &dir))?;
            if let Some(n) = e.file_name().to_str() {
                names.push(n.to_owned());
            }
        }
        names.sort();
        let mut cat = Catalog::default();
        let mut changed = false;
        for n in names.iter().filter(|n| n.ends_with(".seg.tmp")) {
            remove(&*io, &dir.join(n))?;
            report.leftovers_removed += 1;
            changed = true;
        }
        // Retention renamed these out of the catalogue before unlinking them (log/expire.rs):
        // the deletion was decided and is finished here, never rolled back.
        for n in names.iter().filter(|n| n.ends_with(EXPIRED_SUFFIX)) {
            remove(&*io, &dir.join(n))?;
            report.expired_removed += 1;
            changed = true;
        }
        for n in names.iter().filter(|n| n.ends_with(".seg")) {
            let path = dir.join(n);
            match SealedSegment::open_with_keys(&path, keys.clone()) {
                Ok(s) => {
                    check_identity(&path, &s.header, id)?;
                    if let Some(k) = s.key_id().filter(|k| !keys.as_ref().is_some_and(|r| r.has(*k))) {
                        // Served, so that every read of it fails naming the key (never skipped
                        // in silence); the footer was verified without the key.
                        tracing::error!(path = %path.display(), key_id = k, "sealed segment encrypted with a key the key ring does not hold; its reads will fail");
                    }
                    let key = (s.header.bucket_start_ms, s.header.gen);
                    cat.sealed.insert(key, Arc::new(s));
                    report.sealed_segments += 1;
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "sealed segment failed verification; not served");
                    report.damaged.push((path, e.to_string()));
                }
            }
        }
        for n in names.iter().filter(|n| n.ends_with(".open")) {
            let path = dir.join(n);
            if names.contains(&format!("{}.seg", n.trim_end_matches(".open"))) {
                // The seal completed (the .seg was renamed into place after its fsync); only the
                // removal of the open file was interrupted.
                remove(&*io, &path)?;
                report.leftovers_removed += 1;
                changed = true;
                continue;
            }
            if let Some((seg, repair)) = OpenSegment::recover_with(&*io, &path, now_ms, keys.as_ref())? {
                check_identity(&path, &seg.header, id)?;
                report.bytes_cut += repair.bytes_cut;
                report.open_segments += 1;
                cat.open.insert((seg.header.bucket_start_ms, seg.header.gen), Arc::new(seg));
            } else {
                changed = true;
            }
        }
        if changed {
            fsync_dir(&*io, &dir)?;
        }
        Ok((Self { id, dir, catalog: RwLock::new(cat), poisoned: Mutex::new(None), io, keys }, report))
    }

    /// The cipher a new segment `header` of this shard is encrypted with: the ring's active
    /// key, or none without a ring.
    pub fn new_cipher(&self, header: &SegmentHeader) -> Option<SegmentCipher> {
        self.keys
            .as_ref()
            .map(|k| SegmentCipher::new(k.clone(), k.active_id(), header.shard, header.bucket_start_ms, header.gen))
    }

    /// Read access to the catalogue (a panic elsewhere cannot leave it inconsistent: every
    /// update is a single map insert or removal).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access to the catalogue.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The poison cause, if any.
    pub fn poison_cause(&self) -> Option<String> {
        self.poisoned.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn check_identity(path: &Path, h: &SegmentHeader, shard: u32) -> Result<()> {
    if h.shard != shard {
        return Err(Error::corrupt(
            path,
            12,
            format!("segment of shard {} found in shard {shard}'s directory", h.shard),
        ));
    }
    Ok(())
}

fn remove(io: &dyn Io, path: &Path) -> Result<()> {
    io.remove_file(path).map_err(Error::io("remove", path))
}

/// fsync of a directory, so that creations, renames and removals in it are durable.
pub fn fsync_dir(io: &dyn Io, dir: &Path) -> Result<()> {
    io.sync_dir(dir).map_err(Error::io("fsync directory", dir))
}

/// Replaces `dir/name` with `bytes` atomically: written to `name.tmp`, fsynced, renamed over
/// `name`, then the directory fsynced. A crash leaves the old file or the new one, never a mix.
pub fn replace_file(io: &dyn Io, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let f = io.create(&tmp).map_err(Error::io("create", &tmp))?;
    f.write_all_at(bytes, 0).map_err(Error::io("write", &tmp))?;
    f.sync_all().map_err(Error::io("fsync", &tmp))?;
    drop(f);
    io.rename(&tmp, &path).map_err(Error::io("rename", &tmp))?;
    fsync_dir(io, dir)
}

/// The directory of shard `id` under the data directory `data`.
pub fn shard_dir(data: &Path, id: u32) -> PathBuf {
    data.join("log").join(format!("shard-{id:03}"))
}
