//! The in-memory reject table: every (assignment, number) that refused, in ONE flat hash table,
//! the structure behind the hot-path check. Purpose-built rather than a `HashSet` or `roaring`
//! (docs/architecture.md, "Reject table"): a check must cost one cache line, and a reject at
//! most 8 bytes.
//!
//! **Keys.** A number `1xxxxxxxxxx` is `v = number - 10^10 < 2^34`; with the assignment id `a`
//! (below `2^a_bits`) the key is `x = a << 34 | v`, `K = 34 + a_bits` bits. An invertible mix
//! `h = mix(x)` (multiply, xorshift, multiply, xorshift, all modulo `2^K`) spreads the keys.
//!
//! **Buckets.** `2^b` buckets of one cache line (64 bytes, aligned). The top `b` bits of `h`
//! choose the bucket, the other `K - b` bits (the remainder) are stored: since `mix` is a
//! bijection, bucket and remainder together identify the key exactly, so the table answers
//! without false positives while storing only `K - b` bits. A bucket holds 16 `u32` slots when
//! the remainder fits 31 bits (a 100,000-assignment registry with 10 million rejects: `K = 51`,
//! `b = 20`), else 8 `u64` slots. A slot holds `remainder | top bit`; 0 is empty. Slots fill in
//! order and are never cleared, so a lookup scans one cache line and stops at the first empty
//! slot. A key whose bucket is full goes to a small overflow set, read only when the bucket is
//! full; the table grows (rebuilt at twice the size) before the overflow or the load gets high.
//!
//! **Filter.** In front of the buckets, a blocked Bloom filter (one 64-byte block per lookup,
//! about 8 bits per entry at the build load, 6 bits set per key) keyed by the **number alone**:
//! absent numbers, most of what a gateway asks, stop there without touching the buckets. Keyed
//! by the number rather than (assignment, number) so that a check can start loading the block
//! before it knows the assignment, in parallel with the sub-port lookup; a number refused under
//! one assignment pays the bucket read when asked under another.
//!
//! **Memory.** Built at a load of 0.6 and grown at 0.8: 64 bytes per 9.6 to 12.8 rejects in the
//! narrow layout, 5 to 6.7 bytes per reject. The buckets live in an anonymous mapping advised
//! for transparent huge pages, so that a lookup in a 64 MiB table does not also pay a TLB miss.
//!
//! **Concurrency.** One writer (the registry's writer lock) inserts; readers never wait. A slot
//! goes from 0 to its value in one atomic store, after the reject is durable in the store.
//! Nothing is ever removed in place: purging an assignment's rejects leaves its entries until
//! the table is rebuilt without them ([`RejectTable::rebuilt`]); the registry consults the store
//! wherever a purged assignment could be asked about (docs/architecture.md).

#![allow(unsafe_code)]

use crate::record::PhoneNumber;
use memmap2::{Advice, MmapMut};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;

/// Numbers are `10^10 ..= 2*10^10 - 1`; `v = number - BASE` fits in 34 bits.
const BASE: u64 = 10_000_000_000;
/// Bits of `v`.
const V_BITS: u32 = 34;
/// Fewest assignment bits (a table always covers assignment ids below 1024).
const A_BITS_MIN: u32 = 10;
/// Most assignment bits: keys stay within 64 bits.
const A_BITS_MAX: u32 = 64 - V_BITS;
/// Load at which a table is built.
const LOAD_BUILD: f64 = 0.6;
/// Load beyond which an insert asks for a bigger table.
const LOAD_GROW: f64 = 0.8;
/// Bytes of a bucket: one cache line.
const BUCKET: usize = 64;
/// Filter bits per entry the table can hold before it grows (so about 8 per entry at the
/// build load): 1 byte per reject at 10 million, a false-positive rate of about 2 %.
const FILTER_BITS: f64 = 6.0;
/// Bits a key sets in its filter block.
const FILTER_K: u32 = 6;
/// Slots of a narrow (u32) and a wide (u64) bucket.
const NARROW: usize = BUCKET / 4;
const WIDE: usize = BUCKET / 8;

/// The 34-bit key of a mobile number (numbers outside `1xxxxxxxxxx` cannot be represented;
/// `PhoneNumber::parse` refuses them).
pub(crate) fn key_of(n: PhoneNumber) -> Option<u64> {
    let v = n.as_u64().checked_sub(BASE)?;
    (v < (1 << V_BITS)).then_some(v)
}

/// The number of a key.
pub(crate) fn number_of(v: u64) -> Option<PhoneNumber> {
    PhoneNumber::from_u64(v + BASE)
}

/// The inverse of an odd number modulo 2^64 (Newton's iteration: each step doubles the correct
/// low bits; an odd `c` is its own inverse modulo 8).
const fn inverse(c: u64) -> u64 {
    let mut inv = c;
    let mut i = 0;
    while i < 5 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(inv)));
        i += 1;
    }
    inv
}

const C1: u64 = 0x9E37_79B9_7F4A_7C15;
const C2: u64 = 0xBF58_476D_1CE4_E5B9;
const I1: u64 = inverse(C1);
const I2: u64 = inverse(C2);

/// A bijection on `bits`-bit integers. `x ^= x >> s` with `2s >= bits` is its own inverse;
/// multiplying by an odd constant modulo `2^bits` is undone by its inverse.
#[derive(Debug, Clone, Copy)]
struct Mix {
    mask: u64,
    shift: u32,
}

impl Mix {
    fn new(bits: u32) -> Self {
        let mask = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
        Mix { mask, shift: bits.div_ceil(2) }
    }

    #[inline]
    fn fwd(self, x: u64) -> u64 {
        let mut x = x.wrapping_mul(C1) & self.mask;
        x ^= x >> self.shift;
        x = x.wrapping_mul(C2) & self.mask;
        x ^ (x >> self.shift)
    }

    fn inv(self, h: u64) -> u64 {
        let mut x = h ^ (h >> self.shift);
        x = x.wrapping_mul(I2) & self.mask;
        x ^= x >> self.shift;
        x.wrapping_mul(I1) & self.mask
    }
}

/// Why an insert could not go in: the table must be rebuilt bigger first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NeedsGrowth;

/// Slot width of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// 16 `u32` slots per bucket (remainders of at most 31 bits).
    Narrow,
    /// 8 `u64` slots per bucket.
    Wide,
}

/// The table (see the module docs).
pub struct RejectTable {
    mix: Mix,
    /// Blocks (64 bytes, 512 bits) of the filter in front of the buckets.
    filter_blocks: usize,
    a_bits: u32,
    rem_bits: u32,
    width: Width,
    buckets: usize,
    /// Start of the buckets: the mapping's first byte (page aligned, so every bucket is one
    /// aligned cache line), followed by the filter's blocks. Taken from the `MmapMut` once; the
    /// mapping is never touched through a Rust reference again, only through the atomics.
    base: *const u8,
    /// Owns the memory behind `base` (unmapped on drop).
    _map: MmapMut,
    /// Entries held (slots and overflow).
    len: AtomicUsize,
    /// Keys (`h`) whose bucket was full.
    overflow: RwLock<HashSet<u64>>,
    overflow_len: AtomicUsize,
}

// SAFETY: `base` points into `_map`, which the table owns and which lives as long as it; the
// memory is only accessed through atomics (shared references to `AtomicU32`/`AtomicU64`), so
// concurrent access from several threads is sound.
unsafe impl Send for RejectTable {}
// SAFETY: as above: all shared access is atomic.
unsafe impl Sync for RejectTable {}

impl std::fmt::Debug for RejectTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RejectTable")
            .field("len", &self.len())
            .field("buckets", &self.buckets)
            .field("width", &self.width)
            .field("a_bits", &self.a_bits)
            .finish()
    }
}

/// Bits needed for `n` (0 for 0).
fn bits_for(n: u64) -> u32 {
    u64::BITS - n.leading_zeros()
}

/// Assignment bits of a table for ids up to `max_assignment`: no margin, because every bit
/// costs the narrow layout twice the buckets (a rebuild when ids cross a power of two is cheap
/// next to that).
fn a_bits_for(max_assignment: u32) -> u32 {
    bits_for(u64::from(max_assignment)).clamp(A_BITS_MIN, A_BITS_MAX)
}

/// Asks the CPU to start loading the cache line holding `p` into every cache level. A hint: it
/// never faults, whatever the address, and changes no result (no effect off x86_64).
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache; it reads nothing into the program and cannot
    // fault, even on an unmapped address. SSE is part of the x86_64 baseline.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl RejectTable {
    /// An empty table sized for `entries` keys of assignments up to `max_assignment` (ids up
    /// to the next power of two fit too; beyond it an insert asks for growth).
    pub fn with_capacity(entries: usize, max_assignment: u32) -> std::io::Result<Self> {
        Self::build(entries, a_bits_for(max_assignment))
    }

    fn build(entries: usize, a_bits: u32) -> std::io::Result<Self> {
        let k = V_BITS + a_bits;
        let want = (entries.max(16) as f64 / LOAD_BUILD).ceil();
        let log2_buckets = |slots: usize| bits_for(((want / slots as f64).ceil() as u64).saturating_sub(1));
        // Narrow when it costs at most the wide layout's memory: the remainder must fit 31 bits,
        // which may force more buckets than the load asks for.
        let narrow_b = log2_buckets(NARROW).max(k.saturating_sub(31));
        let wide_b = log2_buckets(WIDE).max(k.saturating_sub(63));
        let (width, b) = if narrow_b <= wide_b { (Width::Narrow, narrow_b) } else { (Width::Wide, wide_b) };
        let buckets = 1usize << b;
        let slots = buckets * if width == Width::Narrow { NARROW } else { WIDE };
        let filter_blocks = ((slots as f64 * LOAD_GROW * FILTER_BITS / 512.0).ceil() as usize).max(1);
        let map = MmapMut::map_anon((buckets + filter_blocks) * BUCKET)?;
        if (buckets + filter_blocks) * BUCKET >= 2 << 20 {
            // Best effort: without huge pages the table works, a little slower.
            let _ = map.advise(Advice::HugePage);
        }
        let mut map = map;
        let base = map.as_mut_ptr() as *const u8;
        Ok(RejectTable {
            mix: Mix::new(k),
            filter_blocks,
            a_bits,
            rem_bits: k - b,
            width,
            buckets,
            base,
            _map: map,
            len: AtomicUsize::new(0),
            overflow: RwLock::new(HashSet::new()),
            overflow_len: AtomicUsize::new(0),
        })
    }

    #[inline]
    fn narrow(&self, bucket: usize) -> &[AtomicU32; NARROW] {
        debug_assert!(bucket < self.buckets && self.width == Width::Narrow);
        // SAFETY: `bucket < buckets`, so the 64 bytes at `base + bucket * 64` lie inside the
        // mapping, which is page aligned (so 4-aligned); the mapping lives as long as `self`,
        // starts zeroed (valid atomics) and is only ever accessed through atomics.
        unsafe { &*(self.base.add(bucket * BUCKET) as *const [AtomicU32; NARROW]) }
    }

    #[inline]
    fn wide(&self, bucket: usize) -> &[AtomicU64; WIDE] {
        debug_assert!(bucket < self.buckets && self.width == Width::Wide);
        // SAFETY: as in `narrow`, with 8-byte alignment (page aligned mapping).
        unsafe { &*(self.base.add(bucket * BUCKET) as *const [AtomicU64; WIDE]) }
    }

    #[inline]
    fn filter_block(&self, block: usize) -> &[AtomicU64; WIDE] {
        debug_assert!(block < self.filter_blocks);
        // SAFETY: the filter's blocks follow the buckets inside the mapping (see `build`); the
        // rest as in `narrow`.
        unsafe { &*(self.base.add((self.buckets + block) * BUCKET) as *const [AtomicU64; WIDE]) }
    }

    /// The filter block of number key `v` and the bits it sets in it (word, mask): the block
    /// from the top 32 bits of a hash of `v` (a range reduction, so the block count needs not be
    /// a power of two), the bits, 9 each, from one more multiply. The filter is keyed by the
    /// number alone, not by (assignment, number): a check knows the number before it has found
    /// the sub-port's assignment, so it can start loading the filter block first and have the
    /// two cache misses overlap (see [`RejectTable::prefetch`]). The price: a number refused
    /// under one assignment passes the filter for every other and is settled by its bucket.
    #[inline]
    fn filter_probe(&self, v: u64) -> (usize, impl Iterator<Item = (usize, u64)>) {
        let f = v.wrapping_add(0x632B_E59B_D9B4_E019).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let f = f ^ (f >> 29);
        let block = (((f >> 32) * self.filter_blocks as u64) >> 32) as usize;
        let g = (f ^ (f >> 32)).wrapping_mul(C1);
        let bits = (0..FILTER_K).map(move |i| {
            let bit = (g >> (10 + i * 9)) as usize & 511;
            (bit >> 6, 1u64 << (bit & 63))
        });
        (block, bits)
    }

    /// False when no assignment's reject of number key `v` is held (most lookups stop here:
    /// the filter is about a seventh of the table and stays in the last-level cache).
    #[inline]
    fn filter_may_contain(&self, v: u64) -> bool {
        let (block, bits) = self.filter_probe(v);
        let words = self.filter_block(block);
        let mut hit = true;
        for (w, mask) in bits {
            hit &= words[w].load(Ordering::Acquire) & mask != 0;
        }
        hit
    }

    fn filter_insert(&self, v: u64) {
        let (block, bits) = self.filter_probe(v);
        let words = self.filter_block(block);
        for (w, mask) in bits {
            words[w].fetch_or(mask, Ordering::Release);
        }
    }

    /// The mixed key of (assignment, number key), or None when the table cannot hold it.
    #[inline]
    fn hash(&self, a: u32, v: u64) -> Option<u64> {
        let fits = u64::from(a) >> self.a_bits == 0 && v >> V_BITS == 0;
        fits.then(|| self.mix.fwd(u64::from(a) << V_BITS | v))
    }

    #[inline]
    fn split(&self, h: u64) -> (usize, u64) {
        ((h >> self.rem_bits) as usize, h & ((1u64 << self.rem_bits) - 1))
    }

    /// Starts loading the cache line [`RejectTable::contains`] reads first for number key `v`:
    /// its filter block, which depends on the number alone. A single check issues it before it
    /// looks up the sub-port's assignment, so that the two misses overlap; a batch issues it
    /// questions ahead. The bucket is not prefetched: most numbers stop at the filter, and
    /// prefetching every bucket as well (64 MiB at 10 M rejects) made batches slower (per
    /// question 0.65× a single `decide` with it, 0.59× without, in `portlog-check-bench` runs
    /// with 1 % hits).
    #[inline]
    pub fn prefetch(&self, v: u64) {
        if v >> V_BITS == 0 {
            let (block, _) = self.filter_probe(v);
            prefetch(self.base.wrapping_add((self.buckets + block) * BUCKET));
        }
    }

    /// Membership of `v` (a number key) under assignment `a`. Never blocks; one cache line
    /// unless the bucket is full.
    #[inline(always)]
    pub fn contains(&self, a: u32, v: u64) -> bool {
        let Some(h) = self.hash(a, v) else { return false };
        if !self.filter_may_contain(v) {
            return false;
        }
        let (bucket, rem) = self.split(h);
        let full = match self.width {
            Width::Narrow => {
                let want = rem as u32 | 1 << 31;
                for s in self.narrow(bucket) {
                    match s.load(Ordering::Acquire) {
                        e if e == want => return true,
                        0 => return false,
                        _ => {}
                    }
                }
                true
            }
            Width::Wide => {
                let want = rem | 1 << 63;
                for s in self.wide(bucket) {
                    match s.load(Ordering::Acquire) {
                        e if e == want => return true,
                        0 => return false,
                        _ => {}
                    }
                }
                true
            }
        };
        full && self.overflow_len.load(Ordering::Acquire) > 0 && self.overflow.read().is_ok_and(|o| o.contains(&h))
    }

    /// Membership of a number under assignment `a`.
    #[inline]
    pub fn contains_number(&self, a: u32, n: PhoneNumber) -> bool {
        key_of(n).is_some_and(|v| self.contains(a, v))
    }

    /// Inserts; `Ok(true)` when new. Callers serialise inserts (the registry's writer lock):
    /// two concurrent inserts could take the same empty slot. `Err(NeedsGrowth)` asks for
    /// [`RejectTable::grown`] first (load or overflow too high, or an assignment id beyond the
    /// table's range).
    pub(crate) fn insert(&self, a: u32, v: u64) -> Result<bool, NeedsGrowth> {
        let h = self.hash(a, v).ok_or(NeedsGrowth)?;
        let len = self.len.load(Ordering::Relaxed);
        let slots = self.buckets * if self.width == Width::Narrow { NARROW } else { WIDE };
        if (len + 1) as f64 > slots as f64 * LOAD_GROW || self.overflow_len.load(Ordering::Relaxed) > 64 + len / 32 {
            return Err(NeedsGrowth);
        }
        let (bucket, rem) = self.split(h);
        let placed = match self.width {
            Width::Narrow => place(self.narrow(bucket), rem as u32 | 1 << 31),
            Width::Wide => place(self.wide(bucket), rem | 1 << 63),
        };
        let new = match placed {
            Some(new) => new,
            None => {
                let mut o = self.overflow.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                let new = o.insert(h);
                if new {
                    self.overflow_len.fetch_add(1, Ordering::Release);
                }
                new
            }
        };
        if new {
            // After the slot: a reader sees the key once every filter bit is set.
            self.filter_insert(v);
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        Ok(new)
    }

    /// Every (assignment, number key) held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let mask = (1u64 << self.rem_bits) - 1;
        let slots = (0..self.buckets).flat_map(move |bucket| {
            let rems: Vec<u64> = match self.width {
                Width::Narrow => self
                    .narrow(bucket)
                    .iter()
                    .map(|s| u64::from(s.load(Ordering::Acquire)))
                    .take_while(|&e| e != 0)
                    .collect(),
                Width::Wide => {
                    self.wide(bucket).iter().map(|s| s.load(Ordering::Acquire)).take_while(|&e| e != 0).collect()
                }
            };
            rems.into_iter().map(move |e| (bucket as u64) << self.rem_bits | (e & mask))
        });
        let overflow: Vec<u64> = self.overflow.read().map(|o| o.iter().copied().collect()).unwrap_or_default();
        slots.chain(overflow).map(move |h| {
            let x = self.mix.inv(h);
            ((x >> V_BITS) as u32, x & ((1u64 << V_BITS) - 1))
        })
    }

    /// A new table with this one's entries of the assignments `keep` accepts, sized for
    /// `extra` more entries and assignment ids up to `max_assignment`, at the build load.
    pub(crate) fn rebuilt(
        &self,
        keep: impl Fn(u32) -> bool,
        extra: usize,
        max_assignment: u32,
    ) -> std::io::Result<RejectTable> {
        let a_bits = a_bits_for(max_assignment).max(self.a_bits);
        let mut entries = self.len() + extra;
        loop {
            let t = Self::build(entries, a_bits)?;
            if self.iter().filter(|&(a, _)| keep(a)).all(|(a, v)| t.insert(a, v).is_ok()) {
                return Ok(t);
            }
            // A skewed set overflowed the fresh table: size it up.
            entries = entries.saturating_mul(2);
        }
    }

    /// A bigger table with the same entries and room for `extra` more keys of assignment ids
    /// up to `max_assignment`. Built at load 0.6 from a table that asked at 0.8, the bucket
    /// count (a power of two) doubles, so growth is amortised.
    pub(crate) fn grown(&self, extra: usize, max_assignment: u32) -> std::io::Result<RejectTable> {
        self.rebuilt(|_| true, extra, max_assignment)
    }

    /// Entries held (purged but not yet rebuilt entries included).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held: the buckets and the filter (virtual size; pages never touched cost
    /// nothing) plus the overflow set's entries.
    pub fn bytes(&self) -> usize {
        (self.buckets + self.filter_blocks) * BUCKET + self.overflow_len.load(Ordering::Relaxed) * 16
    }
}

/// Stores `want` in the first empty slot unless it is there already: `Some(new)`, or None when
/// the bucket is full.
trait Slot {
    type V: Copy + Eq;
    const EMPTY: Self::V;
    fn get(&self) -> Self::V;
    fn set(&self, v: Self::V);
}

impl Slot for AtomicU32 {
    type V = u32;
    const EMPTY: u32 = 0;
    fn get(&self) -> u32 {
        self.load(Ordering::Acquire)
    }
    fn set(&self, v: u32) {
        self.store(v, Ordering::Release);
    }
}

impl Slot for AtomicU64 {
    type V = u64;
    const EMPTY: u64 = 0;
    fn get(&self) -> u64 {
        self.load(Ordering::Acquire)
    }
    fn set(&self, v: u64) {
        self.store(v, Ordering::Release);
    }
}

fn place<S: Slot>(bucket: &[S], want: S::V) -> Option<bool> {
    for s in bucket {
        let e = s.get();
        if e == want {
            return Some(false);
        }
        if e == S::EMPTY {
            s.set(want);
            return Some(true);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    #[test]
    fn the_mix_is_a_bijection_at_every_width() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for bits in [44u32, 45, 51, 63, 64] {
            let m = Mix::new(bits);
            for _ in 0..10_000 {
                let x = rng.gen::<u64>() & m.mask;
                let h = m.fwd(x);
                assert!(h <= m.mask, "{bits} bits: {h:#x} out of range");
                assert_eq!(m.inv(h), x, "{bits} bits");
            }
        }
        assert_eq!(C1.wrapping_mul(I1), 1);
        assert_eq!(C2.wrapping_mul(I2), 1);
    }

    fn agree(model: &BTreeSet<(u32, u64)>, t: &RejectTable, probes: &[(u32, u64)]) {
        assert_eq!(t.len(), model.len());
        for &(a, v) in probes {
            assert_eq!(t.contains(a, v), model.contains(&(a, v)), "({a}, {v})");
        }
        let all: BTreeSet<(u32, u64)> = t.iter().collect();
        assert_eq!(&all, model);
    }

    /// Inserts through the registry's protocol: grow when asked.
    fn insert(t: &mut RejectTable, a: u32, v: u64, max_a: u32) -> bool {
        loop {
            match t.insert(a, v) {
                Ok(new) => return new,
                Err(NeedsGrowth) => *t = t.grown(1, max_a.max(a)).unwrap(),
            }
        }
    }

    #[test]
    fn inserts_growth_and_lookups_agree_with_a_btreeset_in_both_layouts() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Few assignments (narrow early), then many (wide while small, narrow once it grows).
        for (assignments, n) in [(5u32, 50_000usize), (100_000, 3_000), (100_000, 200_000), (1 << 29, 20_000)] {
            let mut t = RejectTable::with_capacity(0, 1).unwrap();
            let mut model = BTreeSet::new();
            for i in 0..n {
                let a = rng.gen_range(1..=assignments);
                let v = if i % 10 == 0 { 0 } else { rng.gen_range(0..(1u64 << V_BITS)) };
                assert_eq!(insert(&mut t, a, v, a), model.insert((a, v)));
            }
            let mut probes: Vec<(u32, u64)> = model.iter().take(5000).copied().collect();
            probes.extend((0..5000).map(|_| (rng.gen_range(0..=assignments), rng.gen_range(0..(1u64 << V_BITS)))));
            probes.extend([(0, 0), (u32::MAX, 0), (1, u64::MAX), (1, 1 << V_BITS)]);
            agree(&model, &t, &probes);
        }
    }

    #[test]
    fn full_buckets_spill_into_the_overflow_and_are_found_there() {
        for max_a in [3u32, 100_000] {
            let t = RejectTable::with_capacity(40, max_a).unwrap();
            let slots = if t.width == Width::Narrow { NARROW } else { WIDE };
            // Keys that all land in bucket 0: the first `slots` fill it, the rest overflow.
            let colliding: Vec<u64> =
                (0u64..).filter(|&v| t.split(t.hash(3, v).unwrap()).0 == 0).take(slots + 5).collect();
            let mut model = BTreeSet::new();
            for &v in &colliding {
                assert_eq!(t.insert(3, v), Ok(true));
                model.insert((3, v));
            }
            assert_eq!(t.insert(3, colliding[slots + 2]), Ok(false), "a repeat in the overflow");
            assert_eq!(t.overflow_len.load(Ordering::Relaxed), 5);
            let mut probes: Vec<(u32, u64)> = model.iter().copied().collect();
            probes.extend((0..2000).map(|v| (3, v)));
            agree(&model, &t, &probes);
            let grown = t.grown(0, 3).unwrap();
            agree(&model, &grown, &probes);
        }
    }

    #[test]
    fn rebuilt_drops_the_assignments_not_kept() {
        let mut t = RejectTable::with_capacity(1000, 10).unwrap();
        let mut model = BTreeSet::new();
        for v in 0..3000u64 {
            let a = (v % 3) as u32 + 1;
            insert(&mut t, a, v * 7919, 3);
            if a != 2 {
                model.insert((a, v * 7919));
            }
        }
        let r = t.rebuilt(|a| a != 2, 0, 3).unwrap();
        agree(&model, &r, &[(2, 7919), (1, 0), (3, 2 * 7919)]);
    }

    #[test]
    fn ten_million_rejects_over_a_hundred_thousand_assignments_fit_in_under_eight_bytes_each() {
        // The layout arithmetic of the benchmark's size (no allocation of 10 M entries here):
        // K = 51 bits, narrow buckets.
        let t = RejectTable::with_capacity(10_000_000, 100_000).unwrap();
        assert_eq!(t.width, Width::Narrow);
        let per = t.bytes() as f64 / 10_000_000.0;
        assert!(per <= 8.0, "{per:.2} bytes per reject");
        assert!(t.filter_blocks * BUCKET <= 11 << 20, "filter {} bytes", t.filter_blocks * BUCKET);
        let small = RejectTable::with_capacity(100, 100_000).unwrap();
        assert_eq!(small.width, Width::Wide);
    }

    #[test]
    fn the_filter_stops_most_absent_numbers_and_never_a_present_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut t = RejectTable::with_capacity(0, 1).unwrap();
        let mut keys = BTreeSet::new();
        while keys.len() < 200_000 {
            let k = (rng.gen_range(1..=50_000u32), rng.gen_range(0..(1u64 << V_BITS)));
            if keys.insert(k) {
                insert(&mut t, k.0, k.1, 50_000);
            }
        }
        assert!(keys.iter().all(|&(_, v)| t.filter_may_contain(v)));
        let numbers: BTreeSet<u64> = keys.iter().map(|&(_, v)| v).collect();
        let probes = 200_000;
        let mut passed = 0;
        for _ in 0..probes {
            let v = rng.gen_range(0..(1u64 << V_BITS));
            if !numbers.contains(&v) && t.filter_may_contain(v) {
                passed += 1;
            }
        }
        let rate = passed as f64 / probes as f64;
        // About 8 bits per key at the build load, 6 probes: ~2 %; at most 6 bits per key just
        // before growth: ~5 %.
        assert!(rate < 0.06, "false-positive rate {rate:.4}");
        // The filter is keyed by the number: a number held under one assignment passes it for
        // every other, and the bucket answers (no false positive from the table).
        for &(a, v) in keys.iter().take(2_000) {
            let other = a % 50_000 + 1;
            assert_eq!(t.contains(other, v), keys.contains(&(other, v)), "({other}, {v})");
        }
    }

    #[test]
    fn keys_round_trip_numbers() {
        for s in ["13800138000", "19999999999", "10000000000"] {
            let n = PhoneNumber::parse(s).unwrap();
            let k = key_of(n).unwrap();
            assert_eq!(number_of(k), Some(n));
            let t = RejectTable::with_capacity(1, 1).unwrap();
            assert_eq!(t.insert(1, k), Ok(true));
            assert!(t.contains_number(1, n));
            assert!(!t.contains_number(2, n));
        }
    }
}
