//! A small run of `portlog-index-bench --json`: both structures present, each batch figure
//! ordered (p50 ≤ p99 ≤ p99.9 ≤ max), every row and lookup counted.

use serde_json::Value;
use std::process::Command;

#[test]
fn a_small_run_reports_both_indexes_with_ordered_figures() {
    let out = Command::new(env!("CARGO_BIN_EXE_portlog-index-bench"))
        .args(["--records", "30000", "--numbers", "50000", "--repeat", "2", "--lookups", "500", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "portlog-index-bench failed: {}\n{stderr}", out.status);
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["index"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("portlog") && names[1].starts_with("one map"), "{names:?}");
    for r in &rows {
        assert_eq!(r["records"].as_u64(), Some(30_000), "{r}");
        let distinct = r["distinct_numbers"].as_u64().unwrap();
        assert!(distinct > 1_000 && distinct <= 30_000, "{r}");
        let f = |k: &str| r["figures"][k].as_f64().unwrap_or_else(|| panic!("{k} of {r}"));
        assert!(f("rows_per_s") > 0.0 && f("lookup_ns") > 0.0, "{r}");
        assert!(f("batch_p50_us") > 0.0, "{r}");
        assert!(f("batch_p50_us") <= f("batch_p99_us") && f("batch_p99_us") <= f("batch_p999_us"), "{r}");
        assert!(f("batch_p999_us") <= f("batch_max_us"), "{r}");
        assert!(f("batches_over_10ms") <= f("batches_over_1ms") && f("batches_over_1ms") <= 300.0, "{r}");
    }
    // A bad flag is named.
    let bad = Command::new(env!("CARGO_BIN_EXE_portlog-index-bench")).args(["--batch", "0"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--batch"), "{}", String::from_utf8_lossy(&bad.stderr));
}
