//! The in-memory ledger that the check reads without locks: an immutable map from sub-port to
//! its assignments, published through an `ArcSwap` and replaced when an assignment is added.
//! What changes more often lives in cells the map points at: an assignment's end (an atomic),
//! its reject set (an `ArcSwap<NumSet>`), its consent records, a provider's versions.

use super::numset::NumSet;
use super::types::{Assignment, Provider};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// A provider's versions, oldest first (never empty).
#[derive(Debug)]
pub(crate) struct ProviderCell {
    pub versions: ArcSwap<Vec<Provider>>,
}

impl ProviderCell {
    pub fn new(versions: Vec<Provider>) -> Self {
        ProviderCell { versions: ArcSwap::from_pointee(versions) }
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
    /// Rejected numbers (keys of `numset::key_of`).
    pub rejects: ArcSwap<NumSet>,
    /// Consent records by number key (only for consent-required assignments).
    pub consents: RwLock<HashMap<u64, ConsentEvents>>,
}

impl Slot {
    pub fn new(a: Assignment, provider: Arc<ProviderCell>) -> Self {
        Slot {
            to_ms: AtomicI64::new(a.to_ms),
            created: a,
            provider,
            rejects: ArcSwap::from_pointee(NumSet::default()),
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
/// and `123` differ). `None` for anything that is not 1 to 20 digits. Parsing 13 digits costs
/// less than hashing the string.
#[inline]
pub(crate) fn sp_key(sub_port: &str) -> Option<u128> {
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

/// The published ledger snapshot.
#[derive(Debug, Default)]
pub(crate) struct LedgerView {
    pub sub_ports: SubPortMap,
}

impl LedgerView {
    /// The assignments of a sub-port (None: the sub-port is unknown).
    #[inline]
    pub fn assignments_of(&self, sub_port: &str) -> Option<&[Arc<Slot>]> {
        self.sub_ports.get(&sp_key(sub_port)?).map(SlotList::as_slice)
    }

    /// The assignment of `sub_port` in force at `at_ms`.
    #[inline]
    pub fn in_force(&self, sub_port: &str, at_ms: i64) -> Option<&Arc<Slot>> {
        self.assignments_of(sub_port)?.iter().rev().find(|s| s.in_force(at_ms))
    }
}
