//! The audit trail's hash chain: an intact chain verifies; an entry edited, deleted or stripped
//! of its hash directly in RocksDB is named by its seq; retention's purge leaves an anchor from
//! which the rest still verifies; appending after a reopen continues the chain; entries written
//! before the chain (legacy) load and are counted, not reported as tampering.
//!
//! Tampering goes through the `rocksdb` crate on the closed registry directory, as an outsider
//! would (the engine's `Registry::audit_raw_put` hook, used by server/tests/verify_audit.rs, is
//! not needed here).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{DAY0_MS, DAY_MS};
use portlog_engine::registry::{AuditEntry, AuditFault, AuditVerifyReport};
use portlog_engine::time::{add_months_ms, UTC8_OFFSET_MS};
use portlog_engine::{
    Clock, Engine, EngineConfig, LogConfig, ManualClock, Registry, RegistryConfig, RetentionConfig, RetentionRun,
};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, clock: &Arc<ManualClock>) -> Registry {
    Registry::open(dir, RegistryConfig { sync: false, ..RegistryConfig::default() }, clock.clone()).unwrap()
}

fn entry(i: u64) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at_ms: 0,
        who: format!("inspector-{i}"),
        action: "trace".into(),
        number: Some("13800138000".into()),
        sub_port: i.is_multiple_of(2).then(|| "1069012345601".into()),
        records: i,
    }
}

/// Appends `n` entries, one a minute.
fn append(r: &Registry, clock: &ManualClock, n: u64) {
    for i in 0..n {
        clock.advance_ms(60_000);
        r.audit(entry(i)).unwrap();
    }
}

fn verified(r: &Registry) -> AuditVerifyReport {
    let rep = r.audit_verify().unwrap();
    assert!(rep.is_ok(), "{rep:?}");
    rep
}

/// Opens the (closed) RocksDB directory `dir` with the `rocksdb` crate and hands `f` the
/// database: the outsider's way to edit the trail.
fn raw_db(dir: &Path, f: impl FnOnce(&rocksdb::DB)) {
    let mut opts = rocksdb::Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Zstd);
    let cfs = rocksdb::DB::list_cf(&opts, dir).unwrap();
    let db = rocksdb::DB::open_cf(&opts, dir, &cfs).unwrap();
    f(&db);
}

fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The stored JSON of entry `seq`, edited by `edit` and written back.
fn edit_entry(dir: &Path, seq: u64, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    raw_db(dir, |db| {
        let cf = db.cf_handle("audit").unwrap();
        let mut v: Value = serde_json::from_slice(&db.get_cf(cf, key(seq)).unwrap().unwrap()).unwrap();
        edit(v.as_object_mut().unwrap());
        db.put_cf(cf, key(seq), serde_json::to_vec(&v).unwrap()).unwrap();
    });
}

fn stored(dir: &Path, seq: u64) -> serde_json::Map<String, Value> {
    let mut out = None;
    raw_db(dir, |db| {
        let cf = db.cf_handle("audit").unwrap();
        let v: Value = serde_json::from_slice(&db.get_cf(cf, key(seq)).unwrap().unwrap()).unwrap();
        out = v.as_object().cloned();
    });
    out.unwrap()
}

#[test]
fn a_chain_of_entries_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(DAY0_MS));
    let r = open(dir.path(), &clock);
    let empty = verified(&r);
    assert_eq!((empty.entries, empty.first_seq, empty.head), (0, None, None));
    append(&r, &clock, 10);
    let rep = verified(&r);
    assert_eq!(
        (rep.entries, rep.legacy, rep.first_seq, rep.last_seq, rep.anchor_seq),
        (10, 0, Some(1), Some(10), None)
    );
    // The head is entry 10's hash; the first entry's prev is 32 zero bytes.
    drop(r);
    assert_eq!(stored(dir.path(), 1)["prev"], Value::String("0".repeat(64)));
    assert_eq!(Some(stored(dir.path(), 10)["hash"].as_str().unwrap().to_string()), rep.head);
    assert_eq!(stored(dir.path(), 2)["prev"], stored(dir.path(), 1)["hash"]);
    // The public entry is unchanged: the chain fields stay in the store.
    let r = open(dir.path(), &clock);
    assert_eq!(r.audit_list(i64::MIN, i64::MAX).unwrap().len(), 10);
}

#[test]
fn an_edited_entry_is_named_by_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(DAY0_MS));
    append(&open(dir.path(), &clock), &clock, 6);
    // Someone rewrites who ran the trace, leaving the chain fields as they were.
    edit_entry(dir.path(), 4, |e| {
        e.insert("who".into(), Value::String("someone-else".into()));
    });
    let r = open(dir.path(), &clock);
    let rep = r.audit_verify().unwrap();
    let f = rep.failure.clone().unwrap();
    assert_eq!((f.seq, &f.fault), (4, &AuditFault::HashMismatch), "{rep:?}");
    assert_eq!(rep.entries, 3);
    assert!(f.to_string().contains("seq 4"), "{f}");
    // The registry still opens and serves the trail.
    assert_eq!(r.audit_list(i64::MIN, i64::MAX).unwrap()[3].who, "someone-else");
    drop(r);

    // A later entry edited as well: the first bad one is named.
    edit_entry(dir.path(), 5, |e| {
        e.insert("records".into(), Value::from(999));
    });
    let f = open(dir.path(), &clock).audit_verify().unwrap().failure.unwrap();
    assert_eq!(f.seq, 4);
}

/// The hash as docs/format.md ("Audit chain") describes it, written again from the document:
/// SHA-256 of the tag, seq, at_ms, length-prefixed who and action, optional number and
/// sub-port, records and prev.
fn documented_hash(e: &serde_json::Map<String, Value>, prev: &[u8; 32]) -> String {
    use sha2::{Digest, Sha256};
    let mut b = b"portlog.audit.v1".to_vec();
    b.extend_from_slice(&e["seq"].as_u64().unwrap().to_le_bytes());
    b.extend_from_slice(&e["at_ms"].as_i64().unwrap().to_le_bytes());
    for f in ["who", "action"] {
        let s = e[f].as_str().unwrap();
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    for f in ["number", "sub_port"] {
        match e.get(f).and_then(Value::as_str) {
            None => b.push(0),
            Some(s) => {
                b.push(1);
                b.extend_from_slice(&(s.len() as u64).to_le_bytes());
                b.extend_from_slice(s.as_bytes());
            }
        }
    }
    b.extend_from_slice(&e["records"].as_u64().unwrap().to_le_bytes());
    b.extend_from_slice(prev);
    Sha256::digest(&b).iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> [u8; 32] {
    let mut h = [0u8; 32];
    for (i, out) in h.iter_mut().enumerate() {
        *out = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    h
}

#[test]
fn the_hash_is_the_documented_encoding_and_a_recomputed_hash_is_caught_at_the_next_entry() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(DAY0_MS));
    append(&open(dir.path(), &clock), &clock, 5);
    for seq in 1..=5 {
        let e = stored(dir.path(), seq);
        let prev = unhex(e["prev"].as_str().unwrap());
        assert_eq!(e["hash"].as_str().unwrap(), documented_hash(&e, &prev), "entry {seq}");
    }
    // An attacker who knows the encoding edits entry 3 and gives it a matching hash: entry 3
    // passes, and entry 4's prev gives it away.
    edit_entry(dir.path(), 3, |e| {
        e.insert("number".into(), Value::String("13900139000".into()));
        let prev = unhex(e["prev"].as_str().unwrap());
        let h = documented_hash(e, &prev);
        e.insert("hash".into(), Value::String(h));
    });
    let f = open(dir.path(), &clock).audit_verify().unwrap().failure.unwrap();
    assert_eq!((f.seq, f.fault), (4, AuditFault::PrevMismatch));
}

#[test]
fn a_deleted_or_stripped_entry_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(DAY0_MS));
    append(&open(dir.path(), &clock), &clock, 6);
    let entry3 = stored(dir.path(), 3);
    raw_db(dir.path(), |db| db.delete_cf(db.cf_handle("audit").unwrap(), key(3)).unwrap());
    let f = open(dir.path(), &clock).audit_verify().unwrap().failure.unwrap();
    assert_eq!((f.seq, &f.fault), (4, &AuditFault::SeqGap { expected: 3 }), "{f}");
    assert!(f.to_string().contains("expected seq 3"), "{f}");

    // Put it back: intact again.
    raw_db(dir.path(), |db| {
        db.put_cf(db.cf_handle("audit").unwrap(), key(3), serde_json::to_vec(&entry3).unwrap()).unwrap();
    });
    verified(&open(dir.path(), &clock));

    // Its hash fields stripped (to pass it off as a legacy entry): still named.
    edit_entry(dir.path(), 3, |e| {
        e.remove("prev");
        e.remove("hash");
    });
    let f = open(dir.path(), &clock).audit_verify().unwrap().failure.unwrap();
    assert_eq!((f.seq, f.fault), (3, AuditFault::Unchained));

    // The newest entry deleted: meta says 6 were written.
    edit_entry(dir.path(), 3, |e| {
        e.extend(entry3.clone());
    });
    raw_db(dir.path(), |db| db.delete_cf(db.cf_handle("audit").unwrap(), key(6)).unwrap());
    let f = open(dir.path(), &clock).audit_verify().unwrap().failure.unwrap();
    assert_eq!((f.seq, f.fault), (6, AuditFault::TailMismatch { audit_seq: 6 }));
}

#[test]
fn appending_after_reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(DAY0_MS));
    append(&open(dir.path(), &clock), &clock, 3);
    let r = open(dir.path(), &clock);
    append(&r, &clock, 3);
    let rep = verified(&r);
    assert_eq!((rep.entries, rep.last_seq), (6, Some(6)));
    drop(r);
    assert_eq!(stored(dir.path(), 4)["prev"], stored(dir.path(), 3)["hash"]);
}

#[test]
fn after_a_retention_purge_the_rest_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let start = DAY0_MS;
    let clock = Arc::new(ManualClock::new(start));
    let cfg = |purge_batch_rows: usize| EngineConfig {
        log: LogConfig { shards: 1, ..LogConfig::default() },
        registry: RegistryConfig { sync: false, ..RegistryConfig::default() },
        retention: RetentionConfig {
            enabled: false,
            purge_audit: true,
            purge_batch_rows,
            ..RetentionConfig::default()
        },
        ..EngineConfig::default()
    };
    let run = |e: &Engine, at: i64| {
        clock.set_ms(at);
        e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(at) }).unwrap()
    };
    // Four entries on day 0, three on day 40.
    let e = Engine::open(dir.path(), cfg(2), clock.clone()).unwrap();
    append(e.registry(), &clock, 4);
    clock.set_ms(start + 40 * DAY_MS);
    append(e.registry(), &clock, 3);
    // 5 months and a day after day 0: the first four go, in batches of two (two anchors).
    let r = run(&e, add_months_ms(start, 5, UTC8_OFFSET_MS) + DAY_MS);
    assert_eq!(r.audit_purged, 4);
    let rep = verified(e.registry());
    assert_eq!((rep.entries, rep.first_seq, rep.anchor_seq), (3, Some(5), Some(4)));
    // Appending goes on; a reopen too.
    append(e.registry(), &clock, 2);
    e.close();
    let e = Engine::open(dir.path(), cfg(100), clock.clone()).unwrap();
    append(e.registry(), &clock, 1);
    assert_eq!(verified(e.registry()).entries, 6);
    // Everything purged: the anchor alone, and the next entry chains from it.
    let later = clock.now_ms() + 200 * DAY_MS;
    let r = run(&e, later);
    assert_eq!(r.audit_purged, 6);
    let rep = verified(e.registry());
    assert_eq!((rep.entries, rep.anchor_seq), (0, Some(10)));
    append(e.registry(), &clock, 2);
    let rep = verified(e.registry());
    assert_eq!((rep.entries, rep.first_seq), (2, Some(11)));
    e.close();
    // Deleting the first entry after the anchor is still caught.
    raw_db(&dir.path().join("registry"), |db| db.delete_cf(db.cf_handle("audit").unwrap(), key(11)).unwrap());
    let e = Engine::open(dir.path(), cfg(100), clock.clone()).unwrap();
    let f = e.registry().audit_verify().unwrap().failure.unwrap();
    assert_eq!((f.seq, f.fault), (12, AuditFault::SeqGap { expected: 11 }));
    e.close();
}

#[test]
fn legacy_entries_load_and_are_counted_not_reported_as_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(DAY0_MS));
    drop(open(dir.path(), &clock));
    // Three entries as written before the chain existed: no prev/hash; entry 1 already purged
    // by an older retention (no anchor).
    raw_db(dir.path(), |db| {
        let cf = db.cf_handle("audit").unwrap();
        for seq in 2..=4u64 {
            let json =
                format!(r#"{{"seq":{seq},"at_ms":{},"who":"old","action":"trace","records":1}}"#, DAY0_MS + seq as i64);
            db.put_cf(cf, key(seq), json).unwrap();
        }
        db.put_cf(db.cf_handle("meta").unwrap(), "audit_seq", 4u64.to_le_bytes()).unwrap();
    });
    let r = open(dir.path(), &clock);
    assert_eq!(r.audit_list(i64::MIN, i64::MAX).unwrap().len(), 3);
    let rep = verified(&r);
    assert_eq!((rep.entries, rep.legacy, rep.head), (3, 3, None));
    // The chain starts after them, from zeros.
    append(&r, &clock, 2);
    let rep = verified(&r);
    assert_eq!((rep.entries, rep.legacy, rep.first_seq, rep.last_seq), (5, 3, Some(2), Some(6)));
    drop(r);
    assert_eq!(stored(dir.path(), 5)["prev"], Value::String("0".repeat(64)));
    // A legacy entry cannot be vouched for: editing it goes unnoticed (documented).
    edit_entry(dir.path(), 3, |e| {
        e.insert("who".into(), Value::String("x".into()));
    });
    verified(&open(dir.path(), &clock));
}
