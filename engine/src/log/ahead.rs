//! Writing the journal's files ahead, on a thread of its own (docs/architecture.md, "Journal").
//!
//! A frame goes into space already written (zeros, or older frames) and synced, so that its
//! `fdatasync` flushes data blocks only. That space is prepared here, in steps from 1 MiB
//! doubling to 16 MiB, through a descriptor of this thread's own: the journal thread asks
//! for the next step once less than half a step is left past its frames, and waits only when
//! its frames catch up with the prepared space (a new journal's first frame; a burst larger
//! than a step).
//!
//! Its own descriptor, because Linux reports a failed writeback once per open file: a failed
//! sync of the zeros on the journal's descriptor could hide from the journal's next
//! `fdatasync` that a frame's pages were dropped. A failure here is kept: the journal fails
//! the appends that need more space than is prepared (and poisons itself, as for any failed
//! write), never those that fit in what is.

use super::journal::FILE_NAMES;
use super::shard::fsync_dir;
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::io::{AlignedBuf, IoFile, SharedIo, DIRECT_ALIGN};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A file of the journal is written ahead in steps of this size at least...
pub const STEP_MIN: u64 = 1 << 20;
/// ...doubling up to this.
pub const STEP_MAX: u64 = 16 << 20;

/// The next step after `prepared` bytes.
fn step(prepared: u64) -> u64 {
    prepared.clamp(STEP_MIN, STEP_MAX)
}

/// What the journal thread and the writing-ahead thread share.
#[derive(Debug)]
pub struct Ahead {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Debug)]
struct State {
    /// A file's size (`journal_file_bytes`): asked for beyond it only by a frame that ends
    /// past it.
    max: u64,
    /// Per file: bytes written ahead and synced.
    prepared: [u64; 2],
    /// Per file: bytes asked for (the thread writes while `want > prepared`).
    want: [u64; 2],
    /// The first failure; nothing more is written ahead after it.
    failed: Option<Error>,
    stop: bool,
}

impl Ahead {
    /// Files of `max` bytes, already `prepared` bytes long (a recovered journal's files; 0 for
    /// a new one).
    pub fn new(max: u64, prepared: [u64; 2]) -> Arc<Self> {
        let st = State { max, prepared, want: prepared, failed: None, stop: false };
        Arc::new(Self { state: Mutex::new(st), cv: Condvar::new() })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of `file` written ahead and synced.
    #[cfg(test)]
    fn prepared(&self, file: usize) -> u64 {
        self.lock().prepared[file]
    }

    /// Returns once `file` (which must exist) is written ahead up to `upto`, asking for the
    /// next step when less than half of one is left after it; the writing-ahead failure if it
    /// cannot be.
    pub fn ensure(&self, file: usize, upto: u64) -> Result<()> {
        let mut st = self.lock();
        loop {
            let p = st.prepared[file];
            if p >= upto {
                if p < st.max && p - upto < step(p) / 2 && st.want[file] <= p && st.failed.is_none() {
                    st.want[file] = p + 1;
                    self.cv.notify_all();
                }
                return Ok(());
            }
            if let Some(e) = &st.failed {
                return Err(e.duplicate());
            }
            if st.want[file] < upto {
                st.want[file] = upto;
                self.cv.notify_all();
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Ends the thread (after the step it is writing, if any).
    pub fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_all();
    }
}

/// Marks the writing ahead failed if its thread ends before [`Ahead::stop`] (a panic), so that
/// a journal waiting for space gets an error instead of waiting forever.
struct Exit<'a>(&'a Ahead);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        if !st.stop && st.failed.is_none() {
            st.failed = Some(Error::Poisoned { shard: 0, cause: "the journal's writing-ahead thread stopped".into() });
        }
        self.0.cv.notify_all();
    }
}

/// The writing-ahead thread: runs until [`Ahead::stop`].
pub fn run(ahead: &Ahead, io: SharedIo, dir: PathBuf, cfg: Arc<LogConfig>) {
    let _exit = Exit(ahead);
    let mut files: [Option<(Box<dyn IoFile>, bool)>; 2] = [None, None];
    let mut zeros = AlignedBuf::default();
    zeros.extend_from_slice(&vec![0u8; STEP_MIN as usize]);
    let max = cfg.journal_file_bytes;
    loop {
        let (file, from, want) = {
            let mut st = ahead.lock();
            loop {
                if st.stop {
                    return;
                }
                if st.failed.is_none() {
                    if let Some(f) = (0..2).find(|&f| st.want[f] > st.prepared[f]) {
                        break (f, st.prepared[f], st.want[f]);
                    }
                }
                st = ahead.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        let path = dir.join(FILE_NAMES[file]);
        let to = (from + step(from)).max(want).min(max.max(want));
        let r = write_step(&io, &cfg, &mut files[file], &path, &zeros, from, to).and_then(|to| {
            if from == 0 {
                // A new file: its directory entry is made durable with its first step.
                fsync_dir(&*io, &dir)?;
            }
            Ok(to)
        });
        let mut st = ahead.lock();
        match r {
            Ok(to) => st.prepared[file] = to,
            Err(e) => st.failed = Some(e),
        }
        ahead.cv.notify_all();
    }
}

/// Writes zeros from `from` to `to` (to whole blocks on a direct descriptor) and syncs them;
/// the new prepared length. Opens the file on first use, with direct I/O when the journal
/// uses it and the file's length allows.
fn write_step(
    io: &SharedIo,
    cfg: &LogConfig,
    slot: &mut Option<(Box<dyn IoFile>, bool)>,
    path: &std::path::Path,
    zeros: &AlignedBuf,
    from: u64,
    to: u64,
) -> Result<u64> {
    if slot.is_none() {
        let f = io.open_rw(path).map_err(Error::io("open", path))?;
        let direct = super::journal::try_direct(&*f, path, from, cfg);
        *slot = Some((f, direct));
    }
    let Some((f, direct)) = slot.as_ref() else { return Ok(from) };
    let to = if *direct { to.next_multiple_of(DIRECT_ALIGN as u64) } else { to };
    let mut at = from;
    while at < to {
        let n = zeros.len().min((to - at) as usize);
        f.write_all_at(&zeros.as_slice()[..n], at).map_err(Error::io("write ahead", path))?;
        at += n as u64;
    }
    // The size changed: `fsync`, so that the frames' `fdatasync`s have no metadata to commit.
    f.sync_all().map_err(Error::io("fsync", path))?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{FaultyIo, Io};

    #[test]
    fn steps_stay_within_the_file_and_a_failed_one_refuses_only_what_does_not_fit() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("journal");
        std::fs::create_dir_all(&dir).unwrap();
        let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), 1).unwrap());
        let cfg = Arc::new(LogConfig { journal_file_bytes: 3 << 20, ..LogConfig::default() });
        let path = dir.join(FILE_NAMES[0]);
        io.create(&path).unwrap();
        let ahead = Ahead::new(cfg.journal_file_bytes, [0, 0]);
        let t = {
            let (ahead, io, dir, cfg) = (ahead.clone(), io.clone() as SharedIo, dir.clone(), cfg.clone());
            std::thread::spawn(move || run(&ahead, io, dir, cfg))
        };
        let len = || std::fs::metadata(&path).unwrap().len();
        // The first frame waits for the first step; a frame past half of it asks for the next
        // one, and so on up to the file's size, never past it.
        ahead.ensure(0, 1000).unwrap();
        assert_eq!((ahead.prepared(0), len()), (1 << 20, 1 << 20));
        ahead.ensure(0, 3 << 20).unwrap();
        assert_eq!(ahead.prepared(0), 3 << 20);
        ahead.ensure(0, 3 << 20).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!((ahead.prepared(0), len()), (3 << 20, 3 << 20), "a full file asks for nothing more");
        // The other file fails its first step (the disk is full): a frame that fits in what
        // is prepared still goes, one that needs the space gets the failure, naming the file.
        io.create(&dir.join(FILE_NAMES[1])).unwrap();
        io.set_disk_full(true);
        let e = ahead.ensure(1, 10).unwrap_err().to_string();
        assert!(e.contains("write ahead") && e.contains(FILE_NAMES[1]) && e.contains("No space left"), "{e}");
        ahead.ensure(0, 2 << 20).unwrap();
        assert!(ahead.ensure(1, 10).is_err(), "a failure is kept");
        ahead.stop();
        t.join().unwrap();
    }

    #[test]
    fn a_thread_that_ends_unasked_fails_the_wait_instead_of_hanging_it() {
        let ahead = Ahead::new(4 << 20, [1 << 20, 0]);
        drop(Exit(&ahead));
        let e = ahead.ensure(1, 10).unwrap_err().to_string();
        assert!(e.contains("writing-ahead thread stopped"), "{e}");
        ahead.ensure(0, 1000).unwrap();
        // Asked to stop, it fails nothing.
        let calm = Ahead::new(4 << 20, [0, 0]);
        calm.stop();
        drop(Exit(&calm));
        assert!(calm.lock().failed.is_none());
    }
}
