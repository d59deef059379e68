//! Ledger changes: providers (versioned), assignments (no two in force at once for a sub-port),
//! ends of terms. Every change is one RocksDB batch holding the entity and a history event.

use super::store::CF_HISTORY;
use super::types::{AssignInput, Assignment, LedgerEvent, Provider, ProviderInput};
use super::view::{sp_key, LedgerView, ProviderCell, Slot, SubPortMap};
use super::{Registry, State, Writer};
use crate::error::{Error, Result};
use crate::record::SubPort;
use crate::retention::PurgeCtx;
use crate::time::rfc3339_utc8;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// What `ledger show` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubPortLedger {
    /// The sub-port.
    pub sub_port: String,
    /// The assignment in force now.
    pub current: Option<Assignment>,
    /// Every assignment of the sub-port, in term order, as they stand now.
    pub assignments: Vec<Assignment>,
    /// Every ledger event about the sub-port, oldest first.
    pub history: Vec<LedgerEvent>,
}

/// Builds the sub-port map from the assignments (by id).
pub(super) fn build_view(slots: &[Arc<Slot>]) -> LedgerView {
    let mut by: HashMap<u128, Vec<Arc<Slot>>> = HashMap::new();
    for s in slots {
        // Stored sub-ports were validated when assigned.
        let Some(k) = sp_key(&s.created().sub_port) else { continue };
        by.entry(k).or_default().push(s.clone());
    }
    let mut sub_ports = SubPortMap::default();
    for (k, mut v) in by {
        v.sort_by_key(|s| s.start_ms());
        sub_ports.insert(k, v.into());
    }
    LedgerView::new(sub_ports)
}

fn describe(a: &Assignment, to_ms: i64) -> String {
    format!(
        "assignment {} (sub-port {}, provider {}, {}, [{}, {}))",
        a.id,
        a.sub_port,
        a.provider,
        a.usage.as_str(),
        rfc3339_utc8(a.from_ms),
        rfc3339_utc8(to_ms)
    )
}

fn check_text(field: &'static str, s: &str, max_chars: usize) -> Result<()> {
    if s.trim().is_empty() || s.chars().count() > max_chars || s.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{s:?} must be 1 to {max_chars} characters without control characters"),
        ));
    }
    Ok(())
}

impl Registry {
    fn next_event(&self, w: &mut Writer, kind: &str) -> LedgerEvent {
        w.ledger_seq += 1;
        LedgerEvent { seq: w.ledger_seq, at_ms: self.now_ms(), kind: kind.into(), provider: None, assignment: None }
    }

    /// Registers a provider or stores a new version of it (effective now). An unchanged provider
    /// is returned as it is, with no new version.
    pub fn provider_put(&self, p: ProviderInput) -> Result<Provider> {
        check_text("provider id", &p.id, 64)?;
        if p.id.chars().any(char::is_whitespace) {
            return Err(Error::invalid("provider id", format!("{:?} must not contain whitespace", p.id)));
        }
        check_text("name", &p.name, 256)?;
        for s in &p.signatures {
            check_text("signature", s, 64)?;
            if s.contains(['【', '】']) {
                return Err(Error::invalid("signature", format!("{s:?}: give it without the 【】 brackets")));
            }
        }
        if p.blacklisted && p.whitelisted {
            return Err(Error::invalid("blacklisted", "a provider cannot be both blacklisted and whitelisted"));
        }
        let mut w = self.writer()?;
        let state = self.state.load_full();
        let now = self.now_ms();
        let version = Provider {
            id: p.id.clone(),
            name: p.name,
            signatures: p.signatures,
            blacklisted: p.blacklisted,
            whitelisted: p.whitelisted,
            changed_ms: now,
        };
        let cell = state.providers.get(&p.id).cloned();
        let mut versions = cell.as_ref().map(|c| c.versions.load().as_ref().clone()).unwrap_or_default();
        if let Some(last) = versions.last() {
            if (Provider { changed_ms: last.changed_ms, ..version.clone() }) == *last {
                return Ok(last.clone());
            }
        }
        // Two changes within one millisecond: the later one replaces the earlier version.
        if versions.last().is_some_and(|l| l.changed_ms >= now) {
            versions.pop();
        }
        versions.push(version.clone());
        let mut ev = self.next_event(&mut w, "provider");
        ev.provider = Some(version.clone());
        let mut b = self.store.batch();
        b.provider(&versions)?;
        b.event(&ev)?;
        b.meta("ledger_seq", w.ledger_seq)?;
        self.store.write(b)?;
        let mut st = State::clone(&state);
        match cell {
            Some(c) => {
                c.publish(versions);
                // The view's hot index holds copies of the provider's flags.
                st.view = Arc::new(LedgerView::new(state.view.sub_ports.clone()));
            }
            None => {
                st.providers.insert(p.id, Arc::new(ProviderCell::new(versions)));
            }
        }
        self.state.store(Arc::new(st));
        Ok(version)
    }

    /// The versions of a provider, oldest first.
    pub fn provider(&self, id: &str) -> Result<Vec<Provider>> {
        let state = self.state.load();
        let cell = state.providers.get(id).ok_or_else(|| Error::NotFound { what: "provider", key: id.into() })?;
        Ok(cell.versions.load().as_ref().clone())
    }

    /// Every provider's current version, by id.
    pub fn providers(&self) -> Vec<Provider> {
        let state = self.state.load();
        let mut v: Vec<Provider> = state.providers.values().filter_map(|c| c.versions.load().last().cloned()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Puts a sub-port under a provider's contract. Refused if the term overlaps an assignment
    /// of the sub-port (the error names it).
    pub fn assign(&self, a: AssignInput) -> Result<Assignment> {
        let mut v = self.assign_many(vec![a])?;
        v.pop().ok_or(Error::Closed)
    }

    /// Several assignments in one durable batch (a migration, a benchmark's ledger): all or
    /// nothing.
    pub fn assign_many(&self, inputs: Vec<AssignInput>) -> Result<Vec<Assignment>> {
        let mut w = self.writer()?;
        let state = self.state.load_full();
        let now = self.now_ms();
        let mut added: Vec<Assignment> = Vec::with_capacity(inputs.len());
        let mut batch_by_port: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, inp) in inputs.into_iter().enumerate() {
            let sp = SubPort::parse(&inp.sub_port)?;
            if !state.providers.contains_key(&inp.provider) {
                return Err(Error::NotFound { what: "provider", key: inp.provider });
            }
            if inp.from_ms >= inp.to_ms {
                return Err(Error::invalid(
                    "to",
                    format!(
                        "the term must end after it starts ({} >= {})",
                        rfc3339_utc8(inp.from_ms),
                        rfc3339_utc8(inp.to_ms)
                    ),
                ));
            }
            let overlaps = |from: i64, to: i64| inp.from_ms < to && from < inp.to_ms;
            if let Some(list) = state.view.assignments_of(sp.as_str()) {
                if let Some(s) = list.iter().find(|s| overlaps(s.start_ms(), s.to_ms())) {
                    return Err(Error::Conflict(format!("the term overlaps {}", describe(s.created(), s.to_ms()))));
                }
            }
            let mine = batch_by_port.entry(sp.as_str().to_string()).or_default();
            if let Some(&j) = mine.iter().find(|&&j| overlaps(added[j].from_ms, added[j].to_ms)) {
                return Err(Error::Conflict(format!(
                    "the term overlaps {} of the same batch",
                    describe(&added[j], added[j].to_ms)
                )));
            }
            mine.push(i);
            let id = w.assignment_id + 1 + i as u32;
            added.push(Assignment {
                id,
                sub_port: sp.as_str().to_string(),
                provider: inp.provider,
                usage: inp.usage,
                from_ms: inp.from_ms,
                to_ms: inp.to_ms,
                consent_required: inp.consent_required,
                created_ms: now,
            });
        }
        let mut b = self.store.batch();
        let mut seq = w.ledger_seq;
        for a in &added {
            seq += 1;
            b.assignment(a)?;
            b.event(&LedgerEvent {
                seq,
                at_ms: now,
                kind: "assign".into(),
                provider: None,
                assignment: Some(a.clone()),
            })?;
        }
        b.meta("ledger_seq", seq)?;
        self.store.write(b)?;
        w.ledger_seq = seq;
        w.assignment_id += added.len() as u32;
        let mut st = State::clone(&state);
        let mut touched: HashMap<u128, Vec<Arc<Slot>>> = HashMap::new();
        for a in &added {
            let cell = st.providers.get(&a.provider).cloned().ok_or(Error::Closed)?;
            let slot = Arc::new(Slot::new(a.clone(), cell));
            st.slots.push(slot.clone());
            let k = sp_key(&a.sub_port).ok_or_else(|| Error::invalid("sub_port", a.sub_port.clone()))?;
            touched.entry(k).or_default().push(slot);
        }
        let mut sub_ports = st.view.sub_ports.clone();
        for (k, new) in touched {
            let mut list: Vec<Arc<Slot>> = sub_ports.get(&k).map(|l| l.as_slice().to_vec()).unwrap_or_default();
            list.extend(new);
            list.sort_by_key(|s| s.start_ms());
            sub_ports.insert(k, list.into());
        }
        st.view = Arc::new(LedgerView::new(sub_ports));
        self.state.store(Arc::new(st));
        Ok(added)
    }

    /// Ends the assignment of `sub_port` in force at `at_ms`: its term becomes `[from, at)`.
    pub fn end(&self, sub_port: &str, at_ms: i64) -> Result<Assignment> {
        let sp = SubPort::parse(sub_port)?;
        let mut w = self.writer()?;
        let state = self.state.load_full();
        let slot = state.view.in_force(sp.as_str(), at_ms).cloned().ok_or_else(|| Error::NotFound {
            what: "assignment in force",
            key: format!("for sub-port {sp} at {}", rfc3339_utc8(at_ms)),
        })?;
        if at_ms <= slot.start_ms() {
            return Err(Error::invalid(
                "at",
                format!(
                    "{} is the start of {}: nothing would remain of the term",
                    rfc3339_utc8(at_ms),
                    describe(slot.created(), slot.to_ms())
                ),
            ));
        }
        let ended = Assignment { to_ms: at_ms, ..slot.assignment() };
        let mut ev = self.next_event(&mut w, "end");
        ev.assignment = Some(ended.clone());
        let mut b = self.store.batch();
        b.assignment(&ended)?;
        b.event(&ev)?;
        b.meta("ledger_seq", w.ledger_seq)?;
        self.store.write(b)?;
        slot.set_to_ms(at_ms);
        // The view's hot index holds a copy of the end.
        let mut st = State::clone(&state);
        st.view = Arc::new(LedgerView::new(state.view.sub_ports.clone()));
        self.state.store(Arc::new(st));
        Ok(ended)
    }

    /// One assignment by id, as it stands now.
    pub fn assignment(&self, id: u32) -> Result<Assignment> {
        let state = self.state.load();
        state
            .slots
            .get((id as usize).wrapping_sub(1))
            .map(|s| s.assignment())
            .ok_or_else(|| Error::NotFound { what: "assignment", key: id.to_string() })
    }

    /// The assignment of `sub_port` in force at `at_ms`, if any.
    pub fn in_force(&self, sub_port: &str, at_ms: i64) -> Option<Assignment> {
        self.state.load().view.in_force(sub_port, at_ms).map(|s| s.assignment())
    }

    /// Every assignment, by id.
    pub fn assignments(&self) -> Vec<Assignment> {
        self.state.load().slots.iter().map(|s| s.assignment()).collect()
    }

    /// Whether the ledger has ever assigned `sub_port` (normalised).
    pub fn knows_sub_port(&self, sub_port: &SubPort) -> bool {
        self.state.load().view.assignments_of(sub_port.as_str()).is_some()
    }

    /// The ledger of one sub-port: the assignment in force now and the history.
    pub fn show(&self, sub_port: &str) -> Result<SubPortLedger> {
        let sp = SubPort::parse(sub_port)?;
        let state = self.state.load();
        let list = state
            .view
            .assignments_of(sp.as_str())
            .ok_or_else(|| Error::NotFound { what: "sub_port", key: sp.to_string() })?;
        let now = self.now_ms();
        let history = self
            .history()?
            .into_iter()
            .filter(|e| e.assignment.as_ref().is_some_and(|a| a.sub_port == sp.as_str()))
            .collect();
        Ok(SubPortLedger {
            sub_port: sp.to_string(),
            current: list.iter().rev().find(|s| s.in_force(now)).map(|s| s.assignment()),
            assignments: list.iter().map(|s| s.assignment()).collect(),
            history,
        })
    }

    /// Every ledger event, oldest first.
    pub fn history(&self) -> Result<Vec<LedgerEvent>> {
        self.store.history()
    }
}

impl Registry {
    /// Deletes ledger history events older than retention, oldest first (only with
    /// `retention.purge_ledger_history`; the assignments and providers themselves stay).
    pub(crate) fn purge_history(&self, ctx: &PurgeCtx<'_>) -> Result<u64> {
        self.purge_oldest::<LedgerEvent>(CF_HISTORY, ctx, |e| e.at_ms)
    }
}
