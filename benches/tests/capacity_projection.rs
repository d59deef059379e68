//! The capacity model checked against an engine, small: 45 days at 0.15 messages/s (about
//! 580,000 records) under **one** month of retention, so that the run covers growth, the first
//! expiry, the steady state and a month end whose missing days are clamped (29-31 January go
//! together on 1 March). The per-message figures come from a sample day with another seed and
//! date. `portlog-capacity-check` runs the same code at a larger size (docs/capacity.md).
#![allow(clippy::unwrap_used)]

#[path = "../src/capacity_check.rs"]
#[allow(dead_code)]
mod capacity_check;

use capacity_check::{CheckConfig, DayCheck};
use portlog_client::capacity::PerMessage;
use portlog_engine::time::parse_time_ms;

#[test]
fn projection_is_within_ten_percent_of_the_measured_disk_use() {
    let base = capacity_check::default_base().unwrap();
    let cfg = CheckConfig {
        days: 45,
        rate_per_s: 0.15,
        months: 1,
        start_ms: parse_time_ms("2026-01-20T00:00:00+08:00").unwrap(),
        seed: 7,
        sample_days: 1,
        sample_start_ms: parse_time_ms("2025-10-01T00:00:00+08:00").unwrap(),
        sample_seed: 4242,
        tolerance: 0.10,
        chunk: 10_000,
        base,
    };
    let report = capacity_check::run(&cfg, |_| {}).unwrap();
    let s = &report.sample;
    assert!(s.records > 10_000, "the sample must be large enough to be used: {}", s.records);
    let line = |d: &DayCheck| {
        format!(
            "day {} records {} bytes {} projected {:.0} ({} days) ratio {:.4}",
            d.day,
            d.records,
            d.log_bytes,
            d.projected.disk_bytes,
            d.projected.days,
            d.ratio()
        )
    };
    let all: Vec<String> = report.days.iter().map(line).collect();
    assert!(report.passed(0.10), "sample {:?}\n{}", s.figures, all.join("\n"));
    assert!(report.segments_expired > 0, "retention ran: {}", all.join("\n"));
    // The steady state: from 1 March (the clamped days gone) the log holds 1 February onwards.
    let mar1 = parse_time_ms("2026-03-01T00:00:00+08:00").unwrap();
    let d = report.days.iter().find(|d| d.at_ms == mar1).unwrap();
    assert_eq!(d.projected.days, 28, "{}", line(d));
    let peak = report.days.iter().map(|d| d.log_bytes).max().unwrap();
    let last = report.days.last().unwrap();
    assert!(last.log_bytes < peak, "disk use fell once expiry started: {}", all.join("\n"));

    // The check has teeth: a model without expiry, or one that ignores the open day's
    // uncompressed rows, is more than 10 % off.
    let per = s.figures.per_message;
    let five = CheckConfig { months: 5, ..cfg.clone() };
    let no_expiry = capacity_check::model(&five, per).unwrap();
    assert!(last.log_bytes as f64 / no_expiry.at(last.at_ms).disk_bytes < 0.9);
    let sealed_only = capacity_check::model(&cfg, PerMessage { open: per.sealed, ..per }).unwrap();
    let day1 = &report.days[0];
    assert!(day1.log_bytes as f64 / sealed_only.at(day1.at_ms).disk_bytes > 1.1);
}
