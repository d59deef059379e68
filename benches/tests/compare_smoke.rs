//! A small run of `portlog-compare` (portlog and RocksDB; PostgreSQL too when it is installed,
//! else it must be reported as skipped): the JSON it prints must hold sane, consistent figures.

use serde_json::Value;
use std::process::Command;

const RECORDS: u64 = 20_000;

fn num(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for part in path.split('.') {
        cur = &cur[part];
    }
    cur.as_f64().unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

#[test]
fn a_small_run_reports_every_peer_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portlog-compare"))
        .args(["--records", &RECORDS.to_string(), "--months", "2.5", "--checks", "2000", "--traces", "40"])
        .args(["--group", "500", "--peers", "portlog,rocksdb,postgres", "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "portlog-compare failed: {}\n{stderr}", out.status);
    let run: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let peers = run["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 3, "{run}");
    let pg_installed = portlog_benches::pg::find_install(None).is_ok();
    let mut ran = Vec::new();
    for p in peers {
        let name = p["peer"].as_str().unwrap();
        match p["status"].as_str().unwrap() {
            "ok" => ran.push(&p["report"]),
            "skipped" => {
                assert!(name == "postgres" && !pg_installed, "{name} skipped: {p}");
                assert!(p["reason"].as_str().unwrap().contains("not installed"), "{p}");
            }
            other => panic!("{name}: {other}: {p}"),
        }
    }
    assert_eq!(ran.len(), if pg_installed { 3 } else { 2 });
    let first = ran[0];
    // What the workload fixes is the same for every peer.
    let month = num(first, "expiry.records");
    assert!(month > 0.0 && month < RECORDS as f64, "the expired month is part of the data: {month}");
    let rejects = num(first, "stored.rejects");
    assert!(rejects > 0.0 && rejects <= num(first, "reject_mos"), "{first}");
    for r in &ran {
        let peer = r["peer"].as_str().unwrap();
        assert_eq!(num(r, "records"), RECORDS as f64, "{peer}");
        assert_eq!(num(r, "stored.records"), RECORDS as f64, "{peer}: records counted after ingest");
        assert_eq!(num(r, "stored.rejects"), rejects, "{peer}: rejects");
        assert_eq!(num(r, "expiry.records"), month, "{peer}: records of the expired month");
        assert_eq!(num(r, "expiry.records_left"), RECORDS as f64 - month, "{peer}: records left");
        assert_eq!(num(r, "trace_records"), num(first, "trace_records"), "{peer}: traces");
        assert!(num(r, "trace_records") >= 40.0, "{peer}: every traced number has a record");
        assert_eq!(num(r, "checks_denied"), num(first, "checks_denied"), "{peer}: denied checks");
        assert!(num(r, "checks_denied") >= num(r, "check_hits"), "{peer}: every rejected pair is denied");
        assert_eq!(num(r, "check_hits"), 200.0, "{peer}");
        for f in ["ingest_msgs_per_s", "ingest_mb_per_s", "disk_bytes_per_msg", "peak_memory_bytes", "expiry.secs"] {
            assert!(num(r, f) > 0.0, "{peer}: {f} = {}", num(r, f));
        }
        assert!(num(r, "ingest_msgs_per_s") < 1e8, "{peer}: an ingest rate that cannot be");
        assert!(num(r, "disk_bytes_per_msg") < 2_000.0, "{peer}: disk per message");
        assert!(num(r, "peak_memory_bytes") > 1e6, "{peer}: peak memory");
        assert_eq!(num(r, "check.n"), 2000.0, "{peer}");
        assert_eq!(num(r, "trace.n"), 40.0, "{peer}");
        assert!(num(r, "check.p50_us") > 0.0 && num(r, "check.p99_us") >= num(r, "check.p50_us"), "{peer}");
        assert!(num(r, "trace.p99_us") >= num(r, "trace.p50_us"), "{peer}");
        assert!(num(r, "expiry.bytes_freed") > 0.0, "{peer}: the expiry freed nothing");
        assert!(num(r, "ingest_write_bytes") > 0.0, "{peer}: ingest wrote nothing");
    }
    // Each peer ran in a process of its own: memory figures differ.
    assert!(ran.windows(2).any(|w| num(w[0], "peak_memory_bytes") != num(w[1], "peak_memory_bytes")));
    // The data directories are gone.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "left behind: {:?}", left.iter().map(|e| e.path()).collect::<Vec<_>>());
}
