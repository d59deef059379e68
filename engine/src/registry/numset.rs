//! The in-memory set of rejected numbers of one assignment: the structure behind the hot-path
//! check. Purpose-built rather than `roaring` (docs/architecture.md, "Reject sets"): rejected
//! numbers are sparse in a 34-bit space, and a roaring bitmap pays one container (tens of bytes)
//! for almost every number at that density, far above the 8 bytes per reject budget.
//!
//! A number `1xxxxxxxxxx` is held as `v = number - 10^10`, which is below `10^10 < 2^34`. A
//! [`FrozenSet`] of `n` numbers splits `v` into a bucket (the top `b` bits, `2^b ≈ n / 16`) and
//! a low part (the other `34 - b` bits). An offsets table (`2^b + 1` u32) says where each
//! bucket's lows start in one sorted array of u16 (when `34 - b <= 16`) or u32 lows. A lookup is
//! one offsets read (a table small enough to stay cached for busy sets), then a vectorised scan
//! of about sixteen lows, one cache line. Memory is about 0.25 byte per number for offsets plus
//! 2 or 4 for the low part.
//!
//! [`NumSet`] adds a small sorted delta of recent inserts on top of a frozen base; a writer
//! builds a new `NumSet` (copy-on-write) and publishes it through an `ArcSwap`, so that readers
//! never wait.

use crate::record::PhoneNumber;
use std::sync::Arc;

/// Numbers are `10^10 ..= 2*10^10 - 1`; `v = number - BASE` fits in 34 bits.
const BASE: u64 = 10_000_000_000;
/// Bits of `v`.
const V_BITS: u32 = 34;
/// Largest bucket-bit count: beyond 18 the low part already fits u16.
const BUCKET_BITS_MAX: u32 = 18;

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

/// An immutable set of 34-bit keys (see the module docs for the layout). Header inline, one
/// shared allocation for the offsets and the lows, so that a lookup in a cold set costs the
/// fewest dependent cache misses; cloning shares the allocation.
#[derive(Debug, Clone)]
pub struct FrozenSet {
    low_bits: u32,
    /// Number of buckets (`2^b`); the offsets are `data[..=buckets]`.
    buckets: u32,
    len: u32,
    /// Offsets (`buckets + 1` u32), then the lows: two u16 per word (low half first) when
    /// `low_bits <= 16`, else one u32 each.
    data: Arc<[u32]>,
}

impl Default for FrozenSet {
    fn default() -> Self {
        FrozenSet { low_bits: V_BITS, buckets: 1, len: 0, data: Arc::new([0, 0]) }
    }
}

impl FrozenSet {
    /// Builds the set from keys in strictly increasing order (callers sort and dedup).
    pub(crate) fn from_sorted(keys: &[u64]) -> Self {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let n = keys.len();
        let bucket_bits = if n <= 16 { 0 } else { (usize::BITS - (n - 1).leading_zeros()).saturating_sub(4) };
        // About 16 keys per bucket: the offsets table stays small enough to stay cached for hot
        // sets, and a bucket's lows fill about one cache line.
        // At least V_BITS - 32 bucket bits: the low part must fit u32.
        let bucket_bits = bucket_bits.clamp(V_BITS - 32, BUCKET_BITS_MAX);
        let low_bits = V_BITS - bucket_bits;
        let buckets = 1usize << bucket_bits;
        let narrow = low_bits <= 16;
        let low_words = if narrow { n.div_ceil(2) } else { n };
        let mut data = vec![0u32; buckets + 1 + low_words];
        for &k in keys {
            data[(k >> low_bits) as usize + 1] += 1;
        }
        for i in 1..=buckets {
            data[i] += data[i - 1];
        }
        let mask = (1u64 << low_bits) - 1;
        let lows = &mut data[buckets + 1..];
        for (i, &k) in keys.iter().enumerate() {
            let low = (k & mask) as u32;
            if narrow {
                lows[i / 2] |= low << ((i & 1) * 16);
            } else {
                lows[i] = low;
            }
        }
        FrozenSet { low_bits, buckets: buckets as u32, len: n as u32, data: data.into() }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn low_at(&self, i: usize) -> u64 {
        let base = self.buckets as usize + 1;
        if self.low_bits <= 16 {
            u64::from((self.data[base + i / 2] >> ((i & 1) * 16)) & 0xFFFF)
        } else {
            u64::from(self.data[base + i])
        }
    }

    /// Membership of key `v`.
    #[inline]
    pub fn contains(&self, v: u64) -> bool {
        let bucket = (v >> self.low_bits) as usize;
        if bucket >= self.buckets as usize {
            return false;
        }
        let (lo, hi) = (self.data[bucket] as usize, self.data[bucket + 1] as usize);
        let low = v & ((1u64 << self.low_bits) - 1);
        // Buckets hold about sixteen keys: a linear (vectorised) scan of one cache line beats a
        // binary search.
        if self.low_bits <= 16 {
            (lo..hi).any(|i| self.low_at(i) == low)
        } else {
            let base = self.buckets as usize + 1;
            self.data.get(base + lo..base + hi).is_some_and(|l| l.contains(&(low as u32)))
        }
    }

    /// All keys in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.buckets as usize).flat_map(move |bucket| {
            let hi = (bucket as u64) << self.low_bits;
            (self.data[bucket] as usize..self.data[bucket + 1] as usize).map(move |i| hi | self.low_at(i))
        })
    }

    /// Heap bytes held (the shared allocation, with its two reference counts).
    pub fn heap_bytes(&self) -> usize {
        self.data.len() * 4 + 16
    }
}

/// A frozen base plus a small sorted delta of recent inserts.
#[derive(Debug, Clone, Default)]
pub struct NumSet {
    base: FrozenSet,
    delta: Vec<u64>,
}

impl NumSet {
    /// A set of the given keys (any order, duplicates allowed).
    pub fn from_keys(mut keys: Vec<u64>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        NumSet { base: FrozenSet::from_sorted(&keys), delta: Vec::new() }
    }

    /// Membership of key `v`.
    #[inline]
    pub fn contains(&self, v: u64) -> bool {
        self.base.contains(v) || (!self.delta.is_empty() && self.delta.binary_search(&v).is_ok())
    }

    /// Membership of a number.
    #[inline]
    pub fn contains_number(&self, n: PhoneNumber) -> bool {
        key_of(n).is_some_and(|v| self.contains(v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.base.len() + self.delta.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new set with `keys` added (the receiver is unchanged: readers may still hold it). The
    /// delta is folded into a new base once it outgrows an eighth of the base (at least 16 and
    /// at most 1024 keys), so that copying it per insert stays cheap and memory stays compact.
    pub fn with_added(&self, keys: &[u64]) -> NumSet {
        let mut fresh: Vec<u64> = keys.iter().copied().filter(|&k| !self.base.contains(k)).collect();
        fresh.sort_unstable();
        fresh.dedup();
        let delta = merge_sorted(&self.delta, &fresh);
        let limit = (self.base.len() / 8).clamp(16, 1024);
        if delta.len() <= limit {
            return NumSet { base: self.base.clone(), delta };
        }
        let base: Vec<u64> = self.base.iter().collect();
        NumSet { base: FrozenSet::from_sorted(&merge_sorted(&base, &delta)), delta: Vec::new() }
    }

    /// All keys in increasing order.
    pub fn keys(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.base.iter().chain(self.delta.iter().copied()).collect();
        v.sort_unstable();
        v
    }

    /// Heap bytes held (base and delta), for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.base.heap_bytes() + self.delta.capacity() * 8
    }
}

/// The sorted union of two sorted, deduplicated slices.
fn merge_sorted(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    fn check_against(model: &BTreeSet<u64>, set: &NumSet, probes: &[u64]) {
        assert_eq!(set.len(), model.len());
        for &p in probes {
            assert_eq!(set.contains(p), model.contains(&p), "key {p}");
        }
        assert_eq!(set.keys(), model.iter().copied().collect::<Vec<_>>());
    }

    #[test]
    fn frozen_sets_of_every_size_class_agree_with_a_btreeset() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for n in [0usize, 1, 2, 4, 5, 17, 100, 1000, 70_000, 300_000] {
            let model: BTreeSet<u64> = (0..n).map(|_| rng.gen_range(3_000_000_000u64..10_000_000_000)).collect();
            let set = NumSet::from_keys(model.iter().copied().collect());
            let mut probes: Vec<u64> = model.iter().take(2000).copied().collect();
            probes.extend((0..2000).map(|_| rng.gen_range(0..(1u64 << V_BITS))));
            probes.extend([0, (1 << V_BITS) - 1, 9_999_999_999]);
            check_against(&model, &set, &probes);
        }
    }

    #[test]
    fn inserts_through_the_delta_and_refolds_agree_with_a_btreeset() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut model = BTreeSet::new();
        let mut set = NumSet::default();
        for round in 0..3000 {
            let k = if round % 7 == 0 && !model.is_empty() {
                *model.iter().next().unwrap_or(&0) // a repeat: idempotent
            } else {
                rng.gen_range(0..10_000_000_000u64)
            };
            model.insert(k);
            set = set.with_added(&[k]);
            if round % 500 == 0 {
                let probes: Vec<u64> = model.iter().copied().chain((0..200).map(|_| rng.gen())).collect();
                check_against(&model, &set, &probes);
            }
        }
        let probes: Vec<u64> = model.iter().copied().collect();
        check_against(&model, &set, &probes);
        assert!(set.delta.len() <= 1024);
    }

    #[test]
    fn keys_round_trip_numbers() {
        for s in ["13800138000", "19999999999", "10000000000"] {
            let n = PhoneNumber::parse(s).unwrap();
            let k = key_of(n).unwrap();
            assert_eq!(number_of(k), Some(n));
            let set = NumSet::from_keys(vec![k]);
            assert!(set.contains_number(n));
        }
    }

    #[test]
    fn memory_stays_under_eight_bytes_per_key_for_sparse_sets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [8usize, 100, 10_000, 500_000] {
            let keys: Vec<u64> = (0..n).map(|_| rng.gen_range(3_000_000_000u64..10_000_000_000)).collect();
            let set = NumSet::from_keys(keys);
            let per = set.heap_bytes() as f64 / set.len() as f64;
            // Tiny sets pay the fixed header (5 offsets, reference counts); from a hundred keys
            // on a set costs about 5 bytes per key.
            let bound = if n < 100 { 9.0 } else { 6.0 };
            assert!(per <= bound, "{n} keys: {per:.2} bytes per key");
        }
    }
}
