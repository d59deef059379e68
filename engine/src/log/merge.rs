//! Reading in time order: a cursor per segment (sealed blocks decoded one at a time, open rows
//! read one at a time) and a k-way merge that activates a segment's cursor only when the merge
//! reaches that segment's first time, so memory stays at one block per active segment.

use super::open_segment::{OpenSegment, RowRef};
use super::sealed::SealedSegment;
use crate::error::Result;
use crate::record::Record;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// What a read wants: a half-open time window and optional equality filters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Inclusive lower bound, ms.
    pub from_ms: i64,
    /// Exclusive upper bound, ms.
    pub to_ms: i64,
    /// Only this sub-port.
    pub sub_port: Option<String>,
    /// Only this number.
    pub peer: Option<u64>,
}

impl Filter {
    fn matches(&self, r: &Record) -> bool {
        r.ts_ms >= self.from_ms
            && r.ts_ms < self.to_ms
            && self.sub_port.as_deref().is_none_or(|s| s == r.sub_port.as_str())
            && self.peer.is_none_or(|p| p == r.peer.as_u64())
    }

    fn overlaps(&self, min_ts: i64, max_ts: i64) -> bool {
        min_ts < self.to_ms && max_ts >= self.from_ms
    }
}

/// A stream of records of one segment, ascending by time.
pub trait Cursor: Send {
    /// Time of the first record this cursor may yield (a lower bound).
    fn first_ts(&self) -> i64;
    /// The next record.
    fn next_record(&mut self) -> Option<Result<Record>>;
}

/// Cursor over a sealed segment.
pub struct SealedCursor {
    seg: Arc<SealedSegment>,
    blocks: VecDeque<(u32, i64)>,
    buf: VecDeque<Record>,
    filter: Arc<Filter>,
}

impl SealedCursor {
    /// `None` when no block can match.
    pub fn new(seg: Arc<SealedSegment>, filter: Arc<Filter>) -> Result<Option<Self>> {
        if seg.records == 0 || !filter.overlaps(seg.min_ts_ms, seg.max_ts_ms) {
            return Ok(None);
        }
        // The number filter turns away a segment without the number before its block table or
        // number index is read.
        if let Some(p) = filter.peer {
            if !seg.may_contain_number(p)? {
                return Ok(None);
            }
        }
        let metas = seg.blocks()?;
        let candidates: Vec<u32> = match (&filter.peer, &filter.sub_port) {
            (Some(p), _) => seg.blocks_of_number(*p)?,
            (None, Some(s)) => seg.blocks_of_sub_port(s)?,
            (None, None) => (0..metas.len() as u32).collect(),
        };
        let blocks: VecDeque<(u32, i64)> = candidates
            .into_iter()
            .filter_map(|b| metas.get(b as usize).map(|m| (b, m)))
            .filter(|(_, m)| filter.overlaps(m.min_ts_ms, m.max_ts_ms))
            .map(|(b, m)| (b, m.min_ts_ms))
            .collect();
        if blocks.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self { seg, blocks, buf: VecDeque::new(), filter }))
    }
}

impl Cursor for SealedCursor {
    fn first_ts(&self) -> i64 {
        self.buf.front().map(|r| r.ts_ms).or(self.blocks.front().map(|b| b.1)).unwrap_or(i64::MAX)
    }

    fn next_record(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some(r) = self.buf.pop_front() {
                return Some(Ok(r));
            }
            let (b, _) = self.blocks.pop_front()?;
            let recs = match (self.filter.peer, &self.filter.sub_port) {
                (Some(p), _) => self.seg.read_block_of_number(b as usize, p),
                (None, Some(s)) => self.seg.read_block_of_sub_port(b as usize, s),
                (None, None) => self.seg.read_block(b as usize),
            };
            match recs {
                Ok(recs) => self.buf = recs.into_iter().filter(|r| self.filter.matches(r)).collect(),
                Err(e) => {
                    self.blocks.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Cursor over the rows of an open segment that were durable when it was made.
pub struct OpenCursor {
    seg: Arc<OpenSegment>,
    rows: VecDeque<RowRef>,
    filter: Arc<Filter>,
}

impl OpenCursor {
    /// Snapshot of the matching rows, sorted by (time, arrival).
    pub fn new(seg: Arc<OpenSegment>, filter: Arc<Filter>) -> Option<Self> {
        let mut rows: Vec<RowRef> = {
            let ix = seg.read_index();
            if ix.rows.is_empty() || !filter.overlaps(ix.min_ts_ms, ix.max_ts_ms) {
                return None;
            }
            match (&filter.peer, &filter.sub_port) {
                (Some(p), _) => ix.rows_of_peer(*p),
                (None, Some(s)) => ix.rows_of_sub_port(s.as_str()),
                (None, None) => ix.rows.to_vec(),
            }
        };
        rows.retain(|r| r.ts_ms >= filter.from_ms && r.ts_ms < filter.to_ms);
        if rows.is_empty() {
            return None;
        }
        rows.sort_by_key(|r| (r.ts_ms, r.off));
        Some(Self { seg, rows: rows.into(), filter })
    }
}

impl Cursor for OpenCursor {
    fn first_ts(&self) -> i64 {
        self.rows.front().map_or(i64::MAX, |r| r.ts_ms)
    }

    fn next_record(&mut self) -> Option<Result<Record>> {
        loop {
            let row = self.rows.pop_front()?;
            match self.seg.read_row(row) {
                Ok(r) if self.filter.matches(&r) => return Some(Ok(r)),
                Ok(_) => continue,
                Err(e) => {
                    self.rows.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Merges cursors into one stream ascending by time; ties are broken by the order the cursors
/// were given in (segment order), then by each cursor's own order. After an error it ends.
pub struct Merge {
    pending: VecDeque<Box<dyn Cursor>>,
    active: Vec<Box<dyn Cursor>>,
    heap: BinaryHeap<Reverse<(i64, usize, u64)>>,
    heads: Vec<Option<Record>>,
    seq: u64,
    failed: bool,
}

impl Merge {
    /// `cursors` in segment order (bucket, then generation).
    pub fn new(mut cursors: Vec<Box<dyn Cursor>>) -> Self {
        // Stable sort keeps segment order among equal first times.
        cursors.sort_by_key(|c| c.first_ts());
        Self {
            pending: cursors.into(),
            active: Vec::new(),
            heap: BinaryHeap::new(),
            heads: Vec::new(),
            seq: 0,
            failed: false,
        }
    }

    fn pull(&mut self, i: usize) -> Option<Result<()>> {
        match self.active[i].next_record() {
            Some(Ok(r)) => {
                self.seq += 1;
                self.heap.push(Reverse((r.ts_ms, i, self.seq)));
                self.heads[i] = Some(r);
                Some(Ok(()))
            }
            Some(Err(e)) => Some(Err(e)),
            None => None,
        }
    }
}

impl Iterator for Merge {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.failed {
            return None;
        }
        loop {
            let top = self.heap.peek().map(|Reverse((ts, _, _))| *ts);
            match (self.pending.front().map(|c| c.first_ts()), top) {
                (Some(p), Some(t)) if p > t => break,
                (Some(_), _) => {
                    let c = self.pending.pop_front()?;
                    self.active.push(c);
                    self.heads.push(None);
                    let i = self.active.len() - 1;
                    if let Some(Err(e)) = self.pull(i) {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
                (None, _) => break,
            }
        }
        let Reverse((_, i, _)) = self.heap.pop()?;
        let rec = self.heads[i].take()?;
        if let Some(Err(e)) = self.pull(i) {
            self.failed = true;
            return Some(Err(e));
        }
        Some(Ok(rec))
    }
}
