//! Consent for assignments that require it: consent and withdrawal records with their evidence.
//! The state at an instant is the last record at or before it; no record means no consent.

use super::rejecttable::key_of;
use super::store::CF_CONSENT;
use super::types::ConsentRecord;
use super::view::Slot;
use super::Registry;
use crate::error::{Error, Result};
use crate::record::PhoneNumber;
use crate::retention::PurgeCtx;
use crate::time::rfc3339_utc8;

/// Inserts `(at_ms, granted)` keeping time order (a later record at the same instant wins).
pub(super) fn insert_event(events: &mut Vec<(i64, bool)>, at_ms: i64, granted: bool) {
    let pos = events.partition_point(|&(t, _)| t <= at_ms);
    events.insert(pos, (at_ms, granted));
}

/// Is consent in force for number `key` under `slot` at `at_ms`?
pub(super) fn in_force(slot: &Slot, key: Option<u64>, at_ms: i64) -> Result<bool> {
    let Some(key) = key else { return Ok(false) };
    let m = slot.consents.read().map_err(|_| Error::Closed)?;
    let Some(events) = m.get(&key) else { return Ok(false) };
    let i = events.partition_point(|&(t, _)| t <= at_ms);
    Ok(i > 0 && events[i - 1].1)
}

impl Registry {
    /// Records consent (`granted`) or its withdrawal for `number` under the assignment of
    /// `sub_port` in force at `at_ms` (None: now), which must require consent.
    pub fn consent(
        &self,
        sub_port: &str,
        number: PhoneNumber,
        granted: bool,
        evidence: &str,
        at_ms: Option<i64>,
    ) -> Result<ConsentRecord> {
        let now = self.now_ms();
        let at = at_ms.unwrap_or(now);
        if at > now {
            return Err(Error::invalid("at", format!("{} is in the future", rfc3339_utc8(at))));
        }
        if evidence.trim().is_empty() || evidence.len() > self.cfg.note_bytes_max {
            return Err(Error::invalid("evidence", format!("must be 1 to {} bytes", self.cfg.note_bytes_max)));
        }
        let key = key_of(number).ok_or_else(|| Error::invalid("number", format!("{number} is not a mobile number")))?;
        let mut w = self.writer()?;
        let slot = self.slot_for_consent(sub_port, at)?;
        if !slot.created().consent_required {
            return Err(Error::invalid(
                "sub_port",
                format!("assignment {} of sub-port {sub_port} does not require consent", slot.id()),
            ));
        }
        let rec = ConsentRecord {
            assignment: slot.id(),
            number: number.to_string(),
            granted,
            at_ms: at,
            evidence: evidence.to_string(),
        };
        w.consent_seq += 1;
        let mut b = self.store.batch();
        b.consent(key, w.consent_seq, &rec)?;
        b.meta("consent_seq", w.consent_seq)?;
        self.store.write(b)?;
        let mut m = slot.consents.write().map_err(|_| Error::Closed)?;
        insert_event(m.entry(key).or_default(), at, granted);
        Ok(rec)
    }

    fn slot_for_consent(&self, sub_port: &str, at: i64) -> Result<std::sync::Arc<Slot>> {
        let sp = crate::record::SubPort::parse(sub_port)?;
        self.state.load().view.in_force(sp.as_str(), at).cloned().ok_or_else(|| Error::NotFound {
            what: "assignment in force",
            key: format!("for sub-port {sp} at {}", rfc3339_utc8(at)),
        })
    }
}

impl Registry {
    /// Purges consent records `months` after the later of their assignment's end and the
    /// number's last record under it (a withdrawal, or a consent given after a retroactive
    /// end): all the records of that number under that assignment go together. Never touches an
    /// assignment that has not ended `months` ago. Returns the records purged.
    pub(crate) fn purge_consents(&self, ctx: &PurgeCtx<'_>) -> Result<u64> {
        let state = self.state.load_full();
        let mut total = 0u64;
        for slot in &state.slots {
            if ctx.cancelled() {
                break;
            }
            let to = slot.to_ms();
            if !slot.created().consent_required || !ctx.eligible(to) {
                continue;
            }
            let due = |events: &[(i64, bool)]| ctx.eligible(events.last().map_or(to, |&(t, _)| t.max(to)));
            let keys: Vec<(u64, u64)> = {
                let m = slot.consents.read().map_err(|_| Error::Closed)?;
                m.iter().filter(|(_, ev)| due(ev)).map(|(k, ev)| (*k, ev.len() as u64)).collect()
            };
            if ctx.dry_run {
                total += keys.iter().map(|(_, n)| n).sum::<u64>();
                continue;
            }
            for chunk in keys.chunks(ctx.batch_rows.div_ceil(4)) {
                if ctx.cancelled() {
                    break;
                }
                let _w = self.writer()?;
                let mut b = self.store.batch();
                let mut gone = Vec::new();
                {
                    let m = slot.consents.read().map_err(|_| Error::Closed)?;
                    for &(k, _) in chunk {
                        // Re-checked under the writer: a record may have come since.
                        if !m.get(&k).is_some_and(|ev| due(ev)) {
                            continue;
                        }
                        for (raw, _) in self.store.consents_of(slot.id(), Some(k))? {
                            b.delete(CF_CONSENT, &raw)?;
                            total += 1;
                        }
                        gone.push(k);
                    }
                }
                if gone.is_empty() {
                    continue;
                }
                self.store.write(b)?;
                let mut m = slot.consents.write().map_err(|_| Error::Closed)?;
                for k in gone {
                    m.remove(&k);
                }
            }
        }
        Ok(total)
    }
}
