//! Sealed segments: immutable files of zstd-compressed columnar blocks sorted by time, with a
//! footer indexing blocks, sub-ports and numbers, read through a memory map.
//! Layout: docs/format.md ("Sealed segment").

#![allow(unsafe_code)]

use super::block;
use super::filter::{self, NumberFilter};
use super::frame::{SegmentHeader, HEADER_LEN, SEALED_MAGIC};
use super::index::{self, NumberIndex};
use crate::codec::{checksum, Reader};
use crate::error::{Error, Result};
use crate::record::Record;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Magic closing a sealed segment.
pub const TRAILER_MAGIC: [u8; 8] = *b"PLOGEND\0";
/// Size of the trailer at the end of a sealed segment.
pub const TRAILER_LEN: usize = 56;
const SECTION_LEN: usize = 32;
const BLOCK_ENTRY_LEN: usize = 48;

/// Section kinds of the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    /// Fixed-width block table.
    Blocks = 1,
    /// Sub-port → blocks.
    SubPorts = 2,
    /// Number → blocks.
    Numbers = 3,
    /// Split-block Bloom filter of the numbers (optional: segments written before it have none).
    NumberFilter = 4,
}

/// One block's entry in the block table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    /// File offset of the compressed block.
    pub offset: u64,
    /// Compressed length.
    pub clen: u32,
    /// Uncompressed length.
    pub rlen: u32,
    /// Records in the block.
    pub count: u32,
    /// Smallest record time.
    pub min_ts_ms: i64,
    /// Largest record time.
    pub max_ts_ms: i64,
    /// xxh3-64 of the compressed bytes.
    pub checksum: u64,
}

#[derive(Debug, Clone, Copy)]
struct Section {
    kind: u32,
    offset: u64,
    len: u64,
    checksum: u64,
}

/// What sealing produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct SealStats {
    /// Records written.
    pub records: u64,
    /// Blocks written.
    pub blocks: u32,
    /// File size.
    pub bytes: u64,
    /// Bytes of the footer indexes (sub-ports, numbers, block table).
    pub index_bytes: u64,
}

/// Writes a sealed segment holding `records` (sorted by time, ties in arrival order) to `path`
/// and fsyncs it. `records` is consumed block by block so that only one block is held encoded.
pub fn write_sealed<I>(
    path: &Path,
    header: SegmentHeader,
    records: I,
    block_bytes_max: usize,
    zstd_level: i32,
) -> Result<SealStats>
where
    I: Iterator<Item = Result<Record>>,
{
    let file = File::create(path).map_err(Error::io("create", path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let wr = |w: &mut BufWriter<File>, b: &[u8]| w.write_all(b).map_err(Error::io("write", path));
    wr(&mut w, &header.encode(SEALED_MAGIC))?;
    let mut pos = HEADER_LEN as u64;
    let mut metas: Vec<BlockMeta> = Vec::new();
    let mut sub_ports: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut numbers: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let (mut total, mut min_ts, mut max_ts) = (0u64, i64::MAX, i64::MIN);
    let mut last_ts = i64::MIN;

    let mut flush =
        |pending: &mut Vec<Record>, w: &mut BufWriter<File>, pos: &mut u64, metas: &mut Vec<BlockMeta>| -> Result<()> {
            if pending.is_empty() {
                return Ok(());
            }
            let id = metas.len() as u32;
            for r in pending.iter() {
                let b = sub_ports.entry(r.sub_port.as_str().to_owned()).or_default();
                if b.last() != Some(&id) {
                    b.push(id);
                }
                let b = numbers.entry(r.peer.as_u64()).or_default();
                if b.last() != Some(&id) {
                    b.push(id);
                }
            }
            let refs: Vec<&Record> = pending.iter().collect();
            let raw = block::encode(&refs);
            let comp = zstd::bulk::compress(&raw, zstd_level).map_err(Error::io("compress block for", path))?;
            metas.push(BlockMeta {
                offset: *pos,
                clen: comp.len() as u32,
                rlen: raw.len() as u32,
                count: pending.len() as u32,
                min_ts_ms: pending.first().map_or(0, |r| r.ts_ms),
                max_ts_ms: pending.last().map_or(0, |r| r.ts_ms),
                checksum: checksum(&[&comp]),
            });
            w.write_all(&comp).map_err(Error::io("write", path))?;
            *pos += comp.len() as u64;
            pending.clear();
            Ok(())
        };

    for r in records {
        let r = r?;
        if r.ts_ms < last_ts {
            return Err(Error::invalid("ts", "records given to the sealer are not sorted by time"));
        }
        last_ts = r.ts_ms;
        total += 1;
        min_ts = min_ts.min(r.ts_ms);
        max_ts = max_ts.max(r.ts_ms);
        pending_bytes += r.text.len() + r.sub_port.as_str().len() + 16;
        pending.push(r);
        if pending_bytes >= block_bytes_max || pending.len() >= block::BLOCK_RECORDS_MAX {
            flush(&mut pending, &mut w, &mut pos, &mut metas)?;
            pending_bytes = 0;
        }
    }
    flush(&mut pending, &mut w, &mut pos, &mut metas)?;

    let mut table = Vec::with_capacity(metas.len() * BLOCK_ENTRY_LEN);
    for m in &metas {
        table.extend_from_slice(&m.offset.to_le_bytes());
        table.extend_from_slice(&m.clen.to_le_bytes());
        table.extend_from_slice(&m.rlen.to_le_bytes());
        table.extend_from_slice(&m.count.to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
        table.extend_from_slice(&m.min_ts_ms.to_le_bytes());
        table.extend_from_slice(&m.max_ts_ms.to_le_bytes());
        table.extend_from_slice(&m.checksum.to_le_bytes());
    }
    let bodies = [
        (SectionKind::Blocks, table),
        (SectionKind::SubPorts, index::encode_sub_ports(&sub_ports)),
        (SectionKind::Numbers, index::encode_numbers(&numbers)),
        (SectionKind::NumberFilter, filter::encode(numbers.keys().copied())),
    ];
    let mut sections = Vec::new();
    let mut index_bytes = 0u64;
    for (kind, body) in &bodies {
        sections.push(Section { kind: *kind as u32, offset: pos, len: body.len() as u64, checksum: checksum(&[body]) });
        wr(&mut w, body)?;
        pos += body.len() as u64;
        index_bytes += body.len() as u64;
    }
    let sections_off = pos;
    let mut tail = Vec::with_capacity(sections.len() * SECTION_LEN + TRAILER_LEN);
    for s in &sections {
        tail.extend_from_slice(&s.kind.to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes());
        tail.extend_from_slice(&s.offset.to_le_bytes());
        tail.extend_from_slice(&s.len.to_le_bytes());
        tail.extend_from_slice(&s.checksum.to_le_bytes());
    }
    if total == 0 {
        (min_ts, max_ts) = (0, 0);
    }
    tail.extend_from_slice(&total.to_le_bytes());
    tail.extend_from_slice(&min_ts.to_le_bytes());
    tail.extend_from_slice(&max_ts.to_le_bytes());
    tail.extend_from_slice(&sections_off.to_le_bytes());
    tail.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    tail.extend_from_slice(&super::frame::FORMAT_VERSION.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    let c = checksum(&[&tail]);
    tail.extend_from_slice(&c.to_le_bytes());
    tail.extend_from_slice(&TRAILER_MAGIC);
    wr(&mut w, &tail)?;
    pos += tail.len() as u64;
    let file = w.into_inner().map_err(|e| Error::io("write", path)(e.into_error()))?;
    file.sync_all().map_err(Error::io("fsync", path))?;
    Ok(SealStats {
        records: total,
        blocks: metas.len() as u32,
        bytes: pos,
        index_bytes: index_bytes + tail.len() as u64,
    })
}

thread_local! {
    /// One zstd decompression context per reading thread: creating one per block costs about a
    /// third of decompressing a 256 KiB block.
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Decompresses one block of `rlen` bytes with the thread's context.
fn decompress(comp: &[u8], rlen: usize) -> std::io::Result<Vec<u8>> {
    DCTX.with(|c| {
        let mut c = c.try_borrow_mut().map_err(std::io::Error::other)?;
        if c.is_none() {
            *c = Some(zstd::bulk::Decompressor::new()?);
        }
        match c.as_mut() {
            Some(d) => d.decompress(comp, rlen),
            None => zstd::bulk::decompress(comp, rlen),
        }
    })
}

/// The fixed trailer at the end of a sealed segment.
struct Trailer {
    records: u64,
    min_ts_ms: i64,
    max_ts_ms: i64,
    sections_off: u64,
    sections: u32,
    version: u16,
    checksum: u64,
}

impl Trailer {
    fn parse(buf: &[u8]) -> std::result::Result<Self, &'static str> {
        let mut r = Reader::new(buf);
        let records = r.u64()?;
        let min_ts_ms = r.i64()?;
        let max_ts_ms = r.i64()?;
        let sections_off = r.u64()?;
        let sections = r.u32()?;
        let version = r.u16()?;
        let _reserved = r.u16()?;
        Ok(Self { records, min_ts_ms, max_ts_ms, sections_off, sections, version, checksum: r.u64()? })
    }
}

/// A sealed segment opened for reading.
pub struct SealedSegment {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Identity from the header.
    pub header: SegmentHeader,
    /// Number of records.
    pub records: u64,
    /// Smallest record time (0 when empty).
    pub min_ts_ms: i64,
    /// Largest record time (0 when empty).
    pub max_ts_ms: i64,
    sections: Vec<Section>,
    blocks: OnceLock<Vec<BlockMeta>>,
    sub_ports: OnceLock<BTreeMap<String, Vec<u32>>>,
    /// Offset and length of the number index once its checksum has been verified.
    numbers: OnceLock<(u64, u64)>,
    /// The number filter, copied to memory once its checksum has been verified (it is about
    /// 1.5 bytes per distinct number); `None` when the segment has no filter section.
    number_filter: OnceLock<Option<(u64, Box<[u8]>)>>,
}

impl std::fmt::Debug for SealedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSegment").field("path", &self.path).field("records", &self.records).finish()
    }
}

impl SealedSegment {
    /// Maps `path` and verifies its header and trailer (not its blocks: those are verified on
    /// every read), so that opening costs the same whatever the segment's size.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        // SAFETY: a sealed segment is never written again once renamed into place; the engine
        // only unlinks it, which leaves the mapping valid. An outside process truncating the file
        // would fault the mapping; docs/operations.md forbids editing the data directory.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io("mmap", path))?;
        let corrupt = |off: usize, d: &str| Error::corrupt(path, off as u64, d);
        let len = map.len();
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(0, "file too short for a sealed segment"));
        }
        let header = SegmentHeader::decode(&map, SEALED_MAGIC).map_err(|d| corrupt(0, d))?;
        let t0 = len - TRAILER_LEN;
        if map[len - 8..] != TRAILER_MAGIC {
            return Err(corrupt(len - 8, "bad trailer magic"));
        }
        let Trailer { records, min_ts_ms, max_ts_ms, sections_off, sections: n, version, checksum: stored } =
            Trailer::parse(&map[t0..]).map_err(|d| corrupt(t0, d))?;
        let n = n as usize;
        let so = usize::try_from(sections_off)
            .ok()
            .filter(|&so| so >= HEADER_LEN && so.checked_add(n * SECTION_LEN) == Some(t0));
        let Some(so) = so.filter(|_| n <= 64) else {
            return Err(corrupt(t0, "section table offset or count out of range"));
        };
        if checksum(&[&map[so..len - 16]]) != stored {
            return Err(corrupt(so, "footer checksum mismatch"));
        }
        if version != super::frame::FORMAT_VERSION {
            return Err(corrupt(t0, "unsupported format version"));
        }
        let mut sections = Vec::with_capacity(n);
        let mut r = Reader::new(&map[so..t0]);
        for i in 0..n {
            let s = (|| -> std::result::Result<Section, &'static str> {
                let kind = r.u32()?;
                let _ = r.u32()?;
                Ok(Section { kind, offset: r.u64()?, len: r.u64()?, checksum: r.u64()? })
            })()
            .map_err(|d| corrupt(so + i * SECTION_LEN, d))?;
            if s.offset < HEADER_LEN as u64 || s.offset.checked_add(s.len).is_none_or(|e| e > sections_off) {
                return Err(corrupt(so + i * SECTION_LEN, "section out of range"));
            }
            sections.push(s);
        }
        Ok(Self {
            path: path.to_owned(),
            map,
            header,
            records,
            min_ts_ms,
            max_ts_ms,
            sections,
            blocks: OnceLock::new(),
            sub_ports: OnceLock::new(),
            numbers: OnceLock::new(),
            number_filter: OnceLock::new(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    fn corrupt(&self, off: u64, d: impl Into<String>) -> Error {
        Error::corrupt(&self.path, off, d)
    }

    /// A section's file offset and bytes, its checksum verified.
    fn section(&self, kind: SectionKind) -> Result<(u64, &[u8])> {
        let s = self
            .sections
            .iter()
            .find(|s| s.kind == kind as u32)
            .ok_or_else(|| self.corrupt(self.map.len() as u64, format!("missing footer section {kind:?}")))?;
        // Bounds were checked at open.
        let body = &self.map[s.offset as usize..(s.offset + s.len) as usize];
        if checksum(&[body]) != s.checksum {
            return Err(self.corrupt(s.offset, format!("{kind:?} section checksum mismatch")));
        }
        Ok((s.offset, body))
    }

    /// Bytes of the footer sections of `kind` (0 when the segment has none).
    pub fn section_bytes(&self, kind: SectionKind) -> u64 {
        self.sections.iter().filter(|s| s.kind == kind as u32).map(|s| s.len).sum()
    }

    /// Bytes of the footer indexes.
    pub fn index_bytes(&self) -> u64 {
        self.sections.iter().map(|s| s.len).sum::<u64>() + (self.sections.len() * SECTION_LEN + TRAILER_LEN) as u64
    }

    /// The block table, parsed and verified on first use.
    pub fn blocks(&self) -> Result<&[BlockMeta]> {
        if let Some(b) = self.blocks.get() {
            return Ok(b);
        }
        let (off, body) = self.section(SectionKind::Blocks)?;
        if body.len() % BLOCK_ENTRY_LEN != 0 {
            return Err(self.corrupt(off, "block table length not a multiple of its entry"));
        }
        let mut out = Vec::with_capacity(body.len() / BLOCK_ENTRY_LEN);
        let mut r = Reader::new(body);
        let mut end = HEADER_LEN as u64;
        let mut count = 0u64;
        while r.remaining() > 0 {
            let at = off + r.pos() as u64;
            let m = (|| -> std::result::Result<BlockMeta, &'static str> {
                let offset = r.u64()?;
                let clen = r.u32()?;
                let rlen = r.u32()?;
                let count = r.u32()?;
                let _ = r.u32()?;
                Ok(BlockMeta {
                    offset,
                    clen,
                    rlen,
                    count,
                    min_ts_ms: r.i64()?,
                    max_ts_ms: r.i64()?,
                    checksum: r.u64()?,
                })
            })()
            .map_err(|d| self.corrupt(at, d))?;
            if m.offset != end || m.min_ts_ms > m.max_ts_ms {
                return Err(self.corrupt(at, "block table entry out of order"));
            }
            end = m.offset + u64::from(m.clen);
            count += u64::from(m.count);
            out.push(m);
        }
        if count != self.records || end > off {
            return Err(self.corrupt(off, "block table disagrees with the trailer"));
        }
        Ok(self.blocks.get_or_init(|| out))
    }

    /// Block `i`'s table entry and its bytes, checksum verified, decompressed and checked
    /// against the table's length.
    fn block_raw(&self, i: usize) -> Result<(BlockMeta, Vec<u8>)> {
        let m = *self.blocks()?.get(i).ok_or_else(|| self.corrupt(0, format!("block {i} does not exist")))?;
        let comp = &self.map[m.offset as usize..(m.offset + u64::from(m.clen)) as usize];
        if checksum(&[comp]) != m.checksum {
            return Err(self.corrupt(m.offset, format!("block {i} checksum mismatch")));
        }
        let raw =
            decompress(comp, m.rlen as usize).map_err(|e| self.corrupt(m.offset, format!("block {i}: zstd: {e}")))?;
        if raw.len() != m.rlen as usize {
            return Err(self.corrupt(m.offset, format!("block {i}: decompressed length differs from the table")));
        }
        Ok((m, raw))
    }

    /// Reads, verifies and decodes block `i`.
    pub fn read_block(&self, i: usize) -> Result<Vec<Record>> {
        let (m, raw) = self.block_raw(i)?;
        let recs = block::decode(&raw).map_err(|d| self.corrupt(m.offset, format!("block {i}: {d}")))?;
        let first = recs.first().map(|r| r.ts_ms);
        let last = recs.last().map(|r| r.ts_ms);
        if recs.len() != m.count as usize || first != Some(m.min_ts_ms) || last != Some(m.max_ts_ms) {
            return Err(self.corrupt(m.offset, format!("block {i}: contents disagree with the block table")));
        }
        Ok(recs)
    }

    /// Reads and verifies block `i` like [`Self::read_block`], but builds only the records of
    /// `number` (in block order).
    pub fn read_block_of_number(&self, i: usize, number: u64) -> Result<Vec<Record>> {
        let (m, raw) = self.block_raw(i)?;
        let (sum, recs) =
            block::decode_peer(&raw, number).map_err(|d| self.corrupt(m.offset, format!("block {i}: {d}")))?;
        if sum.count != m.count as usize || sum.first_ts != Some(m.min_ts_ms) || sum.last_ts != Some(m.max_ts_ms) {
            return Err(self.corrupt(m.offset, format!("block {i}: contents disagree with the block table")));
        }
        Ok(recs)
    }

    /// Blocks that hold `sub_port` (ascending).
    pub fn blocks_of_sub_port(&self, sub_port: &str) -> Result<Vec<u32>> {
        if self.sub_ports.get().is_none() {
            let (off, body) = self.section(SectionKind::SubPorts)?;
            let n = self.blocks()?.len() as u32;
            let map =
                index::decode_sub_ports(body, n).map_err(|d| self.corrupt(off, format!("sub-port index: {d}")))?;
            let _ = self.sub_ports.set(map);
        }
        Ok(self.sub_ports.get().and_then(|m| m.get(sub_port).cloned()).unwrap_or_default())
    }

    /// Blocks that hold `number` (ascending).
    pub fn blocks_of_number(&self, number: u64) -> Result<Vec<u32>> {
        // The section's checksum is verified once per segment, not on every lookup.
        let (off, body) = match self.numbers.get() {
            Some(&(off, len)) => (off, &self.map[off as usize..(off + len) as usize]),
            None => {
                let (off, body) = self.section(SectionKind::Numbers)?;
                let _ = self.numbers.set((off, body.len() as u64));
                (off, body)
            }
        };
        let n = self.blocks()?.len() as u32;
        let ix = NumberIndex::open(body, n).map_err(|d| self.corrupt(off, format!("number index: {d}")))?;
        ix.lookup(number).map_err(|d| self.corrupt(off, format!("number index: {d}")))
    }

    /// Whether the segment has a number filter (segments sealed before it existed do not).
    pub fn has_number_filter(&self) -> bool {
        self.sections.iter().any(|s| s.kind == SectionKind::NumberFilter as u32)
    }

    /// `Ok(false)` when the segment certainly holds no record of `number`, `Ok(true)` when it
    /// may (always, for a segment without a filter). On first use the filter's checksum and
    /// framing are verified and its bytes copied to memory, once per segment: later probes
    /// read one 32-byte block and no page of the file, so a segment without the number costs
    /// no I/O even when its file has left the page cache.
    pub fn may_contain_number(&self, number: u64) -> Result<bool> {
        let f = match self.number_filter.get() {
            Some(f) => f,
            None => {
                let f = if self.has_number_filter() {
                    let (off, body) = self.section(SectionKind::NumberFilter)?;
                    NumberFilter::open(body).map_err(|d| self.corrupt(off, format!("number filter: {d}")))?;
                    Some((off, Box::from(body)))
                } else {
                    None
                };
                self.number_filter.get_or_init(|| f)
            }
        };
        let Some((off, body)) = f else { return Ok(true) };
        // The framing was verified when it was loaded: this cannot fail, but a failure would
        // still be reported rather than answered.
        let f = NumberFilter::open(body).map_err(|d| self.corrupt(*off, format!("number filter: {d}")))?;
        Ok(f.may_contain(number))
    }

    /// Bytes of the number filter held in memory (0 before its first use or without one).
    pub fn number_filter_memory(&self) -> usize {
        self.number_filter.get().and_then(|f| f.as_ref()).map_or(0, |f| f.1.len())
    }

    /// Drops this process's page mappings of the file (`madvise(DONTNEED)`), so that its pages
    /// can leave the page cache (`posix_fadvise(DONTNEED)` or the kernel's reclaim). Parsed
    /// caches (block table, verified checksums) are kept. For cold-cache benchmarks.
    pub fn release_pages(&self) -> Result<()> {
        // SAFETY: the mapping is read-only and shared, and the file is never written after its
        // rename: MADV_DONTNEED only drops page-table entries, and the next access faults the
        // same bytes back in from the file. No reference into the map is invalidated.
        unsafe { self.map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) }
            .map_err(Error::io("madvise", &self.path))
    }
}
