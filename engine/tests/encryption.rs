//! Encryption at rest: round trip through append, seal, restart, trace and rejects; no canary
//! text on disk with it (and found without it); key rotation; a missing key; tampered
//! ciphertext; a directory mixing plaintext and encrypted segments. docs/format.md,
//! "Encryption".
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{collect, DAY0_MS, DAY_MS};
use portlog_engine::codec::checksum;
use portlog_engine::registry::{AssignInput, ProviderInput, RejectInput, RejectSource};
use portlog_engine::{
    Direction, EncryptionConfig, Engine, EngineConfig, Error, KeyRing, Log, LogConfig, LogEnv, ManualClock,
    PhoneNumber, Reason, Record, RetentionConfig, SubPort, TraceQuery, Usage,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SP: &str = "1069012345601";
/// A sub-port whose assignment requires consent.
const SP2: &str = "1069012345602";
/// A sub-port that no ledger entry names: it may only appear on disk inside log segments.
const CANARY_SP: &str = "10699424242";
const CANARY_TEXT: &str = "CANARY-TEXT-7f3a9c1e-do-not-leak";
const CANARY_REJECT: &str = "CANARY-REJECT-b41d22-do-not-leak";
const CANARY_CONSENT: &str = "CANARY-CONSENT-90ee17-do-not-leak";
const NOW: i64 = DAY0_MS + 3 * DAY_MS;

fn key_line(id: u32) -> String {
    let hex: String = (0..32u32).map(|b| format!("{:02x}", (b * 7 + id * 13) % 256)).collect();
    format!("key {id} {hex}\n")
}

/// Writes a key file holding `ids` (mode 600) and returns its path.
fn key_file(dir: &Path, ids: &[u32]) -> PathBuf {
    let p = dir.join(format!("keys-{}", ids.iter().map(u32::to_string).collect::<Vec<_>>().join("-")));
    let text: String = std::iter::once("# test keys\n".to_string()).chain(ids.iter().map(|&i| key_line(i))).collect();
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn ring(dir: &Path, ids: &[u32]) -> Arc<KeyRing> {
    Arc::new(KeyRing::load(&key_file(dir, ids)).unwrap())
}

fn cfg() -> LogConfig {
    LogConfig { shards: 2, zstd_dict_bytes: 0, ..LogConfig::default() }
}

fn open_log(dir: &Path, keys: Option<Arc<KeyRing>>) -> portlog_engine::Result<Log> {
    let env = LogEnv { keys, ..LogEnv::default() };
    Log::open_with(dir, cfg(), Arc::new(ManualClock::new(NOW)), env)
}

fn mt(i: u64, sp: &str, ts_ms: i64, text: &str) -> Record {
    Record {
        dir: Direction::Mt,
        sub_port: SubPort::parse(sp).unwrap(),
        peer: PhoneNumber::from_u64(13_800_000_000 + i % 50).unwrap(),
        ts_ms,
        usage: Some(Usage::Commercial),
        text: format!("{text} #{i}"),
    }
}

fn day(d: i64, n: u64, text: &str) -> Vec<Record> {
    (0..n)
        .map(|i| mt(i, if i % 2 == 0 { SP } else { CANARY_SP }, DAY0_MS + d * DAY_MS + i as i64 * 1000, text))
        .collect()
}

fn all(log: &Log) -> portlog_engine::Result<Vec<Record>> {
    let mut out = Vec::new();
    for s in 0..log.shard_count() {
        for r in log.scan_shard(s, i64::MIN, i64::MAX)? {
            out.push(r?);
        }
    }
    out.sort_by_key(|r| (r.ts_ms, r.sub_port.as_str().to_owned(), r.text.clone()));
    Ok(out)
}

fn sorted(mut v: Vec<Record>) -> Vec<Record> {
    v.sort_by_key(|r| (r.ts_ms, r.sub_port.as_str().to_owned(), r.text.clone()));
    v
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The files under `dir` containing `needle`.
fn containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let n = needle.as_bytes();
    files(dir).into_iter().filter(|p| std::fs::read(p).unwrap().windows(n.len()).any(|w| w == n)).collect()
}

fn with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    files(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
}

/// (header version, key id) of a segment file.
fn header(p: &Path) -> (u16, u32) {
    let b = std::fs::read(p).unwrap();
    (u16::from_le_bytes([b[8], b[9]]), u32::from_le_bytes(b[28..32].try_into().unwrap()))
}

fn engine_cfg(key_file: Option<PathBuf>) -> EngineConfig {
    EngineConfig {
        log: cfg(),
        retention: RetentionConfig { enabled: false, ..RetentionConfig::default() },
        encryption: EncryptionConfig { key_file },
        ..EngineConfig::default()
    }
}

fn setup_ledger(e: &Engine) {
    let reg = e.registry();
    reg.provider_put(ProviderInput {
        id: "P1".into(),
        name: "P1股份有限公司".into(),
        signatures: vec!["P1银行".into()],
        blacklisted: false,
        whitelisted: false,
    })
    .unwrap();
    for (sub_port, consent_required) in [(SP, false), (SP2, true)] {
        reg.assign(AssignInput {
            sub_port: sub_port.into(),
            provider: "P1".into(),
            usage: Usage::Commercial,
            from_ms: DAY0_MS,
            to_ms: DAY0_MS + 365 * DAY_MS,
            consent_required,
        })
        .unwrap();
    }
}

fn reject(e: &Engine, number: u64, text: &str) {
    let input = RejectInput {
        sub_port: SP.into(),
        number: PhoneNumber::from_u64(number).unwrap(),
        at_ms: Some(DAY0_MS + DAY_MS),
        source: RejectSource::Api,
        text: text.into(),
        assignment: None,
    };
    e.registry().register_rejects(&[input]).unwrap();
}

/// Writes canary texts and sub-ports into sealed and open segments and a canary reject text
/// into the registry, then closes the engine.
fn write_canaries(dir: &Path, key_file: Option<PathBuf>) {
    let e = Engine::open(dir, engine_cfg(key_file), Arc::new(ManualClock::new(NOW))).unwrap();
    setup_ledger(&e);
    e.ingest(day(0, 40, CANARY_TEXT)).unwrap();
    e.log().seal_all().unwrap();
    e.ingest(day(1, 40, CANARY_TEXT)).unwrap();
    reject(&e, 13_800_000_007, CANARY_REJECT);
    e.registry().consent(SP2, PhoneNumber::from_u64(13_800_000_009).unwrap(), true, CANARY_CONSENT, None).unwrap();
    let listed = e.registry().rejects_of_number(PhoneNumber::from_u64(13_800_000_007).unwrap()).unwrap();
    assert_eq!(listed[0].0.text, CANARY_REJECT);
    assert!(!with_ext(&dir.join("log"), "seg").is_empty() && !with_ext(&dir.join("log"), "open").is_empty());
    e.close();
}

#[test]
fn no_canary_text_or_sub_port_on_disk_with_encryption_and_found_without() {
    // Without encryption the same scenario leaves the canaries on disk: the test can fail.
    let plain = tempfile::tempdir().unwrap();
    write_canaries(plain.path(), None);
    let text_in = containing(plain.path(), CANARY_TEXT);
    assert!(text_in.iter().any(|p| p.extension().is_some_and(|e| e == "open")), "{text_in:?}");
    // The journal's frames hold every record too: with encryption they must not show.
    assert!(
        text_in.iter().any(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("journal-"))),
        "{text_in:?}"
    );
    let sp_in = containing(plain.path(), CANARY_SP);
    assert!(sp_in.iter().any(|p| p.extension().is_some_and(|e| e == "seg")), "{sp_in:?}");
    assert!(sp_in.iter().any(|p| p.extension().is_some_and(|e| e == "open")), "{sp_in:?}");
    let reject_in = containing(plain.path(), CANARY_REJECT);
    assert!(reject_in.iter().any(|p| p.starts_with(plain.path().join("registry"))), "{reject_in:?}");
    let consent_in = containing(plain.path(), CANARY_CONSENT);
    assert!(consent_in.iter().any(|p| p.starts_with(plain.path().join("registry"))), "{consent_in:?}");

    let enc = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    write_canaries(enc.path(), Some(key_file(keys.path(), &[1])));
    for needle in [CANARY_TEXT, CANARY_SP, CANARY_REJECT, CANARY_CONSENT, "CANARY"] {
        assert_eq!(containing(enc.path(), needle), Vec::<PathBuf>::new(), "{needle} found on disk");
    }
    // And the data is all there, through the key.
    let e = Engine::open(enc.path(), engine_cfg(Some(key_file(keys.path(), &[1]))), Arc::new(ManualClock::new(NOW)))
        .unwrap();
    assert_eq!(all(e.log()).unwrap().len(), 80);
    assert!(all(e.log()).unwrap().iter().all(|r| r.text.starts_with(CANARY_TEXT)));
}

#[test]
fn round_trip_append_seal_restart_trace_and_reject_texts() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let kf = key_file(keys.path(), &[3]);
    let clock = Arc::new(ManualClock::new(NOW));
    let e = Engine::open(dir.path(), engine_cfg(Some(kf.clone())), clock.clone()).unwrap();
    setup_ledger(&e);
    let mut want = day(0, 300, "【P1银行】会员日满100减20");
    e.ingest(want.clone()).unwrap();
    e.log().seal_all().unwrap();
    let more = day(1, 300, "【P1银行】您的积分即将到期");
    e.ingest(more.clone()).unwrap();
    want.extend(more);
    // An MO reject keyword registers a reject whose text is the MO's.
    let mo = Record {
        dir: Direction::Mo,
        sub_port: SubPort::parse(SP).unwrap(),
        peer: PhoneNumber::from_u64(13_900_000_001).unwrap(),
        ts_ms: DAY0_MS + DAY_MS + 5,
        usage: None,
        text: "R".into(),
    };
    assert_eq!(e.ingest(vec![mo.clone()]).unwrap().rejects_registered, 1);
    want.push(mo.clone());
    reject(&e, 13_800_000_004, "退订 by phone call");
    e.close();

    let e = Engine::open(dir.path(), engine_cfg(Some(kf)), clock).unwrap();
    assert_eq!(all(e.log()).unwrap(), sorted(want.clone()));
    for f in with_ext(&dir.path().join("log"), "seg").iter().chain(&with_ext(&dir.path().join("log"), "open")) {
        assert_eq!(header(f), (2, 3), "{}", f.display());
    }
    let n = PhoneNumber::from_u64(13_800_000_004).unwrap();
    let traced = collect(e.trace(&TraceQuery::new(n)).unwrap());
    let expect: Vec<Record> = sorted(want.iter().filter(|r| r.peer == n).cloned().collect());
    assert_eq!(sorted(traced), expect);
    assert!(!expect.is_empty());
    let by_number = collect(e.log().read_number(n, i64::MIN, i64::MAX).unwrap());
    assert_eq!(sorted(by_number), expect);
    let rejects = e.registry().rejects_of_number(n).unwrap();
    assert_eq!(rejects[0].0.text, "退订 by phone call");
    let rejects = e.registry().rejects_of_number(mo.peer).unwrap();
    assert_eq!(rejects[0].0.text, "R");
    let v = e.registry().check(SP, mo.peer, Usage::Commercial, Some(NOW), None).unwrap();
    assert_eq!(v.reason, Some(Reason::Rejected));
}

#[test]
fn rotation_keeps_everything_readable_and_a_removed_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    // Key 1: day 0 sealed, day 1 left open.
    let log = open_log(dir.path(), Some(ring(keys.path(), &[1]))).unwrap();
    let mut want = day(0, 100, "first key");
    log.append(want.clone()).unwrap();
    log.seal_all().unwrap();
    let d1 = day(1, 100, "first key, open");
    log.append(d1.clone()).unwrap();
    want.extend(d1);
    log.close();
    let sealed_key1 = with_ext(dir.path(), "seg");
    assert!(sealed_key1.iter().all(|p| header(p) == (2, 1)));

    // Key 2 added: the key-1 open segment is sealed again with key 2, new rows use key 2.
    let log = open_log(dir.path(), Some(ring(keys.path(), &[1, 2]))).unwrap();
    let d2 = day(2, 100, "second key");
    log.append(d2.clone()).unwrap();
    want.extend(d2);
    assert_eq!(all(&log).unwrap(), sorted(want.clone()));
    log.seal_all().unwrap();
    let d2b = day(2, 10, "second key, open");
    log.append(d2b.clone()).unwrap();
    want.extend(d2b);
    assert_eq!(all(&log).unwrap(), sorted(want.clone()));
    log.close();
    for p in with_ext(dir.path(), "seg").into_iter().chain(with_ext(dir.path(), "open")) {
        let expect = if sealed_key1.contains(&p) { (2, 1) } else { (2, 2) };
        assert_eq!(header(&p), expect, "{}", p.display());
    }

    // Key 1 removed: the log opens (its open segments are key 2) and reading a key-1 segment
    // fails naming the key and the file, never garbage.
    let log = open_log(dir.path(), Some(ring(keys.path(), &[2]))).unwrap();
    let e = all(&log).unwrap_err();
    match &e {
        Error::KeyMissing { path, key_id: 1, .. } => assert!(sealed_key1.contains(path), "{e}"),
        other => panic!("expected KeyMissing for key 1, got {other}"),
    }
    assert!(e.to_string().contains("key 1") && e.to_string().contains("[2]"), "{e}");
    let n = PhoneNumber::from_u64(13_800_000_004).unwrap();
    assert!(matches!(
        log.read_number(n, i64::MIN, i64::MAX).and_then(|r| r.collect::<Result<Vec<_>, _>>()),
        Err(Error::KeyMissing { key_id: 1, .. })
    ));
    log.close();

    // No key file at all: an encrypted open segment cannot be recovered; the error says so.
    let e = open_log(dir.path(), None).unwrap_err();
    assert!(matches!(e, Error::KeyMissing { key_id: 2, .. }), "{e}");
    assert!(e.to_string().contains(".open") && e.to_string().contains("no key file"), "{e}");
}

#[test]
fn a_directory_mixing_plaintext_and_encrypted_segments_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let log = open_log(dir.path(), None).unwrap();
    let mut want = day(0, 100, "plaintext");
    log.append(want.clone()).unwrap();
    log.seal_all().unwrap();
    let d1 = day(1, 50, "plaintext, open");
    log.append(d1.clone()).unwrap();
    want.extend(d1);
    log.close();
    let plain_sealed = with_ext(dir.path(), "seg");
    assert!(plain_sealed.iter().all(|p| header(p) == (1, 0)));

    let log = open_log(dir.path(), Some(ring(keys.path(), &[1]))).unwrap();
    let d2 = day(2, 100, "encrypted");
    log.append(d2.clone()).unwrap();
    want.extend(d2);
    assert_eq!(all(&log).unwrap(), sorted(want.clone()));
    log.seal_all().unwrap();
    assert_eq!(all(&log).unwrap(), sorted(want.clone()));
    log.close();
    for p in with_ext(dir.path(), "seg") {
        // Plaintext segments stay as written; the plaintext open one was sealed encrypted.
        let expect = if plain_sealed.contains(&p) { (1, 0) } else { (2, 1) };
        assert_eq!(header(&p), expect, "{}", p.display());
    }
    let log = open_log(dir.path(), Some(ring(keys.path(), &[1]))).unwrap();
    assert_eq!(all(&log).unwrap(), sorted(want));
}

#[test]
fn mixed_plaintext_and_encrypted_reject_texts_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let e = Engine::open(dir.path(), engine_cfg(None), clock.clone()).unwrap();
    setup_ledger(&e);
    reject(&e, 13_800_000_001, "plain reject");
    e.close();
    let e = Engine::open(dir.path(), engine_cfg(Some(key_file(keys.path(), &[1]))), clock.clone()).unwrap();
    reject(&e, 13_800_000_002, "encrypted reject");
    let texts: Vec<String> = e.registry().rejects_of_sub_port(SP, None).unwrap().into_iter().map(|r| r.text).collect();
    assert_eq!(texts, vec!["plain reject".to_string(), "encrypted reject".to_string()]);
    e.close();
    // Without the key the encrypted text is refused by name; the check still answers (it needs
    // only the reject's time, which is not encrypted).
    let e = Engine::open(dir.path(), engine_cfg(None), clock).unwrap();
    let err = e.registry().rejects_of_sub_port(SP, None).unwrap_err();
    assert!(matches!(err, Error::KeyMissing { key_id: 1, .. }), "{err}");
    let n = PhoneNumber::from_u64(13_800_000_002).unwrap();
    assert_eq!(e.registry().check(SP, n, Usage::Commercial, Some(NOW), None).unwrap().reason, Some(Reason::Rejected));
}

/// Trailer fields of a sealed segment file: (section table offset, section count).
fn sections(b: &[u8]) -> Vec<(u32, usize, usize, usize)> {
    let t0 = b.len() - 56;
    let so = u64::from_le_bytes(b[t0 + 24..t0 + 32].try_into().unwrap()) as usize;
    let n = u32::from_le_bytes(b[t0 + 32..t0 + 36].try_into().unwrap()) as usize;
    (0..n)
        .map(|i| {
            let e = so + i * 32;
            let kind = u32::from_le_bytes(b[e..e + 4].try_into().unwrap());
            let off = u64::from_le_bytes(b[e + 8..e + 16].try_into().unwrap()) as usize;
            let len = u64::from_le_bytes(b[e + 16..e + 24].try_into().unwrap()) as usize;
            (kind, e, off, len)
        })
        .collect()
}

#[test]
fn tampered_ciphertext_behind_right_checksums_is_corrupt_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let r = ring(keys.path(), &[1]);
    let log = open_log(dir.path(), Some(r.clone())).unwrap();
    log.append(day(0, 200, "tamper me")).unwrap();
    log.seal_all().unwrap();
    log.append(day(1, 20, "tamper me too")).unwrap();
    log.close();

    // Sealed: flip a ciphertext byte of block 0 and fix the block's, the block table's and the
    // footer's checksums, so that only the authentication tag can tell.
    let seg = with_ext(dir.path(), "seg").into_iter().next().unwrap();
    let mut b = std::fs::read(&seg).unwrap();
    let secs = sections(&b);
    let &(_, entry, table, table_len) = secs.iter().find(|s| s.0 == 1).unwrap();
    let blk_off = u64::from_le_bytes(b[table..table + 8].try_into().unwrap()) as usize;
    let clen = u32::from_le_bytes(b[table + 8..table + 12].try_into().unwrap()) as usize;
    b[blk_off + 30] ^= 0x01;
    let c = checksum(&[&b[blk_off..blk_off + clen]]);
    b[table + 40..table + 48].copy_from_slice(&c.to_le_bytes());
    let c = checksum(&[&b[table..table + table_len]]);
    b[entry + 24..entry + 32].copy_from_slice(&c.to_le_bytes());
    let t0 = b.len() - 56;
    let so = secs[0].1;
    let c = checksum(&[&b[so..b.len() - 16]]);
    b[t0 + 40..t0 + 48].copy_from_slice(&c.to_le_bytes());
    std::fs::write(&seg, &b).unwrap();

    // Open: flip a ciphertext byte of the first row and fix the row's and the frame's checksums.
    let open = with_ext(dir.path(), "open").into_iter().next().unwrap();
    let mut o = std::fs::read(&open).unwrap();
    let payload_len = u32::from_le_bytes(o[44..48].try_into().unwrap()) as usize;
    let body_len = u32::from_le_bytes(o[60..64].try_into().unwrap()) as usize;
    o[68 + 30] ^= 0x01;
    let c = checksum(&[&o[68..68 + body_len]]) as u32;
    o[64..68].copy_from_slice(&c.to_le_bytes());
    let c = checksum(&[&o[40..48], &o[56..56 + payload_len]]);
    o[48..56].copy_from_slice(&c.to_le_bytes());
    let original_open = std::fs::read(&open).unwrap();
    std::fs::write(&open, &o).unwrap();

    let e = open_log(dir.path(), Some(r.clone())).unwrap_err();
    match &e {
        Error::Corrupt { path, offset: 60, detail } => {
            assert_eq!(path, &open);
            assert!(detail.contains("decryption failed"), "{e}");
        }
        other => panic!("expected Corrupt at the row, got {other}"),
    }
    std::fs::write(&open, &original_open).unwrap();
    let log = open_log(dir.path(), Some(r)).unwrap();
    let e = all(&log).unwrap_err();
    match &e {
        Error::Corrupt { path, offset, detail } => {
            assert_eq!((path, *offset), (&seg, blk_off as u64), "{e}");
            assert!(detail.contains("block 0") && detail.contains("decryption failed"), "{e}");
        }
        other => panic!("expected Corrupt at block 0, got {other}"),
    }
}

#[test]
fn a_key_file_readable_by_others_or_malformed_stops_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let kf = key_file(keys.path(), &[1]);
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Engine::open(dir.path(), engine_cfg(Some(kf.clone())), Arc::new(ManualClock::new(NOW))).unwrap_err();
    assert!(matches!(e, Error::KeyFile { .. }) && e.to_string().contains("chmod 600"), "{e}");
    std::fs::write(&kf, format!("{}key 1 00\n", key_line(1))).unwrap();
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = Engine::open(dir.path(), engine_cfg(Some(kf.clone())), Arc::new(ManualClock::new(NOW))).unwrap_err();
    assert!(e.to_string().contains(&kf.display().to_string()) && e.to_string().contains("line 2"), "{e}");
}

#[test]
fn encrypted_consent_records_still_decide_the_check_and_need_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let kf = key_file(keys.path(), &[4]);
    let clock = Arc::new(ManualClock::new(NOW));
    let e = Engine::open(dir.path(), engine_cfg(None), clock.clone()).unwrap();
    setup_ledger(&e);
    let (a, b) = (PhoneNumber::from_u64(13_800_000_011).unwrap(), PhoneNumber::from_u64(13_800_000_012).unwrap());
    e.registry().consent(SP2, a, true, "plaintext evidence", Some(DAY0_MS + DAY_MS)).unwrap();
    e.close();
    let e = Engine::open(dir.path(), engine_cfg(Some(kf.clone())), clock.clone()).unwrap();
    e.registry().consent(SP2, b, true, "encrypted evidence", Some(DAY0_MS + DAY_MS)).unwrap();
    e.close();
    let e = Engine::open(dir.path(), engine_cfg(Some(kf)), clock.clone()).unwrap();
    for n in [a, b] {
        let v = e.registry().check(SP2, n, Usage::Commercial, Some(NOW), None).unwrap();
        assert!(v.allow, "{n}: {v:?}");
    }
    let v = e.registry().check(SP2, PhoneNumber::from_u64(13_800_000_013).unwrap(), Usage::Commercial, Some(NOW), None);
    assert_eq!(v.unwrap().reason, Some(Reason::NoConsent));
    e.close();
    // Consent records are loaded at open: without their key the registry does not open.
    let err = Engine::open(dir.path(), engine_cfg(None), clock).unwrap_err();
    assert!(matches!(err, Error::KeyMissing { key_id: 4, .. }), "{err}");
}
