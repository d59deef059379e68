//! Trace: every record to or from one number, across every shard, sub-port and segment, in time
//! order, streamed, with optional sub-port, direction, window and limit filters
//! ([`Log::trace`]).
//!
//! The query snapshots the catalogue of the shards it needs (one shard when a sub-port is
//! given, all otherwise), keeps the segments whose time range overlaps the window (trailer
//! times and in-memory bounds: no I/O) and merges them lazily: a sealed segment is consulted
//! only when the merge reaches its first possible time, and then costs one probe of its number
//! filter (footer section kind 4, one 32-byte block) when it does not hold the number; only
//! when the filter says "maybe" are the number index and the listed blocks read. So the first
//! records come out before later segments are touched, and a `limit` stops the reading.
//!
//! Order: ascending record time; records with equal times come in (shard, bucket, generation)
//! order, and within one segment in arrival order.

use super::merge::{Cursor, Filter, OpenCursor};
use super::sealed::SealedSegment;
use super::shard::Shard;
use super::{Log, Records};
use crate::error::{Error, Result};
use crate::record::{Direction, PhoneNumber, Record, SubPort};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// What a trace asks for. `from_ms` is inclusive, `to_ms` exclusive (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceQuery {
    /// The number: recipient of an MT, sender of an MO.
    pub number: PhoneNumber,
    /// Inclusive lower bound of record time.
    pub from_ms: i64,
    /// Exclusive upper bound of record time.
    pub to_ms: i64,
    /// Only records of this sub-port.
    pub sub_port: Option<SubPort>,
    /// Only MT or only MO records.
    pub direction: Option<Direction>,
    /// At most this many records (the first ones in time order); must be positive.
    pub limit: Option<usize>,
}

impl TraceQuery {
    /// Every record of `number`, whole time range, no filter.
    pub fn new(number: PhoneNumber) -> Self {
        Self { number, from_ms: 0, to_ms: i64::MAX, sub_port: None, direction: None, limit: None }
    }

    /// Restricts to record times in `[from_ms, to_ms)`.
    pub fn window(mut self, from_ms: i64, to_ms: i64) -> Self {
        (self.from_ms, self.to_ms) = (from_ms, to_ms);
        self
    }

    /// Checks the arguments; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.from_ms > self.to_ms {
            return Err(Error::invalid(
                "from_ms",
                format!("the window's start ({} ms) is after its end, to_ms ({} ms)", self.from_ms, self.to_ms),
            ));
        }
        if self.limit == Some(0) {
            return Err(Error::invalid("limit", "must be at least 1 (omit it for no limit)"));
        }
        Ok(())
    }
}

/// The per-record predicate of a trace.
#[derive(Debug)]
struct Pred {
    number: u64,
    from_ms: i64,
    to_ms: i64,
    sub_port: Option<SubPort>,
    direction: Option<Direction>,
}

impl Pred {
    fn matches(&self, r: &Record) -> bool {
        r.peer.as_u64() == self.number
            && r.ts_ms >= self.from_ms
            && r.ts_ms < self.to_ms
            && self.direction.is_none_or(|d| d == r.dir)
            && self.sub_port.as_ref().is_none_or(|s| *s == r.sub_port)
    }

    fn overlaps(&self, min_ts: i64, max_ts: i64) -> bool {
        min_ts < self.to_ms && max_ts >= self.from_ms
    }
}

/// A sealed segment's records of the number, resolved (filter, index) on first use.
struct SealedTrace {
    seg: Arc<SealedSegment>,
    pred: Arc<Pred>,
    /// Lower bound of the first record's time before the blocks are known.
    lower: i64,
    /// Candidate blocks and their smallest times; `None` until resolved.
    blocks: Option<VecDeque<(u32, i64)>>,
    buf: VecDeque<Record>,
}

impl SealedTrace {
    fn resolve(&self) -> Result<VecDeque<(u32, i64)>> {
        let n = self.pred.number;
        if !self.seg.may_contain_number(n)? {
            return Ok(VecDeque::new());
        }
        let metas = self.seg.blocks()?;
        Ok(self
            .seg
            .blocks_of_number(n)?
            .into_iter()
            .filter_map(|b| metas.get(b as usize).map(|m| (b, m)))
            .filter(|(_, m)| self.pred.overlaps(m.min_ts_ms, m.max_ts_ms))
            .map(|(b, m)| (b, m.min_ts_ms))
            .collect())
    }
}

impl Cursor for SealedTrace {
    fn first_ts(&self) -> i64 {
        match (self.buf.front(), &self.blocks) {
            (Some(r), _) => r.ts_ms,
            (None, None) => self.lower,
            (None, Some(b)) => b.front().map_or(i64::MAX, |b| b.1.max(self.lower)),
        }
    }

    fn next_record(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                return Some(Ok(r));
            }
            if self.blocks.is_none() {
                match self.resolve() {
                    Ok(b) => self.blocks = Some(b),
                    Err(e) => {
                        self.blocks = Some(VecDeque::new());
                        return Some(Err(e));
                    }
                }
            }
            let (b, _) = self.blocks.as_mut()?.pop_front()?;
            match self.seg.read_block_of_number(b as usize, self.pred.number) {
                Ok(recs) => self.buf = recs.into_iter().filter(|r| self.pred.matches(r)).collect(),
                Err(e) => {
                    self.blocks = Some(VecDeque::new());
                    return Some(Err(e));
                }
            }
        }
    }
}

/// An open segment's matching rows (snapshot of its in-memory index), with the predicates the
/// open cursor does not apply itself (direction).
struct OpenTrace {
    inner: OpenCursor,
    pred: Arc<Pred>,
}

impl Cursor for OpenTrace {
    fn first_ts(&self) -> i64 {
        self.inner.first_ts()
    }

    fn next_record(&mut self) -> Option<Result<Record>> {
        loop {
            match self.inner.next_record()? {
                Ok(r) if !self.pred.matches(&r) => continue,
                other => return Some(other),
            }
        }
    }
}

/// A k-way merge by time whose ties go to the lower rank (the cursor's place in (shard, bucket,
/// generation) order). A cursor is activated only when the merge reaches its lower bound. After
/// an error it yields the record already taken, then the error, then nothing.
struct TraceMerge {
    /// Not yet activated: (lower bound, rank, cursor), ascending.
    pending: VecDeque<(i64, usize, Box<dyn Cursor>)>,
    active: Vec<(usize, Box<dyn Cursor>)>,
    heads: Vec<Option<Record>>,
    heap: BinaryHeap<Reverse<(i64, usize, usize)>>,
    error: Option<Error>,
    done: bool,
}

impl TraceMerge {
    fn new(mut cursors: Vec<(usize, Box<dyn Cursor>)>) -> Self {
        let mut pending: Vec<(i64, usize, Box<dyn Cursor>)> =
            cursors.drain(..).map(|(rank, c)| (c.first_ts(), rank, c)).collect();
        pending.sort_by_key(|(lower, rank, _)| (*lower, *rank));
        Self {
            pending: pending.into(),
            active: Vec::new(),
            heads: Vec::new(),
            heap: BinaryHeap::new(),
            error: None,
            done: false,
        }
    }

    /// Moves cursor `slot`'s next record into the heap.
    fn pull(&mut self, slot: usize) -> Result<()> {
        let (rank, c) = &mut self.active[slot];
        match c.next_record() {
            Some(Ok(r)) => {
                self.heap.push(Reverse((r.ts_ms, *rank, slot)));
                self.heads[slot] = Some(r);
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    fn step(&mut self) -> Result<Option<Record>> {
        loop {
            let top = self.heap.peek().map(|Reverse((ts, _, _))| *ts);
            match (self.pending.front().map(|p| p.0), top) {
                (Some(p), Some(t)) if p > t => break,
                (Some(_), _) => {
                    let Some((_, rank, c)) = self.pending.pop_front() else { break };
                    self.active.push((rank, c));
                    self.heads.push(None);
                    self.pull(self.active.len() - 1)?;
                }
                (None, _) => break,
            }
        }
        let Some(Reverse((_, _, slot))) = self.heap.pop() else { return Ok(None) };
        let rec = self.heads[slot].take();
        if let Err(e) = self.pull(slot) {
            self.error = Some(e);
        }
        Ok(rec)
    }
}

impl Iterator for TraceMerge {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.done {
            return None;
        }
        if let Some(e) = self.error.take() {
            self.done = true;
            return Some(Err(e));
        }
        match self.step() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl Log {
    /// Every record to or from `q.number` in `[q.from_ms, q.to_ms)`, across every shard and
    /// segment (sealed, open, back-filled generations), optionally only of one sub-port and/or
    /// one direction, at most `q.limit` of them, in time order (ties: shard, then segment, then
    /// arrival). Streaming: segments are read as the merge reaches them.
    ///
    /// Errors: [`Error::Invalid`] naming `from_ms` or `limit` for a bad query;
    /// [`Error::Corrupt`] naming the file and offset when a footer section (filter, number
    /// index, block table) or a block fails its checksum or structure, and when a sealed
    /// segment of a shard the trace reads failed verification when the log was opened (the
    /// answer would be incomplete). A corruption met while streaming ends the stream with the
    /// error; the records before it are correct.
    pub fn trace(&self, q: &TraceQuery) -> Result<Records> {
        q.validate()?;
        let shards: Vec<&Arc<Shard>> = match &q.sub_port {
            Some(sp) => vec![&self.shards[self.shard_of(sp) as usize]],
            None => self.shards.iter().collect(),
        };
        for s in &shards {
            self.refuse_damaged(s)?;
        }
        let pred = Arc::new(Pred {
            number: q.number.as_u64(),
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            sub_port: q.sub_port.clone(),
            direction: q.direction,
        });
        let open_filter = Arc::new(Filter {
            from_ms: q.from_ms,
            to_ms: q.to_ms,
            sub_port: q.sub_port.as_ref().map(|s| s.as_str().to_owned()),
            peer: Some(pred.number),
        });
        let mut cursors: Vec<(usize, Box<dyn Cursor>)> = Vec::new();
        let mut rank = 0usize;
        for s in shards {
            let cat = s.read();
            let mut keyed: Vec<((i64, u32), Box<dyn Cursor>)> = Vec::new();
            for (k, seg) in &cat.sealed {
                if seg.records == 0 || !pred.overlaps(seg.min_ts_ms, seg.max_ts_ms) {
                    continue;
                }
                let lower = seg.min_ts_ms.max(q.from_ms);
                let c = SealedTrace { seg: seg.clone(), pred: pred.clone(), lower, blocks: None, buf: VecDeque::new() };
                keyed.push((*k, Box::new(c)));
            }
            for (k, seg) in &cat.open {
                if let Some(c) = OpenCursor::new(seg.clone(), open_filter.clone()) {
                    keyed.push((*k, Box::new(OpenTrace { inner: c, pred: pred.clone() })));
                }
            }
            keyed.sort_by_key(|(k, _)| *k);
            for (_, c) in keyed {
                cursors.push((rank, c));
                rank += 1;
            }
        }
        let merge = TraceMerge::new(cursors);
        Ok(match q.limit {
            Some(n) => Box::new(merge.take(n)),
            None => Box::new(merge),
        })
    }

    /// A sealed segment of `shard` that failed verification at open is not served: a trace
    /// over the shard would silently miss its records, so it is refused, naming the file (and,
    /// when the file still fails, the offset of the damage).
    fn refuse_damaged(&self, shard: &Shard) -> Result<()> {
        let Some((path, why)) = self.recovery.damaged.iter().find(|(p, _)| p.parent() == Some(shard.dir.as_path()))
        else {
            return Ok(());
        };
        Err(match SealedSegment::open_with_keys(path, shard.keys.clone()) {
            Err(e @ Error::Corrupt { .. }) => e,
            _ => Error::corrupt(
                path,
                0,
                format!(
                    "sealed segment failed verification when the log was opened ({why}); not served until reopened"
                ),
            ),
        })
    }

    /// Drops this process's page mappings of every sealed segment (see
    /// [`SealedSegment::release_pages`]) so that the kernel may evict them from the page cache;
    /// for cold-cache measurements (with `posix_fadvise(DONTNEED)` on the files).
    pub fn release_sealed_pages(&self) -> Result<()> {
        for s in &self.shards {
            let segs: Vec<Arc<SealedSegment>> = s.read().sealed.values().cloned().collect();
            for seg in segs {
                seg.release_pages()?;
            }
        }
        Ok(())
    }
}
