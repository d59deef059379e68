//! The audit trail: who traced which number, listed which rejects, changed what in the ledger.
//! An entry is durable (synced) before the audited answer goes out. Also the trail of retention:
//! its reports and its high-water mark (crate::retention).
//!
//! The trail is hash-chained: each stored entry carries `prev`, the hash of the entry before it,
//! and `hash`, SHA-256 over a canonical encoding of its fields and `prev` ([`entry_hash`];
//! docs/format.md, "Audit chain"), so that [`Registry::audit_verify`] names an edited, deleted
//! or inserted entry. Retention's purge leaves an anchor (the last purged entry's seq and hash)
//! in `meta`, from which the remaining chain verifies. Entries written before the chain existed
//! ("legacy": no `prev`/`hash`) still load; verify counts them, and cannot vouch for them.

use super::store::{Batch, Store, CF_AUDIT, CF_RETENTION};
use super::Registry;
use crate::error::{Error, Result};
use crate::retention::{PurgeCtx, RetentionReport};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `meta` key of retention's high-water mark (i64 ms as u64 LE; absent or 0: none).
const META_RETENTION_HIGH_WATER: &str = "retention_high_water_ms";
/// `meta` key of the last retention report's sequence.
const META_RETENTION_SEQ: &str = "retention_seq";
/// `meta` key of the last audit sequence used (u64 LE).
const META_AUDIT_SEQ: &str = "audit_seq";
/// `meta` key of the first chained audit entry's sequence (u64 LE; absent or 0: none yet).
/// Every entry from it on must carry a hash: stripping the fields does not pass for "legacy".
const META_AUDIT_CHAIN_FROM: &str = "audit_chain_from";
/// `meta` keys of the anchor left by retention: the last purged entry's sequence (u64 LE) and
/// its link hash (32 bytes; zeros for a legacy entry).
const META_AUDIT_ANCHOR_SEQ: &str = "audit_anchor_seq";
const META_AUDIT_ANCHOR_HASH: &str = "audit_anchor_hash";

/// A 32-byte SHA-256 hash.
pub(crate) type Hash = [u8; 32];
/// `prev` of the first entry of a chain, and the link value of a legacy entry.
pub(crate) const ZERO_HASH: Hash = [0; 32];
/// Domain tag leading the hashed bytes (16 bytes, versions the encoding).
const HASH_TAG: &[u8; 16] = b"portlog.audit.v1";

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

/// An audit entry as stored: the entry's fields plus its chain links (hex). Both links are
/// empty on a legacy entry (written before the chain existed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredEntry {
    #[serde(flatten)]
    entry: AuditEntry,
    /// Hash of the previous entry, 64 lowercase hex digits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    prev: String,
    /// [`entry_hash`] of this entry, 64 lowercase hex digits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    hash: String,
}

impl StoredEntry {
    fn is_legacy(&self) -> bool {
        self.prev.is_empty() && self.hash.is_empty()
    }

    /// The value the next entry's `prev` must hold: the hash (zeros after a legacy entry or a
    /// malformed hash, which verify reports itself).
    fn link(&self) -> Hash {
        unhex(&self.hash).unwrap_or(ZERO_HASH)
    }
}

/// SHA-256 of the canonical encoding of `e` chained to `prev` (docs/format.md, "Audit chain"):
/// the tag `portlog.audit.v1`, `seq` u64 LE, `at_ms` i64 LE, `who` and `action` as u64 LE byte
/// length + UTF-8, `number` and `sub_port` as `00` (absent) or `01` + length + UTF-8, `records`
/// u64 LE, `prev` (32 bytes). Independent of JSON field order and escaping.
pub(crate) fn entry_hash(e: &AuditEntry, prev: &Hash) -> Hash {
    fn string(h: &mut Sha256, s: &str) {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    fn option(h: &mut Sha256, s: Option<&str>) {
        match s {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                string(h, s);
            }
        }
    }
    let mut h = Sha256::new();
    h.update(HASH_TAG);
    h.update(e.seq.to_le_bytes());
    h.update(e.at_ms.to_le_bytes());
    string(&mut h, &e.who);
    string(&mut h, &e.action);
    option(&mut h, e.number.as_deref());
    option(&mut h, e.sub_port.as_deref());
    h.update(e.records.to_le_bytes());
    h.update(prev);
    h.finalize().into()
}

/// Lowercase hex of a hash.
fn hex(h: &Hash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in h {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// A hash from exactly 64 hex digits (either case).
fn unhex(s: &str) -> Option<Hash> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let mut h = ZERO_HASH;
    for (i, out) in h.iter_mut().enumerate() {
        *out = (digit(b[2 * i])? << 4) | digit(b[2 * i + 1])?;
    }
    Some(h)
}

/// The writer's view of the chain at open: the link of the last entry (the anchor's when
/// retention purged every entry; zeros for none or a legacy entry) and `audit_chain_from`.
/// Costs one read of the last entry. An undecodable last entry does not stop the registry from
/// opening (the check must keep answering): the chain goes on from zeros and verify names it.
pub(crate) fn chain_head(store: &Store) -> Result<(Hash, u64)> {
    let chain_from = store.meta(META_AUDIT_CHAIN_FROM)?;
    let link = match store.last_raw(CF_AUDIT)? {
        Some((k, v)) => match serde_json::from_slice::<StoredEntry>(&v) {
            Ok(e) => e.link(),
            Err(e) => {
                tracing::warn!(key = ?k, error = %e, "the last audit entry does not decode; the chain goes on from zeros");
                ZERO_HASH
            }
        },
        None => match store.meta_bytes(META_AUDIT_ANCHOR_HASH)? {
            Some(b) => b.as_slice().try_into().unwrap_or(ZERO_HASH),
            None => ZERO_HASH,
        },
    };
    Ok((link, chain_from))
}

impl Registry {
    /// Appends `entry` to the audit trail (durably), chained to the entry before it; returns it
    /// with its sequence and time. The last hash is kept by the writer: no read per append. A
    /// failed write uses no sequence number (the next entry takes it), so the chain has no gap.
    pub fn audit(&self, mut entry: AuditEntry) -> Result<AuditEntry> {
        if entry.who.trim().is_empty() || entry.action.trim().is_empty() {
            return Err(Error::invalid("audit", "an entry needs who and action"));
        }
        let mut w = self.writer()?;
        let seq = w.audit_seq + 1;
        entry.seq = seq;
        entry.at_ms = self.now_ms();
        let hash = entry_hash(&entry, &w.audit_hash);
        let stored = StoredEntry { entry, prev: hex(&w.audit_hash), hash: hex(&hash) };
        let mut b = self.store.batch();
        b.audit(seq, &stored)?;
        b.meta(META_AUDIT_SEQ, seq)?;
        if w.audit_chain_from == 0 {
            b.meta(META_AUDIT_CHAIN_FROM, seq)?;
        }
        self.store.write(b)?;
        w.audit_seq = seq;
        w.audit_hash = hash;
        if w.audit_chain_from == 0 {
            w.audit_chain_from = seq;
        }
        Ok(stored.entry)
    }

    /// Audit entries with time in `[from_ms, to_ms)`, oldest first.
    pub fn audit_list(&self, from_ms: i64, to_ms: i64) -> Result<Vec<AuditEntry>> {
        let all: Vec<AuditEntry> = self.store.audit_entries()?;
        Ok(all.into_iter().filter(|e| e.at_ms >= from_ms && e.at_ms < to_ms).collect())
    }
}

/// What [`Registry::audit_verify`] found. The trail is intact when `failure` is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditVerifyReport {
    /// Entries checked before the end or the first failure (legacy entries included).
    pub entries: u64,
    /// Of those, unchained legacy entries (written before the chain existed, all before the
    /// first chained one): counted, but their content cannot be vouched for.
    pub legacy: u64,
    /// Sequence of the first entry read, if any.
    pub first_seq: Option<u64>,
    /// Sequence of the last entry checked, if any.
    pub last_seq: Option<u64>,
    /// The anchor left by retention: sequence of the last purged entry, if any was purged.
    pub anchor_seq: Option<u64>,
    /// Hash of the last chained entry checked (64 hex digits). The chain is not keyed: someone
    /// able to write the store can rewrite every entry from an edited one on; comparing the
    /// head with a copy kept elsewhere detects that too.
    pub head: Option<String>,
    /// The first bad entry, if any.
    pub failure: Option<AuditFailure>,
}

impl AuditVerifyReport {
    /// True when no failure was found.
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// The first bad entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFailure {
    /// Its sequence number (for a missing tail: the first missing sequence).
    pub seq: u64,
    /// What is wrong.
    pub fault: AuditFault,
}

impl std::fmt::Display for AuditFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit entry seq {}: {}", self.seq, self.fault)
    }
}

/// What is wrong with an audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditFault {
    /// Its fields do not hash to its stored `hash`: the entry was edited.
    HashMismatch,
    /// Its `prev` is not the hash of the entry before it (or of the retention anchor): an entry
    /// before it was deleted, replaced or inserted, or rewritten along with its hash.
    PrevMismatch,
    /// Its sequence does not follow the one before it (or the anchor): entries `expected..seq`
    /// were deleted, or this one was inserted.
    SeqGap {
        /// The sequence that should have come next.
        expected: u64,
    },
    /// It has no `prev`/`hash` although the chain had begun: an inserted entry, or one whose
    /// chain fields were stripped.
    Unchained,
    /// Entries after the last one present are missing: `meta` says sequences up to `audit_seq`
    /// were written (or the last entry lies beyond it).
    TailMismatch {
        /// The last sequence written, per `meta`.
        audit_seq: u64,
    },
    /// The stored value does not decode (JSON, hex, or its key and `seq` disagree).
    Undecodable {
        /// Why.
        detail: String,
    },
}

impl std::fmt::Display for AuditFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditFault::HashMismatch => write!(f, "hash mismatch (the entry was edited)"),
            AuditFault::PrevMismatch => {
                write!(f, "prev mismatch (an entry before it was deleted, replaced or inserted)")
            }
            AuditFault::SeqGap { expected } => {
                write!(f, "sequence gap: expected seq {expected} (entries deleted, or this one inserted)")
            }
            AuditFault::Unchained => write!(f, "no hash inside the chained part (inserted, or its hash stripped)"),
            AuditFault::TailMismatch { audit_seq } => {
                write!(
                    f,
                    "the trail ends elsewhere than the last sequence written ({audit_seq}): entries deleted or added"
                )
            }
            AuditFault::Undecodable { detail } => write!(f, "does not decode: {detail}"),
        }
    }
}

/// The checks of [`Registry::audit_verify`], one entry at a time, in key order (pure).
#[derive(Debug)]
struct Verifier {
    report: AuditVerifyReport,
    anchor: Option<(u64, Hash)>,
    chain_from: u64,
    /// The previous entry's sequence and link.
    last: Option<(u64, Hash)>,
    chained: bool,
}

impl Verifier {
    fn new(anchor: Option<(u64, Hash)>, chain_from: u64) -> Self {
        let report = AuditVerifyReport { anchor_seq: anchor.map(|(s, _)| s), ..AuditVerifyReport::default() };
        Verifier { report, anchor, chain_from, last: None, chained: false }
    }

    /// Checks one entry; false once a failure is recorded.
    fn step(&mut self, key: &[u8], value: &[u8]) -> bool {
        let Ok(k) = <[u8; 8]>::try_from(key) else {
            let seq = self.last.map_or(0, |(s, _)| s + 1);
            return self.fail(seq, AuditFault::Undecodable { detail: format!("key {key:02x?} is not 8 bytes") });
        };
        let seq = u64::from_be_bytes(k);
        self.report.first_seq.get_or_insert(seq);
        let e: StoredEntry = match serde_json::from_slice(value) {
            Ok(e) => e,
            Err(e) => return self.fail(seq, AuditFault::Undecodable { detail: e.to_string() }),
        };
        if e.entry.seq != seq {
            let detail = format!("stored under seq {seq} but says seq {}", e.entry.seq);
            return self.fail(seq, AuditFault::Undecodable { detail });
        }
        if e.is_legacy() {
            if self.chained || (self.chain_from != 0 && seq >= self.chain_from) {
                return self.fail(seq, AuditFault::Unchained);
            }
            self.report.legacy += 1;
            return self.pass(seq, ZERO_HASH);
        }
        let (Some(prev), Some(hash)) = (unhex(&e.prev), unhex(&e.hash)) else {
            return self.fail(seq, AuditFault::Undecodable { detail: "prev or hash is not 64 hex digits".into() });
        };
        if entry_hash(&e.entry, &prev) != hash {
            return self.fail(seq, AuditFault::HashMismatch);
        }
        let (expected_seq, expected_prev) = match (self.last, self.anchor) {
            (Some((s, link)), _) | (None, Some((s, link))) => (s + 1, link),
            (None, None) => (self.chain_from.max(1), ZERO_HASH),
        };
        if seq != expected_seq {
            return self.fail(seq, AuditFault::SeqGap { expected: expected_seq });
        }
        if prev != expected_prev {
            return self.fail(seq, AuditFault::PrevMismatch);
        }
        self.chained = true;
        self.report.head = Some(e.hash);
        self.pass(seq, hash)
    }

    fn pass(&mut self, seq: u64, link: Hash) -> bool {
        self.report.entries += 1;
        self.report.last_seq = Some(seq);
        self.last = Some((seq, link));
        true
    }

    fn fail(&mut self, seq: u64, fault: AuditFault) -> bool {
        self.report.failure = Some(AuditFailure { seq, fault });
        false
    }

    /// Once every entry is read: the trail must end at `audit_seq` once the chain has begun
    /// (before, a legacy trail may have been purged without an anchor).
    fn finish(mut self, audit_seq: u64) -> AuditVerifyReport {
        if self.report.failure.is_none() && self.chain_from != 0 {
            let end = self.last.or(self.anchor).map_or(0, |(s, _)| s);
            if end != audit_seq {
                self.fail(end.min(audit_seq) + 1, AuditFault::TailMismatch { audit_seq });
            }
        }
        self.report
    }
}

impl Registry {
    /// Verifies the audit trail's hash chain from the retention anchor (or its start) to its
    /// end, reading one RocksDB snapshot: every chained entry's hash, its `prev`, the sequence
    /// with no gap, and that the trail ends at the last sequence written. A failure is reported
    /// in the result (the first bad seq and what is wrong); `Err` is for a store that cannot
    /// be read. Legacy entries (before the chain) are counted, not verified.
    pub fn audit_verify(&self) -> Result<AuditVerifyReport> {
        let snap = self.store.snapshot();
        let anchor = match snap.meta_bytes(META_AUDIT_ANCHOR_HASH)? {
            None => None,
            Some(b) => {
                let h: Hash = b.as_slice().try_into().map_err(|_| Error::Store {
                    path: self.store.path().to_path_buf(),
                    detail: format!("meta {META_AUDIT_ANCHOR_HASH} is not 32 bytes"),
                })?;
                Some((snap.meta(META_AUDIT_ANCHOR_SEQ)?, h))
            }
        };
        let mut v = Verifier::new(anchor, snap.meta(META_AUDIT_CHAIN_FROM)?);
        snap.for_each_raw(CF_AUDIT, |k, val| v.step(k, val))?;
        Ok(v.finish(snap.meta(META_AUDIT_SEQ)?))
    }

    /// Test hook: the stored JSON of audit entry `seq`, if present.
    #[doc(hidden)]
    pub fn audit_raw(&self, seq: u64) -> Result<Option<Vec<u8>>> {
        self.store.raw_get(CF_AUDIT, &seq.to_be_bytes())
    }

    /// Test hook: overwrites (`Some`) or deletes (`None`) audit entry `seq` as stored,
    /// bypassing the chain, so that tests (engine/tests/audit_chain.rs,
    /// server/tests/verify_audit.rs) can tamper with the trail. Never call it otherwise.
    #[doc(hidden)]
    pub fn audit_raw_put(&self, seq: u64, value: Option<&[u8]>) -> Result<()> {
        self.store.raw_put(CF_AUDIT, &seq.to_be_bytes(), value)
    }
}

impl Registry {
    /// Deletes audit entries older than retention, oldest first, in batches; stops at the first
    /// entry still inside it (entries are in time order unless the clock went back: one that
    /// is younger stops the purge rather than be skipped over). Only with `purge_audit`.
    ///
    /// Each batch of deletes also records, in the same write batch, the anchor: the seq and
    /// link hash of the last entry it purges, from which the remaining chain verifies.
    pub(crate) fn purge_audit(&self, ctx: &PurgeCtx<'_>) -> Result<u64> {
        self.purge_oldest_with::<StoredEntry>(
            CF_AUDIT,
            ctx,
            |e| e.entry.at_ms,
            |b, last| {
                b.meta(META_AUDIT_ANCHOR_SEQ, last.entry.seq)?;
                b.meta_bytes(META_AUDIT_ANCHOR_HASH, &last.link())
            },
        )
    }

    /// The oldest-first purge of a JSON column family keyed by sequence (audit, history).
    pub(super) fn purge_oldest<T: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        ctx: &PurgeCtx<'_>,
        at_ms: impl Fn(&T) -> i64,
    ) -> Result<u64> {
        self.purge_oldest_with(cf, ctx, at_ms, |_, _| Ok(()))
    }

    /// [`Registry::purge_oldest`], calling `last_purged(batch, entry)` with the last entry of
    /// each batch of deletes so that it can add writes to the same (atomic) batch.
    fn purge_oldest_with<T: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        ctx: &PurgeCtx<'_>,
        at_ms: impl Fn(&T) -> i64,
        last_purged: impl Fn(&mut Batch<'_>, &T) -> Result<()>,
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
            let old: Vec<(Box<[u8]>, T)> = entries.into_iter().take_while(|(_, e)| ctx.eligible(at_ms(e))).collect();
            let done = old.len() < n_read || n_read < ctx.batch_rows;
            if !ctx.dry_run {
                if let Some((_, last)) = old.last() {
                    let mut b = self.store.batch();
                    for (k, _) in &old {
                        b.delete(cf, k)?;
                    }
                    last_purged(&mut b, last)?;
                    self.store.write(b)?;
                }
            }
            purged += old.len() as u64;
            match old.into_iter().last() {
                Some((k, _)) if !done => after = Some(k),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(seq: u64, who: &str) -> AuditEntry {
        AuditEntry {
            seq,
            at_ms: 1_777_564_800_000 + seq as i64,
            who: who.into(),
            action: "trace".into(),
            number: Some("13800138000".into()),
            sub_port: None,
            records: seq,
        }
    }

    /// A chain of `n` entries from `first` linked to `prev`, as stored (key, JSON).
    fn chain(first: u64, n: u64, mut prev: Hash) -> Vec<(Vec<u8>, Vec<u8>)> {
        (first..first + n)
            .map(|seq| {
                let e = entry(seq, "inspector");
                let hash = entry_hash(&e, &prev);
                let stored = StoredEntry { entry: e, prev: hex(&prev), hash: hex(&hash) };
                prev = hash;
                (seq.to_be_bytes().to_vec(), serde_json::to_vec(&stored).unwrap())
            })
            .collect()
    }

    fn verify(
        rows: &[(Vec<u8>, Vec<u8>)],
        anchor: Option<(u64, Hash)>,
        from: u64,
        audit_seq: u64,
    ) -> AuditVerifyReport {
        let mut v = Verifier::new(anchor, from);
        for (k, val) in rows {
            if !v.step(k, val) {
                break;
            }
        }
        v.finish(audit_seq)
    }

    #[test]
    fn hex_round_trips_and_refuses_bad_digits() {
        let h = entry_hash(&entry(1, "a"), &ZERO_HASH);
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex(&hex(&h).to_uppercase()), Some(h));
        assert_eq!(unhex(&"g".repeat(64)), None);
        assert_eq!(unhex("00"), None);
    }

    #[test]
    fn the_encoding_is_unambiguous() {
        let mut a = entry(1, "ab");
        a.action = "c".into();
        let mut b = entry(1, "a");
        b.action = "bc".into();
        assert_ne!(entry_hash(&a, &ZERO_HASH), entry_hash(&b, &ZERO_HASH));
        let mut c = entry(1, "a");
        c.number = None;
        c.sub_port = Some("13800138000".into());
        assert_ne!(entry_hash(&entry(1, "a"), &ZERO_HASH), entry_hash(&c, &ZERO_HASH));
        let mut d = entry(1, "a");
        d.number = Some(String::new());
        let mut e = entry(1, "a");
        e.number = None;
        assert_ne!(entry_hash(&d, &ZERO_HASH), entry_hash(&e, &ZERO_HASH));
        assert_ne!(entry_hash(&entry(1, "a"), &ZERO_HASH), entry_hash(&entry(1, "a"), &[1; 32]));
    }

    #[test]
    fn json_field_order_and_escaping_do_not_matter() {
        let rows = chain(1, 1, ZERO_HASH);
        let e: StoredEntry = serde_json::from_slice(&rows[0].1).unwrap();
        // The same entry written by hand: other field order, escaped characters.
        let json = format!(
            r#"{{"hash":"{}","records":1,"prev":"{}","number":"\u0031\u0033800138000","action":"tr\u0061ce","who":"inspector","at_ms":{},"seq":1}}"#,
            e.hash, e.prev, e.entry.at_ms
        );
        let r = verify(&[(rows[0].0.clone(), json.into_bytes())], None, 1, 1);
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn an_intact_chain_verifies_and_each_kind_of_tampering_is_named() {
        let rows = chain(1, 5, ZERO_HASH);
        let r = verify(&rows, None, 1, 5);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((r.entries, r.legacy, r.first_seq, r.last_seq), (5, 0, Some(1), Some(5)));

        let mut edited = rows.clone();
        edited[2].1 = String::from_utf8(edited[2].1.clone()).unwrap().replace("inspector", "nobody").into_bytes();
        let f = verify(&edited, None, 1, 5).failure.unwrap();
        assert_eq!((f.seq, f.fault), (3, AuditFault::HashMismatch));

        let mut deleted = rows.clone();
        deleted.remove(2);
        let f = verify(&deleted, None, 1, 5).failure.unwrap();
        assert_eq!((f.seq, f.fault), (4, AuditFault::SeqGap { expected: 3 }));

        let f = verify(&rows[1..], None, 1, 5).failure.unwrap();
        assert_eq!((f.seq, f.fault), (2, AuditFault::SeqGap { expected: 1 }), "the first entry deleted");

        let f = verify(&rows[..4], None, 1, 5).failure.unwrap();
        assert_eq!((f.seq, f.fault), (5, AuditFault::TailMismatch { audit_seq: 5 }), "the last entry deleted");

        // Entry 3 replaced by a well-formed entry with a correct hash but its own prev.
        let mut replaced = rows.clone();
        replaced[2] = chain(3, 1, [7; 32]).remove(0);
        let f = verify(&replaced, None, 1, 5).failure.unwrap();
        assert_eq!((f.seq, f.fault), (3, AuditFault::PrevMismatch));

        // Entry 4 copied under key 3.
        let mut moved = rows.clone();
        moved[2].1 = rows[3].1.clone();
        let f = verify(&moved, None, 1, 5).failure.unwrap();
        assert!(f.seq == 3 && matches!(f.fault, AuditFault::Undecodable { .. }), "{f:?}");
    }

    #[test]
    fn legacy_prefix_is_counted_and_the_chain_starts_from_zeros_after_it() {
        let legacy = |seq: u64| (seq.to_be_bytes().to_vec(), serde_json::to_vec(&entry(seq, "old")).unwrap());
        let mut rows: Vec<_> = (3..=4).map(legacy).collect();
        rows.extend(chain(5, 3, ZERO_HASH));
        let r = verify(&rows, None, 5, 7);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((r.entries, r.legacy), (5, 2));
        // Hash fields stripped from a chained entry: it does not pass for legacy.
        let mut stripped = rows.clone();
        stripped[3] = legacy(6);
        assert_eq!(
            verify(&stripped, None, 5, 7).failure.unwrap(),
            AuditFailure { seq: 6, fault: AuditFault::Unchained }
        );
        stripped.truncate(3);
        stripped[2] = legacy(5);
        assert_eq!(verify(&stripped, None, 5, 5).failure.unwrap().fault, AuditFault::Unchained);
        // Only legacy entries and no chain yet: nothing to hold them to.
        let r = verify(&rows[..2], None, 0, 9);
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn the_chain_verifies_from_the_anchor() {
        let rows = chain(1, 6, ZERO_HASH);
        let e: StoredEntry = serde_json::from_slice(&rows[2].1).unwrap();
        let anchor = Some((3, e.link()));
        let r = verify(&rows[3..], anchor, 1, 6);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((r.entries, r.anchor_seq), (3, Some(3)));
        assert!(verify(&[], anchor, 1, 3).is_ok(), "every entry purged");
        assert_eq!(verify(&rows[4..], anchor, 1, 6).failure.unwrap().fault, AuditFault::SeqGap { expected: 4 });
        assert_eq!(verify(&rows[3..], Some((3, [1; 32])), 1, 6).failure.unwrap().fault, AuditFault::PrevMismatch);
    }
}
