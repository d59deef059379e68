//! The open segment of a (shard, bucket, generation): an append-only file of checksummed
//! group-commit frames, plus an in-memory index of the rows it holds so that reads need no scan.
//! Only the shard's writer thread appends; readers see a row once its frame is durable.

use super::chunked::Chunked;
use super::frame::{self, FrameError, SegmentHeader, HEADER_LEN, OPEN_MAGIC};
use super::lastrow::LastRow;
use crate::crypto::{KeyRing, SegmentCipher};
use crate::error::{Error, Result};
use crate::io::{Io, IoFile};
use crate::record::Record;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Largest frame payload accepted when reading back (above any configurable batch).
pub const FRAME_PAYLOAD_MAX: usize = 300 << 20;

/// Where one row lives in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    /// Record time, for ordering and pruning.
    pub ts_ms: i64,
    /// File offset of the row header.
    pub off: u64,
    /// Row length including its header.
    pub len: u32,
}

/// No row: the end of a chain in [`OpenIndex`].
const NO_ROW: u32 = u32::MAX;

/// Index of the durable rows of an open segment. The rows of a sub-port (and of a number) form
/// a chain from the last one back through `prev`: adding a row is two map updates and one push,
/// with no allocation per key (a `Vec` of positions per number cost a `malloc` for nearly every
/// new number, and with SipHash the index was the writers' largest cost in a profile of
/// 8-thread appends). The maps are [`LastRow`]s, split in parts, and the rows [`Chunked`], so
/// that growing never stalls an append for long. Readers sort what they pick, so a chain's
/// newest-first order is fine.
#[derive(Debug, Default)]
pub struct OpenIndex {
    /// Rows in arrival order.
    pub rows: Chunked<RowRef>,
    /// For each row, the row before it of the same sub-port and of the same number
    /// ([`NO_ROW`]: none).
    prev: Chunked<(u32, u32)>,
    /// The last row of each sub-port: the head of its chain.
    last_of_sub_port: LastRow<Box<str>>,
    /// The last row of each number: the head of its chain.
    last_of_peer: LastRow<u64>,
    /// Smallest record time.
    pub min_ts_ms: i64,
    /// Largest record time.
    pub max_ts_ms: i64,
}

impl OpenIndex {
    /// Adds a durable row: the writer's part of [`OpenSegment::publish`] (and of recovery);
    /// public for `portlog-index-bench`.
    pub fn add(&mut self, r: &Record, row: RowRef) {
        let i = self.rows.len() as u32;
        if self.rows.is_empty() {
            (self.min_ts_ms, self.max_ts_ms) = (r.ts_ms, r.ts_ms);
        } else {
            self.min_ts_ms = self.min_ts_ms.min(r.ts_ms);
            self.max_ts_ms = self.max_ts_ms.max(r.ts_ms);
        }
        self.rows.push(row);
        // A known sub-port (the common case) allocates nothing.
        let s = r.sub_port.as_str();
        let prev_sub_port = self.last_of_sub_port.replace(s, i, || s.into()).unwrap_or(NO_ROW);
        let prev_peer = self.last_of_peer.insert(r.peer.as_u64(), i).unwrap_or(NO_ROW);
        self.prev.push((prev_sub_port, prev_peer));
    }

    /// The rows of sub-port `s`, newest first.
    pub fn rows_of_sub_port(&self, s: &str) -> Vec<RowRef> {
        self.chain(self.last_of_sub_port.get(s), |(sub_port, _)| sub_port)
    }

    /// The rows of number `peer` (its `u64` form), newest first.
    pub fn rows_of_peer(&self, peer: u64) -> Vec<RowRef> {
        self.chain(self.last_of_peer.get(&peer), |(_, peer)| peer)
    }

    fn chain(&self, head: Option<u32>, link: impl Fn((u32, u32)) -> u32) -> Vec<RowRef> {
        let mut out = Vec::new();
        let mut at = head.unwrap_or(NO_ROW);
        while let (Some(&row), Some(&prev)) = (self.rows.get(at as usize), self.prev.get(at as usize)) {
            out.push(row);
            // Links always point back (a row's predecessor was added before it), so the walk
            // ends; the check keeps a damaged index from looping.
            let next = link(prev);
            if next >= at {
                break;
            }
            at = next;
        }
        out
    }
}

/// An open segment file and its index.
#[derive(Debug)]
pub struct OpenSegment {
    path: PathBuf,
    /// Identity from the header.
    pub header: SegmentHeader,
    file: Box<dyn IoFile>,
    /// The segment's cipher when its rows are encrypted (header version 2).
    cipher: Option<SegmentCipher>,
    /// Bytes written (by the writer; the durable length once the batch's sync returned).
    written: AtomicU64,
    /// Engine-clock time of the last append, for idle sealing.
    pub last_write_ms: AtomicI64,
    /// The length known durable: at the last successful fsync (the header's, at creation).
    synced: AtomicU64,
    /// The length whose writeback was started ([`OpenSegment::start_writeback`]).
    written_back: AtomicU64,
    /// An fsync of this file failed: the kernel may have dropped its unsynced pages, so rows
    /// past `synced` may read back as zeros or old bytes until a reopen replays them from the
    /// journal. Never cleared: a failed fsync is never retried.
    sync_failed: AtomicBool,
    index: RwLock<OpenIndex>,
}

/// What recovery found in an open segment's file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TailRepair {
    /// Bytes cut from the end (a torn or corrupt last frame).
    pub bytes_cut: u64,
}

impl OpenSegment {
    /// Creates a new, empty open segment; the file and its directory entry are durable when
    /// this returns.
    pub fn create(io: &dyn Io, path: &Path, header: SegmentHeader, now_ms: i64) -> Result<Self> {
        Self::create_with(io, path, header, now_ms, None)
    }

    /// [`OpenSegment::create`], its rows encrypted by `cipher` when given (the header names the
    /// cipher's key).
    pub fn create_with(
        io: &dyn Io,
        path: &Path,
        header: SegmentHeader,
        now_ms: i64,
        cipher: Option<SegmentCipher>,
    ) -> Result<Self> {
        let file = io.create_new(path).map_err(Error::io("create", path))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let made = file
            .write_all_at(&header.encode_keyed(OPEN_MAGIC, cipher.as_ref().map(|c| c.key_id)), 0)
            .map_err(Error::io("write", path))
            .and_then(|()| file.sync_all().map_err(Error::io("fsync", path)))
            .and_then(|()| io.sync_dir(dir).map_err(Error::io("fsync directory", dir)));
        if let Err(e) = made {
            // Nothing in it was acknowledged: remove it so that the next append to this bucket
            // can create the same generation again (recovery would remove it too).
            drop(file);
            let _ = io.remove_file(path);
            return Err(e);
        }
        Ok(Self {
            path: path.to_owned(),
            header,
            file,
            cipher,
            written: AtomicU64::new(HEADER_LEN as u64),
            last_write_ms: AtomicI64::new(now_ms),
            synced: AtomicU64::new(HEADER_LEN as u64),
            written_back: AtomicU64::new(HEADER_LEN as u64),
            sync_failed: AtomicBool::new(false),
            index: RwLock::new(OpenIndex::default()),
        })
    }

    /// Recovers an open segment after a restart or crash: verifies every frame, cuts a torn or
    /// corrupt tail, and rebuilds the index. Returns `None` (and deletes the file) when the file
    /// holds nothing that was ever acknowledged (a crash while it was being created). Damage
    /// followed by valid frames is not a torn tail: it is reported as corruption, never cut.
    pub fn recover(io: &dyn Io, path: &Path, now_ms: i64) -> Result<Option<(Self, TailRepair)>> {
        Self::recover_with(io, path, now_ms, None)
    }

    /// [`OpenSegment::recover`] with the key ring that decrypts an encrypted segment's rows
    /// (needed to rebuild its index). An encrypted segment whose key is not in `keys` (or with
    /// no ring) is refused with [`Error::KeyMissing`] naming the file and the key id.
    pub fn recover_with(
        io: &dyn Io,
        path: &Path,
        now_ms: i64,
        keys: Option<&Arc<KeyRing>>,
    ) -> Result<Option<(Self, TailRepair)>> {
        let file = io.open_rw(path).map_err(Error::io("open", path))?;
        let buf = file.read_all().map_err(Error::io("read", path))?;
        let (header, key_id) = match SegmentHeader::decode_keyed(&buf, OPEN_MAGIC) {
            Ok(h) => h,
            Err(d) => {
                if first_valid_frame(&buf, 0).is_some() {
                    return Err(Error::corrupt(path, 0, format!("damaged header ({d}) before valid frames")));
                }
                // The header is written and synced before any frame: nothing here was acknowledged.
                tracing::warn!(path = %path.display(), "removing an open segment whose creation never completed");
                drop(file);
                io.remove_file(path).map_err(Error::io("remove", path))?;
                return Ok(None);
            }
        };
        let cipher = match key_id {
            None => None,
            Some(k) => match keys.filter(|r| r.has(k)) {
                Some(r) => Some(SegmentCipher::new(r.clone(), k, header.shard, header.bucket_start_ms, header.gen)),
                None => return Err(Error::key_missing(path, k, keys.map(|r| &**r))),
            },
        };
        let mut index = OpenIndex::default();
        let mut pos = HEADER_LEN;
        while pos < buf.len() {
            let f = match frame::read_frame(&buf[pos..], FRAME_PAYLOAD_MAX) {
                Ok(f) => f,
                Err(e) => {
                    if let Some(at) = first_valid_frame(&buf, pos + 1) {
                        return Err(Error::corrupt(
                            path,
                            pos as u64,
                            format!("damaged frame ({e:?}) followed by a valid frame at offset {at}; refusing to cut acknowledged data"),
                        ));
                    }
                    break;
                }
            };
            let rows_at = pos + frame::FRAME_HEADER_LEN + 4;
            let rows = frame::frame_rows(&f).map_err(|d| Error::corrupt(path, pos as u64, d))?;
            for (off, body) in rows {
                let at = (rows_at + off) as u64;
                let plain = frame::plain_body(body, cipher.as_ref(), at)
                    .map_err(|e| Error::crypto(path, at, "row", keys.map(|r| &**r), e))?;
                let rec = frame::decode_row_body(&plain).map_err(|d| Error::corrupt(path, at, d))?;
                let row = RowRef {
                    ts_ms: rec.ts_ms,
                    off: (rows_at + off) as u64,
                    len: (frame::ROW_HEADER_LEN + body.len()) as u32,
                };
                index.add(&rec, row);
            }
            pos += f.len;
        }
        let repair = TailRepair { bytes_cut: (buf.len() - pos) as u64 };
        // What was read may be page cache only (the process crashed, the machine did not):
        // durable for sure only once synced here or later.
        let mut synced = HEADER_LEN as u64;
        if repair.bytes_cut > 0 {
            tracing::warn!(path = %path.display(), offset = pos, bytes_cut = repair.bytes_cut, "cutting a torn tail");
            file.set_len(pos as u64).map_err(Error::io("truncate", path))?;
            file.sync_all().map_err(Error::io("fsync", path))?;
            synced = pos as u64;
        }
        Ok(Some((
            Self {
                path: path.to_owned(),
                header,
                file,
                cipher,
                written: AtomicU64::new(pos as u64),
                last_write_ms: AtomicI64::new(now_ms),
                synced: AtomicU64::new(synced),
                written_back: AtomicU64::new(pos as u64),
                sync_failed: AtomicBool::new(false),
                index: RwLock::new(index),
            },
            repair,
        )))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cipher of an encrypted segment (`None`: plaintext rows).
    pub fn cipher(&self) -> Option<&SegmentCipher> {
        self.cipher.as_ref()
    }

    /// Bytes in the file.
    pub fn bytes(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Number of durable rows.
    pub fn rows(&self) -> usize {
        self.read_index().rows.len()
    }

    /// Read access to the index.
    pub fn read_index(&self) -> std::sync::RwLockReadGuard<'_, OpenIndex> {
        // A panic while holding the lock cannot leave the index half-updated (`add` pushes in
        // an order that keeps it consistent), so a poisoned lock is still safe to read.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Writer only: appends `frame` at the end. Returns the offset it was written at.
    pub fn write_frame(&self, frame: &[u8]) -> Result<u64> {
        let at = self.written.load(Ordering::Acquire);
        if let Err(e) = self.file.write_all_at(frame, at) {
            // Cut whatever part was written so the next frame starts at a clean boundary.
            self.file.set_len(at).map_err(Error::io("truncate after failed write", &self.path))?;
            return Err(Error::io("write", &self.path)(e));
        }
        self.written.store(at + frame.len() as u64, Ordering::Release);
        Ok(at)
    }

    /// Writer only: undoes frames written since `len` (after a failure elsewhere in the batch).
    pub fn rollback_to(&self, len: u64) -> Result<()> {
        self.file.set_len(len).map_err(Error::io("truncate", &self.path))?;
        self.written.store(len, Ordering::Release);
        self.written_back.fetch_min(len, Ordering::AcqRel);
        Ok(())
    }

    /// Writer only: once `step` bytes or more were written since the last call that acted,
    /// starts their writeback to the disk ([`crate::io::IoFile::start_writeback`]); nothing
    /// becomes durable by it. `step` 0: never.
    pub fn start_writeback(&self, step: u64) -> Result<()> {
        let len = self.written.load(Ordering::Acquire);
        let from = self.written_back.load(Ordering::Acquire);
        if step == 0 || len < from.saturating_add(step) {
            return Ok(());
        }
        self.file.start_writeback(from, len - from).map_err(Error::io("start writeback of", &self.path))?;
        self.written_back.store(len, Ordering::Release);
        Ok(())
    }

    /// Writer only: makes the written frames durable. After a failure, rows not yet synced
    /// are no longer read from the file ([`OpenSegment::read_row`]).
    pub fn sync(&self, full: bool) -> Result<()> {
        let len = self.written.load(Ordering::Acquire);
        let done = if full {
            self.file.sync_all().map_err(Error::io("fsync", &self.path))
        } else {
            self.file.sync_data().map_err(Error::io("fdatasync", &self.path))
        };
        match done {
            Ok(()) => {
                self.synced.fetch_max(len, Ordering::AcqRel);
            }
            Err(_) => self.sync_failed.store(true, Ordering::Release),
        }
        done
    }

    /// Writer only: makes durable rows visible to readers. `rows` are `(record, offset of its
    /// row header)`.
    pub fn publish<'a>(&self, rows: impl Iterator<Item = (&'a Record, u64, u32)>, now_ms: i64) {
        let mut ix = self.index.write().unwrap_or_else(|e| e.into_inner());
        for (r, off, len) in rows {
            ix.add(r, RowRef { ts_ms: r.ts_ms, off, len });
        }
        self.last_write_ms.store(now_ms, Ordering::Release);
    }

    /// Reads and verifies one row. A row that was not yet synced when an fsync of this file
    /// failed is refused with [`Error::Poisoned`]: the kernel may have dropped its page, and
    /// what the file gives back there is not the row (the journal holds it; a reopen replays it).
    pub fn read_row(&self, row: RowRef) -> Result<Record> {
        self.check_synced(row)?;
        let mut buf = vec![0u8; row.len as usize];
        self.file.read_exact_at(&mut buf, row.off).map_err(Error::io("read", &self.path))?;
        // An fsync failing while the row was read is seen here, not as corruption.
        let damaged = |d| self.check_synced(row).err().unwrap_or_else(|| Error::corrupt(&self.path, row.off, d));
        let (body, _) = frame::split_row(&buf).map_err(damaged)?;
        let plain = frame::plain_body(body, self.cipher.as_ref(), row.off)
            .map_err(|e| Error::crypto(&self.path, row.off, "row", None, e))?;
        frame::decode_row_body(&plain).map_err(damaged)
    }

    /// `Err(Poisoned)` for a row past the last good fsync of a file whose fsync failed.
    fn check_synced(&self, row: RowRef) -> Result<()> {
        if !self.sync_failed.load(Ordering::Acquire)
            || row.off + u64::from(row.len) <= self.synced.load(Ordering::Acquire)
        {
            return Ok(());
        }
        Err(Error::Poisoned {
            shard: self.header.shard,
            cause: format!(
                "an fsync of {} failed, so its rows written since the last good fsync are not read from it; the journal holds the acknowledged ones and a reopen replays them",
                self.path.display()
            ),
        })
    }
}

/// Offset of the first position at or after `from` where a complete, valid frame starts.
fn first_valid_frame(buf: &[u8], from: usize) -> Option<usize> {
    let magic = frame::FRAME_MAGIC.to_le_bytes();
    let mut i = from;
    while i + frame::FRAME_HEADER_LEN <= buf.len() {
        if buf[i..i + 4] == magic
            && !matches!(
                frame::read_frame(&buf[i..], FRAME_PAYLOAD_MAX),
                Err(FrameError::Bad(_) | FrameError::Truncated)
            )
        {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Direction, PhoneNumber, SubPort, Usage};
    use proptest::prelude::*;

    fn rec(sub_port: u8, peer: u8, ts_ms: i64) -> Record {
        Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse(&format!("106901234{sub_port:03}")).unwrap(),
            peer: PhoneNumber::from_u64(13_800_000_000 + u64::from(peer)).unwrap(),
            ts_ms,
            usage: Some(Usage::Service),
            text: String::new(),
        }
    }

    proptest! {
        /// The chains give each sub-port's and each number's rows exactly: the same sets as a
        /// plain filter over the rows, newest first.
        #[test]
        fn chains_hold_exactly_each_keys_rows(adds in proptest::collection::vec((0u8..6, 0u8..9, 0i64..1_000), 0..200)) {
            let mut ix = OpenIndex::default();
            let mut all = Vec::new();
            for (i, &(sp, peer, ts)) in adds.iter().enumerate() {
                let r = rec(sp, peer, ts);
                let row = RowRef { ts_ms: ts, off: i as u64 * 100, len: 100 };
                ix.add(&r, row);
                all.push((r, row));
            }
            prop_assert_eq!(ix.rows.len(), adds.len());
            for sp in 0u8..7 {
                let name = rec(sp, 0, 0).sub_port;
                let want: Vec<RowRef> = all.iter().rev().filter(|(r, _)| r.sub_port == name).map(|&(_, row)| row).collect();
                prop_assert_eq!(ix.rows_of_sub_port(name.as_str()), want);
            }
            for peer in 0u8..10 {
                let n = rec(0, peer, 0).peer;
                let want: Vec<RowRef> = all.iter().rev().filter(|(r, _)| r.peer == n).map(|&(_, row)| row).collect();
                prop_assert_eq!(ix.rows_of_peer(n.as_u64()), want);
            }
            if let (Some(min), Some(max)) = (adds.iter().map(|a| a.2).min(), adds.iter().map(|a| a.2).max()) {
                prop_assert_eq!((ix.min_ts_ms, ix.max_ts_ms), (min, max));
            }
        }
    }
}
