//! `portlog-server verify` checks the audit trail's hash chain: it prints how many audit
//! entries it verified, and exits 1 naming the seq of an edited or deleted entry. The data
//! directory is tampered with through the engine's test hook `Registry::audit_raw_put` (the
//! server's tests do not link RocksDB themselves).
#![allow(clippy::unwrap_used)]

use portlog_engine::registry::AuditEntry;
use portlog_engine::{Engine, EngineConfig, LogConfig, ManualClock, RegistryConfig};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_portlog-server");

fn open(dir: &Path) -> Engine {
    let cfg = EngineConfig {
        log: LogConfig { shards: 1, ..LogConfig::default() },
        registry: RegistryConfig { sync: false, ..RegistryConfig::default() },
        ..EngineConfig::default()
    };
    Engine::open(dir, cfg, Arc::new(ManualClock::new(1_777_564_800_000))).unwrap()
}

fn verify(dir: &Path) -> (Option<i32>, String) {
    let cfg_file = dir.join("portlog.toml");
    std::fs::write(&cfg_file, "[log]\nshards = 1\n").unwrap();
    let out: Output =
        Command::new(BIN).arg("--data-dir").arg(dir).arg("--config").arg(&cfg_file).arg("verify").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn verify_names_the_seq_of_an_edited_or_deleted_audit_entry() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    for i in 0..5u64 {
        e.registry()
            .audit(AuditEntry {
                seq: 0,
                at_ms: 0,
                who: "inspector".into(),
                action: "trace".into(),
                number: Some("13800138000".into()),
                sub_port: None,
                records: i,
            })
            .unwrap();
    }
    e.close();
    let (code, text) = verify(dir.path());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("verified 5 audit entries"), "{text}");

    // Edit entry 3: who ran the trace.
    let e = open(dir.path());
    let original = e.registry().audit_raw(3).unwrap().unwrap();
    let edited = String::from_utf8(original.clone()).unwrap().replace("inspector", "nobody");
    e.registry().audit_raw_put(3, Some(edited.as_bytes())).unwrap();
    e.close();
    let (code, text) = verify(dir.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("audit entry seq 3: hash mismatch"), "{text}");

    // Restore it, then delete entry 2.
    let e = open(dir.path());
    e.registry().audit_raw_put(3, Some(&original)).unwrap();
    e.registry().audit_raw_put(2, None).unwrap();
    e.close();
    let (code, text) = verify(dir.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("audit entry seq 3: sequence gap: expected seq 2"), "{text}");
}
