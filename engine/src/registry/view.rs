//! The in-memory ledger that the check reads without locks: an immutable map from sub-port to
//! its assignments, published through an `ArcSwap` and replaced when an assignment is added.
//! What changes more often lives in cells the map points at: an assignment's end (an atomic),
//! its reject set (an `ArcSwap<NumSet>`), its consent records, a provider's versions.

use super::numset::NumSet;
use super::types::{Assignment, Provider};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

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

/// Sub-port → its assignments in term order.
pub(crate) type SubPortMap = HashMap<Arc<str>, Arc<[Arc<Slot>]>, Xxh3DefaultBuilder>;

/// The published ledger snapshot.
#[derive(Debug, Default)]
pub(crate) struct LedgerView {
    pub sub_ports: SubPortMap,
}

impl LedgerView {
    /// The assignments of a sub-port (None: the sub-port is unknown).
    #[inline]
    pub fn assignments_of(&self, sub_port: &str) -> Option<&[Arc<Slot>]> {
        self.sub_ports.get(sub_port).map(|s| &s[..])
    }

    /// The assignment of `sub_port` in force at `at_ms`.
    #[inline]
    pub fn in_force(&self, sub_port: &str, at_ms: i64) -> Option<&Arc<Slot>> {
        self.assignments_of(sub_port)?.iter().rev().find(|s| s.in_force(at_ms))
    }
}
