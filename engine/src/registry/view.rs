//! The in-memory ledger that the check reads without locks: an immutable map from sub-port to
//! its assignments, published through an `ArcSwap` and replaced when an assignment is added.
//! What changes more often lives in cells the map points at: an assignment's end (an atomic),
//! its reject count, its consent records, a provider's versions. The rejects themselves are in
//! the registry's one [`RejectTable`](super::rejecttable::RejectTable).

// The hot index lives in an anonymous mapping viewed as plain-integer entries (see HotIndex).
#![allow(unsafe_code)]

use super::types::{Assignment, Provider};
use crate::record::Usage;
use arc_swap::ArcSwap;
use memmap2::{Advice, MmapMut};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A provider's versions, oldest first (never empty), and the latest version's flags packed in
/// one atomic for the hot path (`decide` at "now" without a text reads no other field).
#[derive(Debug)]
pub(crate) struct ProviderCell {
    pub versions: ArcSwap<Vec<Provider>>,
    /// `changed_ms << 2 | whitelisted << 1 | blacklisted` of the latest version.
    latest: AtomicI64,
}

impl ProviderCell {
    pub fn new(versions: Vec<Provider>) -> Self {
        let cell = ProviderCell { versions: ArcSwap::from_pointee(Vec::new()), latest: AtomicI64::new(i64::MAX) };
        cell.publish(versions);
        cell
    }

    /// Replaces the versions (the writer's; readers see the versions first, then the flags).
    pub fn publish(&self, versions: Vec<Provider>) {
        let latest = versions
            .last()
            .map_or(i64::MAX, |p| p.changed_ms << 2 | i64::from(p.whitelisted) << 1 | i64::from(p.blacklisted));
        self.versions.store(Arc::new(versions));
        self.latest.store(latest, Ordering::Release);
    }

    /// `(blacklisted, whitelisted)` at `at_ms` when the latest version was already in force
    /// then (None: ask [`ProviderCell::at`]).
    #[inline]
    pub fn flags_at(&self, at_ms: i64) -> Option<(bool, bool)> {
        let l = self.latest.load(Ordering::Acquire);
        (l != i64::MAX && at_ms >= l >> 2).then_some((l & 1 != 0, l & 2 != 0))
    }

    /// The version in force at `at_ms`: the last one changed at or before it, or the first one
    /// for an instant before the provider was registered.
    pub fn at(versions: &[Provider], at_ms: i64) -> Option<&Provider> {
        let i = versions.partition_point(|p| p.changed_ms <= at_ms);
        versions.get(i.saturating_sub(1))
    }
}

/// Consent and withdrawal events of one number, in time order: `(at_ms, granted)`.
pub(crate) type ConsentEvents = Vec<(i64, bool)>;

/// One assignment and the state hanging off it.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The assignment as created (its `to_ms` is superseded by [`Slot::to_ms`]).
    created: Assignment,
    /// The end of the term: `ledger end` moves it earlier.
    to_ms: AtomicI64,
    /// The provider.
    pub provider: Arc<ProviderCell>,
    /// Rejects held in the store under this assignment (kept exact by the writer: loaded at
    /// open, raised by registrations, zeroed by a purge).
    pub rejects: AtomicU64,
    /// Consent records by number key (only for consent-required assignments).
    pub consents: RwLock<HashMap<u64, ConsentEvents>>,
}

impl Slot {
    pub fn new(a: Assignment, provider: Arc<ProviderCell>) -> Self {
        Slot {
            to_ms: AtomicI64::new(a.to_ms),
            created: a,
            provider,
            rejects: AtomicU64::new(0),
            consents: RwLock::new(HashMap::new()),
        }
    }

    pub fn id(&self) -> u32 {
        self.created.id
    }

    pub fn start_ms(&self) -> i64 {
        self.created.from_ms
    }

    pub fn to_ms(&self) -> i64 {
        self.to_ms.load(Ordering::Acquire)
    }

    pub fn set_to_ms(&self, to_ms: i64) {
        self.to_ms.store(to_ms, Ordering::Release);
    }

    #[inline]
    pub fn in_force(&self, at_ms: i64) -> bool {
        self.created.from_ms <= at_ms && at_ms < self.to_ms()
    }

    pub fn created(&self) -> &Assignment {
        &self.created
    }

    /// The assignment as it stands now.
    pub fn assignment(&self) -> Assignment {
        Assignment { to_ms: self.to_ms(), ..self.created.clone() }
    }
}

/// A sub-port as an integer: its digits' value times 32 plus the digit count (so that `0123`
/// and `123` differ). `None` for anything that is not 1 to 20 digits. On the check's hot path:
/// a sub-port of 8 digits or more is read 8 bytes at a time as `u64` words straight from the
/// string (the last 8 digits, the 8 before them, the rest; a shorter head is shifted into place
/// behind ASCII zeros), each validated and converted with a few word operations
/// ([`eight_digits`]) instead of a dependent multiply per digit. Shorter ones take the plain
/// loop.
#[inline(always)]
pub(crate) fn sp_key(sub_port: &str) -> Option<u128> {
    let b = sub_port.as_bytes();
    let n = b.len();
    if n < 8 {
        if n == 0 {
            return None;
        }
        let mut v: u64 = 0;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u64::from(d);
        }
        return Some(u128::from(v) * 32 + n as u128);
    }
    if n > 20 {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default());
    // The first `k` (0 to 8) digits: the first word shifted so that they end at its top byte,
    // ASCII zeros in front.
    let head = |k: usize| match k {
        0 => Some(0),
        8 => eight_digits(word(0)),
        k => eight_digits(word(0) << (8 * (8 - k)) | 0x3030_3030_3030_3030 >> (8 * k)),
    };
    let lo = eight_digits(word(n - 8))?;
    let rest = n - 8;
    let (hi, mid) = if rest > 8 { (head(rest - 8)?, eight_digits(word(rest - 8))?) } else { (0, head(rest)?) };
    let v = u128::from(hi) * 10_000_000_000_000_000 + u128::from(mid * 100_000_000 + lo);
    Some(v * 32 + n as u128)
}

/// The value of 8 ASCII digits read as a little-endian `u64` (the first digit in the lowest
/// byte), or `None` when a byte is not a digit. SWAR: every byte's high nibble must be 3 and
/// its low nibble at most 9 (adding 6 must not carry into the high nibble); then digits are
/// paired, the pairs paired, and the halves joined by two multiplies.
#[inline]
fn eight_digits(x: u64) -> Option<u64> {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    if x & HIGH != ZEROS || x.wrapping_add(SIXES) & HIGH != ZEROS {
        return None;
    }
    let d = x - ZEROS;
    // Each byte i: 10 * d_i + d_(i+1); the even bytes hold the pairs (two-digit values).
    let d = d.wrapping_mul(10).wrapping_add(d >> 8);
    let pairs_a = d & 0x0000_00FF_0000_00FF;
    let pairs_b = (d >> 16) & 0x0000_00FF_0000_00FF;
    Some((pairs_a.wrapping_mul(100 + (1_000_000 << 32)).wrapping_add(pairs_b.wrapping_mul(1 + (10_000 << 32)))) >> 32)
}

/// Hasher for [`sp_key`] keys: one multiply (the keys are distinct integers, not attacker-chosen
/// strings; a sub-port comes from the operator's ledger).
#[derive(Default)]
pub(crate) struct SpHasher(u64);

impl Hasher for SpHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u128(&mut self, v: u128) {
        let x = (v as u64) ^ ((v >> 64) as u64).rotate_left(32);
        self.0 = (x ^ (x >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 ^= self.0 >> 32;
    }
}

/// A sub-port's assignments in term order. Most sub-ports have one: it is held inline in the
/// map entry, saving the check one dependent cache miss.
#[derive(Debug, Clone)]
pub(crate) enum SlotList {
    One(Arc<Slot>),
    Many(Arc<[Arc<Slot>]>),
}

impl SlotList {
    #[inline]
    pub fn as_slice(&self) -> &[Arc<Slot>] {
        match self {
            SlotList::One(s) => std::slice::from_ref(s),
            SlotList::Many(v) => v,
        }
    }
}

impl From<Vec<Arc<Slot>>> for SlotList {
    fn from(mut v: Vec<Arc<Slot>>) -> Self {
        match v.len() {
            1 => SlotList::One(v.remove(0)),
            _ => SlotList::Many(v.into()),
        }
    }
}

/// Sub-port key → its assignments in term order.
pub(crate) type SubPortMap = HashMap<u128, SlotList, BuildHasherDefault<SpHasher>>;

/// The published ledger snapshot: the sub-port map, and beside it a flat index of each
/// sub-port's latest assignment for the check at "now".
#[derive(Debug, Default)]
pub(crate) struct LedgerView {
    pub sub_ports: SubPortMap,
    hot: HotIndex,
}

impl LedgerView {
    /// The view of a sub-port map (builds the hot index: O(sub-ports), on ledger changes only).
    pub fn new(sub_ports: SubPortMap) -> Self {
        let hot = HotIndex::build(&sub_ports);
        LedgerView { sub_ports, hot }
    }

    /// The assignments of a sub-port (None: the sub-port is unknown).
    #[inline]
    pub fn assignments_of(&self, sub_port: &str) -> Option<&[Arc<Slot>]> {
        self.assignments_of_key(sp_key(sub_port)?)
    }

    /// The assignments of a sub-port key.
    #[inline]
    pub fn assignments_of_key(&self, key: u128) -> Option<&[Arc<Slot>]> {
        self.sub_ports.get(&key).map(SlotList::as_slice)
    }

    /// The assignment of `sub_port` in force at `at_ms`.
    #[inline]
    pub fn in_force(&self, sub_port: &str, at_ms: i64) -> Option<&Arc<Slot>> {
        self.assignments_of(sub_port)?.iter().rev().find(|s| s.in_force(at_ms))
    }

    /// The hot entry of a sub-port key: its latest assignment (None: unknown sub-port, or one
    /// the index does not hold: ask [`LedgerView::assignments_of_key`]).
    #[inline]
    pub fn hot(&self, key: u128) -> Option<&HotEntry> {
        self.hot.get(key)
    }

    /// Starts loading the hot index's cache line for `key` (see [`super::Registry::decide_batch`]).
    #[inline]
    pub fn prefetch_hot(&self, key: u128) {
        self.hot.prefetch(key);
    }
}

/// A sub-port's latest assignment (by start), with its provider's latest flags, packed in 32
/// bytes so that two share a cache line and the index of 100,000 sub-ports fits in 4 MiB (two
/// huge pages): a check for a cold sub-port costs one cache miss here, most often served from
/// the last-level cache, instead of a map entry, then an `Arc<Slot>`, then the provider. Plain
/// integers only: the index lives in an anonymous mapping, zero meaning empty. The copies are
/// refreshed by every ledger change (assignment, `ledger end`, provider), which republishes the
/// view.
#[repr(C, align(32))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HotEntry {
    /// The sub-port's digits as a number (sub-ports of up to 19 digits, and 20-digit ones below
    /// 2^64; the rest are answered from the map).
    digits: u64,
    /// The later of the assignment's start and its provider's latest change: from then on the
    /// copied flags are the ones in force.
    pub from_ms: i64,
    /// The end of the term.
    pub to_ms: i64,
    /// The assignment's id.
    pub id: u32,
    /// The sub-port's digit count (so that `0123` and `123` differ); 0 marks an empty entry.
    len: u8,
    /// [`Usage::code`] of the assignment.
    usage: u8,
    /// [`HotEntry::CONSENT`] | [`HotEntry::BLACKLISTED`] | [`HotEntry::WHITELISTED`].
    flags: u8,
    _pad: u8,
}

impl HotEntry {
    const CONSENT: u8 = 1;
    const BLACKLISTED: u8 = 2;
    const WHITELISTED: u8 = 4;

    /// True when the copy answers for `at_ms`: the assignment is in force and its provider's
    /// latest version already was.
    #[inline]
    pub fn in_force(&self, at_ms: i64) -> bool {
        self.from_ms <= at_ms && at_ms < self.to_ms
    }

    #[inline]
    pub fn usage(&self) -> Usage {
        Usage::from_code(self.usage).flatten().unwrap_or(Usage::Public)
    }

    #[inline]
    pub fn consent_required(&self) -> bool {
        self.flags & Self::CONSENT != 0
    }

    #[inline]
    pub fn blacklisted(&self) -> bool {
        self.flags & Self::BLACKLISTED != 0
    }

    #[inline]
    pub fn whitelisted(&self) -> bool {
        self.flags & Self::WHITELISTED != 0
    }
}

/// Open addressing with linear probing over 32-byte entries, at most 80 % full (so a probe
/// always ends, on average within the entry's own cache line or the next).
#[derive(Debug, Default)]
struct HotIndex {
    /// The entries: `mask + 1` of them at the start of the mapping (None: no sub-ports).
    map: Option<MmapMut>,
    mask: usize,
}

/// The most of the index's entries that may be used, out of 5.
const HOT_LOAD_FIFTHS: usize = 4;

impl HotIndex {
    fn build(map: &SubPortMap) -> Self {
        if map.is_empty() {
            return HotIndex::default();
        }
        let n = (map.len() * 5).div_ceil(HOT_LOAD_FIFTHS).next_power_of_two().max(2);
        let bytes = n * std::mem::size_of::<HotEntry>();
        let Ok(mut mapping) = MmapMut::map_anon(bytes) else {
            // Out of address space: every check takes the map's path, still correct.
            return HotIndex::default();
        };
        if bytes >= 2 << 20 {
            // Best effort: without huge pages the index works, with more TLB misses.
            let _ = mapping.advise(Advice::HugePage);
        }
        let mask = n - 1;
        let entries = Self::entries_mut(&mut mapping, n);
        for (&key, list) in map {
            let Some(slot) = list.as_slice().last() else { continue };
            let Ok(digits) = u64::try_from(key >> 5) else { continue };
            let a = slot.created();
            let (from_ms, flags) = match slot.provider.versions.load().last() {
                Some(p) => (
                    a.from_ms.max(p.changed_ms),
                    (u8::from(a.consent_required) * HotEntry::CONSENT)
                        | (u8::from(p.blacklisted) * HotEntry::BLACKLISTED)
                        | (u8::from(p.whitelisted) * HotEntry::WHITELISTED),
                ),
                // No provider version: never answered from the copy.
                None => (i64::MAX, 0),
            };
            let mut i = Self::home(key, mask);
            while entries[i].len != 0 {
                i = (i + 1) & mask;
            }
            entries[i] = HotEntry {
                digits,
                from_ms,
                to_ms: slot.to_ms(),
                id: a.id,
                len: (key & 31) as u8,
                usage: a.usage.code(),
                flags,
                _pad: 0,
            };
        }
        HotIndex { map: Some(mapping), mask }
    }

    /// The mapping as `n` entries.
    fn entries_mut(mapping: &mut MmapMut, n: usize) -> &mut [HotEntry] {
        assert!(mapping.len() >= n * std::mem::size_of::<HotEntry>());
        // SAFETY: the mapping is page aligned (so 32-aligned), holds at least `n` entries (just
        // asserted), is zero-initialised (a valid, empty `HotEntry`: plain integers), and the
        // slice borrows it mutably for its lifetime.
        unsafe { std::slice::from_raw_parts_mut(mapping.as_mut_ptr().cast::<HotEntry>(), n) }
    }

    #[inline]
    fn entries(&self) -> &[HotEntry] {
        match &self.map {
            // SAFETY: as in `entries_mut`; `mask + 1` entries were laid out by `build` and the
            // mapping is never written again.
            Some(m) => unsafe { std::slice::from_raw_parts(m.as_ptr().cast::<HotEntry>(), self.mask + 1) },
            None => &[],
        }
    }

    #[inline]
    fn home(key: u128, mask: usize) -> usize {
        let mut h = SpHasher::default();
        h.write_u128(key);
        h.finish() as usize & mask
    }

    /// Starts loading the line of `key`'s home entry.
    #[inline]
    fn prefetch(&self, key: u128) {
        let entries = self.entries();
        if !entries.is_empty() {
            super::rejecttable::prefetch(std::ptr::from_ref(&entries[Self::home(key, self.mask)]).cast());
        }
    }

    /// The entry of `key`; None when the sub-port is unknown or not indexed (ask the map).
    #[inline]
    fn get(&self, key: u128) -> Option<&HotEntry> {
        let entries = self.entries();
        if entries.is_empty() {
            return None;
        }
        let digits = u64::try_from(key >> 5).ok()?;
        let len = (key & 31) as u8;
        let mut i = Self::home(key, self.mask);
        loop {
            let e = &entries[i];
            if e.len == 0 {
                return None;
            }
            if e.digits == digits && e.len == len {
                return Some(e);
            }
            i = (i + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The plain definition: one digit at a time.
    fn sp_key_scalar(sub_port: &str) -> Option<u128> {
        let b = sub_port.as_bytes();
        if b.is_empty() || b.len() > 20 {
            return None;
        }
        let mut v: u128 = 0;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u128::from(d);
        }
        Some(v * 32 + b.len() as u128)
    }

    #[test]
    fn sp_key_edges() {
        for s in ["0", "9", "106", "0106", "10690001", "1069000123456", "99999999999999999999", "00000000000000000000"]
        {
            assert_eq!(sp_key(s), sp_key_scalar(s), "{s}");
            assert!(sp_key(s).is_some(), "{s}");
        }
        for s in ["", "999999999999999999999", "12a4", "1/", "1:", " 1", "1\u{0}", "１２", "12345678901234567890x"] {
            assert_eq!(sp_key(s), None, "{s:?}");
        }
        assert_ne!(sp_key("0123"), sp_key("123"));
        assert_eq!(sp_key("99999999999999999999"), Some(99_999_999_999_999_999_999u128 * 32 + 20));
    }

    proptest! {
        #[test]
        fn sp_key_agrees_with_the_scalar_parse(s in "[0-9]{0,22}") {
            prop_assert_eq!(sp_key(&s), sp_key_scalar(&s));
        }

        #[test]
        fn sp_key_agrees_on_any_bytes(s in "[0-9/:\\x00-\\x7f]{0,21}") {
            prop_assert_eq!(sp_key(&s), sp_key_scalar(&s));
        }

        #[test]
        fn one_wrong_byte_anywhere_agrees_with_the_scalar_parse(s in "[0-9]{1,20}", at in 0usize..20, c in any::<u8>()) {
            let mut b = s.into_bytes();
            let at = at % b.len();
            b[at] = c;
            if let Ok(s) = String::from_utf8(b) {
                prop_assert_eq!(sp_key(&s), sp_key_scalar(&s));
            }
        }
    }
}
