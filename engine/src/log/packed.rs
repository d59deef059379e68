//! Packed blocks (sealed format 5): every column of a block bit-packed against tables the
//! segment holds once, with no zstd over the block.
//!
//! A templated block (format 4) still spent most of its bytes on what zstd cannot shrink in a
//! block of a hundred records: 5-byte numbers (random to zstd), a per-block dictionary of
//! 13-digit sub-ports, and digits as ASCII. A packed block stores per record:
//! - its time as a Rice code of the delta to the previous record (one parameter per block);
//! - its sub-port as a rank into the segment's sorted sub-ports (the sub-port index);
//! - its number as a rank into the segment's sorted numbers (the number index);
//! - its **shape**: the direction, usage, template and digit-run lengths together, an id into
//!   the segment's shape table (footer section kind 7), so that a code's fixed six digits cost
//!   nothing beyond the id;
//! - its digits, three to 10 bits (a tail of two to 7 bits, of one to 4).
//!
//! Ranks and ids take the fewest bits their block's largest value needs. A text that is not
//! split into a template is a literal: its shape says so, and the block's literal section (a
//! zstd frame) holds it. Layout: docs/format.md, "Packed block". Each field of a record sits
//! at a known bit offset once the widths are read, so a read by number or sub-port scans one
//! column and builds only its records. Hand-written because it is the hot path of traces and
//! the point of the format: no crate packs these columns against the segment's own tables.

use super::frame::{meta_byte, parse_meta};
use super::template::{self, IdTable, TemplateBuilder, Templates};
use crate::codec::{put_varint, Reader};
use crate::record::{Direction, PhoneNumber, Record, SubPort, Usage};
use std::io::Read;

/// Most raw bytes of a shape table a sealer writes; later new shapes are stored as literals.
pub const SHAPES_BYTES_MAX: usize = 1 << 20;
/// Most shapes in one table.
const SHAPES_COUNT_MAX: usize = 1 << 18;
/// Room a full table keeps for each literal shape (one per meta byte, at most 8).
const LITERAL_RESERVE: usize = 8;
/// zstd level of the shape table section.
const SHAPES_ZSTD_LEVEL: i32 = 19;
/// Rice quotients from this one on are escaped: that many one bits, then the delta in 64 bits.
const RICE_ESCAPE: u32 = 32;
/// Largest Rice parameter.
const RICE_K_MAX: u8 = 40;
/// Fixed header of a packed block: count, first time, Rice parameter, three widths, bit bytes.
const HEADER_LEN: usize = 4 + 8 + 4 + 4;
/// Largest uncompressed literal section a reader accepts.
const LITERALS_BYTES_MAX: usize = 64 << 20;

/// Bits that hold the digits of a shape with `digits` digits: 10 per three, 7 for a tail of
/// two, 4 for a tail of one.
pub fn digit_bits(digits: u32) -> u32 {
    10 * (digits / 3) + [0, 4, 7][(digits % 3) as usize]
}

/// Bits needed for values up to `max` (0 for 0).
fn width(max: u64) -> u8 {
    (u64::BITS - max.leading_zeros()) as u8
}

/// Largest field [`BitWriter::put`] and [`BitReader::get`] take: a window of 64 bits less the
/// 7 a field may start into its first byte.
const FIELD_BITS_MAX: u32 = 56;

/// Appends bit fields, least significant bit first, to a byte vector (a packed block's columns,
/// a ranked number index's offsets).
pub(crate) struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        Self { out: Vec::new(), acc: 0, n: 0 }
    }

    /// Appends the low `bits` (at most [`FIELD_BITS_MAX`]) bits of `v`.
    pub(crate) fn put(&mut self, v: u64, bits: u32) {
        debug_assert!(bits <= FIELD_BITS_MAX && v >> bits == 0);
        self.acc |= v << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn put64(&mut self, v: u64) {
        self.put(v & 0xffff_ffff, 32);
        self.put(v >> 32, 32);
    }

    /// The bytes, the last one padded with zero bits.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Reads bit fields written by [`BitWriter`], every read bounds-checked.
#[derive(Clone)]
pub(crate) struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader of `buf` at bit `pos`.
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    /// The bits from bit `pos` on (at least 57 of them), zero past the end.
    #[inline]
    fn window(&self) -> u64 {
        let byte = self.pos / 8;
        let w = match self.buf.get(byte..byte + 8) {
            Some(s) => u64::from_le_bytes(s.try_into().unwrap_or([0; 8])),
            None => {
                let mut w = [0u8; 8];
                if let Some(s) = self.buf.get(byte..) {
                    w[..s.len()].copy_from_slice(s);
                }
                u64::from_le_bytes(w)
            }
        };
        w >> (self.pos % 8)
    }

    /// The next field of `bits` (at most [`FIELD_BITS_MAX`]) bits.
    #[inline]
    pub(crate) fn get(&mut self, bits: u32) -> Result<u64, &'static str> {
        debug_assert!(bits <= FIELD_BITS_MAX);
        if self.pos + bits as usize > self.buf.len() * 8 {
            return Err("bit columns truncated");
        }
        let v = self.window() & ((1u64 << bits) - 1);
        self.pos += bits as usize;
        Ok(v)
    }

    /// One Rice code with parameter `k`.
    #[inline]
    fn rice(&mut self, k: u8) -> Result<u64, &'static str> {
        let w = self.window();
        let q = w.trailing_ones().min(RICE_ESCAPE);
        // The common case: the code lies within the window.
        if q < RICE_ESCAPE && q + 1 + u32::from(k) <= 57 {
            let end = self.pos + (q + 1 + u32::from(k)) as usize;
            if end > self.buf.len() * 8 {
                return Err("bit columns truncated");
            }
            self.pos = end;
            let low = (w >> (q + 1)) & ((1u64 << k) - 1);
            return Ok((u64::from(q) << k) | low);
        }
        if self.pos + q as usize > self.buf.len() * 8 {
            return Err("bit columns truncated");
        }
        self.pos += q as usize;
        if q == RICE_ESCAPE {
            let lo = self.get(32)?;
            return Ok(lo | (self.get(32)? << 32));
        }
        self.get(1)?;
        let low = if k > 32 { self.get(32)? | (self.get(u32::from(k) - 32)? << 32) } else { self.get(u32::from(k))? };
        Ok((u64::from(q) << k) | low)
    }
}

fn put_rice(w: &mut BitWriter, d: u64, k: u8) {
    let q = d >> k;
    if q >= u64::from(RICE_ESCAPE) {
        w.put((1u64 << RICE_ESCAPE) - 1, RICE_ESCAPE);
        w.put64(d);
        return;
    }
    // q < 32 ones, then the zero that ends them.
    w.put((1u64 << q) - 1, q as u32 + 1);
    let low = d & ((1u64 << k) - 1);
    if k > 32 {
        w.put(low & 0xffff_ffff, 32);
        w.put(low >> 32, u32::from(k) - 32);
    } else {
        w.put(low, u32::from(k));
    }
}

/// Bits of `deltas` as Rice codes with parameter `k`.
fn rice_cost(deltas: &[u64], k: u8) -> u64 {
    deltas
        .iter()
        .map(|&d| {
            let q = d >> k;
            if q >= u64::from(RICE_ESCAPE) {
                u64::from(RICE_ESCAPE) + 64
            } else {
                q + 1 + u64::from(k)
            }
        })
        .sum()
}

/// The shape table a sealer fills while it writes a segment's packed blocks: each distinct
/// (meta byte, template id, run lengths), template id 0 for a literal.
#[derive(Debug)]
pub struct ShapeBuilder(IdTable<u32>);

impl Default for ShapeBuilder {
    fn default() -> Self {
        Self(IdTable::new(0))
    }
}

impl ShapeBuilder {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `key` (`[meta, template id, run lengths…]`), added when new and the table
    /// has room; `None` when it is new and the table is full.
    fn id(&mut self, key: &[u32]) -> Option<u32> {
        // Room is kept for the (at most 8) literal shapes, so that any record can be stored.
        let reserve = if key.get(1) == Some(&0) { 0 } else { LITERAL_RESERVE };
        self.0.id(key, 1 + 3 * key.len(), SHAPES_BYTES_MAX - 8 * reserve, SHAPES_COUNT_MAX - reserve)
    }

    /// Shapes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The footer section: a zstd frame of `count: u32`, then each shape in id order as
    /// `meta: u8`, `template: varint`, `runs: varint` and each run length as a varint.
    pub fn encode(&self) -> std::io::Result<Vec<u8>> {
        let list = self.0.in_id_order();
        let mut raw = Vec::with_capacity(self.0.bytes() + 4);
        raw.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for k in list {
            raw.push(k[0] as u8);
            put_varint(&mut raw, u64::from(k[1]));
            put_varint(&mut raw, (k.len() - 2) as u64);
            for &l in &k[2..] {
                put_varint(&mut raw, u64::from(l));
            }
        }
        zstd::bulk::compress(&raw, SHAPES_ZSTD_LEVEL)
    }
}

/// One shape of a table read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Direction of its records.
    pub dir: Direction,
    /// Usage of its records.
    pub usage: Option<Usage>,
    /// Its template (1-based), or 0 for a literal text.
    pub template: u32,
    /// Length of each digit run, one per hole of the template.
    pub run_lens: Box<[u32]>,
    /// Digits in all.
    pub digits: u32,
    /// Bits of those digits in a block ([`digit_bits`]).
    pub bits: u32,
}

/// A segment's shape table, decoded and checked against its templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shapes {
    list: Vec<Shape>,
}

impl Shapes {
    /// Decodes a footer section written by [`ShapeBuilder::encode`]: every template id within
    /// `templates`, one run length (at least 1) per hole, every bound of the builder; anything
    /// else is an error.
    pub fn decode(section: &[u8], templates: &Templates) -> Result<Self, &'static str> {
        let raw_max = 4 + SHAPES_BYTES_MAX;
        let mut raw = Vec::new();
        let dec = zstd::stream::read::Decoder::with_buffer(section).map_err(|_| "shapes: not a zstd frame")?;
        dec.single_frame().take(raw_max as u64 + 1).read_to_end(&mut raw).map_err(|_| "shapes: zstd frame damaged")?;
        if raw.len() > raw_max {
            return Err("shapes: table larger than a sealer writes");
        }
        let mut r = Reader::new(&raw);
        let n = r.u32()? as usize;
        if n > SHAPES_COUNT_MAX || n > r.remaining() {
            return Err("shapes: count out of range");
        }
        let mut list = Vec::with_capacity(n);
        for _ in 0..n {
            let (dir, usage) = parse_meta(r.u8()?).map_err(|_| "shapes: bad meta byte")?;
            let template = u32::try_from(r.varint()?).map_err(|_| "shapes: template id out of range")?;
            let holes = match template {
                0 => 0,
                id => templates.get(id).ok_or("shapes: template id out of range")?.holes.len(),
            };
            if r.len(template::TEMPLATE_BYTES_MAX)? != holes {
                return Err("shapes: run count disagrees with the template");
            }
            let mut run_lens = Vec::with_capacity(holes);
            let mut digits = 0u32;
            for _ in 0..holes {
                let l = r.len(template::TEMPLATE_BYTES_MAX)? as u32;
                if l == 0 {
                    return Err("shapes: empty digit run");
                }
                digits += l;
                run_lens.push(l);
            }
            if digits as usize > template::TEMPLATE_BYTES_MAX {
                return Err("shapes: more digits than a template's text holds");
            }
            list.push(Shape { dir, usage, template, run_lens: run_lens.into(), digits, bits: digit_bits(digits) });
        }
        if r.remaining() != 0 {
            return Err("shapes: bytes after the last shape");
        }
        Ok(Self { list })
    }

    /// Shape `id` (0-based, as in a block).
    pub fn get(&self, id: u32) -> Option<&Shape> {
        self.list.get(id as usize)
    }

    /// Shapes held.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// Gathers the keys a segment's packed blocks are ranked against: its distinct sub-ports and
/// numbers, sorted (the keys of its sub-port and number indexes).
#[derive(Debug, Default)]
pub struct SegmentKeys {
    sub_ports: std::collections::BTreeSet<String>,
    numbers: Vec<u64>,
}

impl SegmentKeys {
    /// Counts `r`'s sub-port and number.
    pub fn add(&mut self, r: &Record) {
        if !self.sub_ports.contains(r.sub_port.as_str()) {
            self.sub_ports.insert(r.sub_port.as_str().to_owned());
        }
        self.numbers.push(r.peer.as_u64());
    }

    /// The sorted distinct sub-ports and numbers.
    pub fn finish(mut self) -> (Vec<String>, Vec<u64>) {
        self.numbers.sort_unstable();
        self.numbers.dedup();
        (self.sub_ports.into_iter().collect(), self.numbers)
    }
}

/// The [`SegmentKeys`] of `records`.
pub fn segment_keys<'r>(records: impl IntoIterator<Item = &'r Record>) -> (Vec<String>, Vec<u64>) {
    let mut k = SegmentKeys::default();
    records.into_iter().for_each(|r| k.add(r));
    k.finish()
}

/// The segment-wide tables a packed block is written against: its sorted sub-ports and
/// numbers (the keys of its sub-port and number indexes), templates and shapes.
pub struct Builders<'a> {
    /// Every sub-port of the segment, sorted.
    pub sub_ports: &'a [String],
    /// Every number of the segment, sorted.
    pub numbers: &'a [u64],
    /// The segment's templates.
    pub templates: &'a mut TemplateBuilder,
    /// The segment's shapes.
    pub shapes: &'a mut ShapeBuilder,
}

/// Encodes `records` (sorted by `ts_ms`) into a packed block. Fails only when a record's
/// sub-port or number is missing from the tables (a sealer's bug) or its literals cannot be
/// compressed.
pub fn encode(records: &[&Record], b: &mut Builders<'_>, zstd_level: i32) -> Result<Vec<u8>, String> {
    let n = records.len();
    let (mut sps, mut peers, mut shapes) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut digits: Vec<u8> = Vec::with_capacity(n * 16);
    let mut digit_ends = Vec::with_capacity(n);
    let (mut lit_lens, mut lits) = (Vec::new(), Vec::new());
    let (mut tpl, mut runs, mut key) = (Vec::new(), Vec::new(), Vec::new());
    for r in records {
        sps.push(
            b.sub_ports
                .binary_search_by(|s| s.as_str().cmp(r.sub_port.as_str()))
                .map_err(|_| format!("sub-port {} missing from the segment's table", r.sub_port.as_str()))?
                as u64,
        );
        peers.push(
            b.numbers
                .binary_search(&r.peer.as_u64())
                .map_err(|_| format!("number {} missing from the segment's table", r.peer))? as u64,
        );
        let meta = u32::from(meta_byte(r));
        let at = digits.len();
        let mut id = None;
        if template::splittable(&r.text) {
            runs.clear();
            template::split(&r.text, &mut tpl, &mut runs, &mut digits);
            if let Some(t) = b.templates.id(&tpl) {
                key.clear();
                key.push(meta);
                key.push(t);
                key.extend(runs.iter().map(|&l| l as u32));
                id = b.shapes.id(&key);
            }
        }
        let id = match id {
            Some(id) => id,
            None => {
                digits.truncate(at);
                put_varint(&mut lit_lens, r.text.len() as u64);
                lits.extend_from_slice(r.text.as_bytes());
                b.shapes.id(&[meta, 0]).ok_or("shape table full before its literal shapes")?
            }
        };
        shapes.push(u64::from(id));
        digit_ends.push(digits.len());
    }
    let first_ts = records.first().map_or(0, |r| r.ts_ms);
    let deltas: Vec<u64> = records.windows(2).map(|w| (w[1].ts_ms - w[0].ts_ms) as u64).collect();
    let k = (0..=RICE_K_MAX).min_by_key(|&k| rice_cost(&deltas, k)).unwrap_or(0);
    let wmax = |v: &[u64]| width(v.iter().copied().max().unwrap_or(0));
    let (sp_bits, peer_bits, shape_bits) = (wmax(&sps), wmax(&peers), wmax(&shapes));
    let mut w = BitWriter::new();
    for &d in &deltas {
        put_rice(&mut w, d, k);
    }
    for (col, bits) in [(&sps, sp_bits), (&peers, peer_bits), (&shapes, shape_bits)] {
        for &v in col.iter() {
            w.put(v, u32::from(bits));
        }
    }
    let mut start = 0;
    for &end in &digit_ends {
        for c in digits[start..end].chunks(3) {
            let v = c.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
            w.put(v, [0, 4, 7, 10][c.len()]);
        }
        start = end;
    }
    let bits = w.finish();
    let mut out = Vec::with_capacity(HEADER_LEN + bits.len() + lits.len() / 2);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&first_ts.to_le_bytes());
    out.extend_from_slice(&[k, sp_bits, peer_bits, shape_bits]);
    out.extend_from_slice(&(bits.len() as u32).to_le_bytes());
    out.extend_from_slice(&bits);
    if !lit_lens.is_empty() {
        let mut raw = lit_lens;
        raw.extend_from_slice(&lits);
        out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
        out.extend_from_slice(&zstd::bulk::compress(&raw, zstd_level).map_err(|e| format!("compress literals: {e}"))?);
    }
    Ok(out)
}

/// The tables a packed block is read against.
#[derive(Clone, Copy)]
pub struct Tables<'a> {
    /// The segment's templates.
    pub templates: &'a Templates,
    /// The segment's shapes.
    pub shapes: &'a Shapes,
    /// The segment's sub-ports, sorted (as in its sub-port index).
    pub sub_ports: &'a [SubPort],
    /// How many numbers its number index holds.
    pub numbers: usize,
}

/// A packed block parsed and checked: every rank within its table, every shape known, every
/// digit chunk a decimal value, every bit accounted for. Records are built one by one.
pub struct Packed<'a> {
    tables: Tables<'a>,
    ts: Vec<i64>,
    sps: Vec<u32>,
    peers: Vec<u32>,
    shapes: Vec<u32>,
    /// Per record, the bit offset of its digits in `bits` (a literal: its ordinal).
    digit_at: Vec<usize>,
    bits: &'a [u8],
    /// Per record, its literal's span in `lits` (literal shapes only).
    lit_spans: Vec<(usize, usize)>,
    lits: Vec<u8>,
}

impl<'a> Packed<'a> {
    /// Parses and checks `raw`.
    pub fn parse(raw: &'a [u8], tables: Tables<'a>) -> Result<Self, &'static str> {
        let mut r = Reader::new(raw);
        let n = r.u32()? as usize;
        let first_ts = r.i64()?;
        let [k, sp_bits, peer_bits, shape_bits] = r.array::<4>()?;
        let bit_bytes = r.u32()? as usize;
        let bits = r.bytes(bit_bytes)?;
        // Every record but the first takes at least one bit (its time's Rice code).
        if n > super::block::BLOCK_RECORDS_MAX || n > bit_bytes * 8 + 1 {
            return Err("record count out of range");
        }
        if k > RICE_K_MAX || sp_bits > 32 || peer_bits > 32 || shape_bits > 32 {
            return Err("column width out of range");
        }
        let mut br = BitReader::at(bits, 0);
        let mut ts = Vec::with_capacity(n);
        if n > 0 {
            ts.push(first_ts);
            let mut t = first_ts;
            for _ in 1..n {
                let d = i64::try_from(br.rice(k)?).map_err(|_| "time delta out of range")?;
                t = t.checked_add(d).ok_or("time overflow")?;
                ts.push(t);
            }
        }
        let mut column = |bits: u8, len: usize, what: &'static str| -> Result<Vec<u32>, &'static str> {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                let x = br.get(u32::from(bits))?;
                if x as usize >= len {
                    return Err(what);
                }
                v.push(x as u32);
            }
            Ok(v)
        };
        let sps = column(sp_bits, tables.sub_ports.len(), "sub-port rank out of range")?;
        let peers = column(peer_bits, tables.numbers, "number rank out of range")?;
        let shapes = column(shape_bits, tables.shapes.len(), "shape id out of range")?;
        let mut digit_at = Vec::with_capacity(n);
        let (mut lit_spans, mut lit_count) = (Vec::new(), 0usize);
        for &s in &shapes {
            // Ids were checked against the table just above.
            let shape = tables.shapes.get(s).ok_or("shape id out of range")?;
            if shape.template == 0 {
                // A literal's entry is its ordinal among the block's literals.
                digit_at.push(lit_count);
                lit_count += 1;
                continue;
            }
            // Each chunk is checked to be a decimal value when its record is built.
            digit_at.push(br.pos);
            br.pos += shape.bits as usize;
        }
        if br.pos > bits.len() * 8 {
            return Err("bit columns truncated");
        }
        if br.pos.div_ceil(8) != bits.len() || br.window() != 0 {
            return Err("bits after the last column");
        }
        let mut lits = Vec::new();
        if lit_count > 0 {
            let raw_len = r.u32()? as usize;
            if raw_len > LITERALS_BYTES_MAX {
                return Err("literal section too long");
            }
            lits = zstd::bulk::decompress(r.bytes(r.remaining())?, raw_len).map_err(|_| "literal section damaged")?;
            if lits.len() != raw_len {
                return Err("literal section shorter than its length");
            }
            let mut lr = Reader::new(&lits);
            let mut lens = Vec::with_capacity(lit_count);
            for _ in 0..lit_count {
                lens.push(lr.len(lits.len())?);
            }
            let mut at = lr.pos();
            for l in lens {
                lit_spans.push((at, l));
                at = at.checked_add(l).ok_or("literal lengths overflow")?;
            }
            if at != lits.len() {
                return Err("literal lengths disagree with the literal section");
            }
        } else if r.remaining() != 0 {
            return Err("bytes after the last column");
        }
        Ok(Self { tables, ts, sps, peers, shapes, digit_at, bits, lit_spans, lits })
    }

    /// Records in the block.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Times of the first and last records.
    pub fn span(&self) -> (Option<i64>, Option<i64>) {
        (self.ts.first().copied(), self.ts.last().copied())
    }

    /// Record `i`'s number rank.
    pub fn peer_rank(&self, i: usize) -> u32 {
        self.peers[i]
    }

    /// Record `i`'s sub-port rank.
    pub fn sub_port_rank(&self, i: usize) -> u32 {
        self.sps[i]
    }

    /// Record `i`, whose number (looked up from its rank) is `peer`.
    pub fn record(&self, i: usize, peer: PhoneNumber) -> Result<Record, &'static str> {
        let shape = self.tables.shapes.get(self.shapes[i]).ok_or("shape id out of range")?;
        let sub_port = self.tables.sub_ports.get(self.sps[i] as usize).ok_or("sub-port rank out of range")?.clone();
        let text = if shape.template == 0 {
            let (at, len) = *self.lit_spans.get(self.digit_at[i]).ok_or("literal missing")?;
            std::str::from_utf8(&self.lits[at..at + len]).map_err(|_| "text not utf-8")?.to_owned()
        } else {
            let t = self.tables.templates.get(shape.template).ok_or("template id out of range")?;
            let mut digits = Vec::with_capacity(shape.digits as usize);
            let mut br = BitReader::at(self.bits, self.digit_at[i]);
            let mut left = shape.digits;
            while left > 0 {
                let c = left.min(3);
                let v = br.get([0, 4, 7, 10][c as usize])? as u16;
                if v >= [1, 10, 100, 1000][c as usize] {
                    return Err("digit chunk is not a decimal value");
                }
                let chunk = [b'0' + (v / 100) as u8, b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
                digits.extend_from_slice(&chunk[3 - c as usize..]);
                left -= c;
            }
            let mut text = String::with_capacity(t.text.len() + digits.len());
            t.expand(&shape.run_lens, &digits, &mut text)?;
            text
        };
        Ok(Record { dir: shape.dir, sub_port, peer, ts_ms: self.ts[i], usage: shape.usage, text })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn records() -> Vec<Record> {
        let texts = template::tricky_texts();
        (0..70u64)
            .map(|i| Record {
                dir: if i % 7 == 2 { Direction::Mo } else { Direction::Mt },
                sub_port: SubPort::parse(&format!("10690{}", i % 3)).unwrap(),
                peer: PhoneNumber::from_u64(13_800_000_000 + (i % 23) * 7919).unwrap(),
                // Gaps from 0 to far beyond the escape.
                ts_ms: 1_000 + (i * i * i) as i64 * 1_000_003 % (1 << 40),
                usage: if i % 7 == 2 { None } else { Some(Usage::Service) },
                text: texts[i as usize % texts.len()].clone(),
            })
            .collect::<Vec<_>>()
            .into_iter()
            .scan(0i64, |prev, mut r| {
                r.ts_ms = r.ts_ms.max(*prev);
                *prev = r.ts_ms;
                Some(r)
            })
            .collect()
    }

    struct Seg {
        sub_ports: Vec<String>,
        sub_port_keys: Vec<SubPort>,
        numbers: Vec<u64>,
        templates: Templates,
        shapes: Shapes,
        raw: Vec<u8>,
    }

    fn seal(recs: &[Record]) -> Seg {
        let (sub_ports, numbers) = segment_keys(recs);
        let (mut tb, mut sb) = (TemplateBuilder::new(), ShapeBuilder::new());
        let refs: Vec<&Record> = recs.iter().collect();
        let raw = encode(
            &refs,
            &mut Builders { sub_ports: &sub_ports, numbers: &numbers, templates: &mut tb, shapes: &mut sb },
            3,
        )
        .unwrap();
        let templates = Templates::decode(&tb.encode().unwrap()).unwrap();
        let shapes = Shapes::decode(&sb.encode().unwrap(), &templates).unwrap();
        let sub_port_keys = sub_ports.iter().map(|s| SubPort::parse(s).unwrap()).collect();
        Seg { sub_ports, sub_port_keys, numbers, templates, shapes, raw }
    }

    impl Seg {
        fn tables(&self) -> Tables<'_> {
            Tables {
                templates: &self.templates,
                shapes: &self.shapes,
                sub_ports: &self.sub_port_keys,
                numbers: self.numbers.len(),
            }
        }

        fn decode(&self, raw: &[u8]) -> Result<Vec<Record>, &'static str> {
            let p = Packed::parse(raw, self.tables())?;
            (0..p.len())
                .map(|i| p.record(i, PhoneNumber::from_u64(self.numbers[p.peer_rank(i) as usize]).unwrap()))
                .collect()
        }
    }

    #[test]
    fn packed_blocks_round_trip_and_garbage_is_an_error() {
        let recs = records();
        let seg = seal(&recs);
        assert_eq!(seg.decode(&seg.raw).unwrap(), recs);
        let p = Packed::parse(&seg.raw, seg.tables()).unwrap();
        assert_eq!(p.span(), (Some(recs[0].ts_ms), Some(recs[69].ts_ms)));
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(seg.numbers[p.peer_rank(i) as usize], r.peer.as_u64());
            assert_eq!(seg.sub_ports[p.sub_port_rank(i) as usize], r.sub_port.as_str());
        }
        for cut in 0..seg.raw.len() {
            assert!(seg.decode(&seg.raw[..cut]).is_err(), "cut {cut}");
        }
        let mut long = seg.raw.clone();
        long.push(0);
        assert!(seg.decode(&long).is_err());
        // Smaller tables than the block was written against.
        let few = Tables { numbers: seg.numbers.len() - 1, ..seg.tables() };
        assert!(Packed::parse(&seg.raw, few).is_err());
        let few = Tables { sub_ports: &seg.sub_port_keys[..2], ..seg.tables() };
        assert!(Packed::parse(&seg.raw, few).is_err());
        // Every single-bit flip of the header and columns is an error or decodes to other
        // records, never a panic (the literal section is a zstd frame, whose few spare bits
        // only the block's checksum covers).
        let columns = HEADER_LEN + u32::from_le_bytes(seg.raw[16..20].try_into().unwrap()) as usize;
        for i in 0..seg.raw.len() * 8 {
            let mut bad = seg.raw.clone();
            bad[i / 8] ^= 1 << (i % 8);
            match seg.decode(&bad) {
                Ok(got) if i < columns * 8 => assert!(got != recs, "flip {i} went unseen"),
                _ => {}
            }
        }
    }

    #[test]
    fn an_empty_block_and_a_block_without_literals() {
        let seg = seal(&[]);
        assert!(seg.decode(&seg.raw).unwrap().is_empty());
        let recs: Vec<Record> =
            records().into_iter().filter(|r| r.text.len() < 200 && !r.text.contains('\u{1}')).collect();
        let seg = seal(&recs);
        assert_eq!(seg.decode(&seg.raw).unwrap(), recs);
        let mut long = seg.raw.clone();
        long.push(0);
        assert!(seg.decode(&long).is_err(), "bytes after the columns");
    }

    #[test]
    fn digits_take_ten_bits_a_thousand() {
        assert_eq!((digit_bits(0), digit_bits(1), digit_bits(2), digit_bits(3), digit_bits(7)), (0, 4, 7, 10, 24));
        // A six-digit code of a known shape costs 20 bits and the id, not six bytes.
        let recs: Vec<Record> = (0..64u64)
            .map(|i| Record {
                dir: Direction::Mt,
                sub_port: SubPort::parse("106901").unwrap(),
                peer: PhoneNumber::from_u64(13_800_000_000).unwrap(),
                ts_ms: 1_000,
                usage: Some(Usage::Service),
                text: format!("【星河银行】您的验证码为{:06}。", i * 15_601 % 1_000_000),
            })
            .collect();
        let seg = seal(&recs);
        assert_eq!(seg.decode(&seg.raw).unwrap(), recs);
        // 63 one-bit time codes, 20 bits of digits each, no rank or id bits.
        assert_eq!(seg.raw.len(), HEADER_LEN + (63 + 64 * 20usize).div_ceil(8));
    }

    #[test]
    fn a_shape_table_round_trips_and_a_damaged_one_is_an_error() {
        let mut tb = TemplateBuilder::new();
        let t = tb.id(b"a\x01b\x01").unwrap();
        let templates = Templates::decode(&tb.encode().unwrap()).unwrap();
        let mut sb = ShapeBuilder::new();
        // Meta 4: an MT of usage 2 (service); 1: an MO.
        assert_eq!(sb.id(&[4, t, 3, 1]), Some(0));
        assert_eq!(sb.id(&[1, 0]), Some(1));
        assert_eq!(sb.id(&[4, t, 3, 1]), Some(0));
        let good = sb.encode().unwrap();
        let s = Shapes::decode(&good, &templates).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(0).unwrap().digits, 4);
        assert_eq!(s.get(1).unwrap().dir, Direction::Mo);
        assert!(Shapes::decode(&good, &Templates::default()).is_err(), "a template the table lacks");
        for cut in 0..good.len() {
            assert!(Shapes::decode(&good[..cut], &templates).is_err(), "cut {cut}");
        }
        let bad = |raw: &[u8]| Shapes::decode(&zstd::bulk::compress(raw, 1).unwrap(), &templates);
        assert!(bad(&[1, 0, 0, 0, 4, 1, 1, 3]).is_err(), "one run for two holes");
        assert!(bad(&[1, 0, 0, 0, 4, 1, 2, 3, 0]).is_err(), "an empty run");
        assert!(bad(&[1, 0, 0, 0, 0, 0, 0]).is_err(), "a bad meta byte");
        assert!(bad(&[1, 0, 0, 0, 1, 0, 0, 9]).is_err(), "bytes after the last");
        assert_eq!(bad(&[1, 0, 0, 0, 1, 0, 0]).unwrap().len(), 1);
    }
}
