//! The audit trail: who traced which number, listed which rejects, changed what in the ledger.
//! An entry is durable (synced) before the audited answer goes out. Also the trail of retention:
//! its reports and its high-water mark (crate::retention).

use super::store::{CF_AUDIT, CF_RETENTION};
use super::Registry;
use crate::error::{Error, Result};
use crate::retention::{PurgeCtx, RetentionReport};
use serde::{Deserialize, Serialize};

/// `meta` key of retention's high-water mark (i64 ms as u64 LE; absent or 0: none).
const META_RETENTION_HIGH_WATER: &str = "retention_high_water_ms";
/// `meta` key of the last retention report's sequence.
const META_RETENTION_SEQ: &str = "retention_seq";

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number, from 1 (assigned by [`Registry::audit`]).
    #[serde(default)]
    pub seq: u64,
    /// When, ms since the epoch (assigned by [`Registry::audit`]).
    #[serde(default)]
    pub at_ms: i64,
    /// The caller: token name, certificate subject, or `local` for in-process use.
    pub who: String,
    /// What was done: `trace`, `reject_list`, `ledger_assign`, ... with `denied:` prefixed
    /// when the caller's role did not allow it.
    pub action: String,
    /// The number concerned, if any (11 digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The sub-port concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_port: Option<String>,
    /// Records returned (for reads).
    #[serde(default)]
    pub records: u64,
}

impl Registry {
    /// Appends `entry` to the audit trail (durably); returns it with its sequence and time.
    pub fn audit(&self, mut entry: AuditEntry) -> Result<AuditEntry> {
        if entry.who.trim().is_empty() || entry.action.trim().is_empty() {
            return Err(Error::invalid("audit", "an entry needs who and action"));
        }
        let mut w = self.writer()?;
        w.audit_seq += 1;
        entry.seq = w.audit_seq;
        entry.at_ms = self.now_ms();
        let mut b = self.store.batch();
        b.audit(entry.seq, &entry)?;
        b.meta("audit_seq", w.audit_seq)?;
        self.store.write(b)?;
        Ok(entry)
    }

    /// Audit entries with time in `[from_ms, to_ms)`, oldest first.
    pub fn audit_list(&self, from_ms: i64, to_ms: i64) -> Result<Vec<AuditEntry>> {
        let all: Vec<AuditEntry> = self.store.audit_entries()?;
        Ok(all.into_iter().filter(|e| e.at_ms >= from_ms && e.at_ms < to_ms).collect())
    }
}

impl Registry {
    /// Deletes audit entries older than retention, oldest first, in batches; stops at the first
    /// entry still inside it (entries are in time order unless the clock went back: one that
    /// is younger stops the purge rather than be skipped over). Only with `purge_audit`.
    pub(crate) fn purge_audit(&self, ctx: &PurgeCtx<'_>) -> Result<u64> {
        self.purge_oldest::<AuditEntry>(CF_AUDIT, ctx, |e| e.at_ms)
    }

    /// The oldest-first purge of a JSON column family keyed by sequence (audit, history).
    pub(super) fn purge_oldest<T: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        ctx: &PurgeCtx<'_>,
        at_ms: impl Fn(&T) -> i64,
    ) -> Result<u64> {
        let mut purged = 0u64;
        let mut after: Option<Box<[u8]>> = None;
        loop {
            if ctx.cancelled() {
                return Ok(purged);
            }
            let _w = self.writer()?;
            let entries: Vec<(Box<[u8]>, T)> = self.store.json_entries(cf, after.as_deref(), ctx.batch_rows)?;
            let n_read = entries.len();
            let old: Vec<Box<[u8]>> =
                entries.into_iter().take_while(|(_, e)| ctx.eligible(at_ms(e))).map(|(k, _)| k).collect();
            let done = old.len() < n_read || n_read < ctx.batch_rows;
            if !ctx.dry_run && !old.is_empty() {
                let mut b = self.store.batch();
                for k in &old {
                    b.delete(cf, k)?;
                }
                self.store.write(b)?;
            }
            purged += old.len() as u64;
            match old.into_iter().last() {
                Some(k) if !done => after = Some(k),
                _ => return Ok(purged),
            }
        }
    }

    /// Retention's high-water mark, if any run has acted yet.
    pub(crate) fn retention_high_water(&self) -> Result<Option<i64>> {
        let v = self.store.meta(META_RETENTION_HIGH_WATER)? as i64;
        Ok((v != 0).then_some(v))
    }

    /// Durably raises the high-water mark to `high_water_ms` (never lowers it) and appends
    /// `report` to the history with the next sequence number, in one batch.
    pub(crate) fn retention_commit(
        &self,
        high_water_ms: Option<i64>,
        report: Option<&mut RetentionReport>,
    ) -> Result<()> {
        let _w = self.writer()?;
        let mut b = self.store.batch();
        if let Some(h) = high_water_ms {
            let old = self.store.meta(META_RETENTION_HIGH_WATER)? as i64;
            if h > old {
                b.meta(META_RETENTION_HIGH_WATER, h as u64)?;
            }
        }
        if let Some(r) = report {
            let seq = self.store.meta(META_RETENTION_SEQ)? + 1;
            r.seq = seq;
            b.retention_report(seq, r)?;
            b.meta(META_RETENTION_SEQ, seq)?;
        }
        if b.is_empty() {
            return Ok(());
        }
        self.store.write(b)
    }

    /// Every recorded retention report, oldest first.
    pub(crate) fn retention_reports(&self) -> Result<Vec<RetentionReport>> {
        self.store.retention_reports()
    }

    /// The number of recorded retention reports and the last one.
    pub(crate) fn retention_last(&self) -> Result<(u64, Option<RetentionReport>)> {
        let seq = self.store.meta(META_RETENTION_SEQ)?;
        if seq == 0 {
            return Ok((0, None));
        }
        let key = (seq - 1).to_be_bytes();
        let last = self.store.json_entries::<RetentionReport>(CF_RETENTION, Some(&key), 1)?;
        Ok((seq, last.into_iter().next().map(|(_, r)| r)))
    }
}
