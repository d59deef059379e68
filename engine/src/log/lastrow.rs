//! The last row of each key (sub-port, number) in an open segment's index
//! ([`super::open_segment::OpenIndex`]): a hash map split into [`PARTS`] maps, the part chosen
//! by a hash of its own, so that growing never rehashes more than one part at a time.
//!
//! Why not one map: a hash map grows by doubling, and a doubling moves every entry while the
//! writer holds the index's write lock. A day of a large provider's traffic puts millions of
//! numbers in one open segment; one `FxHashMap<u64, u32>` took 20 ms to double at 0.9 M
//! numbers, 38 ms at 1.8 M and 148 ms at 7.3 M on the development VM, and the append whose
//! rows crossed the size waited that long, with every reader of the segment (benchmarks.md,
//! "Index growth"). The parts fill at the same pace but reach their thresholds at different
//! inserts, so their doublings spread over many batches, each moving a 256th of the entries.
//! A purpose-built structure because it sits on the append path (architecture.md, "Code
//! map"); the parts themselves are `FxHashMap`s.

use rustc_hash::FxHashMap;
use std::borrow::Borrow;
use std::hash::Hash;

/// Number of parts: the largest doubling moves about `1 / PARTS` of the entries.
pub const PARTS: usize = 256;

/// A key's hash for choosing its part, independent of the hash the parts use inside (FxHash):
/// keys sharing a part must not share the bits a part's table probes with.
pub trait Spread {
    /// 64 well-mixed bits; the top 8 choose the part.
    fn spread(&self) -> u64;
}

impl Spread for u64 {
    #[inline]
    fn spread(&self) -> u64 {
        // Fibonacci hashing: a multiplier unrelated to FxHash's, read from its top bits.
        self.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl Spread for str {
    #[inline]
    fn spread(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64(self.as_bytes())
    }
}

/// Key → last row, in [`PARTS`] maps (none allocated until the first insert).
#[derive(Debug)]
pub struct LastRow<K> {
    parts: Vec<FxHashMap<K, u32>>,
}

impl<K> Default for LastRow<K> {
    fn default() -> Self {
        LastRow { parts: Vec::new() }
    }
}

/// The part of `key`: the top 8 bits of its spread (PARTS is 256).
#[inline]
fn part_of<Q: Spread + ?Sized>(key: &Q) -> usize {
    (key.spread() >> 56) as usize % PARTS
}

impl<K: Hash + Eq> LastRow<K> {
    /// The last row of `key`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Spread + ?Sized,
    {
        self.parts.get(part_of(key))?.get(key).copied()
    }

    /// Makes `row` the last row of `key` and returns the one before; `owned` makes the key
    /// only when it is new, so that a known key allocates nothing.
    #[inline]
    pub fn replace<Q>(&mut self, key: &Q, row: u32, owned: impl FnOnce() -> K) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + Spread + ?Sized,
    {
        let part = self.part_mut(key);
        match part.get_mut(key) {
            Some(last) => Some(std::mem::replace(last, row)),
            None => {
                part.insert(owned(), row);
                None
            }
        }
    }

    /// Makes `row` the last row of `key` and returns the one before, in one lookup: for keys
    /// that cost nothing to make (numbers).
    #[inline]
    pub fn insert(&mut self, key: K, row: u32) -> Option<u32>
    where
        K: Spread,
    {
        self.part_mut(&key).insert(key, row)
    }

    /// The part `key` belongs to, the parts made at the first insert.
    #[inline]
    fn part_mut<Q: Spread + ?Sized>(&mut self, key: &Q) -> &mut FxHashMap<K, u32> {
        if self.parts.is_empty() {
            self.parts.resize_with(PARTS, FxHashMap::default);
        }
        &mut self.parts[part_of(key)]
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.parts.iter().map(FxHashMap::len).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.parts.iter().all(FxHashMap::is_empty)
    }

    /// The capacity of `key`'s part (0 before the first insert): a change means it grew.
    #[cfg(test)]
    fn capacity_of_part<Q>(&self, key: &Q) -> usize
    where
        Q: Spread + ?Sized,
    {
        self.parts.get(part_of(key)).map_or(0, FxHashMap::capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// xorshift64: the same keys every run.
    fn keys(n: usize) -> Vec<u64> {
        let mut x: u64 = 88_172_645_463_325_252;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                13_000_000_000 + x % 900_000_000
            })
            .collect()
    }

    #[test]
    fn behaves_as_one_map_for_numbers_and_sub_ports() {
        let mut nums: LastRow<u64> = LastRow::default();
        let mut model: HashMap<u64, u32> = HashMap::new();
        assert!(nums.is_empty() && nums.get(&1u64).is_none());
        // Repeated keys: every tenth key comes back.
        let ks = keys(50_000);
        for (i, &k) in ks.iter().enumerate() {
            let k = if i % 10 == 9 { ks[i / 2] } else { k };
            let got = if i % 2 == 0 { nums.replace(&k, i as u32, || k) } else { nums.insert(k, i as u32) };
            assert_eq!(got, model.insert(k, i as u32), "insert {i}");
        }
        assert_eq!(nums.len(), model.len());
        for (k, v) in &model {
            assert_eq!(nums.get(k), Some(*v));
        }
        assert_eq!(nums.get(&7u64), None);

        let mut subs: LastRow<Box<str>> = LastRow::default();
        let mut made = 0;
        for (i, s) in ["1069012345601", "10690123", "1069012345601", "106901234560199"].iter().enumerate() {
            subs.replace(*s, i as u32, || {
                made += 1;
                (*s).into()
            });
        }
        assert_eq!(made, 3, "a known sub-port makes no key");
        assert_eq!((subs.get("1069012345601"), subs.get("10690123"), subs.get("1069")), (Some(2), Some(1), None));
        assert_eq!(subs.len(), 3);
    }

    /// The point of the parts: no insert moves more than a few parts' worth of entries, where
    /// one map moves all of them at each doubling (917,535 of 1 M keys at the last one).
    #[test]
    fn no_insert_moves_more_than_a_part() {
        let n = 1_000_000;
        let mut m: LastRow<u64> = LastRow::default();
        let mut most_moved = 0;
        for (i, k) in keys(n).into_iter().enumerate() {
            let before = m.capacity_of_part(&k);
            let len_before = m.parts.get(part_of(&k)).map_or(0, FxHashMap::len);
            m.insert(k, i as u32);
            if m.capacity_of_part(&k) != before {
                most_moved = most_moved.max(len_before);
            }
        }
        let keys_held = m.len();
        assert!(keys_held > 990_000, "{keys_held}");
        // Evenly spread, a part holds keys_held / 256 (about 3,900); allow twice that.
        assert!(most_moved > 0 && most_moved <= 2 * keys_held / PARTS, "an insert moved {most_moved} entries");
        let (small, large) = m.parts.iter().map(FxHashMap::len).fold((usize::MAX, 0), |(s, l), n| (s.min(n), l.max(n)));
        assert!(large < 2 * small, "parts from {small} to {large} keys");
    }
}
