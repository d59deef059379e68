//! [`FaultyIo`]: the real file system with faults injected on demand, for tests and fuzzing.
//!
//! It fails writes, fsyncs and renames, makes writes short, fills the disk, fails every
//! operation after a countdown, and simulates a power loss: it remembers what was made durable
//! (file lengths at their last fsync, directory changes at their directory's last fsync) and,
//! after [`FaultyIo::crash`], [`FaultyIo::power_loss`] turns the files on disk into one state
//! the disk could hold after the power went out:
//!
//! - in each directory, the creations, renames and removals since its last fsync survive as a
//!   prefix, in order; the rest is undone (a removed file comes back: removals move files to a
//!   trash directory until they are durable);
//! - in each file, the bytes written since its last fsync survive as a prefix, possibly
//!   followed by a zero-filled or garbage stretch up to a length the file reached (the size
//!   reached the disk before the data did), and the rest is gone;
//! - bytes rewritten inside a file's synced length since its last fsync (the journal writes
//!   into space written ahead) likewise survive as a prefix of the rewritten range, the rest
//!   of that range zeros or garbage (neither the old bytes nor the new). A rewrite's leading
//!   bytes that equal what the file holds are no change and are never at risk: a direct write
//!   rewrites the start of its first block as it is, as the page cache writes back a whole
//!   page around an append;
//! - a file switched to direct I/O ([`IoFile::set_direct`]) has no dirty pages to drop, and
//!   its partial and short writes land in whole blocks, as a real one's do;
//! - a failed fsync may drop the unsynced bytes at once (zeroes them), as Linux may drop the
//!   dirty pages it could not write, and the engine must never retry it.
//!
//! Every choice comes from the seed given, so a failing test reruns from its seed. Not
//! modelled: reordering of unsynced writes within one file (a later frame surviving an
//! earlier torn one), and shrinking truncations that are undone (truncation is treated as
//! durable at once; the engine only ever cuts bytes that were never acknowledged).
//!
//! Compiled in every build, never reachable from the daemon's configuration: the engine's
//! tests, the server's tests and the fuzz workspace all use it, and it costs nothing to a log
//! opened on [`super::OsIo`].

use super::{Io, IoFile, OsIo, SplitMix64};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// `ENOSPC` (Linux, and every other Unix portlog builds on).
const ENOSPC: i32 = 28;

/// What [`FaultyIo::power_loss`] did to the files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PowerLoss {
    /// Directory changes (creations, renames, removals) that were not durable and were undone.
    pub dir_ops_undone: usize,
    /// Directory changes kept although not yet durable.
    pub dir_ops_kept: usize,
    /// Files whose unsynced tail was cut or damaged.
    pub files_torn: usize,
    /// Unsynced bytes lost (cut, zeroed or garbled).
    pub bytes_lost: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    fail_writes: bool,
    fail_fsyncs: bool,
    fail_renames: bool,
    fail_writebacks: bool,
    short_writes: bool,
    disk_full: bool,
    countdown: Option<u64>,
    crashed: bool,
}

#[derive(Debug)]
struct Track {
    /// Where the file is now (`None`: removed for good or its creation undone).
    path: Option<PathBuf>,
    durable_len: u64,
    len: u64,
    /// Range rewritten below `durable_len` since the last fsync.
    rewritten: Option<(u64, u64)>,
}

#[derive(Debug)]
enum DirOp {
    Create { path: PathBuf, replaced: Option<PathBuf> },
    Rename { from: PathBuf, to: PathBuf, replaced: Option<PathBuf> },
    Remove { path: PathBuf, trash: PathBuf },
}

impl DirOp {
    fn dir(&self) -> PathBuf {
        let p = match self {
            DirOp::Create { path, .. } | DirOp::Remove { path, .. } => path,
            DirOp::Rename { to, .. } => to,
        };
        p.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

#[derive(Debug)]
struct State {
    faults: Faults,
    rng: SplitMix64,
    ops: u64,
    injected: u64,
    next_id: u64,
    files: HashMap<u64, Track>,
    dir_ops: Vec<DirOp>,
    trash_seq: u64,
    /// Writebacks started ([`IoFile::start_writeback`]); not counted as operations, and
    /// nothing becomes durable by them.
    writebacks: u64,
    /// Writes made on files switched to direct I/O ([`IoFile::set_direct`]).
    direct_writes: u64,
}

impl State {
    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in `0..=n`.
    fn upto(&mut self, n: u64) -> u64 {
        self.rng.upto(n)
    }

    /// Counts a mutating operation; the error to return if a fault applies to it.
    fn tick(&mut self, what: &str) -> io::Result<()> {
        if self.faults.crashed {
            return Err(io::Error::other(format!("simulated power loss: {what} refused")));
        }
        self.ops += 1;
        if let Some(n) = self.faults.countdown.as_mut() {
            if *n == 0 {
                self.injected += 1;
                return Err(io::Error::other(format!("injected I/O failure (countdown reached): {what}")));
            }
            *n -= 1;
        }
        Ok(())
    }

    fn injected(&mut self, msg: String) -> io::Error {
        self.injected += 1;
        io::Error::other(msg)
    }

    fn retarget(&mut self, from: &Path, to: Option<&Path>) {
        for t in self.files.values_mut() {
            if t.path.as_deref() == Some(from) {
                t.path = to.map(Path::to_path_buf);
            }
        }
    }
}

/// The real file system with injectable faults and a simulated power loss (module docs).
/// Share it as an `Arc<FaultyIo>`: the engine takes a clone as its [`super::SharedIo`], the test
/// keeps one to flip faults.
pub struct FaultyIo {
    state: Arc<Mutex<State>>,
    trash: PathBuf,
}

impl fmt::Debug for FaultyIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyIo").field("trash", &self.trash).finish()
    }
}

impl FaultyIo {
    /// A fault-free wrapper of the real file system. `trash` is a directory (created if
    /// missing) on the same file system as the data, outside the data directory, where removed
    /// files wait until their removal is durable; `seed` drives every random choice.
    pub fn new(trash: impl Into<PathBuf>, seed: u64) -> io::Result<Self> {
        let trash = trash.into();
        std::fs::create_dir_all(&trash)?;
        let state = State {
            faults: Faults::default(),
            rng: SplitMix64::new(seed),
            ops: 0,
            injected: 0,
            next_id: 0,
            files: HashMap::new(),
            dir_ops: Vec::new(),
            trash_seq: 0,
            writebacks: 0,
            direct_writes: 0,
        };
        Ok(Self { state: Arc::new(Mutex::new(state)), trash })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every write fails (`EIO`), after writing a random prefix of its bytes.
    pub fn set_fail_writes(&self, on: bool) {
        self.lock().faults.fail_writes = on;
    }

    /// Every fsync (files and directories) fails (`EIO`); a file's unsynced bytes may be
    /// dropped at once.
    pub fn set_fail_fsyncs(&self, on: bool) {
        self.lock().faults.fail_fsyncs = on;
    }

    /// Every rename fails (`EIO`).
    pub fn set_fail_renames(&self, on: bool) {
        self.lock().faults.fail_renames = on;
    }

    /// Every start of a writeback ([`IoFile::start_writeback`]) fails (`EIO`).
    pub fn set_fail_writebacks(&self, on: bool) {
        self.lock().faults.fail_writebacks = on;
    }

    /// Writes write a random part of their bytes (at least one).
    pub fn set_short_writes(&self, on: bool) {
        self.lock().faults.short_writes = on;
    }

    /// The disk is full: a write that would grow a file fails with `ENOSPC` (rewriting bytes
    /// inside a file, truncating, renaming and removing still work).
    pub fn set_disk_full(&self, on: bool) {
        self.lock().faults.disk_full = on;
    }

    /// After `n` more operations that change the disk, every such operation fails (`EIO`)
    /// until this is set to `None`.
    pub fn set_fail_after(&self, n: Option<u64>) {
        self.lock().faults.countdown = n;
    }

    /// Clears every fault (not a crash: see [`FaultyIo::power_loss`]).
    pub fn heal(&self) {
        let mut s = self.lock();
        let crashed = s.faults.crashed;
        s.faults = Faults { crashed, ..Faults::default() };
    }

    /// Operations that changed (or tried to change) the disk so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Writebacks started so far ([`IoFile::start_writeback`]).
    pub fn writebacks(&self) -> u64 {
        self.lock().writebacks
    }

    /// Writes made so far on files switched to direct I/O ([`IoFile::set_direct`]).
    pub fn direct_writes(&self) -> u64 {
        self.lock().direct_writes
    }

    /// Faults injected so far (failed operations, dropped pages).
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// The process stopped but the machine did not: everything written reaches the disk in
    /// time (the page cache is flushed), so every change so far counts as durable and a later
    /// [`FaultyIo::power_loss`] undoes only what comes after. Faults stay as they are.
    pub fn settle(&self) {
        let mut s = self.lock();
        for op in std::mem::take(&mut s.dir_ops) {
            finish(&op);
        }
        s.files.clear();
    }

    /// The power goes out: from now on every operation that changes the disk fails. Close or
    /// drop the engine, then call [`FaultyIo::power_loss`].
    pub fn crash(&self) {
        self.lock().faults.crashed = true;
    }

    /// Turns the files on disk into a state the disk could hold after the power went out (the
    /// module docs), then forgets every fault and all tracking, ready for the next open. Call it
    /// once nothing uses the files (the engine closed or dropped).
    pub fn power_loss(&self) -> io::Result<PowerLoss> {
        let mut s = self.lock();
        let mut report = PowerLoss::default();
        // Directory changes: per directory, a prefix survives; undo the rest, newest first.
        let ops = std::mem::take(&mut s.dir_ops);
        let mut dirs: Vec<PathBuf> = ops.iter().map(DirOp::dir).collect();
        dirs.sort();
        dirs.dedup();
        let mut keep: HashMap<PathBuf, usize> = HashMap::new();
        for d in dirs {
            let n = ops.iter().filter(|o| o.dir() == d).count() as u64;
            let k = s.upto(n) as usize;
            keep.insert(d, k);
        }
        let mut seen: HashMap<PathBuf, usize> = HashMap::new();
        let mut undo = Vec::new();
        for op in ops {
            let d = op.dir();
            let i = seen.entry(d.clone()).or_insert(0);
            if *i < keep[&d] {
                report.dir_ops_kept += 1;
                finish(&op);
            } else {
                undo.push(op);
            }
            *i += 1;
        }
        for op in undo.into_iter().rev() {
            report.dir_ops_undone += 1;
            match op {
                DirOp::Create { path, replaced } => {
                    remove_if_exists(&path)?;
                    s.retarget(&path, None);
                    if let Some(r) = replaced {
                        std::fs::rename(&r, &path)?;
                    }
                }
                DirOp::Rename { from, to, replaced } => {
                    std::fs::rename(&to, &from)?;
                    s.retarget(&to, Some(&from));
                    if let Some(r) = replaced {
                        std::fs::rename(&r, &to)?;
                    }
                }
                DirOp::Remove { path, trash } => {
                    std::fs::rename(&trash, &path)?;
                    s.retarget(&trash, Some(&path));
                }
            }
        }
        // Rewritten ranges: a prefix survives, then zeros or garbage to the range's end.
        let rewritten: Vec<(PathBuf, u64, u64)> = s
            .files
            .values()
            .filter_map(|t| t.path.clone().zip(t.rewritten).map(|(p, (a, b))| (p, a, b)))
            .filter(|(p, _, _)| !p.starts_with(&self.trash))
            .collect();
        for (path, from, to) in rewritten {
            let keep = match s.upto(3) {
                0 => to,
                1 => from,
                _ => from + s.upto(to - from),
            };
            if keep == to || !path.exists() {
                continue;
            }
            let mut junk = vec![0u8; (to - keep) as usize];
            if s.upto(1) == 1 {
                for b in junk.iter_mut() {
                    *b = s.next_u64() as u8;
                }
            }
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            std::os::unix::fs::FileExt::write_all_at(&f, &junk, keep)?;
            f.sync_all()?;
            report.files_torn += 1;
            report.bytes_lost += to - keep;
        }
        // File contents: the unsynced tail survives as a prefix, then zeros or garbage.
        let files: Vec<(PathBuf, u64, u64)> = s
            .files
            .values()
            .filter_map(|t| t.path.clone().map(|p| (p, t.durable_len, t.len)))
            .filter(|(_, d, l)| l > d)
            .collect();
        for (path, durable, _) in files {
            if path.starts_with(&self.trash) {
                continue;
            }
            let actual = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if actual <= durable {
                continue;
            }
            let unsynced = actual - durable;
            // A quarter of the time all of it survives, a quarter none, else a random cut.
            let len = match s.upto(3) {
                0 => actual,
                1 => durable,
                _ => durable + s.upto(unsynced),
            };
            let data_to = durable + s.upto(len - durable);
            let garbage = s.upto(1) == 1;
            let f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.set_len(len)?;
            if data_to < len {
                let mut junk = vec![0u8; (len - data_to) as usize];
                if garbage {
                    for b in junk.iter_mut() {
                        *b = s.next_u64() as u8;
                    }
                }
                std::os::unix::fs::FileExt::write_all_at(&f, &junk, data_to)?;
            }
            f.sync_all()?;
            report.files_torn += 1;
            report.bytes_lost += actual - data_to;
        }
        s.files.clear();
        s.faults = Faults::default();
        Ok(report)
    }

    /// The tracking of `path`: shared with the other handles open on it (what was synced
    /// through one is synced for all, as on a real disk), or new, `len` bytes long and all of
    /// them durable.
    fn track(&self, path: &Path, len: u64) -> u64 {
        let mut s = self.lock();
        if let Some((&id, _)) = s.files.iter().find(|(_, t)| t.path.as_deref() == Some(path)) {
            return id;
        }
        let id = s.next_id;
        s.next_id += 1;
        s.files.insert(id, Track { path: Some(path.to_path_buf()), durable_len: len, len, rewritten: None });
        id
    }

    /// Moves an existing `path` to the trash (so that undoing can bring it back).
    fn to_trash(&self, s: &mut State, path: &Path) -> io::Result<Option<PathBuf>> {
        if !path.exists() {
            return Ok(None);
        }
        s.trash_seq += 1;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let t = self.trash.join(format!("{:08}-{name}", s.trash_seq));
        std::fs::rename(path, &t)?;
        s.retarget(path, Some(&t));
        Ok(Some(t))
    }

    fn file(&self, path: &Path, inner: Box<dyn IoFile>, len: u64) -> Box<dyn IoFile> {
        let id = self.track(path, len);
        Box::new(FaultyFile { inner, id, state: self.state.clone(), direct: false.into() })
    }
}

/// Makes a kept directory change final: the trash it held is deleted.
fn finish(op: &DirOp) {
    let trash = match op {
        DirOp::Create { replaced, .. } | DirOp::Rename { replaced, .. } => replaced.as_ref(),
        DirOp::Remove { trash, .. } => Some(trash),
    };
    if let Some(t) = trash {
        let _ = std::fs::remove_file(t);
    }
}

/// How many leading bytes of `buf` the file at `path` already holds at `off` (read through a
/// plain descriptor, which a direct one may not allow).
fn unchanged_prefix(path: Option<&Path>, buf: &[u8], off: u64) -> usize {
    let Some(Ok(f)) = path.map(std::fs::File::open) else { return 0 };
    let mut old = vec![0u8; buf.len()];
    let got = std::os::unix::fs::FileExt::read_at(&f, &mut old, off).unwrap_or(0);
    old[..got].iter().zip(buf).take_while(|(a, b)| a == b).count()
}

fn remove_if_exists(p: &Path) -> io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Io for FaultyIo {
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        self.lock().tick("create")?;
        let f = OsIo.create_new(path)?;
        self.lock().dir_ops.push(DirOp::Create { path: path.to_path_buf(), replaced: None });
        Ok(self.file(path, f, 0))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        let replaced = {
            let mut s = self.lock();
            s.tick("create")?;
            self.to_trash(&mut s, path)?
        };
        let f = OsIo.create(path)?;
        self.lock().dir_ops.push(DirOp::Create { path: path.to_path_buf(), replaced });
        Ok(self.file(path, f, 0))
    }

    fn open_rw(&self, path: &Path) -> io::Result<Box<dyn IoFile>> {
        let f = OsIo.open_rw(path)?;
        let len = f.len()?;
        Ok(self.file(path, f, len))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick("rename")?;
        if s.faults.fail_renames {
            return Err(s.injected(format!("injected rename failure: {}", from.display())));
        }
        if from.parent() != to.parent() {
            return Err(io::Error::other("FaultyIo: renames across directories are not modelled"));
        }
        let replaced = self.to_trash(&mut s, to)?;
        std::fs::rename(from, to)?;
        s.retarget(from, Some(to));
        s.dir_ops.push(DirOp::Rename { from: from.to_path_buf(), to: to.to_path_buf(), replaced });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick("remove")?;
        if !path.exists() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display())));
        }
        if let Some(trash) = self.to_trash(&mut s, path)? {
            s.dir_ops.push(DirOp::Remove { path: path.to_path_buf(), trash });
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.tick("fsync directory")?;
        if s.faults.fail_fsyncs {
            return Err(s.injected(format!("injected fsync failure: directory {}", dir.display())));
        }
        OsIo.sync_dir(dir)?;
        let ops = std::mem::take(&mut s.dir_ops);
        for op in ops {
            if op.dir() == dir {
                finish(&op);
            } else {
                s.dir_ops.push(op);
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn IoFile>,
    id: u64,
    state: Arc<Mutex<State>>,
    /// Switched to direct I/O ([`IoFile::set_direct`]): partial writes land in whole blocks.
    direct: std::sync::atomic::AtomicBool,
}

impl FaultyFile {
    fn is_direct(&self) -> bool {
        self.direct.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `n` bytes of a partial write, cut to whole blocks on a direct file (as a real one
    /// lands).
    fn partial(&self, n: usize) -> usize {
        if self.is_direct() {
            n - n % super::DIRECT_ALIGN
        } else {
            n
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sync(&self, data_only: bool) -> io::Result<()> {
        let mut s = self.lock();
        s.tick("fsync")?;
        if s.faults.fail_fsyncs {
            // Linux may drop the dirty pages it failed to write: half the time, they are gone.
            // A direct file has none: its writes reached the device, and reads still see them.
            if !self.is_direct() && s.upto(1) == 1 {
                if let Some(t) = s.files.get(&self.id) {
                    let (from, to) = (t.durable_len, t.len);
                    if to > from {
                        let zeros = vec![0u8; (to - from) as usize];
                        let _ = self.inner.write_all_at(&zeros, from);
                    }
                    if let Some((a, b)) = t.rewritten {
                        let _ = self.inner.write_all_at(&vec![0u8; (b - a) as usize], a);
                    }
                }
            }
            return Err(s.injected("injected fsync failure".to_string()));
        }
        if data_only {
            self.inner.sync_data()?;
        } else {
            self.inner.sync_all()?;
        }
        if let Some(t) = s.files.get_mut(&self.id) {
            t.durable_len = t.len;
            t.rewritten = None;
        }
        Ok(())
    }
}

impl IoFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        self.inner.read_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<usize> {
        let mut s = self.lock();
        if let Err(e) = s.tick("write") {
            // The countdown's write lands partly before failing, as a real failure may.
            if !s.faults.crashed && !buf.is_empty() {
                let n = self.partial(s.upto(buf.len() as u64 - 1) as usize);
                self.note_write(&mut s, &buf[..n], off)?;
            }
            return Err(e);
        }
        let len = s.files.get(&self.id).map_or(0, |t| t.len);
        if s.faults.disk_full && off + buf.len() as u64 > len {
            s.injected += 1;
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        if s.faults.fail_writes {
            let n = self.partial(s.upto(buf.len().saturating_sub(1) as u64) as usize);
            self.note_write(&mut s, &buf[..n], off)?;
            return Err(s.injected("injected write failure".to_string()));
        }
        let n = if s.faults.short_writes && buf.len() > 1 {
            // A short direct write is still whole blocks, at least one.
            let n = 1 + s.upto(buf.len() as u64 - 2) as usize;
            self.partial(n).max(super::DIRECT_ALIGN.min(buf.len()))
        } else {
            buf.len()
        };
        self.note_write(&mut s, &buf[..n], off)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        s.tick("truncate")?;
        self.inner.set_len(len)?;
        if let Some(t) = s.files.get_mut(&self.id) {
            t.len = len;
            t.durable_len = t.durable_len.min(len);
            t.rewritten = t.rewritten.map(|(a, b)| (a.min(len), b.min(len))).filter(|(a, b)| a < b);
        }
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(false)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(true)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_direct(&self) -> io::Result<()> {
        self.inner.set_direct()?;
        self.direct.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn start_writeback(&self, off: u64, len: u64) -> io::Result<()> {
        let mut s = self.lock();
        if s.faults.crashed {
            return Err(io::Error::other("simulated power loss: writeback refused"));
        }
        if s.faults.fail_writebacks {
            return Err(s.injected("injected writeback failure".to_string()));
        }
        s.writebacks += 1;
        // Durability is unchanged: only a sync moves `durable_len`.
        self.inner.start_writeback(off, len)
    }
}

impl FaultyFile {
    fn note_write(&self, s: &mut State, buf: &[u8], off: u64) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Bytes rewritten with the value they hold are no change: a direct write rewrites the
        // start of its first block as it is (as the page cache writes a whole page).
        let same = match s.files.get(&self.id) {
            Some(t) if off < t.durable_len => {
                let n = ((t.durable_len - off) as usize).min(buf.len());
                unchanged_prefix(t.path.as_deref(), &buf[..n], off)
            }
            _ => 0,
        };
        let n = self.inner.write_at(buf, off)?;
        if self.is_direct() {
            s.direct_writes += 1;
        }
        if let Some(t) = s.files.get_mut(&self.id) {
            let changed = off + same.min(n) as u64;
            if changed < t.durable_len {
                let end = (off + n as u64).min(t.durable_len);
                t.rewritten = Some(t.rewritten.map_or((changed, end), |(a, b)| (a.min(changed), b.max(end))));
            }
            t.len = t.len.max(off + n as u64);
        }
        Ok(n)
    }
}
