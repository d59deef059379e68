//! `portlog-capacity-check`: the projection of `portlog capacity` checked against reality.
//!
//! ```text
//! portlog-capacity-check [--days N] [--rate R] [--months M] [--start T] [--seed N]
//!                        [--sample-days N] [--sample-start T] [--sample-seed N]
//!                        [--tolerance F] [--chunk N] [--every N] [--dir DIR] [--sample-only]
//! ```
//!
//! A sample day (another seed, another date) gives the per-message figures, as a running
//! server's Stats would; then `--days` days at `--rate` are generated and ingested into an
//! engine in process, its clock following the records, with a retention run at every midnight;
//! at every midnight the bytes of the log's files are compared with the model's projection
//! (`portlog_client::capacity`, the code of `portlog capacity`). Exit status 1 when a day is
//! off by more than `--tolerance` (default 10 %). How it works: `benches/src/capacity_check.rs`;
//! results: docs/capacity.md.

// Shared with tests/capacity_projection.rs, each using part of it.
#[path = "../capacity_check.rs"]
#[allow(dead_code)]
mod capacity_check;

use anyhow::{anyhow, bail, Result};
use capacity_check::{CheckConfig, DayCheck};
use portlog_benches::disk::fs_type;
use portlog_client::capacity::svg::human_bytes;
use portlog_engine::time::{parse_time_ms, rfc3339_utc8};

const USAGE: &str = "usage: portlog-capacity-check [--days N] [--rate R] [--months M] [--start T] [--seed N]
                              [--sample-days N] [--sample-start T] [--sample-seed N]
                              [--tolerance F] [--chunk N] [--every N] [--dir DIR] [--sample-only]

  --days N          days of records to ingest and check (default 30)
  --rate R          messages per second of record time (default 1.5)
  --months M        retention in calendar months, engine and model (default 5)
  --start T         first day of the checked data (default 2026-01-01T00:00:00+08:00)
  --seed N          seed of the checked data (default 42)
  --sample-days N   days of the sample run that measures the per-message figures (default 1)
  --sample-start T  first day of the sample (default 2025-10-01T00:00:00+08:00)
  --sample-seed N   seed of the sample (default 4242)
  --tolerance F     largest accepted |measured/projected - 1| on any day (default 0.10)
  --chunk N         records per ingest call (default 10000)
  --every N         print every Nth day (default 1; the worst and the last are always printed)
  --dir DIR         where the data directories go (default: the temp dir, or the current
                    directory when the temp dir is a tmpfs); removed afterwards
  --sample-only     run the sample and print its figures (the defaults of `portlog capacity`)";

struct Args {
    cfg: CheckConfig,
    every: u32,
    sample_only: bool,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut cfg = CheckConfig {
        days: 30,
        rate_per_s: 1.5,
        months: 5,
        start_ms: parse_time_ms("2026-01-01T00:00:00+08:00").map_err(|e| anyhow!(e))?,
        seed: 42,
        sample_days: 1,
        sample_start_ms: parse_time_ms("2025-10-01T00:00:00+08:00").map_err(|e| anyhow!(e))?,
        sample_seed: 4242,
        tolerance: 0.10,
        chunk: 10_000,
        base: capacity_check::default_base()?,
    };
    let (mut every, mut sample_only) = (1u32, false);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--sample-only" => sample_only = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {
                let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
                let int =
                    |v: &str| v.replace('_', "").parse::<u64>().map_err(|_| anyhow!("{flag}: {v:?} is not a number"));
                let float = |v: &str| v.parse::<f64>().map_err(|_| anyhow!("{flag}: {v:?} is not a number"));
                let time = |v: &str| parse_time_ms(v).map_err(|e| anyhow!("{flag}: {e}"));
                let small = |v: &str| u32::try_from(int(v)?).map_err(|_| anyhow!("{flag}: {v:?} is too large"));
                match flag.as_str() {
                    "--days" => cfg.days = small(&v)?,
                    "--rate" => cfg.rate_per_s = float(&v)?,
                    "--months" => cfg.months = small(&v)?,
                    "--start" => cfg.start_ms = time(&v)?,
                    "--seed" => cfg.seed = int(&v)?,
                    "--sample-days" => cfg.sample_days = small(&v)?,
                    "--sample-start" => cfg.sample_start_ms = time(&v)?,
                    "--sample-seed" => cfg.sample_seed = int(&v)?,
                    "--tolerance" => cfg.tolerance = float(&v)?,
                    "--chunk" => cfg.chunk = int(&v)? as usize,
                    "--every" => every = small(&v)?.max(1),
                    "--dir" => cfg.base = v.into(),
                    _ => bail!("unknown flag {flag:?}\n{USAGE}"),
                }
            }
        }
    }
    if !(cfg.rate_per_s > 0.0 && cfg.rate_per_s.is_finite()) {
        bail!("--rate must be positive");
    }
    if cfg.days == 0 || cfg.sample_days == 0 || cfg.chunk == 0 || cfg.chunk > 100_000 {
        bail!("--days and --sample-days must be positive, --chunk 1..=100000");
    }
    if !(cfg.tolerance > 0.0 && cfg.tolerance < 1.0) {
        bail!("--tolerance must be in (0, 1)");
    }
    Ok(Args { cfg, every, sample_only })
}

fn date(ms: i64) -> String {
    rfc3339_utc8(ms).chars().take(10).collect()
}

fn print_day(d: &DayCheck) {
    let p = &d.projected;
    println!(
        "{:>4}  {}  {:>5}  {:>11}  {:>11.0}  {:>13}  {:>13.0}  {:>6.3}",
        d.day,
        date(d.at_ms),
        p.days,
        d.records,
        p.records,
        d.log_bytes,
        p.disk_bytes,
        d.ratio()
    );
}

fn main() -> Result<()> {
    let a = parse_args(std::env::args().skip(1))?;
    let cfg = &a.cfg;
    capacity_check::ensure_dir(&cfg.base)?;
    let per_day = cfg.rate_per_s * 86_400.0;
    println!(
        "portlog-capacity-check: {} days at {} messages/s ({per_day:.0} a day), {} months of retention, from {}; data in {} ({})",
        cfg.days,
        cfg.rate_per_s,
        cfg.months,
        date(cfg.start_ms),
        cfg.base.display(),
        fs_type(&cfg.base).unwrap_or_else(|| "?".into())
    );
    let sample = capacity_check::sample(cfg)?;
    print_sample(cfg, &sample);
    if a.sample_only {
        return Ok(());
    }
    let mut header = false;
    let (every, last) = (a.every, cfg.days);
    let report = capacity_check::check(cfg, sample, |d| {
        if !header {
            header = true;
            println!(
                "{:>4}  {:<10}  {:>5}  {:>11}  {:>11}  {:>13}  {:>13}  {:>6}",
                "day", "midnight", "days", "records", "projected", "log bytes", "projected", "ratio"
            );
        }
        if d.day % every == 0 || d.day == last || (d.ratio() - 1.0).abs() > cfg.tolerance {
            print_day(d);
        }
    })?;
    let worst = report.worst().ok_or_else(|| anyhow!("no day checked"))?;
    let final_day = report.days.last().ok_or_else(|| anyhow!("no day checked"))?;
    let max = report.days.iter().max_by_key(|d| d.log_bytes).ok_or_else(|| anyhow!("no day checked"))?;
    println!(
        "check: {} records ingested and checked in {:.1} s; {} segments expired by retention; registry {} at the end (not projected)",
        report.records,
        report.secs,
        report.segments_expired,
        human_bytes(final_day.registry_bytes as f64)
    );
    println!(
        "last day {}: measured {} ({}), projected {:.0} ({}), ratio {:.4}",
        date(final_day.at_ms),
        final_day.log_bytes,
        human_bytes(final_day.log_bytes as f64),
        final_day.projected.disk_bytes,
        human_bytes(final_day.projected.disk_bytes),
        final_day.ratio()
    );
    println!(
        "largest day {}: measured {} ({}), projected {:.0}, ratio {:.4}",
        date(max.at_ms),
        max.log_bytes,
        human_bytes(max.log_bytes as f64),
        max.projected.disk_bytes,
        max.ratio()
    );
    println!("worst day {} ({}): ratio {:.4}", worst.day, date(worst.at_ms), worst.ratio());
    if report.passed(cfg.tolerance) {
        println!("PASS: every day within {:.0} % of the projection", 100.0 * cfg.tolerance);
        Ok(())
    } else {
        println!("FAIL: day {} is off by {:.1} %", worst.day, 100.0 * (worst.ratio() - 1.0));
        std::process::exit(1);
    }
}

fn print_sample(cfg: &CheckConfig, s: &capacity_check::Sample) {
    let m = &s.measured;
    let pm = s.figures.per_message;
    println!(
        "sample: {} day(s) from {}, seed {}: {} records in {:.1} s; sealed {} B over {} messages ({} footers, {} dictionaries), open {} B over {} messages",
        cfg.sample_days,
        date(cfg.sample_start_ms),
        cfg.sample_seed,
        s.records,
        s.secs,
        m.sealed_bytes,
        m.sealed_records,
        m.index_bytes,
        m.dictionary_bytes,
        m.open_bytes,
        m.open_records
    );
    println!(
        "sample figures: sealed {:.2} B/message ({}), index share {:.2} % ({}), open {:.2} B/message ({})",
        pm.sealed,
        s.figures.sealed,
        100.0 * pm.index_share,
        s.figures.index_share,
        pm.open,
        s.figures.open
    );
}
