//! A small run of `portlog-check-bench --repeat 2 --json`: every row present, the in-memory rows
//! over two rounds with their p50 inside the rounds' range, the peers run once.

use serde_json::Value;
use std::process::Command;

#[test]
fn a_small_repeated_run_reports_medians_within_the_rounds_range() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portlog-check-bench"))
        .args(["--rejects", "20000", "--assignments", "200", "--checks", "5000", "--repeat", "2", "--json", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "portlog-check-bench failed: {}\n{stderr}", out.status);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let rows: Vec<&Value> = lines.iter().filter(|v| v["name"].is_string()).collect();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(rows.len(), 7, "{names:?}");
    for (i, r) in rows.iter().enumerate() {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} of {r}"));
        let want_rounds = if i < 5 { 2 } else { 1 };
        assert_eq!(r["rounds"].as_u64(), Some(want_rounds), "{r}");
        assert!(f("p50_min_ns") <= f("p50_ns") && f("p50_ns") <= f("p50_max_ns"), "{r}");
        assert!(f("p50_ns") > 0.0 && f("p50_ns") <= f("p99_ns") && f("p99_ns") <= f("max_ns"), "{r}");
    }
    assert!(names[0].starts_with("portlog decide"), "{names:?}");
    assert!(names[4].starts_with("HashSet"), "{names:?}");
    assert_eq!(lines.iter().filter(|v| v["memory_floor_mib"].is_number()).count(), 7);
}
