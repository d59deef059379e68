//! The journal: one write-ahead log shared by every shard, so that a group of appends is
//! durable after one write and one `fdatasync`, however many shards it touches
//! (docs/architecture.md, "Journal"; docs/format.md, "Journal").
//!
//! * The journal thread gathers the queued appends into one frame with the next log sequence
//!   number (LSN), hands each shard its records (tagged with the LSN), then writes the frame
//!   and `fdatasync`s it, and publishes the LSN as durable. Shard writers write their rows to
//!   their open segments in the meantime, without syncing them, wait until the LSN is durable,
//!   then publish the rows and acknowledge.
//! * The journal lives in two fixed-size files, written ahead with zeros and synced (by a
//!   thread of its own, `ahead.rs`), so that a frame's `fdatasync` flushes data blocks only
//!   (no size change for the file system's own journal to commit). When one is full the other
//!   is reused from its start.
//! * Frames are written with direct I/O where the file system allows it
//!   (`journal_direct_io`): whole 4 KiB blocks, the first one's start rewritten as it is (the
//!   last frame's end, kept in `Tail`), the last one padded with zeros. The page cache is
//!   bypassed, so the `fdatasync` only flushes the device.
//! * A checkpoint makes the shard files durable on their own: every writer `fsync`s the open
//!   segments it wrote since the last one and reports every open segment's length; the
//!   `CHECKPOINT` file then records the LSN it covers, those lengths, and where the next frame
//!   goes. A file of the journal is reused only once a checkpoint covers its frames; a seal
//!   waits for a checkpoint that covers its segment.
//! * Recovery cuts every open segment back to its checkpointed length (the bytes after it
//!   were never synced, so they may hold holes), removes the open segments created after the
//!   checkpoint, and replays the journal's frames after it through the writers: exactly the
//!   records acknowledged since, once each.

use super::frame::{self, SegmentHeader, HEADER_LEN, OPEN_MAGIC};
use super::shard::{fsync_dir, replace_file, shard_dir, Shard};
use super::writer::Request;
use crate::codec::checksum;
use crate::config::{LogConfig, SyncPolicy};
use crate::crypto::{self, KeyRing, Purpose};
use crate::error::{Error, Result};
use crate::io::{AlignedBuf, Io, IoFile, SharedIo, DIRECT_ALIGN};
use crate::record::Record;
use crossbeam_channel::{Receiver, Sender};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// The journal's directory, in the data directory.
pub const JOURNAL_DIR: &str = "journal";
/// The checkpoint's file, in the journal's directory.
pub const CHECKPOINT_FILE: &str = "CHECKPOINT";
/// The journal's two files.
pub const FILE_NAMES: [&str; 2] = ["journal-0.log", "journal-1.log"];
/// Magic of a journal frame ("PLJF").
pub const JFRAME_MAGIC: u32 = u32::from_le_bytes(*b"PLJF");
/// Bytes of a journal frame's header.
pub const JFRAME_HEADER_LEN: usize = 32;
/// Key id of a plaintext frame.
pub const NO_KEY: u32 = u32::MAX;
/// Magic of the checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 8] = *b"PLJCKPT\0";
/// Version of the checkpoint file.
pub const CHECKPOINT_VERSION: u32 = 1;
/// Bytes of one segment entry of the checkpoint.
const SEG_ENTRY_LEN: usize = 24;
/// Bytes of the checkpoint before its entries.
const CHECKPOINT_HEAD_LEN: usize = 40;

/// An open segment's length at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegLen {
    /// Shard.
    pub shard: u32,
    /// Bucket start, ms.
    pub bucket: i64,
    /// Generation.
    pub gen: u32,
    /// Bytes of the open segment's file, all synced.
    pub len: u64,
}

/// What the `CHECKPOINT` file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every frame up to this LSN is in the shard files (durable on their own).
    pub lsn: u64,
    /// File (0 or 1) where the frame `lsn + 1` goes...
    pub file: u32,
    /// ...and its offset (or the other file's start, when it did not fit).
    pub offset: u64,
    /// Every open segment and its synced length.
    pub segments: Vec<SegLen>,
}

impl Checkpoint {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(CHECKPOINT_HEAD_LEN + SEG_ENTRY_LEN * self.segments.len() + 8);
        b.extend_from_slice(&CHECKPOINT_MAGIC);
        b.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.segments.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.lsn.to_le_bytes());
        b.extend_from_slice(&self.file.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&self.offset.to_le_bytes());
        for s in &self.segments {
            b.extend_from_slice(&s.shard.to_le_bytes());
            b.extend_from_slice(&s.bucket.to_le_bytes());
            b.extend_from_slice(&s.gen.to_le_bytes());
            b.extend_from_slice(&s.len.to_le_bytes());
        }
        let c = checksum(&[&b]);
        b.extend_from_slice(&c.to_le_bytes());
        b
    }

    /// Parses the file's bytes; the error says what is wrong.
    pub fn decode(b: &[u8]) -> std::result::Result<Self, &'static str> {
        if b.len() < CHECKPOINT_HEAD_LEN + 8 {
            return Err("shorter than a checkpoint");
        }
        let (body, sum) = b.split_at(b.len() - 8);
        if checksum(&[body]).to_le_bytes() != sum {
            return Err("checksum mismatch");
        }
        if body[0..8] != CHECKPOINT_MAGIC {
            return Err("bad magic");
        }
        let u32_at = |i: usize| u32::from_le_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[i..i + 8]);
            u64::from_le_bytes(a)
        };
        if u32_at(8) != CHECKPOINT_VERSION {
            return Err("unknown checkpoint version");
        }
        let n = u32_at(12) as usize;
        if body.len() != CHECKPOINT_HEAD_LEN + n * SEG_ENTRY_LEN {
            return Err("length does not match the segment count");
        }
        let file = u32_at(24);
        if file > 1 {
            return Err("journal file number out of range");
        }
        let segments = (0..n)
            .map(|k| {
                let i = CHECKPOINT_HEAD_LEN + k * SEG_ENTRY_LEN;
                SegLen { shard: u32_at(i), bucket: u64_at(i + 4) as i64, gen: u32_at(i + 12), len: u64_at(i + 16) }
            })
            .collect();
        Ok(Self { lsn: u64_at(16), file, offset: u64_at(32), segments })
    }

    /// Reads `dir/CHECKPOINT`; `None` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(CHECKPOINT_FILE);
        match std::fs::read(&path) {
            Ok(b) => Self::decode(&b).map(Some).map_err(|d| Error::corrupt(&path, 0, d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }

    /// Writes `dir/CHECKPOINT` atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn write(&self, io: &dyn Io, dir: &Path) -> Result<()> {
        replace_file(io, dir, CHECKPOINT_FILE, &self.encode())
    }
}

/// The rows of `records` (docs/format.md, "Row"), as a journal frame's payload holds them:
/// what a caller builds for its part before handing it to the journal thread.
pub fn encode_rows<'a>(out: &mut Vec<u8>, records: impl IntoIterator<Item = &'a Record>) {
    for r in records {
        frame::encode_row(out, r);
    }
}

/// Appends one journal frame with sequence number `lsn` to `out`; its payload is `count` rows
/// (docs/format.md, "Row"), given in pieces built by [`encode_rows`], sealed with the ring's
/// active key when there is a ring.
pub fn encode_frame<'a>(
    out: &mut Vec<u8>,
    lsn: u64,
    rows: impl Iterator<Item = &'a [u8]>,
    count: u32,
    keys: Option<&KeyRing>,
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), crypto::CryptoError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; JFRAME_HEADER_LEN]);
    let key_id = match keys {
        None => {
            rows.for_each(|r| out.extend_from_slice(r));
            NO_KEY
        }
        Some(k) => {
            scratch.clear();
            rows.for_each(|r| scratch.extend_from_slice(r));
            let id = k.active_id();
            if let Err(e) = k.seal(id, &crypto::aad(Purpose::Journal, &lsn.to_le_bytes()), scratch, out) {
                out.truncate(start);
                return Err(e);
            }
            id
        }
    };
    let payload_len = (out.len() - start - JFRAME_HEADER_LEN) as u32;
    let h = &mut out[start..start + JFRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&JFRAME_MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&payload_len.to_le_bytes());
    h[8..16].copy_from_slice(&lsn.to_le_bytes());
    h[16..20].copy_from_slice(&key_id.to_le_bytes());
    h[20..24].copy_from_slice(&count.to_le_bytes());
    let c = checksum(&[&out[start..start + 24], &out[start + JFRAME_HEADER_LEN..]]);
    out[start + 24..start + 32].copy_from_slice(&c.to_le_bytes());
    Ok(())
}

/// A verified journal frame.
#[derive(Debug)]
pub struct JournalFrame {
    /// Its sequence number.
    pub lsn: u64,
    /// Its records.
    pub records: Vec<Record>,
    /// Its length in the file, header included.
    pub len: usize,
}

/// Reads the journal frame at the start of `buf`. `Ok(None)`: no complete frame with a
/// verified checksum starts there (the end of the journal: zeros, a torn frame, an older
/// frame's remains). An error: a frame whose checksum verifies but whose content does not
/// decode or decrypt (never skipped: it was acknowledged).
pub fn read_frame(buf: &[u8], keys: Option<&Arc<KeyRing>>, path: &Path, at: u64) -> Result<Option<JournalFrame>> {
    if buf.len() < JFRAME_HEADER_LEN {
        return Ok(None);
    }
    let u32_at = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let mut a = [0u8; 8];
    if u32_at(0) != JFRAME_MAGIC {
        return Ok(None);
    }
    let payload_len = u32_at(4) as usize;
    let Some(payload) = buf.get(JFRAME_HEADER_LEN..JFRAME_HEADER_LEN + payload_len) else { return Ok(None) };
    a.copy_from_slice(&buf[24..32]);
    if checksum(&[&buf[0..24], payload]) != u64::from_le_bytes(a) {
        return Ok(None);
    }
    a.copy_from_slice(&buf[8..16]);
    let lsn = u64::from_le_bytes(a);
    let key_id = u32_at(16);
    let count = u32_at(20) as usize;
    let plain = if key_id == NO_KEY {
        std::borrow::Cow::Borrowed(payload)
    } else {
        let ring =
            keys.filter(|r| r.has(key_id)).ok_or_else(|| Error::key_missing(path, key_id, keys.map(|r| &**r)))?;
        let p = ring
            .open(key_id, &crypto::aad(Purpose::Journal, &lsn.to_le_bytes()), payload)
            .map_err(|e| Error::crypto(path, at, "journal frame", Some(ring), e))?;
        std::borrow::Cow::Owned(p)
    };
    let mut records = Vec::with_capacity(count.min(plain.len() / frame::ROW_HEADER_LEN));
    let mut pos = 0;
    for _ in 0..count {
        let (body, n) = frame::split_row(&plain[pos..])
            .map_err(|d| Error::corrupt(path, at, format!("journal frame {lsn}: {d}")))?;
        records.push(
            frame::decode_row_body(body).map_err(|d| Error::corrupt(path, at, format!("journal frame {lsn}: {d}")))?,
        );
        pos += n;
    }
    if pos != plain.len() {
        return Err(Error::corrupt(path, at, format!("journal frame {lsn} has bytes after its rows")));
    }
    Ok(Some(JournalFrame { lsn, records, len: JFRAME_HEADER_LEN + payload_len }))
}

/// Where the journal stands after recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalEnd {
    /// The last LSN found (the checkpoint's when no frame follows it).
    pub lsn: u64,
    /// File the next frame goes in...
    pub file: usize,
    /// ...and its offset.
    pub offset: u64,
    /// Frames replayed.
    pub frames: u64,
    /// Records replayed.
    pub records: u64,
}

/// Reads the frames that follow checkpoint `c`, in order, handing each to `apply`: from the
/// checkpoint's place, frame after frame while each verifies and carries the next LSN; where
/// none does, the other file's start (the journal switched files there); the first place
/// where neither holds the next LSN is the end.
pub fn replay(
    dir: &Path,
    c: &Checkpoint,
    keys: Option<&Arc<KeyRing>>,
    mut apply: impl FnMut(u64, Vec<Record>) -> Result<()>,
) -> Result<JournalEnd> {
    let mut bufs: [Option<Vec<u8>>; 2] = [None, None];
    for (i, name) in FILE_NAMES.iter().enumerate() {
        let p = dir.join(name);
        match std::fs::read(&p) {
            Ok(b) => bufs[i] = Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("read", &p)(e)),
        }
    }
    let mut end = JournalEnd { lsn: c.lsn, file: c.file as usize, offset: c.offset, frames: 0, records: 0 };
    loop {
        let next = end.lsn + 1;
        let here = frame_at(&bufs, end.file, end.offset, keys, dir)?.filter(|f| f.lsn == next);
        let (file, offset, f) = match here {
            Some(f) => (end.file, end.offset, f),
            None => {
                let other = 1 - end.file;
                match frame_at(&bufs, other, 0, keys, dir)?.filter(|f| f.lsn == next) {
                    Some(f) => (other, 0, f),
                    None => break,
                }
            }
        };
        end.records += f.records.len() as u64;
        end.frames += 1;
        let len = f.len as u64;
        apply(f.lsn, f.records)?;
        end = JournalEnd { lsn: next, file, offset: offset + len, ..end };
    }
    // Frames are written one after another, each synced before the next: a torn frame is the
    // last one. A later frame anywhere means acknowledged frames were damaged, not torn.
    for (i, buf) in bufs.iter().enumerate() {
        let Some(buf) = buf.as_deref() else { continue };
        let magic = JFRAME_MAGIC.to_le_bytes();
        for at in memchr::memmem::find_iter(buf, &magic) {
            // Older frames (most of both files) are passed over on their header's LSN alone.
            let Some(lsn) = verified_lsn_above(&buf[at..], end.lsn) else { continue };
            return Err(Error::corrupt(
                dir.join(FILE_NAMES[end.file]),
                end.offset,
                format!(
                    "journal frame {} is damaged or missing, yet frame {lsn} follows ({} offset {at}); refusing to drop acknowledged frames",
                    end.lsn + 1,
                    FILE_NAMES[i]
                ),
            ));
        }
    }
    Ok(end)
}

/// The LSN of the frame at the start of `buf` if it is above `min` and the frame's checksum
/// verifies (its rows are not decoded); `None` otherwise, without a checksum below `min`.
fn verified_lsn_above(buf: &[u8], min: u64) -> Option<u64> {
    let head = buf.get(..JFRAME_HEADER_LEN)?;
    let word = |i: usize| head[i..i + 8].try_into().ok().map(u64::from_le_bytes);
    let lsn = word(8).filter(|&l| l > min)?;
    let payload_len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    let payload = buf.get(JFRAME_HEADER_LEN..JFRAME_HEADER_LEN + payload_len)?;
    (checksum(&[&head[0..24], payload]) == word(24)?).then_some(lsn)
}

fn frame_at(
    bufs: &[Option<Vec<u8>>; 2],
    file: usize,
    offset: u64,
    keys: Option<&Arc<KeyRing>>,
    dir: &Path,
) -> Result<Option<JournalFrame>> {
    let Some(buf) = bufs[file].as_deref() else { return Ok(None) };
    let Some(rest) = usize::try_from(offset).ok().and_then(|o| buf.get(o..)) else { return Ok(None) };
    read_frame(rest, keys, &dir.join(FILE_NAMES[file]), offset)
}

/// What bringing the shard files back to a checkpoint did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rewind {
    /// Open segments cut back to their checkpointed length.
    pub cut: usize,
    /// Bytes cut.
    pub bytes_cut: u64,
    /// Open segments created after the checkpoint, removed (their records are replayed).
    pub removed: usize,
}

/// Brings every open segment of the data directory `data` back to checkpoint `c`: cut to its
/// checkpointed length, or removed when the checkpoint does not list it. An open segment
/// shorter than its checkpointed length lost synced bytes: an error naming it.
pub fn rewind(io: &dyn Io, data: &Path, shards: u32, c: &Checkpoint) -> Result<Rewind> {
    let mut out = Rewind::default();
    for id in 0..shards {
        let sdir = shard_dir(data, id);
        let entries = match std::fs::read_dir(&sdir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("list", &sdir)(e)),
        };
        let mut changed = false;
        for e in entries {
            let path = e.map_err(Error::io("list", &sdir))?.path();
            if path.extension().is_none_or(|x| x != "open") {
                continue;
            }
            let file = io.open_rw(&path).map_err(Error::io("open", &path))?;
            let mut head = [0u8; HEADER_LEN];
            let n = file.read_at(&mut head, 0).map_err(Error::io("read", &path))?;
            // A header that does not verify: the creation never completed (it is synced before
            // any row is written), left to the shard's recovery to remove.
            let Ok((h, _)) = SegmentHeader::decode_keyed(&head[..n], OPEN_MAGIC) else { continue };
            let listed =
                c.segments.iter().find(|s| s.shard == h.shard && s.bucket == h.bucket_start_ms && s.gen == h.gen);
            match listed {
                Some(s) => {
                    let len = file.len().map_err(Error::io("stat", &path))?;
                    if len < s.len {
                        return Err(Error::corrupt(
                            &path,
                            len,
                            format!(
                                "{len} bytes where the journal's checkpoint synced {}: acknowledged rows are missing",
                                s.len
                            ),
                        ));
                    }
                    if len > s.len {
                        file.set_len(s.len).map_err(Error::io("truncate", &path))?;
                        file.sync_all().map_err(Error::io("fsync", &path))?;
                        out.cut += 1;
                        out.bytes_cut += len - s.len;
                    }
                }
                None => {
                    drop(file);
                    io.remove_file(&path).map_err(Error::io("remove", &path))?;
                    out.removed += 1;
                    changed = true;
                }
            }
        }
        if changed {
            fsync_dir(io, &sdir)?;
        }
    }
    Ok(out)
}

/// Removes the journal's files and checkpoint (the checkpoint first: without it, the files
/// mean nothing).
pub fn remove(io: &dyn Io, dir: &Path) -> Result<()> {
    let mut any = false;
    for name in std::iter::once(CHECKPOINT_FILE).chain(FILE_NAMES) {
        let p = dir.join(name);
        if p.exists() {
            io.remove_file(&p).map_err(Error::io("remove", &p))?;
            any = true;
            if name == CHECKPOINT_FILE {
                fsync_dir(io, dir)?;
            }
        }
    }
    if any {
        fsync_dir(io, dir)?;
    }
    Ok(())
}

/// Durability and checkpoint progress, shared by the journal thread, the checkpointer, the
/// shard writers (who wait for their LSN to be durable) and the sealer (who waits for a
/// checkpoint).
#[derive(Debug, Default)]
pub struct Shared {
    state: Mutex<SharedState>,
    cv: Condvar,
}

/// What the journal has done since the log was opened: its group commits, for operators
/// (server metrics) and the benchmarks. Frames replayed by recovery are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Frames written and made durable, one `fdatasync` (or `fsync`) each.
    pub frames: u64,
    /// Append requests those frames carried (an append above a frame's size is sent as
    /// several), so `appends / frames` is how many appends a sync serves.
    pub appends: u64,
    /// Records those frames carried.
    pub records: u64,
    /// Bytes of those frames (format.md, "Journal frame"), without the zeros a direct write
    /// pads the last block with.
    pub bytes: u64,
    /// Nanoseconds spent writing and syncing those frames.
    pub sync_ns: u64,
    /// Checkpoints completed, the one taken at open included.
    pub checkpoints: u64,
}

#[derive(Debug, Default)]
struct SharedState {
    durable_lsn: u64,
    /// Counted by the journal thread (frames) and the checkpointer (checkpoints).
    stats: JournalStats,
    failed: Option<String>,
    checkpoint_lsn: u64,
    /// Failed checkpoints so far, and the last one's cause.
    checkpoint_failures: u64,
    checkpoint_failed: Option<String>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut SharedState)) {
        f(&mut self.lock());
        self.cv.notify_all();
    }

    /// Every LSN up to `lsn` is durable (recovery: a frame being replayed is on disk).
    pub fn set_durable(&self, lsn: u64) {
        self.update(|st| st.durable_lsn = lsn);
    }

    /// Blocks until frame `lsn` is durable; the journal's failure otherwise.
    pub fn wait_durable(&self, lsn: u64) -> std::result::Result<(), String> {
        let mut st = self.lock();
        loop {
            if st.durable_lsn >= lsn {
                return Ok(());
            }
            if let Some(f) = &st.failed {
                return Err(f.clone());
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The journal's figures since the log was opened.
    pub fn stats(&self) -> JournalStats {
        self.lock().stats
    }

    /// The LSN the last completed checkpoint covers.
    pub fn checkpoint_lsn(&self) -> u64 {
        self.lock().checkpoint_lsn
    }

    /// Checkpoints failed so far.
    fn failures(&self) -> u64 {
        self.lock().checkpoint_failures
    }

    /// Blocks until `done`; an error once more than `failures` checkpoints have failed (read
    /// before the checkpoint waited for was asked for) or the journal closes.
    fn wait(&self, failures: u64, done: impl Fn(&SharedState) -> bool) -> std::result::Result<(), String> {
        let mut st = self.lock();
        loop {
            if done(&st) {
                return Ok(());
            }
            if st.checkpoint_failures > failures {
                return Err(format!("journal checkpoint failed: {}", st.checkpoint_failed.as_deref().unwrap_or("")));
            }
            if st.closed {
                return Err("the journal is closed".into());
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A request to the journal thread.
pub enum JRequest {
    /// Append these parts (each all of one shard), acknowledged by their writers once durable.
    Append(Vec<Part>),
    /// Take a checkpoint covering every frame written so far.
    Checkpoint,
    /// Finish what is queued, take a last checkpoint, and exit.
    Stop,
}

/// The records of one append bound for one shard.
pub struct Part {
    /// Shard index.
    pub shard: usize,
    /// The records, already validated.
    pub records: Vec<Record>,
    /// Their rows ([`encode_rows`]), built by the caller so that the journal thread, which
    /// every append passes through, only copies them into its frame.
    pub rows: Vec<u8>,
    /// Where the outcome goes.
    pub ack: Sender<Result<()>>,
}

/// What the sealer and the log hold of the journal.
#[derive(Clone)]
pub struct Handle {
    /// Progress.
    pub shared: Arc<Shared>,
    /// Requests.
    pub tx: Sender<JRequest>,
}

impl Handle {
    /// Blocks until a checkpoint covers frame `lsn` (asking for one if needed).
    pub fn ensure_checkpoint(&self, lsn: u64) -> std::result::Result<(), String> {
        if self.shared.checkpoint_lsn() >= lsn {
            return Ok(());
        }
        let failures = self.shared.failures();
        if self.tx.send(JRequest::Checkpoint).is_err() {
            return Err("the journal is closed".into());
        }
        self.shared.wait(failures, |st| st.checkpoint_lsn >= lsn)
    }

    /// Blocks until the journal's first checkpoint (taken when it starts) is written.
    pub fn wait_first_checkpoint(&self) -> std::result::Result<(), String> {
        self.shared.wait(0, |st| st.stats.checkpoints >= 1)
    }
}

/// One file of the journal.
struct JFile {
    file: Box<dyn IoFile>,
    path: PathBuf,
    /// Written with direct I/O ([`try_direct`]): whole blocks from an [`AlignedBuf`].
    direct: bool,
}

impl JFile {
    /// `file`, `len` bytes long.
    fn new(file: Box<dyn IoFile>, path: PathBuf, len: u64, cfg: &LogConfig) -> Self {
        let direct = try_direct(&*file, &path, len, cfg);
        JFile { file, path, direct }
    }
}

/// Switches a journal file (`len` bytes long) to direct I/O if the configuration asks for it
/// and it can be: its length is whole blocks (a journal written before direct I/O may not be)
/// and the file system takes `O_DIRECT`. Whether it was.
pub(super) fn try_direct(file: &dyn IoFile, path: &Path, len: u64, cfg: &LogConfig) -> bool {
    if !cfg.journal_direct_io || !len.is_multiple_of(DIRECT_ALIGN as u64) {
        return false;
    }
    match file.set_direct() {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(path = %path.display(), error = %e, "journal written through the page cache");
            false
        }
    }
}

/// The bytes of the block a frame's write starts in, before the frame (a direct write
/// rewrites them as they are): where the last frame ended, unless that was elsewhere.
#[derive(Default)]
struct Tail {
    /// File and block start they belong to.
    at: Option<(usize, u64)>,
    bytes: Vec<u8>,
}

/// A checkpoint in progress, for the checkpointer.
struct CkptJob {
    lsn: u64,
    file: u32,
    offset: u64,
    replies: Vec<Receiver<Result<Vec<super::journal::SegLen>>>>,
}

/// The journal thread's state.
pub struct Journal {
    /// The files' space written ahead, by a thread of its own (`ahead.rs`).
    ahead: Arc<super::ahead::Ahead>,
    dir: PathBuf,
    io: SharedIo,
    cfg: Arc<LogConfig>,
    keys: Option<Arc<KeyRing>>,
    shards: Vec<Arc<Shard>>,
    senders: Vec<Sender<Request>>,
    shared: Arc<Shared>,
    files: [Option<JFile>; 2],
    cur: usize,
    off: u64,
    /// Largest LSN in each file (its frames since it was last started from 0).
    max_lsn: [u64; 2],
    last_lsn: u64,
    /// LSN of the last checkpoint started.
    started_lsn: u64,
    since_checkpoint: u64,
    poisoned: Option<String>,
    ckpt_tx: Option<Sender<CkptJob>>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    /// What a direct write writes: [`Tail`], the frame, zeros to the block's end.
    dbuf: AlignedBuf,
    tail: Tail,
}

/// The threads of a running journal.
pub struct Running {
    /// What others hold.
    pub handle: Handle,
    journal: Option<std::thread::JoinHandle<()>>,
    checkpointer: Option<std::thread::JoinHandle<()>>,
    ahead: Arc<super::ahead::Ahead>,
    writer_ahead: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Stops the journal: it finishes what is queued, takes a last checkpoint and exits.
    pub fn stop(&mut self) {
        let _ = self.handle.tx.send(JRequest::Stop);
        if let Some(h) = self.journal.take() {
            let _ = h.join();
        }
        if let Some(h) = self.checkpointer.take() {
            let _ = h.join();
        }
        self.ahead.stop();
        if let Some(h) = self.writer_ahead.take() {
            let _ = h.join();
        }
    }
}

/// Everything the journal thread starts from.
pub struct Start {
    /// The journal's directory (created if missing).
    pub dir: PathBuf,
    /// File operations.
    pub io: SharedIo,
    /// The log's configuration.
    pub cfg: Arc<LogConfig>,
    /// The key ring (frames are sealed with its active key).
    pub keys: Option<Arc<KeyRing>>,
    /// The shards.
    pub shards: Vec<Arc<Shard>>,
    /// Their writers' channels.
    pub senders: Vec<Sender<Request>>,
    /// Shared progress (the writers hold it too).
    pub shared: Arc<Shared>,
    /// Where recovery left the journal (`None`: a new journal).
    pub end: Option<JournalEnd>,
    /// The channel of requests (its sender is in the log's and the sealer's handles).
    pub rx: Receiver<JRequest>,
    /// That channel's sender.
    pub tx: Sender<JRequest>,
}

impl Journal {
    /// Starts the journal and checkpointer threads; the first thing the journal does is a
    /// checkpoint (the returned handle's `wait_checkpoints(1)` waits for it), before any frame
    /// is written.
    pub fn start(s: Start) -> Result<Running> {
        let Start { dir, io, cfg, keys, shards, senders, shared, end, rx, tx } = s;
        std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        let mut files: [Option<JFile>; 2] = [None, None];
        let mut prepared = [0u64; 2];
        let (cur, off, last) = match end {
            Some(e) => {
                for (i, name) in FILE_NAMES.iter().enumerate() {
                    let path = dir.join(name);
                    if path.exists() {
                        let file = io.open_rw(&path).map_err(Error::io("open", &path))?;
                        let len = file.len().map_err(Error::io("stat", &path))?;
                        prepared[i] = len;
                        files[i] = Some(JFile::new(file, path, len, &cfg));
                    }
                }
                (e.file, e.offset, e.lsn)
            }
            None => {
                // A journal starts with no frame: files left from an earlier one (whose
                // checkpoint was never written) would hold LSNs about to be reused.
                for name in FILE_NAMES {
                    let p = dir.join(name);
                    if p.exists() {
                        io.remove_file(&p).map_err(Error::io("remove", &p))?;
                    }
                }
                fsync_dir(&*io, &dir)?;
                (0, 0, 0)
            }
        };
        {
            let mut st = shared.lock();
            st.durable_lsn = last;
            st.checkpoint_lsn = 0;
        }
        let (ckpt_tx, ckpt_rx) = crossbeam_channel::unbounded::<CkptJob>();
        let checkpointer = {
            let (io, cdir, shared) = (io.clone(), dir.clone(), shared.clone());
            std::thread::Builder::new()
                .name("portlog-checkpoint".into())
                .spawn(move || checkpointer(ckpt_rx, &*io, &cdir, &shared))
                .map_err(Error::io("spawn checkpoint thread for", &dir))?
        };
        let ahead = super::ahead::Ahead::new(cfg.journal_file_bytes, prepared);
        let writer_ahead = {
            let (ahead, io, adir, cfg) = (ahead.clone(), io.clone(), dir.clone(), cfg.clone());
            std::thread::Builder::new()
                .name("portlog-journal-ahead".into())
                .spawn(move || super::ahead::run(&ahead, io, adir, cfg))
                .map_err(Error::io("spawn journal write-ahead thread for", &dir))?
        };
        let mut j = Journal {
            ahead: ahead.clone(),
            dir: dir.clone(),
            io,
            cfg,
            keys,
            shards,
            senders,
            shared: shared.clone(),
            files,
            cur,
            off,
            max_lsn: [last; 2],
            last_lsn: last,
            started_lsn: 0,
            since_checkpoint: 0,
            poisoned: None,
            ckpt_tx: Some(ckpt_tx),
            buf: Vec::new(),
            scratch: Vec::new(),
            dbuf: AlignedBuf::default(),
            tail: Tail::default(),
        };
        j.start_checkpoint();
        let journal = std::thread::Builder::new()
            .name("portlog-journal".into())
            .spawn(move || j.run(rx))
            .map_err(Error::io("spawn journal thread for", &dir))?;
        Ok(Running {
            handle: Handle { shared, tx },
            journal: Some(journal),
            checkpointer: Some(checkpointer),
            ahead,
            writer_ahead: Some(writer_ahead),
        })
    }

    fn run(mut self, rx: Receiver<JRequest>) {
        let mut stop = false;
        while !stop {
            let Ok(first) = rx.recv() else { break };
            let mut batch: Vec<Vec<Part>> = Vec::new();
            let mut want_checkpoint = false;
            match first {
                JRequest::Append(parts) => batch.push(parts),
                JRequest::Checkpoint => want_checkpoint = true,
                JRequest::Stop => stop = true,
            }
            if !batch.is_empty() {
                let cap = self.batch_bytes_cap();
                let mut n: usize = batch[0].iter().map(|p| p.records.len()).sum();
                let mut bytes: usize = batch[0].iter().flat_map(|p| &p.records).map(Record::approx_bytes).sum();
                while n < self.cfg.batch_records_max && bytes < cap {
                    match rx.try_recv() {
                        Ok(JRequest::Append(parts)) => {
                            let b: usize = parts.iter().flat_map(|p| &p.records).map(Record::approx_bytes).sum();
                            if bytes + b > cap {
                                self.commit(std::mem::take(&mut batch));
                                (n, bytes) = (0, 0);
                            }
                            n += parts.iter().map(|p| p.records.len()).sum::<usize>();
                            bytes += b;
                            batch.push(parts);
                        }
                        Ok(JRequest::Checkpoint) => want_checkpoint = true,
                        Ok(JRequest::Stop) => {
                            stop = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if !batch.is_empty() {
                    self.commit(batch);
                }
            }
            // A checkpoint asked for (by a seal) is taken unless one already covers every frame;
            // one may be in progress, which costs only a second round of syncs.
            if (want_checkpoint && self.shared.checkpoint_lsn() < self.last_lsn)
                || self.since_checkpoint >= self.cfg.checkpoint_bytes
            {
                self.start_checkpoint();
            }
        }
        // A last checkpoint, so that the next open has nothing to replay.
        let failures = self.shared.failures();
        let target = self.last_lsn;
        if self.poisoned.is_none() && self.shared.checkpoint_lsn() < target {
            self.start_checkpoint();
            let _ = self.shared.wait(failures, |st| st.checkpoint_lsn >= target);
        }
        self.ckpt_tx = None;
        self.shared.update(|st| st.closed = true);
    }

    /// Largest approximate bytes of one frame: at most an eighth of a file, so that a frame
    /// always fits in a file started afresh.
    fn batch_bytes_cap(&self) -> usize {
        self.cfg.journal_frame_bytes()
    }

    /// Asks every writer to sync and report, then the checkpointer to record, a checkpoint
    /// covering every frame handed out so far (every earlier frame is durable: frames are
    /// written one after the other).
    fn start_checkpoint(&mut self) {
        let Some(ckpt_tx) = &self.ckpt_tx else { return };
        let lsn = self.last_lsn;
        let mut replies = Vec::with_capacity(self.senders.len());
        for s in &self.senders {
            let (tx, rx) = crossbeam_channel::bounded(1);
            // A writer that is gone never answers: the checkpointer sees its reply channel closed.
            let _ = s.send(Request::Sync { reply: tx });
            replies.push(rx);
        }
        let _ = ckpt_tx.send(CkptJob { lsn, file: self.cur as u32, offset: self.off, replies });
        self.started_lsn = lsn;
        self.since_checkpoint = 0;
    }

    fn fail_parts(batch: Vec<Vec<Part>>, e: &Error) {
        for p in batch.into_iter().flatten() {
            let _ = p.ack.send(Err(e.duplicate()));
        }
    }

    fn poison(&mut self, cause: String) {
        tracing::error!(%cause, "journal failed; appends refused until reopen");
        for s in &self.shards {
            let mut p = s.poisoned.lock().unwrap_or_else(|e| e.into_inner());
            if p.is_none() {
                *p = Some(format!("journal: {cause}"));
            }
        }
        self.shared.update(|st| st.failed = Some(cause.clone()));
        self.poisoned = Some(cause);
    }

    fn commit(&mut self, batch: Vec<Vec<Part>>) {
        if let Some(cause) = &self.poisoned {
            let e = Error::Poisoned { shard: 0, cause: format!("journal: {cause}") };
            return Self::fail_parts(batch, &e);
        }
        let lsn = self.last_lsn + 1;
        self.buf.clear();
        let rows = batch.iter().flatten().map(|p| p.rows.as_slice());
        let count: u32 = batch.iter().flatten().map(|p| p.records.len() as u32).sum();
        let appends = batch.len() as u64;
        if let Err(e) = encode_frame(&mut self.buf, lsn, rows, count, self.keys.as_deref(), &mut self.scratch) {
            let path = self.dir.join(FILE_NAMES[self.cur]);
            return Self::fail_parts(batch, &Error::crypto(&path, self.off, "journal frame", None, e));
        }
        let len = self.buf.len() as u64;
        // Where the frame goes: here, or the other file's start once a checkpoint covers it.
        let (file, at) = if self.off + len <= self.cfg.journal_file_bytes {
            (self.cur, self.off)
        } else {
            let other = 1 - self.cur;
            let need = self.max_lsn[other];
            let failures = self.shared.failures();
            // Whatever is in progress may fail: a new checkpoint, then wait for one covering.
            if self.shared.checkpoint_lsn() < need {
                self.start_checkpoint();
            }
            if let Err(cause) = self.shared.wait(failures, |st| st.checkpoint_lsn >= need) {
                self.poison(cause.clone());
                return Self::fail_parts(batch, &Error::Poisoned { shard: 0, cause });
            }
            (other, 0)
        };
        // The file, its space written ahead (waiting for the writing-ahead thread only when it
        // is behind), and for a direct write the buffer from the frame's block start.
        let block = at - at % DIRECT_ALIGN as u64;
        let ready = self.ensure_file(file).and_then(|direct| {
            let end = if direct { (at + len).next_multiple_of(DIRECT_ALIGN as u64) } else { at + len };
            self.ahead.ensure(file, end)?;
            if direct {
                self.direct_buffer(file, block, at)?;
            }
            Ok(direct)
        });
        let direct = match ready {
            Ok(direct) => direct,
            Err(e) => {
                self.poison(e.to_string());
                return Self::fail_parts(batch, &e);
            }
        };
        // Hand the records out first: the writers write their rows while the frame is synced.
        self.last_lsn = lsn;
        for p in batch.into_iter().flatten() {
            let Part { shard, records, rows, ack } = p;
            if let Err(crossbeam_channel::SendError(Request::Append { ack, .. })) =
                self.senders[shard].send(Request::Append { records, rows, ack, lsn })
            {
                let _ = ack.send(Err(Error::Closed));
            }
        }
        let Some(jf) = self.files[file].as_ref() else { return };
        let (bytes, write_at) = if direct { (self.dbuf.as_slice(), block) } else { (self.buf.as_slice(), at) };
        let started = Instant::now();
        let written = jf.file.write_all_at(bytes, write_at).map_err(Error::io("write", &jf.path)).and_then(|()| {
            if self.cfg.sync == SyncPolicy::Full {
                jf.file.sync_all().map_err(Error::io("fsync", &jf.path))
            } else {
                jf.file.sync_data().map_err(Error::io("fdatasync", &jf.path))
            }
        });
        let sync_ns = started.elapsed().as_nanos() as u64;
        if let Err(e) = written {
            // Never retry a failed fsync; the writers waiting for this LSN undo their rows.
            return self.poison(e.to_string());
        }
        if direct {
            // The next frame's block starts with what this one left of its last block.
            let end = (at - block + len) as usize;
            let last = end - end % DIRECT_ALIGN;
            self.tail.bytes.clear();
            self.tail.bytes.extend_from_slice(&self.dbuf.as_slice()[last..end]);
            self.tail.at = Some((file, block + last as u64));
        }
        (self.cur, self.off) = (file, at + len);
        self.max_lsn[file] = lsn;
        self.since_checkpoint += len;
        self.shared.update(|st| {
            st.durable_lsn = lsn;
            let s = &mut st.stats;
            (s.frames, s.appends, s.records) = (s.frames + 1, s.appends + appends, s.records + u64::from(count));
            (s.bytes, s.sync_ns) = (s.bytes + len, s.sync_ns + sync_ns);
        });
    }

    /// Fills [`Journal::dbuf`] for a direct write of the frame in `buf` at `at` of `file`,
    /// from the start of its block, `block`: the bytes before it in that block (kept from the
    /// last frame, or read back), the frame, then zeros to the block's end.
    fn direct_buffer(&mut self, file: usize, block: u64, at: u64) -> Result<()> {
        self.dbuf.clear();
        if at > block {
            let want = (at - block) as usize;
            if self.tail.at != Some((file, block)) || self.tail.bytes.len() != want {
                let path = self.dir.join(FILE_NAMES[file]);
                let f = std::fs::File::open(&path).map_err(Error::io("open", &path))?;
                self.tail.bytes.resize(want, 0);
                std::os::unix::fs::FileExt::read_exact_at(&f, &mut self.tail.bytes, block)
                    .map_err(Error::io("read", &path))?;
                self.tail.at = Some((file, block));
            }
            self.dbuf.extend_from_slice(&self.tail.bytes);
        }
        self.dbuf.extend_from_slice(&self.buf);
        self.dbuf.pad_to_block();
        Ok(())
    }

    /// Creates `file` if it does not exist yet (its directory entry is made durable with the
    /// first step written ahead); whether it is written with direct I/O.
    fn ensure_file(&mut self, file: usize) -> Result<bool> {
        if self.files[file].is_none() {
            let path = self.dir.join(FILE_NAMES[file]);
            let f = self.io.create(&path).map_err(Error::io("create", &path))?;
            self.files[file] = Some(JFile::new(f, path, 0, &self.cfg));
        }
        Ok(self.files[file].as_ref().is_some_and(|f| f.direct))
    }
}

fn checkpointer(rx: Receiver<CkptJob>, io: &dyn Io, dir: &Path, shared: &Shared) {
    while let Ok(job) = rx.recv() {
        let mut segments = Vec::new();
        let mut failure = None;
        for r in job.replies {
            match r.recv() {
                Ok(Ok(s)) => segments.extend(s),
                Ok(Err(e)) => {
                    failure.get_or_insert(e.to_string());
                }
                Err(_) => {
                    failure.get_or_insert("a shard writer stopped before syncing".to_string());
                }
            }
        }
        let c = Checkpoint { lsn: job.lsn, file: job.file, offset: job.offset, segments };
        let outcome = match failure {
            Some(f) => Err(f),
            None => c.write(io, dir).map_err(|e| e.to_string()),
        };
        match outcome {
            Ok(()) => shared.update(|st| {
                st.checkpoint_lsn = st.checkpoint_lsn.max(c.lsn);
                st.stats.checkpoints += 1;
            }),
            Err(f) => {
                tracing::error!(cause = %f, "journal checkpoint failed");
                shared.update(|st| {
                    st.checkpoint_failures += 1;
                    st.checkpoint_failed = Some(f);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Direction, PhoneNumber, SubPort, Usage};

    fn rec(i: u64) -> Record {
        Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse("1069012345601").unwrap(),
            peer: PhoneNumber::parse("13800138000").unwrap(),
            ts_ms: 1_777_599_000_000 + i as i64,
            usage: Some(Usage::Commercial),
            text: format!("【星河银行】验证码{i}"),
        }
    }

    #[test]
    fn frame_round_trip_and_damage_is_the_end() {
        let recs: Vec<Record> = (0..3).map(rec).collect();
        let mut buf = Vec::new();
        let mut rows = Vec::new();
        encode_rows(&mut rows, &recs[..2]);
        let mut more = Vec::new();
        encode_rows(&mut more, &recs[2..]);
        encode_frame(&mut buf, 7, [&rows[..], &more[..]].into_iter(), 3, None, &mut Vec::new()).unwrap();
        let p = Path::new("j");
        let f = read_frame(&buf, None, p, 0).unwrap().unwrap();
        assert_eq!((f.lsn, f.len, &f.records), (7, buf.len(), &recs));
        for cut in 0..buf.len() {
            assert!(read_frame(&buf[..cut], None, p, 0).unwrap().is_none(), "cut at {cut}");
        }
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            assert!(read_frame(&b, None, p, 0).unwrap().is_none(), "flip at {i}");
        }
    }

    #[test]
    fn checkpoint_round_trip_and_every_flip_refused() {
        let c = Checkpoint {
            lsn: 42,
            file: 1,
            offset: 4096,
            segments: vec![
                SegLen { shard: 3, bucket: -5, gen: 2, len: 999 },
                SegLen { shard: 0, bucket: 7, gen: 0, len: 40 },
            ],
        };
        let b = c.encode();
        assert_eq!(Checkpoint::decode(&b).unwrap(), c);
        for i in 0..b.len() {
            let mut d = b.clone();
            d[i] ^= 1;
            assert!(Checkpoint::decode(&d).is_err(), "flip at {i}");
        }
        assert!(Checkpoint::decode(&b[..b.len() - 1]).is_err());
    }
}
