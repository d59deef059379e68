//! The audit trail: who traced which number, listed which rejects, changed what in the ledger.
//! An entry is durable (synced) before the audited answer goes out.

use super::Registry;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

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
