//! The capacity model of `portlog capacity` (`portlog_client::capacity`) checked against an
//! engine fed the same rate: shared by the `portlog-capacity-check` binary and the
//! `capacity_projection` integration test, which include this file with `#[path]` (it is not a
//! module of the library, so that the library's module list stays as it is).
//!
//! 1. **Sample**: one day (by default) of generated records at the rate, with another seed and
//!    another date than the check's data, ingested the way a server ingests a day; its per-message
//!    figures are taken from the engine's stats exactly as `portlog capacity` takes them from the
//!    server's Stats reply ([`portlog_client::capacity::per_message`]): sealed bytes per message
//!    and index share after sealing, open bytes per message of the day before sealing.
//! 2. **Check**: `days` days of records from `start_ms`, ingested in time order with the engine's
//!    clock following the records; at every midnight a retention run (as the background run
//!    does, here without its 10-minute lag) and a wait for the sealer; then the bytes of the
//!    log's files (`DIR/log`, open and sealed segments) are compared with the model's
//!    projection for that instant, computed from the sample's figures alone.

use anyhow::{bail, Context, Result};
use portlog_benches::disk::dir_bytes;
use portlog_benches::{Generator, Templates, WorkloadConfig};
use portlog_client::capacity::{per_message, Inputs, Measured, Model, PerMessage, Point, Sourced};
use portlog_engine::time::DAY_MS;
use portlog_engine::{Clock, Engine, EngineConfig, LogConfig, ManualClock, RetentionConfig, RetentionRun, SyncPolicy};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to generate and check.
#[derive(Debug, Clone)]
pub struct CheckConfig {
    /// Days of records to ingest and check.
    pub days: u32,
    /// Messages per second of record time.
    pub rate_per_s: f64,
    /// Retention in calendar months (the engine's and the model's).
    pub months: u32,
    /// First day of the checked data (local midnight, ms since the epoch).
    pub start_ms: i64,
    /// Seed of the checked data.
    pub seed: u64,
    /// Days of the sample run.
    pub sample_days: u32,
    /// First day of the sample (another date than the check's).
    pub sample_start_ms: i64,
    /// Seed of the sample (another seed than the check's).
    pub sample_seed: u64,
    /// Largest accepted |measured / projected - 1|.
    pub tolerance: f64,
    /// Records per ingest call.
    pub chunk: usize,
    /// Where the data directories go.
    pub base: PathBuf,
}

/// The sample run's figures.
#[derive(Debug, Clone)]
pub struct Sample {
    /// What the engine measured (the fields of the server's Stats reply).
    pub measured: Measured,
    /// The per-message figures, through the same function the CLI uses.
    pub figures: Sourced,
    /// Records ingested.
    pub records: u64,
    /// Wall time of the run, s.
    pub secs: f64,
}

/// One checked midnight.
#[derive(Debug, Clone)]
pub struct DayCheck {
    /// 1 for the end of the first day.
    pub day: u32,
    /// The instant (a local midnight).
    pub at_ms: i64,
    /// Records the log holds.
    pub records: u64,
    /// Bytes of `DIR/log`'s files.
    pub log_bytes: u64,
    /// Bytes of the registry's files (not projected).
    pub registry_bytes: u64,
    /// The model's projection.
    pub projected: Point,
}

impl DayCheck {
    /// Measured over projected disk bytes.
    pub fn ratio(&self) -> f64 {
        if self.projected.disk_bytes > 0.0 {
            self.log_bytes as f64 / self.projected.disk_bytes
        } else if self.log_bytes == 0 {
            1.0
        } else {
            f64::INFINITY
        }
    }
}

/// The whole check.
#[derive(Debug, Clone)]
pub struct Report {
    /// The sample.
    pub sample: Sample,
    /// Every midnight, in order.
    pub days: Vec<DayCheck>,
    /// Records ingested.
    pub records: u64,
    /// Segments deleted by retention.
    pub segments_expired: u64,
    /// Wall time of the check run, s.
    pub secs: f64,
}

impl Report {
    /// The day whose ratio is furthest from 1.
    pub fn worst(&self) -> Option<&DayCheck> {
        self.days.iter().max_by(|a, b| (a.ratio() - 1.0).abs().total_cmp(&(b.ratio() - 1.0).abs()))
    }

    /// True when every day is within `tolerance`.
    pub fn passed(&self, tolerance: f64) -> bool {
        self.days.iter().all(|d| (d.ratio() - 1.0).abs() <= tolerance)
    }
}

fn engine_config(months: u32) -> EngineConfig {
    EngineConfig {
        // No fsync: durability does not change a byte of the files, and the check measures bytes.
        log: LogConfig { sync: SyncPolicy::None, ..LogConfig::default() },
        // Retention runs are driven by the check, at every midnight.
        retention: RetentionConfig { enabled: false, months, ..RetentionConfig::default() },
        ..EngineConfig::default()
    }
}

/// Waits until at most one open segment per shard is left, today's: the writers retire a day
/// once the clock is past its end plus the grace, and the sealer seals it in the background.
fn wait_sealed(e: &Engine, shards: u32) -> Result<()> {
    let t = Instant::now();
    loop {
        let st = e.log().stats();
        if st.open_segments <= u64::from(shards) {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(300) {
            bail!("{} open segments after 300 s; the sealer is stuck", st.open_segments);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ingests the generator's records up to `end_ms` (exclusive) in chunks, the clock following
/// them. Returns the number of records.
fn ingest_until(
    e: &Engine,
    clock: &ManualClock,
    gen: &mut std::iter::Peekable<Generator>,
    end_ms: i64,
    chunk: usize,
) -> Result<u64> {
    let mut n = 0u64;
    loop {
        let mut batch = Vec::with_capacity(chunk);
        while batch.len() < chunk {
            match gen.next_if(|r| r.ts_ms < end_ms) {
                Some(r) => batch.push(r),
                None => break,
            }
        }
        let Some(last) = batch.last() else { return Ok(n) };
        clock.set_ms(last.ts_ms.max(clock.now_ms()));
        n += batch.len() as u64;
        e.ingest(batch).context("ingest")?;
    }
}

fn generator(seed: u64, start_ms: i64, rate_per_s: f64) -> Result<std::iter::Peekable<Generator>> {
    let templates = Arc::new(Templates::load_default()?);
    let wl = WorkloadConfig { seed, start_ms, rate_per_s, ..WorkloadConfig::default() };
    Ok(Generator::new(templates, wl)?.peekable())
}

/// Runs the sample: `sample_days` days ingested as the check ingests; the open figure is taken
/// at the end of the last day (that day still open), the sealed ones after sealing everything.
pub fn sample(cfg: &CheckConfig) -> Result<Sample> {
    if cfg.sample_days == 0 || cfg.chunk == 0 {
        bail!("sample days and chunk must be positive");
    }
    let t = Instant::now();
    let dir = tempfile::Builder::new().prefix("portlog-capacity-sample-").tempdir_in(&cfg.base)?;
    let clock = Arc::new(ManualClock::new(cfg.sample_start_ms));
    let e = Engine::open(dir.path(), engine_config(cfg.months), clock.clone())?;
    let mut gen = generator(cfg.sample_seed, cfg.sample_start_ms, cfg.rate_per_s)?;
    let mut records = 0;
    let end = cfg.sample_start_ms + i64::from(cfg.sample_days) * DAY_MS;
    for d in 1..=i64::from(cfg.sample_days) {
        records += ingest_until(&e, &clock, &mut gen, cfg.sample_start_ms + d * DAY_MS, cfg.chunk)?;
    }
    clock.set_ms(end);
    wait_sealed(&e, e.log().shard_count())?;
    let open = Measured::from_log(&e.log().stats());
    e.log().seal_all()?;
    let sealed = Measured::from_log(&e.log().stats());
    let measured = Measured { open_records: open.open_records, open_bytes: open.open_bytes, ..sealed };
    let figures = per_message(Some(&measured), None, None);
    e.close();
    Ok(Sample { measured, figures, records, secs: t.elapsed().as_secs_f64() })
}

/// The model the check compares with: the sample's figures, the engine's default timings, and
/// retention acting at the midnight itself (the check runs it then).
pub fn model(cfg: &CheckConfig, per: PerMessage) -> Result<Model> {
    let mut inputs = Inputs::new(cfg.rate_per_s, cfg.months, cfg.start_ms, per);
    inputs.retention_lag_ms = 0;
    Ok(Model::new(inputs)?)
}

/// Runs the sample, then the check; `progress` sees every checked midnight as it is measured.
pub fn run(cfg: &CheckConfig, progress: impl FnMut(&DayCheck)) -> Result<Report> {
    let sample = sample(cfg)?;
    check(cfg, sample, progress)
}

/// Runs the check with the figures of `sample`; `progress` sees every checked midnight as it is
/// measured.
pub fn check(cfg: &CheckConfig, sample: Sample, mut progress: impl FnMut(&DayCheck)) -> Result<Report> {
    if cfg.days == 0 || cfg.chunk == 0 {
        bail!("days and chunk must be positive");
    }
    let model = model(cfg, sample.figures.per_message)?;
    let t = Instant::now();
    let dir = tempfile::Builder::new().prefix("portlog-capacity-check-").tempdir_in(&cfg.base)?;
    let clock = Arc::new(ManualClock::new(cfg.start_ms));
    let e = Engine::open(dir.path(), engine_config(cfg.months), clock.clone())?;
    let shards = e.log().shard_count();
    let mut gen = generator(cfg.seed, cfg.start_ms, cfg.rate_per_s)?;
    let (mut records, mut expired) = (0u64, 0u64);
    let mut days = Vec::with_capacity(cfg.days as usize);
    for d in 1..=cfg.days {
        let midnight = cfg.start_ms + i64::from(d) * DAY_MS;
        records += ingest_until(&e, &clock, &mut gen, midnight, cfg.chunk)?;
        clock.set_ms(midnight);
        let r = e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(midnight) })?;
        expired += r.segments_deleted;
        wait_sealed(&e, shards)?;
        let log_bytes = dir_bytes(&dir.path().join("log"), ".seg")?.total;
        let registry_bytes = dir_bytes(&dir.path().join("registry"), ".sst")?.total;
        let day = DayCheck {
            day: d,
            at_ms: midnight,
            records: e.log().stats().records,
            log_bytes,
            registry_bytes,
            projected: model.at(midnight),
        };
        progress(&day);
        days.push(day);
    }
    e.close();
    Ok(Report { sample, days, records, segments_expired: expired, secs: t.elapsed().as_secs_f64() })
}

/// Where scratch directories go by default.
pub fn default_base() -> Result<PathBuf> {
    portlog_benches::disk::scratch_base()
}

/// `path` exists and is a directory.
pub fn ensure_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}
