//! The shard writer: one thread per shard, fed by a bounded crossbeam channel. It gathers the
//! queued appends into one batch, writes one frame per touched segment, makes the batch durable
//! (with the journal: waits until the journal has synced the batch's frame; without: syncs each
//! touched file once), publishes the rows to readers and only then acknowledges (group commit).

use super::frame::{self, SegmentHeader, FRAME_ROWS_AT};
use super::journal::{SegLen, Shared};
use super::open_segment::OpenSegment;
use super::sealer::SealJob;
use super::shard::{seg_stem, SegKey, Shard};
use crate::clock::SharedClock;
use crate::config::{LogConfig, SyncPolicy};
use crate::error::{Error, Result};
use crate::record::Record;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A request to a shard writer.
pub enum Request {
    /// Append records (all of this shard), answer when durable.
    Append {
        /// The records, already validated.
        records: Vec<Record>,
        /// Their rows, one after another as [`frame::encode_row`] makes them, when the caller
        /// built them for the journal; empty otherwise. A plaintext segment takes them as they
        /// are instead of encoding the records again.
        rows: Vec<u8>,
        /// Where the outcome goes.
        ack: Sender<Result<()>>,
        /// The journal frame holding them (0 without a journal): durable once the journal says so.
        lsn: u64,
    },
    /// Journal checkpoint: sync every open segment written since the last one, then answer with
    /// every open segment's length.
    Sync {
        /// Where the lengths (or the failure) go.
        reply: Sender<Result<Vec<SegLen>>>,
    },
    /// Retire open segments to the sealer, then answer: those of the given buckets, or every
    /// one (`None`).
    Retire {
        /// Bucket starts to retire; `None` for all.
        buckets: Option<Vec<i64>>,
        /// Answered once the segments are queued.
        ack: Sender<()>,
    },
}

/// State of one shard writer.
pub struct Writer {
    shard: Arc<Shard>,
    cfg: Arc<LogConfig>,
    clock: SharedClock,
    sealer: Sender<SealJob>,
    /// Bucket start → the segment receiving that bucket's appends.
    writable: BTreeMap<i64, Arc<OpenSegment>>,
    /// Bucket start → sequence number of the last batch that wrote to it (LRU order).
    last_batch: BTreeMap<i64, u64>,
    batch_seq: u64,
    last_maintenance_ms: i64,
    /// The journal's progress, when the log has one: batches wait for their frame to be durable
    /// instead of syncing their files.
    journal: Option<Arc<Shared>>,
    /// Open segments written since the last checkpoint's sync.
    dirty: BTreeMap<SegKey, Arc<OpenSegment>>,
    /// Largest journal LSN applied.
    applied_lsn: u64,
    /// Bucket → the next generation this writer may create: above every generation of the
    /// bucket it created or that the journal's checkpoint read at open listed. Retention may
    /// remove a bucket's segments from the catalogue; a new segment must still never take the
    /// identity of one the last checkpoint lists (recovery would cut it to that one's length).
    gen_floor: BTreeMap<i64, u32>,
    /// Frame buffers for the next batches (see [`SPARE_BUFS`]).
    spare: Vec<Vec<u8>>,
}

/// A request held until the batch gathered before it is committed.
enum After {
    Retire(Option<Vec<i64>>, Sender<()>),
    Sync(Sender<Result<Vec<SegLen>>>),
}

struct Pending {
    records: Vec<Record>,
    rows: Vec<u8>,
    ack: Sender<Result<()>>,
    lsn: u64,
}

/// An append joins the batch being gathered; any other request ends it, to be done once the
/// batch is committed.
fn sort(r: Request) -> std::result::Result<Pending, After> {
    match r {
        Request::Append { records, rows, ack, lsn } => Ok(Pending { records, rows, ack, lsn }),
        Request::Retire { buckets, ack } => Err(After::Retire(buckets, ack)),
        Request::Sync { reply } => Err(After::Sync(reply)),
    }
}

/// The rows a caller built for a request's records, one at a time; none at all when they are
/// missing or do not hold exactly one row per record (the writer then encodes the records).
struct RowsOf<'a> {
    rows: &'a [u8],
}

impl<'a> RowsOf<'a> {
    fn new(rows: &'a [u8], count: usize) -> Self {
        let mut rest = rows;
        let mut n = 0;
        while let Some(len) = frame::row_len(rest) {
            rest = &rest[len..];
            n += 1;
        }
        let whole = n == count && rest.is_empty();
        RowsOf { rows: if whole { rows } else { &[] } }
    }

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = frame::row_len(self.rows)?;
        let (row, rest) = self.rows.split_at(len);
        self.rows = rest;
        Some(row)
    }
}

/// Rows bound for one segment within a batch.
struct SegBatch {
    seg: Arc<OpenSegment>,
    len_before: u64,
    frames: Vec<FrameBuf>,
}

/// A frame being built: the file offset it will be written at (an encrypted row's associated
/// data holds its own offset), the frame itself (room for its header, then the encoded rows:
/// [`frame::start_frame`]), and per row (request, record, offset in rows, length).
struct FrameBuf {
    at: u64,
    frame: Vec<u8>,
    metas: Vec<(usize, usize, u64, u32)>,
}

impl FrameBuf {
    /// Bytes of encoded rows so far.
    fn rows_len(&self) -> usize {
        self.frame.len() - FRAME_ROWS_AT
    }
}

/// Frame buffers a writer keeps between batches, and the largest it keeps: a batch's frames
/// are built in reused buffers, so that a steady stream of batches allocates none (a fresh
/// `Vec` per frame, grown row by row and then copied into the frame, was a fifth of the
/// writers' time in `malloc`, `realloc` and `memmove` in a profile of 8-thread appends).
const SPARE_BUFS: usize = 8;
const SPARE_BUF_BYTES_MAX: usize = 8 << 20;

impl Writer {
    /// A writer over `shard`; recovered open segments become writable (the newest generation of
    /// each bucket) or are retired at once (older ones).
    pub fn new(
        shard: Arc<Shard>,
        cfg: Arc<LogConfig>,
        clock: SharedClock,
        sealer: Sender<SealJob>,
        journal: Option<Arc<Shared>>,
        gen_floor: BTreeMap<i64, u32>,
    ) -> Self {
        let mut writable = BTreeMap::new();
        let mut retire = Vec::new();
        // New rows go to segments of the active key: a recovered segment of another key (or
        // plaintext, now that a key ring is configured) is sealed, and sealing re-encrypts.
        let active = shard.keys.as_ref().map(|k| k.active_id());
        for ((bucket, _), seg) in shard.read().open.iter() {
            if seg.cipher().map(|c| c.key_id) != active {
                retire.push(seg.clone());
            } else if let Some(older) = writable.insert(*bucket, seg.clone()) {
                retire.push(older);
            }
        }
        for seg in retire {
            let _ = sealer.send(SealJob::Seal(shard.clone(), seg, 0));
        }
        let now = clock.now_ms();
        Self {
            shard,
            cfg,
            clock,
            sealer,
            writable,
            last_batch: BTreeMap::new(),
            batch_seq: 0,
            last_maintenance_ms: now,
            journal,
            dirty: BTreeMap::new(),
            applied_lsn: 0,
            gen_floor,
            spare: Vec::new(),
        }
    }

    /// Runs until every sender of `rx` is dropped; requests still queued are served first.
    pub fn run(mut self, rx: Receiver<Request>) {
        let tick = Duration::from_millis(self.cfg.maintenance_interval_ms.max(1));
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => {
                    self.maintain();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = Vec::new();
            let mut after = None;
            match sort(first) {
                Ok(p) => batch.push(p),
                Err(a) => after = Some(a),
            }
            if after.is_none() {
                self.gather(&rx, &mut batch, &mut after);
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            match after {
                Some(After::Retire(buckets, ack)) => {
                    let chosen: Vec<i64> = match buckets {
                        Some(b) => b,
                        None => self.writable.keys().copied().collect(),
                    };
                    for b in chosen {
                        self.retire(b);
                    }
                    let _ = ack.send(());
                }
                Some(After::Sync(reply)) => {
                    let _ = reply.send(self.checkpoint_sync());
                }
                None => {}
            }
            self.maintain();
        }
    }

    fn gather(&self, rx: &Receiver<Request>, batch: &mut Vec<Pending>, after: &mut Option<After>) {
        let mut n: usize = batch.iter().map(|p| p.records.len()).sum();
        let mut bytes: usize = batch.iter().flat_map(|p| &p.records).map(Record::approx_bytes).sum();
        let deadline = std::time::Instant::now() + Duration::from_micros(self.cfg.group_commit_delay_us);
        while n < self.cfg.batch_records_max && bytes < self.cfg.batch_bytes_max {
            let next = match rx.try_recv() {
                Ok(r) => r,
                Err(_) if self.cfg.group_commit_delay_us > 0 => match rx.recv_deadline(deadline) {
                    Ok(r) => r,
                    Err(_) => break,
                },
                Err(_) => break,
            };
            match sort(next) {
                Ok(p) => {
                    n += p.records.len();
                    bytes += p.records.iter().map(Record::approx_bytes).sum::<usize>();
                    batch.push(p);
                }
                Err(a) => {
                    *after = Some(a);
                    break;
                }
            }
        }
    }

    fn commit(&mut self, batch: Vec<Pending>) {
        let result = match self.shard.poison_cause() {
            Some(cause) => Err(Error::Poisoned { shard: self.shard.id, cause }),
            None => self.write_batch(&batch),
        };
        match result {
            Ok(()) => {
                for p in batch {
                    let _ = p.ack.send(Ok(()));
                }
            }
            Err(e) => {
                for p in batch {
                    let _ = p.ack.send(Err(e.duplicate()));
                }
            }
        }
    }

    fn write_batch(&mut self, batch: &[Pending]) -> Result<()> {
        let now = self.clock.now_ms();
        let mut segs: BTreeMap<i64, SegBatch> = BTreeMap::new();
        let result = self.build_and_write(batch, now, &mut segs);
        // Whatever happened, the frame buffers go back for the next batch.
        for fb in segs.into_values().flat_map(|sb| sb.frames) {
            if self.spare.len() < SPARE_BUFS && fb.frame.capacity() <= SPARE_BUF_BYTES_MAX {
                self.spare.push(fb.frame);
            }
        }
        result
    }

    /// A frame buffer at `at`, reused when one is spare.
    fn frame_buf(&mut self, at: u64) -> FrameBuf {
        let mut frame = self.spare.pop().unwrap_or_default();
        frame::start_frame(&mut frame);
        FrameBuf { at, frame, metas: Vec::new() }
    }

    /// [`Writer::write_batch`]'s work, its frames built in `segs`.
    fn build_and_write(&mut self, batch: &[Pending], now: i64, segs: &mut BTreeMap<i64, SegBatch>) -> Result<()> {
        let frame_max = self.cfg.batch_bytes_max;
        let mut scratch = Vec::new();
        for (pi, p) in batch.iter().enumerate() {
            let mut rows = RowsOf::new(&p.rows, p.records.len());
            for (ri, r) in p.records.iter().enumerate() {
                let row = rows.next();
                let bucket = crate::time::bucket_start_ms(r.ts_ms, self.cfg.bucket_ms, self.cfg.tz_offset_ms);
                if let std::collections::btree_map::Entry::Vacant(v) = segs.entry(bucket) {
                    let seg = self.segment_for(bucket, now)?;
                    let len_before = seg.bytes();
                    let first = self.frame_buf(len_before);
                    v.insert(SegBatch { seg, len_before, frames: vec![first] });
                }
                let next_at = segs
                    .get(&bucket)
                    .and_then(|sb| sb.frames.last())
                    .filter(|f| f.rows_len() >= frame_max)
                    .map(|last| last.at + last.frame.len() as u64);
                if let Some(at) = next_at {
                    let fb = self.frame_buf(at);
                    if let Some(sb) = segs.get_mut(&bucket) {
                        sb.frames.push(fb);
                    }
                }
                let Some(sb) = segs.get_mut(&bucket) else { continue };
                let Some(fb) = sb.frames.last_mut() else { continue };
                let at = fb.rows_len() as u64;
                match sb.seg.cipher() {
                    None => match row {
                        Some(row) => fb.frame.extend_from_slice(row),
                        None => frame::encode_row(&mut fb.frame, r),
                    },
                    Some(c) => {
                        let row_off = fb.at + FRAME_ROWS_AT as u64 + at;
                        frame::encode_row_encrypted(&mut fb.frame, r, c, row_off, &mut scratch)
                            .map_err(|e| Error::crypto(sb.seg.path(), row_off, "row", None, e))?;
                    }
                }
                fb.metas.push((pi, ri, at, (fb.rows_len() as u64 - at) as u32));
            }
        }
        // Write every frame; on failure undo all of this batch's frames.
        let mut placed: Vec<(i64, usize, u64)> = Vec::new();
        let mut failure = None;
        'write: for (bucket, sb) in segs.iter_mut() {
            for (fi, fb) in sb.frames.iter_mut().enumerate() {
                frame::finish_frame(&mut fb.frame, fb.metas.len() as u32);
                match sb.seg.write_frame(&fb.frame) {
                    // Rows were sealed for the offset the frame was planned at: a frame landing
                    // elsewhere would be unreadable, so it is undone (only this writer appends,
                    // so it cannot happen).
                    Ok(at) if at != fb.at => {
                        failure = Some(Error::corrupt(
                            sb.seg.path(),
                            at,
                            format!("frame written at offset {at}, planned at {}", fb.at),
                        ));
                        break 'write;
                    }
                    Ok(at) => placed.push((*bucket, fi, at)),
                    Err(e) => {
                        failure = Some(e);
                        break 'write;
                    }
                }
            }
        }
        if failure.is_none() && self.journal.is_some() {
            // Between checkpoints, hand the written rows to the disk a step at a time, so that
            // the checkpoint's sync has little left (it would stall the journal's syncs).
            let step = self.cfg.writeback_bytes;
            failure = segs.values().find_map(|sb| sb.seg.start_writeback(step).err());
        }
        if let Some(e) = failure {
            self.undo(segs, &e);
            return Err(e);
        }
        if let Some(j) = &self.journal {
            // The journal makes the batch durable: its frame holds these records. Until the
            // journal says so, nothing is published; if it fails, the rows are undone.
            let lsn = batch.iter().map(|p| p.lsn).max().unwrap_or(0);
            if let Err(cause) = j.wait_durable(lsn) {
                self.undo(segs, &cause);
                self.poison(format!("journal: {cause}"));
                return Err(Error::Poisoned { shard: self.shard.id, cause: format!("journal: {cause}") });
            }
            self.applied_lsn = self.applied_lsn.max(lsn);
            for sb in segs.values() {
                let h = sb.seg.header;
                self.dirty.entry((h.bucket_start_ms, h.gen)).or_insert_with(|| sb.seg.clone());
            }
        } else if self.cfg.sync != SyncPolicy::None {
            for sb in segs.values() {
                self.sync_segment(&sb.seg)?;
            }
        }
        for (bucket, fi, at) in placed {
            let Some(sb) = segs.get(&bucket) else { continue };
            let Some(FrameBuf { metas, .. }) = sb.frames.get(fi) else { continue };
            let base = at + FRAME_ROWS_AT as u64;
            sb.seg.publish(metas.iter().map(|&(pi, ri, off, len)| (&batch[pi].records[ri], base + off, len)), now);
        }
        self.batch_seq += 1;
        for bucket in segs.keys() {
            self.last_batch.insert(*bucket, self.batch_seq);
        }
        let full: Vec<i64> =
            segs.iter().filter(|(_, sb)| sb.seg.bytes() >= self.cfg.segment_bytes_max).map(|(b, _)| *b).collect();
        for b in full {
            self.retire(b);
        }
        // Only now, with the whole batch durable and published, may segments be retired for the
        // open-segment limit: retiring one that this batch routed rows to would hand the sealer
        // a segment still being written.
        while self.writable.len() > self.cfg.open_segments_max {
            let lru = self.writable.keys().min_by_key(|b| (self.last_batch.get(b).copied().unwrap_or(0), **b)).copied();
            match lru {
                Some(b) => self.retire(b),
                None => break,
            }
        }
        Ok(())
    }

    /// Cuts each segment of a failed batch back to its length before the batch; a segment that
    /// cannot be cut poisons the shard.
    fn undo(&self, segs: &BTreeMap<i64, SegBatch>, cause: &dyn std::fmt::Display) {
        for sb in segs.values() {
            if let Err(re) = sb.seg.rollback_to(sb.len_before) {
                self.poison(format!("{cause}; then {re}"));
            }
        }
    }

    /// Syncs `seg` by the sync policy; a failure poisons the shard. Never retry a failed fsync:
    /// the kernel may have dropped the dirty pages.
    fn sync_segment(&self, seg: &OpenSegment) -> Result<()> {
        seg.sync(self.cfg.sync == SyncPolicy::Full).inspect_err(|e| self.poison(e.to_string()))
    }

    /// A journal checkpoint's part: syncs the open segments written since the last one, then
    /// lists every open segment of the shard with its length.
    fn checkpoint_sync(&mut self) -> Result<Vec<SegLen>> {
        if let Some(cause) = self.shard.poison_cause() {
            return Err(Error::Poisoned { shard: self.shard.id, cause });
        }
        for seg in std::mem::take(&mut self.dirty).into_values() {
            self.sync_segment(&seg)?;
        }
        let id = self.shard.id;
        Ok(self
            .shard
            .read()
            .open
            .iter()
            .map(|(&(bucket, gen), seg)| SegLen { shard: id, bucket, gen, len: seg.bytes() })
            .collect())
    }

    fn poison(&self, cause: String) {
        tracing::error!(shard = self.shard.id, %cause, "shard writer poisoned; appends refused until reopen");
        let mut p = self.shard.poisoned.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none() {
            *p = Some(cause);
        }
    }

    /// The segment receiving `bucket`'s appends, created if needed.
    fn segment_for(&mut self, bucket: i64, now: i64) -> Result<Arc<OpenSegment>> {
        if let Some(s) = self.writable.get(&bucket) {
            return Ok(s.clone());
        }
        let floor = self.gen_floor.get(&bucket).copied().unwrap_or(0);
        let gen = self.shard.read().next_gen(bucket).max(floor);
        self.gen_floor.insert(bucket, gen + 1);
        let header = SegmentHeader { shard: self.shard.id, bucket_start_ms: bucket, gen };
        let path = self.shard.dir.join(format!("{}.open", seg_stem(bucket, gen, self.cfg.tz_offset_ms)));
        let cipher = self.shard.new_cipher(&header);
        let seg = Arc::new(OpenSegment::create_with(&*self.shard.io, &path, header, now, cipher)?);
        self.shard.write().open.insert((bucket, gen), seg.clone());
        self.writable.insert(bucket, seg.clone());
        Ok(seg)
    }

    fn retire(&mut self, bucket: i64) {
        self.last_batch.remove(&bucket);
        if let Some(seg) = self.writable.remove(&bucket) {
            let _ = self.sealer.send(SealJob::Seal(self.shard.clone(), seg, self.applied_lsn));
        }
    }

    /// Retires segments whose bucket is over (past the grace period and idle, or a day past
    /// it whatever the traffic).
    fn maintain(&mut self) {
        let now = self.clock.now_ms();
        if now - self.last_maintenance_ms < self.cfg.maintenance_interval_ms as i64 {
            return;
        }
        self.last_maintenance_ms = now;
        let due: Vec<i64> = self
            .writable
            .iter()
            .filter(|(bucket, seg)| {
                let end = **bucket + self.cfg.bucket_ms;
                let idle = now - seg.last_write_ms.load(std::sync::atomic::Ordering::Acquire);
                now >= end + self.cfg.seal_grace_ms
                    && (idle >= self.cfg.seal_idle_ms || now >= end + self.cfg.seal_grace_ms + crate::time::DAY_MS)
            })
            .map(|(b, _)| *b)
            .collect();
        for b in due {
            self.retire(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Direction, PhoneNumber, SubPort, Usage};

    fn rec(i: u32) -> Record {
        Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse("1069012345601").unwrap(),
            peer: PhoneNumber::parse("13800138000").unwrap(),
            ts_ms: 1_777_599_000_000 + i64::from(i),
            usage: Some(Usage::Commercial),
            text: "验证码".repeat(i as usize),
        }
    }

    fn row(r: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        frame::encode_row(&mut out, r);
        out
    }

    #[test]
    fn a_callers_rows_are_taken_one_per_record() {
        let recs: Vec<Record> = (0..4).map(rec).collect();
        let mut rows = Vec::new();
        crate::log::journal::encode_rows(&mut rows, &recs);
        let mut it = RowsOf::new(&rows, recs.len());
        for r in &recs {
            assert_eq!(it.next(), Some(row(r).as_slice()));
        }
        assert_eq!(it.next(), None);
    }

    #[test]
    fn rows_that_do_not_match_the_records_are_not_taken_at_all() {
        let recs: Vec<Record> = (0..3).map(rec).collect();
        let mut rows = Vec::new();
        crate::log::journal::encode_rows(&mut rows, &recs);
        // One row too many or too few for the records.
        assert_eq!(RowsOf::new(&rows, 2).next(), None);
        assert_eq!(RowsOf::new(&rows, 4).next(), None);
        // A cut anywhere inside the last row.
        let last = row(&recs[2]).len();
        for cut in 1..last {
            assert_eq!(RowsOf::new(&rows[..rows.len() - cut], 3).next(), None, "cut {cut}");
        }
        // No rows: the writer encodes.
        assert_eq!(RowsOf::new(&[], 3).next(), None);
    }
}
