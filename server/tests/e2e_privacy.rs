//! No phone number and no message text ever reaches the daemon's own log, even at debug level:
//! canary values go through every path that handles them (ingest, bad ingest lines, MO reject
//! registration, checks, trace, reject add and list, consent, a refused call, retention), and the
//! daemon's stderr is searched for them. The audit trail (in the engine) does hold the numbers:
//! the test checks that too, so that it cannot pass by logging nothing at all.
#![allow(clippy::unwrap_used)]

mod common;

use common::{now_ms, portlog, Daemon};

/// Canary number and texts: they must appear in answers and the audit, never in the log.
const N: &str = "13987654321";
const N_BAD: &str = "1398765432";
const TEXT: &str = "CANARY-7f3a9 【星河银行】会员日。拒收请回复R";
const EVIDENCE: &str = "CANARY-EVIDENCE-51c2";
const SP: &str = "1069012345601";
const DAY: i64 = 86_400_000;

#[test]
fn canary_numbers_and_texts_never_reach_the_daemons_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_env(&dir.path().join("data"), &[], &[("RUST_LOG", "debug")]);
    let ep = d.http();
    let ok = |r: common::Run| {
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
        r
    };
    let now = now_ms();
    ok(portlog(&["--endpoint", &ep, "ledger", "provider", "add", "--id", "p1", "--name", "星河银行"], None));
    let (from, to) = ((now - DAY).to_string(), (now + DAY).to_string());
    ok(portlog(
        &[
            "--endpoint",
            &ep,
            "ledger",
            "assign",
            "--sub-port",
            SP,
            "--provider",
            "p1",
            "--usage",
            "commercial",
            "--from",
            &from,
            "--to",
            &to,
            "--consent-required",
        ],
        None,
    ));
    let lines = [
        format!(
            r#"{{"dir":"mt","sub_port":"{SP}","peer":"{N}","ts":{},"usage":"commercial","text":"{TEXT}"}}"#,
            now - 60_000
        ),
        format!(r#"{{"dir":"mo","sub_port":"{SP}","peer":"{N}","ts":{},"text":"R"}}"#, now - 30_000),
        format!(r#"{{"dir":"mt","sub_port":"{SP}","peer":"{N_BAD}","ts":{now},"usage":"commercial","text":"{TEXT}"}}"#),
    ]
    .join("\n");
    let r = portlog(&["--endpoint", &ep, "--json", "ingest", "-"], Some(&lines));
    assert_eq!(r.code, 1, "one bad line: {}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["rejects_registered"], 1);
    let r = portlog(&["--endpoint", &ep, "--json", "check", "--sub-port", SP, "--number", N, "--text", TEXT], None);
    assert_eq!(r.code, 1, "a deny is exit 1: {}", r.stderr);
    assert!(r.stdout.contains("rejected"), "{}", r.stdout);
    let r = ok(portlog(&["--endpoint", &ep, "--json", "trace", "--number", N], None));
    assert!(r.stdout.contains("CANARY-7f3a9"), "the trace answers the text: {}", r.stdout);
    ok(portlog(&["--endpoint", &ep, "consent", "add", "--sub-port", SP, "--number", N, "--evidence", EVIDENCE], None));
    ok(portlog(&["--endpoint", &ep, "reject", "add", "--sub-port", SP, "--number", N, "--text", TEXT], None));
    ok(portlog(&["--endpoint", &ep, "--json", "reject", "list", "--number", N], None));
    let r = portlog(&["--endpoint", &ep, "trace", "--number", N_BAD], None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    ok(portlog(&["--endpoint", &ep, "retention", "run", "--dry-run"], None));
    // The audit trail holds the number (so the engine saw it, durably).
    let r = ok(portlog(&["--endpoint", &ep, "--json", "audit", "list"], None));
    assert!(r.stdout.contains(N), "{}", r.stdout);

    let stderr = d.stderr();
    assert_eq!(d.sigterm().code(), Some(0), "{stderr}");
    assert!(stderr.lines().count() > 10 && stderr.contains("audit"), "the log was written at debug level: {stderr}");
    for canary in [N, N_BAD, "CANARY-7f3a9", EVIDENCE, "会员日"] {
        let leaks: Vec<&str> = stderr.lines().filter(|l| l.contains(canary)).collect();
        assert!(leaks.is_empty(), "{canary} reached the daemon's log:\n{}", leaks.join("\n"));
    }
}
