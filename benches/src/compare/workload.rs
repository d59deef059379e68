//! The workload of the side-by-side run: the command-line flags of [`WorkloadConfig`] (shared
//! with `portlog-gen`), the month that is expired, and one pass over the generated records that
//! hands them out in groups and draws the queries from them.

use crate::{to_json_line, Generator, Templates, WorkloadConfig};
use anyhow::{anyhow, bail, Result};
use portlog_engine::time::{add_months_ms, civil_from_days, days_from_civil, parse_time_ms, DAY_MS, UTC8_OFFSET_MS};
use portlog_engine::{Direction, PhoneNumber, Record, RegistryConfig, SubPort};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// Help text of the flags [`apply_flag`] understands.
pub const WORKLOAD_FLAGS: &str = "  --seed N           seed of every random choice (default 42)
  --sub-ports N      distinct sub-ports (default 2000)
  --numbers N        distinct user numbers (default 1000000)
  --sub-port-zipf S  Zipf exponent of sub-port popularity, 0 = uniform (default 1.0)
  --number-zipf S    Zipf exponent of number popularity, 0 = uniform (default 0.8)
  --mo-fraction F    fraction of records that are MO (default 0.1)
  --reject-rate F    fraction of MOs that are a reject keyword, R or r (default 0.3)
  --start T          record time of the first record, RFC 3339 or ms since the epoch
                     (default 2026-05-01T09:00:00+08:00)";

/// Applies one workload flag and its value to `cfg`; `Ok(false)` when `flag` is not one of
/// [`WORKLOAD_FLAGS`] (nor `--rate`, which [`crate::compare`] derives from `--months`).
pub fn apply_flag(cfg: &mut WorkloadConfig, flag: &str, v: &str) -> Result<bool> {
    let float = || -> Result<f64> { v.replace('_', "").parse().map_err(|_| anyhow!("{flag}: {v:?} is not a number")) };
    let int = || -> Result<u64> { v.replace('_', "").parse().map_err(|_| anyhow!("{flag}: {v:?} is not a number")) };
    match flag {
        "--seed" => cfg.seed = int()?,
        "--sub-ports" => cfg.sub_ports = u32::try_from(int()?).map_err(|_| anyhow!("--sub-ports: too large"))?,
        "--numbers" => cfg.numbers = int()?,
        "--sub-port-zipf" => cfg.sub_port_zipf = float()?,
        "--number-zipf" => cfg.number_zipf = float()?,
        "--mo-fraction" => cfg.mo_fraction = float()?,
        "--reject-rate" => cfg.reject_rate = float()?,
        "--rate" => cfg.rate_per_s = float()?,
        "--start" => {
            cfg.start_ms = match v.parse::<i64>() {
                Ok(ms) => ms,
                Err(_) => parse_time_ms(v).map_err(|e| anyhow!("--start: {e}"))?,
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Average length of a month in ms (365.2425 / 12 days): `--months` is turned into a rate with it.
pub const MONTH_MS: f64 = 365.2425 / 12.0 * DAY_MS as f64;

/// The records-per-second of record time that spreads `records` over `months`.
pub fn rate_for(records: u64, months: f64) -> f64 {
    records as f64 / (months * MONTH_MS / 1000.0)
}

/// Start of the calendar month (UTC+8) holding `ts_ms`.
pub fn month_start_ms(ts_ms: i64) -> i64 {
    let (y, m, _) = civil_from_days((ts_ms + UTC8_OFFSET_MS).div_euclid(DAY_MS));
    days_from_civil(y, m, 1) * DAY_MS - UTC8_OFFSET_MS
}

/// The calendar month (UTC+8) that is expired: the one the workload starts in, `[from, to)`.
pub fn expiry_month(cfg: &WorkloadConfig) -> (i64, i64) {
    let from = month_start_ms(cfg.start_ms);
    (from, add_months_ms(from, 1, UTC8_OFFSET_MS))
}

/// `YYYY_MM` of the month holding `ts_ms` (UTC+8): the suffix of PostgreSQL's partition names.
pub fn month_suffix(ts_ms: i64) -> String {
    let (y, m, _) = civil_from_days((ts_ms + UTC8_OFFSET_MS).div_euclid(DAY_MS));
    format!("{y:04}_{m:02}")
}

/// What the pass over the records found, and the queries drawn from them. The same
/// configuration gives the same summary in every peer's process.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Records handed out.
    pub records: u64,
    /// Their size as JSON lines (each line and its newline): the "MB" of MB/s.
    pub json_bytes: u64,
    /// Records inside the expired month.
    pub month_records: u64,
    /// Time of the first and of the last record.
    pub first_ts_ms: i64,
    /// Time of the last record.
    pub last_ts_ms: i64,
    /// MOs whose text is a reject keyword.
    pub reject_mos: u64,
    /// Check queries: (sub-port, number); the first `check_hits` are pairs an MO "R" rejected.
    pub checks: Vec<(SubPort, PhoneNumber)>,
    /// How many of `checks` come from reject MOs (the others from MTs).
    pub check_hits: usize,
    /// Numbers to trace (taken from records, so weighted by activity).
    pub traces: Vec<PhoneNumber>,
}

/// One pass over `records` records of a workload, in groups.
pub struct Pass {
    gen: Generator,
    left: u64,
    group: usize,
    month: (i64, i64),
    keywords: Vec<String>,
    rng: StdRng,
    mt_pairs: Reservoir<(SubPort, PhoneNumber)>,
    reject_pairs: Reservoir<(SubPort, PhoneNumber)>,
    numbers: Reservoir<PhoneNumber>,
    summary: Summary,
}

impl Pass {
    /// A pass over `records` records of `cfg`, handed out `group` at a time; `checks` check
    /// queries of which `hit_percent` % are rejected pairs, and `traces` numbers to trace.
    pub fn new(
        cfg: WorkloadConfig,
        records: u64,
        group: usize,
        checks: usize,
        hit_percent: f64,
        traces: usize,
    ) -> Result<Self> {
        if group == 0 {
            bail!("the group size must be positive");
        }
        let hits = ((checks as f64) * hit_percent / 100.0).round() as usize;
        let month = expiry_month(&cfg);
        let seed = cfg.seed;
        let gen = Generator::new(Arc::new(Templates::load_default()?), cfg)?;
        Ok(Self {
            gen,
            left: records,
            group,
            month,
            keywords: RegistryConfig::default().reject_keywords,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_c0de),
            mt_pairs: Reservoir::new(checks - hits.min(checks)),
            reject_pairs: Reservoir::new(hits.min(checks)),
            numbers: Reservoir::new(traces),
            summary: Summary { first_ts_ms: i64::MAX, ..Summary::default() },
        })
    }

    /// Whether `r` is an MO reject keyword, as the engine's ingest judges it (so that the
    /// peers register the same rejects).
    pub fn is_reject(&self, r: &Record) -> bool {
        is_reject_mo(r, &self.keywords)
    }

    /// The next group of records, `None` at the end.
    pub fn next_group(&mut self) -> Option<Vec<Record>> {
        let n = (self.left.min(self.group as u64)) as usize;
        if n == 0 {
            return None;
        }
        let group: Vec<Record> = self.gen.by_ref().take(n).collect();
        self.left -= group.len() as u64;
        for r in &group {
            self.observe(r);
        }
        Some(group)
    }

    fn observe(&mut self, r: &Record) {
        let s = &mut self.summary;
        s.records += 1;
        s.json_bytes += to_json_line(r).len() as u64 + 1;
        s.first_ts_ms = s.first_ts_ms.min(r.ts_ms);
        s.last_ts_ms = s.last_ts_ms.max(r.ts_ms);
        s.month_records += u64::from(r.ts_ms >= self.month.0 && r.ts_ms < self.month.1);
        let rng = &mut self.rng;
        self.numbers.offer(rng, r.peer);
        if r.dir == Direction::Mt {
            self.mt_pairs.offer(rng, (r.sub_port.clone(), r.peer));
        } else if is_reject_mo(r, &self.keywords) {
            s.reject_mos += 1;
            self.reject_pairs.offer(rng, (r.sub_port.clone(), r.peer));
        }
    }

    /// The summary, once every group has been taken.
    pub fn finish(mut self) -> Summary {
        let mut s = std::mem::take(&mut self.summary);
        s.checks = self.reject_pairs.items;
        s.check_hits = s.checks.len();
        s.checks.extend(self.mt_pairs.items);
        s.traces = self.numbers.items;
        if s.records == 0 {
            s.first_ts_ms = 0;
        }
        s
    }
}

/// Whether `r` is an MO whose text is one of the reject `keywords`.
pub fn is_reject_mo(r: &Record, keywords: &[String]) -> bool {
    r.dir == Direction::Mo && portlog_engine::registry::check::is_reject_keyword(&r.text, keywords)
}

/// A uniform sample of fixed size of a stream (Algorithm R).
#[derive(Debug)]
struct Reservoir<T> {
    cap: usize,
    seen: u64,
    items: Vec<T>,
}

impl<T> Reservoir<T> {
    fn new(cap: usize) -> Self {
        Self { cap, seen: 0, items: Vec::with_capacity(cap.min(1 << 20)) }
    }

    fn offer(&mut self, rng: &mut StdRng, item: T) {
        self.seen += 1;
        if self.items.len() < self.cap {
            self.items.push(item);
        } else if self.cap > 0 {
            let j = rng.gen_range(0..self.seen);
            if (j as usize) < self.cap {
                self.items[j as usize] = item;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_rates() {
        let cfg = WorkloadConfig::default();
        let (from, to) = expiry_month(&cfg);
        assert_eq!(portlog_engine::time::rfc3339_utc8(from), "2026-05-01T00:00:00.000+08:00");
        assert_eq!(portlog_engine::time::rfc3339_utc8(to), "2026-06-01T00:00:00.000+08:00");
        assert_eq!(month_suffix(to - 1), "2026_05");
        assert_eq!(month_start_ms(to + 5 * DAY_MS), to);
        let r = rate_for(2_000_000, 2.5);
        assert!((0.30..0.31).contains(&r), "{r}");
    }

    #[test]
    fn flags_apply() {
        let mut c = WorkloadConfig::default();
        assert!(apply_flag(&mut c, "--numbers", "1_000").unwrap());
        assert!(apply_flag(&mut c, "--start", "2026-06-01T00:00:00+08:00").unwrap());
        assert!(!apply_flag(&mut c, "--records", "5").unwrap());
        assert!(apply_flag(&mut c, "--mo-fraction", "x").is_err());
        assert_eq!(c.numbers, 1_000);
        assert_eq!(month_suffix(c.start_ms), "2026_06");
    }

    #[test]
    fn a_pass_is_deterministic_and_draws_its_queries() {
        let run = || {
            let cfg = WorkloadConfig { mo_fraction: 0.3, ..WorkloadConfig::default() };
            let mut p = Pass::new(cfg, 10_001, 1_000, 100, 20.0, 10).unwrap();
            let mut groups = 0;
            while let Some(g) = p.next_group() {
                assert!(g.len() <= 1_000);
                groups += 1;
            }
            assert_eq!(groups, 11);
            p.finish()
        };
        let (a, b) = (run(), run());
        assert_eq!(a.records, 10_001);
        assert_eq!((a.checks.len(), a.check_hits, a.traces.len()), (100, 20, 10));
        assert_eq!(a.checks, b.checks);
        assert_eq!(a.traces, b.traces);
        assert!(a.reject_mos > 100 && a.json_bytes > 100 * a.records);
        assert_eq!(a.month_records, a.records, "10k records at 200/s stay in May");
    }
}
