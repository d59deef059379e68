//! The daemon's contract: listening rules, clean SIGTERM, offline verify (gRPC: e2e*.rs).
#![allow(clippy::unwrap_used)]

use portlog_engine::{Direction, Log, LogConfig, ManualClock, PhoneNumber, Record, SubPort, Usage};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_portlog-server");

#[test]
fn refuses_a_public_address_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).arg("--data-dir").arg(dir.path()).args(["--listen", "0.0.0.0:50999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0:50999 without --tokens"), "{err}");
    let out = Command::new(BIN).arg("--data-dir").arg(dir.path()).args(["--listen", "nonsense"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen \"nonsense\""));
}

#[test]
fn sigterm_closes_cleanly_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let ready = lines.by_ref().map_while(Result::ok).any(|l| l.contains("portlog-server ready"));
    assert!(ready, "the daemon never said it was ready");
    let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(st.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // The engine's layout: the message log at the top (MANIFEST, log/), the registry in registry/.
    assert!(dir.path().join("MANIFEST").exists());
    assert!(dir.path().join("registry").is_dir());
}

#[test]
fn verify_reports_a_damaged_block_by_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_777_564_800_000;
    let cfg = LogConfig { shards: 1, ..LogConfig::default() };
    let log = Log::open(dir.path(), cfg, Arc::new(ManualClock::new(now))).unwrap();
    let recs: Vec<Record> = (0..500u64)
        .map(|i| Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse("1069012345601").unwrap(),
            peer: PhoneNumber::from_u64(13_800_000_000 + i).unwrap(),
            ts_ms: now - 1000 + i as i64,
            usage: Some(Usage::Service),
            text: format!("【星河银行】您的验证码为{i:06}，5分钟内有效。"),
        })
        .collect();
    log.append(recs).unwrap();
    log.seal_all().unwrap();
    log.close();
    let cfg_file = dir.path().join("portlog.toml");
    std::fs::write(&cfg_file, "[log]\nshards = 1\n").unwrap();
    let run = || {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(&cfg_file)
            .arg("verify")
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("verified 500 records"));
    // Flip a byte inside the first block (just after the 40-byte header).
    let seg = std::fs::read_dir(dir.path().join("log/shard-000"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[60] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&seg.display().to_string())
            && text.contains("at byte offset 40")
            && text.contains("checksum mismatch"),
        "{text}"
    );
}
