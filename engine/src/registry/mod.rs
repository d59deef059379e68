//! The port ledger and the reject registry: who holds each sub-port for which usage under which
//! contract term, which users refused commercial SMS under which assignment, consent records,
//! and the hot-path check that combines them.
//!
//! Durable state lives in RocksDB ([`store`]); the check reads an in-memory snapshot
//! ([`view`]) without taking a lock, and one table of every (assignment, number) that refused
//! ([`rejecttable`]).
//! Every write holds one writer mutex, writes RocksDB (synced), then publishes to memory: a
//! change is visible to checks only once durable.

mod audit;
pub mod check;
mod consent;
mod inspect;
mod ledger;
mod published;
mod rejects;
pub mod rejecttable;
pub(crate) mod store;
pub mod types;
pub(crate) mod view;

use crate::clock::SharedClock;
use crate::config::RegistryConfig;
use crate::error::{Error, Result};
use crate::record::{PhoneNumber, Usage};
use rejecttable::RejectTable;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;
use view::{LedgerView, ProviderCell, Slot};

pub use audit::{AuditEntry, AuditFailure, AuditFault, AuditVerifyReport};
pub use inspect::FindingKind;
pub use ledger::SubPortLedger;
pub use rejects::{ImportReport, RejectFormat, RejectInput, RejectOutcome};
pub use types::*;

/// One question of [`Registry::decide_batch`]: may `sub_port` send a message of `usage` to
/// `number` now (with `text`: its content rules checked too)?
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The sub-port, as the caller wrote it.
    pub sub_port: &'a str,
    /// The recipient.
    pub number: PhoneNumber,
    /// The message's usage.
    pub usage: Usage,
    /// The message's text, when its content rules are to be checked.
    pub text: Option<&'a str>,
}

/// How many questions ahead [`Registry::decide_batch`] starts the loads of the reject filter
/// (and twice as far, of the hot index): enough misses in flight to overlap most of a
/// main-memory latency, few enough that the lines are still cached when their turn comes.
pub const BATCH_AHEAD: usize = 8;

/// Counters of the writer (persisted in the `meta` column family).
#[derive(Debug, Default)]
struct Writer {
    assignment_id: u32,
    ledger_seq: u64,
    consent_seq: u64,
    audit_seq: u64,
    /// Hash of the last audit entry (the next one's `prev`; see `audit.rs`), loaded at open.
    audit_hash: audit::Hash,
    /// `meta` `audit_chain_from`: the first chained entry's sequence (0: none yet).
    audit_chain_from: u64,
}

/// Everything the writer rebuilds and publishes: the check's snapshot plus lookups by id. One
/// load gives the check all it reads (`published.rs`: the check reads it without an atomic write).
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub view: Arc<LedgerView>,
    /// Assignments by id - 1.
    pub slots: Vec<Arc<Slot>>,
    pub providers: HashMap<String, Arc<ProviderCell>>,
    /// Every reject of every assignment (replaced when it grows or after a purge).
    pub rejects: Arc<RejectTable>,
}

/// A verdict the hot entry settles alone (allow, or deny without a since-time), small enough to
/// come back from the check's closure in a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quick {
    Allow(u32),
    Deny(Reason, u32),
}

impl Quick {
    fn verdict(self) -> Verdict {
        match self {
            Quick::Allow(id) => Verdict::allow(id),
            Quick::Deny(reason, id) => Verdict::deny(reason, Some(id)),
        }
    }
}

/// The verdict of a question without a text whose sub-port's hot entry `h` is in force, when
/// the entry and the reject table settle it: the first steps of [`Registry::answer`], in its
/// order (see [`check`]). None when the answer needs more: a consent lookup, or the since-time
/// of a reject (`since_wanted`: for [`Registry::check`], or an instant in the past, where a
/// reject registered later does not count).
#[inline(always)]
fn answer_hot(
    state: &State,
    h: &view::HotEntry,
    number: PhoneNumber,
    usage: Usage,
    since_wanted: bool,
) -> Option<Quick> {
    if h.blacklisted() {
        return Some(Quick::Deny(Reason::Blacklisted, h.id));
    }
    if usage != h.usage() {
        return Some(Quick::Deny(Reason::UsageMismatch, h.id));
    }
    if usage != Usage::Commercial || h.whitelisted() {
        return Some(Quick::Allow(h.id));
    }
    if rejecttable::key_of(number).is_some_and(|k| state.rejects.contains(h.id, k)) {
        return (!since_wanted).then_some(Quick::Deny(Reason::Rejected, h.id));
    }
    (!h.consent_required()).then_some(Quick::Allow(h.id))
}

/// The ledger and reject registry (see the module docs).
#[derive(Debug)]
pub struct Registry {
    store: Store,
    state: published::Published,
    writer: Mutex<Writer>,
    clock: SharedClock,
    /// The clock's coarse cell, when it has one ([`crate::Clock::coarse_cell`]): the check at
    /// "now" loads it instead of calling the clock.
    coarse: Option<&'static AtomicI64>,
    cfg: RegistryConfig,
}

impl Registry {
    /// Opens (or creates) the registry in `dir` and loads it into memory: the ledger, then every
    /// reject key into the per-assignment sets.
    pub fn open(dir: impl AsRef<Path>, cfg: RegistryConfig, clock: SharedClock) -> Result<Self> {
        Self::open_with_keys(dir, cfg, clock, None)
    }

    /// [`Registry::open`] with a key ring: reject texts and consent records are then written
    /// encrypted with its
    /// active key, and encrypted ones read (plaintext ones written before stay readable).
    pub fn open_with_keys(
        dir: impl AsRef<Path>,
        cfg: RegistryConfig,
        clock: SharedClock,
        keys: Option<std::sync::Arc<crate::crypto::KeyRing>>,
    ) -> Result<Self> {
        cfg.validate()?;
        let store = Store::open(dir.as_ref(), cfg.sync, keys)?;
        let mut providers = HashMap::new();
        for versions in store.providers()? {
            if let Some(first) = versions.first() {
                providers.insert(first.id.clone(), Arc::new(ProviderCell::new(versions)));
            }
        }
        let mut slots: Vec<Arc<Slot>> = Vec::new();
        for a in store.assignments()? {
            let cell = providers.get(&a.provider).cloned().ok_or_else(|| Error::Store {
                path: store.path().to_path_buf(),
                detail: format!("assignment {} names unknown provider {}", a.id, a.provider),
            })?;
            if a.id as usize != slots.len() + 1 {
                return Err(Error::Store {
                    path: store.path().to_path_buf(),
                    detail: format!("assignment ids are not dense: {} after {}", a.id, slots.len()),
                });
            }
            slots.push(Arc::new(Slot::new(a, cell)));
        }
        // Every reject key, packed as the table's key (assignment << 34 | number key), counted
        // per assignment, then one table sized for them all.
        let mut keys: Vec<(u32, u64)> = Vec::new();
        store.for_each_reject_key(|a, k| keys.push((a, k)))?;
        let table = RejectTable::with_capacity(keys.len(), slots.len() as u32)
            .map_err(Error::io("map", "reject table (anonymous memory)"))?;
        for &(a, k) in &keys {
            let Some(slot) = slots.get((a as usize).wrapping_sub(1)) else { continue };
            // Sized for every key: an insert can only ask for growth on a pathological skew.
            if table.insert(a, k).is_err() {
                return Err(Error::Store {
                    path: store.path().to_path_buf(),
                    detail: format!("reject {a}/{k} does not fit the reject table"),
                });
            }
            slot.rejects.fetch_add(1, Ordering::Relaxed);
        }
        drop(keys);
        for c in store.consents()? {
            let Some(slot) = slots.get((c.assignment as usize).wrapping_sub(1)) else { continue };
            let Some(key) = PhoneNumber::parse(&c.number).ok().and_then(rejecttable::key_of) else { continue };
            let mut m = slot.consents.write().map_err(|_| Error::Closed)?;
            consent::insert_event(m.entry(key).or_default(), c.at_ms, c.granted);
        }
        let (audit_hash, audit_chain_from) = audit::chain_head(&store)?;
        let writer = Writer {
            assignment_id: slots.len() as u32,
            ledger_seq: store.meta("ledger_seq")?,
            consent_seq: store.meta("consent_seq")?,
            audit_seq: store.meta("audit_seq")?,
            audit_hash,
            audit_chain_from,
        };
        let view = Arc::new(ledger::build_view(&slots));
        let state = State { view, slots, providers, rejects: Arc::new(table) };
        let coarse = clock.coarse_cell();
        Ok(Registry { store, state: published::Published::new(state), writer: Mutex::new(writer), clock, coarse, cfg })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    /// Publishes a new reject table (the caller holds the writer lock).
    fn publish_rejects(&self, table: Arc<RejectTable>) {
        let mut st = State::clone(&self.state.load());
        st.rejects = table;
        self.state.store(Arc::new(st));
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>> {
        self.writer.lock().map_err(|_| Error::Poisoned { shard: u32::MAX, cause: "registry writer panicked".into() })
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// May `sub_port` send a message of `usage` to `number` at `at_ms` (None: now)? With `text`,
    /// the content rules of commercial messages are checked too. See [`check`] for the order of
    /// the reasons. Never blocked by writers. A `rejected` verdict carries its since-time, read
    /// from the store (about a microsecond); [`Registry::decide`] skips that read.
    pub fn check(
        &self,
        sub_port: &str,
        number: PhoneNumber,
        usage: Usage,
        at_ms: Option<i64>,
        text: Option<&str>,
    ) -> Result<Verdict> {
        self.check_inner(sub_port, number, usage, at_ms, text, true)
    }

    /// The gateway's hot path: [`Registry::check`] at the current instant, answered from memory
    /// alone. A `rejected` verdict has `since_ms: None` (every stored reject starts at or before
    /// the instant it was registered, so membership decides "now"; ask [`Registry::check`] for
    /// the since-time or for an instant in the past).
    #[inline]
    pub fn decide(&self, sub_port: &str, number: PhoneNumber, usage: Usage, text: Option<&str>) -> Result<Verdict> {
        self.check_inner(sub_port, number, usage, None, text, false)
    }

    /// [`Registry::decide`] for many questions at once, answers appended to `out` in order: the
    /// same verdicts, from one snapshot and one reading of the clock. Each question's cache
    /// misses (the sub-port's hot entry and the reject filter block of its number) are started
    /// 2 × [`BATCH_AHEAD`] questions before it is answered, and its hot entry read
    /// [`BATCH_AHEAD`] before, so that the misses of several questions overlap: a batch costs less per question than
    /// single calls whenever its structures are not all in cache (measured in
    /// docs/benchmarks.md). The path of `CheckBatch` and `CheckStream` with `skip_since`.
    pub fn decide_batch(&self, questions: &[Question<'_>], out: &mut Vec<Result<Verdict>>) {
        let at = self.now_coarse();
        let state = self.state.load();
        let keys: Vec<Option<u128>> = questions.iter().map(|q| view::sp_key(q.sub_port)).collect();
        // Each question's hot entry in force, found once (BATCH_AHEAD questions before its
        // answer) and used by the answer.
        let mut hots: Vec<Option<&view::HotEntry>> = Vec::with_capacity(questions.len());
        // Both lines of a question depend on its own input alone (the filter block on the
        // number): started together, 2 × BATCH_AHEAD questions ahead.
        let hot_ahead = |j: usize| {
            if let Some(k) = keys.get(j).copied().flatten() {
                state.view.prefetch_hot(k);
                let q = &questions[j];
                if let (Some(v), Usage::Commercial) = (rejecttable::key_of(q.number), q.usage) {
                    state.rejects.prefetch(v);
                }
            }
        };
        let find_hot = |j: usize| keys[j].and_then(|k| state.view.hot(k)).filter(|h| h.in_force(at));
        for j in 0..questions.len().min(2 * BATCH_AHEAD) {
            hot_ahead(j);
        }
        for j in 0..questions.len().min(BATCH_AHEAD) {
            hots.push(find_hot(j));
        }
        out.reserve(questions.len());
        for (i, q) in questions.iter().enumerate() {
            hot_ahead(i + 2 * BATCH_AHEAD);
            if i + BATCH_AHEAD < questions.len() {
                hots.push(find_hot(i + BATCH_AHEAD));
            }
            out.push(self.answer(&state, keys[i], hots[i], q.number, q.usage, at, None, q.text, false));
        }
    }

    fn check_inner(
        &self,
        sub_port: &str,
        number: PhoneNumber,
        usage: Usage,
        at_ms: Option<i64>,
        text: Option<&str>,
        want_since: bool,
    ) -> Result<Verdict> {
        // The common question (a hot sub-port, no text) is settled inside the closure and comes
        // back as a `Quick` in a register; a `Result<Verdict>` returned through the closure and
        // `with` was copied three times, and a perf profile put a third of the check's own time
        // on the store-forwarding stalls of those copies. Anything else answers in full below.
        let since_wanted = want_since || at_ms.is_some();
        let at_of = || match at_ms {
            Some(t) => t,
            None if want_since => self.clock.now_ms(),
            None => self.now_coarse(),
        };
        let quick = self.state.with(|state| {
            // The reject filter's block depends on the number alone, the hot entry's line on
            // the sub-port alone: start loading both before anything else, so that the two
            // cache misses overlap each other and the clock read.
            if usage == Usage::Commercial {
                if let Some(v) = rejecttable::key_of(number) {
                    state.rejects.prefetch(v);
                }
            }
            let key = view::sp_key(sub_port)?;
            state.view.prefetch_hot(key);
            if text.is_some() {
                return None;
            }
            let at = at_of();
            let hot = state.view.hot(key).filter(|h| h.in_force(at))?;
            answer_hot(state, hot, number, usage, since_wanted)
        });
        if let Some(q) = quick {
            return Ok(q.verdict());
        }
        let at = at_of();
        self.state.with(|state| {
            let key = view::sp_key(sub_port);
            let hot = key.and_then(|k| state.view.hot(k)).filter(|h| h.in_force(at));
            self.answer(state, key, hot, number, usage, at, at_ms, text, want_since)
        })
    }

    /// The time to within about a millisecond: the clock's coarse cell when it has one.
    #[inline]
    fn now_coarse(&self) -> i64 {
        match self.coarse {
            Some(cell) => cell.load(Ordering::Acquire),
            None => self.clock.now_ms_coarse(),
        }
    }

    /// The verdict at `at` (`at_ms`: the instant the caller asked about, None for now) in
    /// `state`, for the sub-port key `key` (None: not a sub-port) whose hot entry in force at
    /// `at` the caller looked up (`hot`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn answer(
        &self,
        state: &State,
        key: Option<u128>,
        hot: Option<&view::HotEntry>,
        number: PhoneNumber,
        usage: Usage,
        at: i64,
        at_ms: Option<i64>,
        text: Option<&str>,
        want_since: bool,
    ) -> Result<Verdict> {
        let Some(key) = key else {
            return Ok(Verdict::deny(Reason::UnknownSubPort, None));
        };
        if let (Some(h), None) = (hot, text) {
            if let Some(q) = answer_hot(state, h, number, usage, want_since || at_ms.is_some()) {
                return Ok(q.verdict());
            }
        }
        // The sub-port's latest assignment is nearly always the one in force, and its
        // provider's latest version the one in force: answered from the hot entry's copy,
        // without touching the slot or the provider. Otherwise, the term list.
        let (aid, usage_of, consent_required, slot, cell) = match hot {
            Some(h) => (h.id, h.usage(), h.consent_required(), None, None),
            None => {
                let Some(list) = state.view.assignments_of_key(key) else {
                    return Ok(Verdict::deny(Reason::UnknownSubPort, None));
                };
                let Some(slot) = list.iter().rev().find(|s| s.in_force(at)) else {
                    return Ok(Verdict::deny(Reason::NoAssignment, None));
                };
                let a = slot.created();
                (a.id, a.usage, a.consent_required, Some(slot), Some(&slot.provider))
            }
        };
        let id = Some(aid);
        // The slot behind an id (the hot path needs it only for consent and texts).
        let slot_of = || {
            slot.or_else(|| state.slots.get((aid as usize).wrapping_sub(1)))
                .ok_or_else(|| Error::NotFound { what: "assignment", key: aid.to_string() })
        };
        // Without a text, the copied flags or the provider's latest ones suffice (one atomic);
        // with one, the version in force at `at`.
        let versions;
        let flags = match (hot, text) {
            (Some(h), None) => Some((h.blacklisted(), h.whitelisted())),
            (None, None) => cell.and_then(|c| c.flags_at(at)),
            (_, Some(_)) => None,
        };
        let (blacklisted, whitelisted, provider) = match flags {
            Some((b, w)) => (b, w, None),
            None => {
                versions = slot_of()?.provider.versions.load();
                let Some(p) = ProviderCell::at(&versions, at) else {
                    return Ok(Verdict::deny(Reason::NoAssignment, id));
                };
                (p.blacklisted, p.whitelisted, Some(p))
            }
        };
        if blacklisted {
            return Ok(Verdict::deny(Reason::Blacklisted, id));
        }
        if usage != usage_of {
            return Ok(Verdict::deny(Reason::UsageMismatch, id));
        }
        if usage != Usage::Commercial {
            return Ok(Verdict::allow(aid));
        }
        if !whitelisted {
            let key = rejecttable::key_of(number);
            if let Some(key) = key.filter(|&k| state.rejects.contains(aid, k)) {
                if !want_since && at_ms.is_none() {
                    return Ok(Verdict::deny(Reason::Rejected, id));
                }
                if let Some(at_ms) = self.store.reject_at_ms(aid, key)? {
                    if at_ms <= at {
                        return Ok(Verdict { since_ms: Some(at_ms), ..Verdict::deny(Reason::Rejected, id) });
                    }
                }
            }
            if consent_required && !consent::in_force(slot_of()?, key, at)? {
                return Ok(Verdict::deny(Reason::NoConsent, id));
            }
        }
        if let Some(reason) = text.zip(provider).and_then(|(t, p)| check::content_violation(t, p)) {
            return Ok(Verdict::deny(reason, id));
        }
        Ok(Verdict::allow(aid))
    }

    /// Is `number` in assignment `id`'s reject set? Membership alone, from memory (purged
    /// rejects may linger until the table is rebuilt: use [`Registry::check`] for answers).
    /// For benchmarks and diagnostics.
    pub fn in_reject_set(&self, id: u32, number: PhoneNumber) -> bool {
        self.state.load().rejects.contains_number(id, number)
    }

    /// Rejects held under assignment `id` (0 for an unknown id).
    pub fn reject_count(&self, id: u32) -> u64 {
        let state = self.state.load();
        state.slots.get((id as usize).wrapping_sub(1)).map_or(0, |s| s.rejects.load(Ordering::Relaxed))
    }

    /// Counts and memory of the registry.
    pub fn stats(&self) -> RegistryStats {
        let state = self.state.load();
        let now = self.clock.now_ms();
        let mut s = RegistryStats {
            providers: state.providers.len() as u64,
            assignments: state.slots.len() as u64,
            ..RegistryStats::default()
        };
        for slot in &state.slots {
            s.rejects += slot.rejects.load(Ordering::Relaxed);
            s.assignments_in_force += u64::from(slot.in_force(now));
        }
        s.reject_set_bytes = state.rejects.bytes() as u64;
        s
    }
}
