//! Retention: the message log is kept `months` calendar months (default 5, in the log's zone,
//! UTC+8) and then expired by whole sealed segments; reject and consent records are purged
//! `months` after their assignment's end; ledger history and the audit trail are kept unless
//! configured otherwise. Runs in the background every `interval_ms` and on demand
//! ([`crate::Engine::retention_run`]); every real run that changed something is kept as a
//! [`RetentionReport`] in the registry (`retention` column family).
//!
//! # When a record goes
//!
//! A record of time `t` is *eligible* once the clock reaches `time::add_months_ms(t, months)`:
//! the same day and time of day `months` later, a day the later month lacks being clamped up
//! to the first instant of the month after (31 January + 5 months is 1 July 00:00). The
//! records eligible at `now` are exactly those older than `time::retention_cutoff_ms(now)`.
//! A sealed segment goes once its whole bucket is older than the cutoff: a day's segment goes
//! at the end of the same day `months` later, so a record goes at most one bucket (a day) plus
//! one `interval_ms` after it became eligible, and never before.
//!
//! # The clock
//!
//! Retention acts on the engine clock, checked against the *high-water mark*: the largest clock
//! time at which a real run acted, persisted in the registry (`meta` key
//! `retention_high_water_ms`); before the first run, the newest record's time stands in.
//! * A clock behind the mark (it jumped back) is acted on as it is: it makes the cutoff older,
//!   so a run deletes only what was already eligible at the mark. A warning says so.
//! * A clock more than `clock_jump_max_ms` ahead of the mark is refused
//!   ([`Error::ClockAhead`], a warning in the log, a refusal in the history): nothing is
//!   deleted until an operator confirms the jump (`future_clock_confirm_until`, or
//!   [`RetentionRun::confirm_clock_until_ms`]). A dry run still reports what would go.
//! * The mark only moves forward, so a clock that jumped ahead and was confirmed cannot be
//!   "un-confirmed" by a later jump back; a wrong jump of less than `clock_jump_max_ms` can make
//!   retention delete up to that much early, which is why the default is small (3 days).

use crate::clock::SharedClock;
use crate::config::RetentionConfig;
use crate::error::{Error, Result};
use crate::log::expire::{ExpireOptions, ExpiredSegment};
use crate::log::Log;
use crate::registry::Registry;
use crate::time::{add_months_ms, bucket_start_ms, retention_cutoff_ms, rfc3339_utc8};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// [`crate::Engine::retention_run`] (an operator, the CLI).
    #[default]
    OnDemand,
    /// The background schedule.
    Schedule,
}

/// Options of an on-demand run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionRun {
    /// Only report what would go, with sizes; delete nothing, record nothing.
    pub dry_run: bool,
    /// The operator has checked the clock: act even if it is further ahead of the high-water
    /// mark than `clock_jump_max_ms`, as long as it reads at most this instant.
    pub confirm_clock_until_ms: Option<i64>,
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// Sequence number in the history, from 1 (0: not recorded, e.g. a dry run).
    pub seq: u64,
    /// A dry run.
    pub dry_run: bool,
    /// What started it.
    pub trigger: Trigger,
    /// The engine clock the run judged eligibility against, ms since the epoch.
    pub now_ms: i64,
    /// Retention in months.
    pub months: u32,
    /// Records older than this were eligible.
    pub cutoff_ms: i64,
    /// Sealed segments deleted.
    pub segments_deleted: u64,
    /// Records in them.
    pub records_deleted: u64,
    /// Bytes of their files.
    pub bytes_freed: u64,
    /// Open segments of eligible buckets sealed first (then deleted with the others).
    pub open_segments_sealed: u64,
    /// The segments, per shard, oldest first.
    pub segments: Vec<ExpiredSegment>,
    /// Reject records purged (their assignment ended `months` ago).
    pub rejects_purged: u64,
    /// The assignments whose rejects were purged.
    pub reject_assignments: Vec<u32>,
    /// Consent records purged.
    pub consents_purged: u64,
    /// Ledger history events purged (only with `purge_ledger_history`).
    pub ledger_events_purged: u64,
    /// Audit entries purged (only with `purge_audit`).
    pub audit_purged: u64,
    /// Oldest record time left in the log (dry run: that would be left).
    pub oldest_record_ms: Option<i64>,
    /// Wall time the run took, µs.
    pub duration_us: u64,
    /// Things an operator should see (a clock behind the high-water mark, a confirmed jump, a
    /// segment that could not be removed).
    pub warnings: Vec<String>,
    /// Why the run refused to act ([`Error::ClockAhead`]'s message); nothing was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl RetentionReport {
    /// True when the run removed or purged anything.
    pub fn changed_anything(&self) -> bool {
        self.segments_deleted
            + self.rejects_purged
            + self.consents_purged
            + self.ledger_events_purged
            + self.audit_purged
            > 0
    }
}

/// Where retention stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionStatus {
    /// Background runs on.
    pub enabled: bool,
    /// Retention in months.
    pub months: u32,
    /// Background interval, ms.
    pub interval_ms: u64,
    /// The engine clock.
    pub now_ms: i64,
    /// Records older than this are eligible now.
    pub cutoff_ms: i64,
    /// Oldest record time held.
    pub oldest_record_ms: Option<i64>,
    /// When the oldest record's segment becomes eligible (its bucket's last instant + months).
    pub oldest_segment_eligible_ms: Option<i64>,
    /// The high-water mark (see the module docs).
    pub high_water_ms: Option<i64>,
    /// Runs recorded in the history.
    pub runs_recorded: u64,
    /// The last recorded run.
    pub last_run: Option<RetentionReport>,
    /// Set when the clock is further ahead of the high-water mark than allowed: runs refuse.
    pub clock_warning: Option<String>,
}

const MARK: &str = "the last retention run";

fn registry_mark(what: &str) -> bool {
    what == MARK
}

/// The eligibility rule and limits handed to the registry's purges.
#[derive(Debug)]
pub(crate) struct PurgeCtx<'a> {
    pub now_ms: i64,
    pub months: u32,
    pub tz_offset_ms: i64,
    pub dry_run: bool,
    pub batch_rows: usize,
    pub cancel: &'a AtomicBool,
}

impl PurgeCtx<'_> {
    /// Is something dated `t_ms` (an assignment's end, a record) `months` old?
    pub fn eligible(&self, t_ms: i64) -> bool {
        add_months_ms(t_ms, self.months, self.tz_offset_ms) <= self.now_ms
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}

/// The retention runner of one engine: configuration, the lock that serialises runs, the
/// cancel flag raised at close.
#[derive(Debug)]
pub(crate) struct Retention {
    pub cfg: RetentionConfig,
    confirm_until_ms: Option<i64>,
    run_lock: Mutex<()>,
    pub cancel: AtomicBool,
    /// The last scheduled run was refused (a refusal is recorded once, not every interval).
    scheduled_refused: AtomicBool,
}

impl Retention {
    pub fn new(cfg: RetentionConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.months < 5 {
            tracing::warn!(months = cfg.months, "retention is shorter than the 5 months the regulation requires");
        }
        let confirm_until_ms = cfg.confirm_until_ms()?;
        Ok(Retention {
            cfg,
            confirm_until_ms,
            run_lock: Mutex::new(()),
            cancel: AtomicBool::new(false),
            scheduled_refused: AtomicBool::new(false),
        })
    }

    /// The time retention's clock checks compare with, and what it is.
    fn reference(log: &Log, registry: &Registry) -> Result<Option<(i64, &'static str)>> {
        Ok(match registry.retention_high_water()? {
            Some(h) => Some((h, MARK)),
            None => log.stats().newest_ts_ms.map(|t| (t, "the newest record")),
        })
    }

    /// The instant an operator confirmed the clock up to (the run's option, else the
    /// configuration's), if `now` is within it.
    fn confirmed_until(&self, now: i64, confirm: Option<i64>) -> Option<i64> {
        confirm.or(self.confirm_until_ms).filter(|&c| now <= c)
    }

    /// The refusal for a clock `now` too far ahead of the reference, unless confirmed.
    fn clock_check(&self, now: i64, reference: Option<(i64, &'static str)>, confirm: Option<i64>) -> Option<Error> {
        let (r, what) = reference?;
        let ahead = now - r;
        let confirmed = self.confirmed_until(now, confirm).is_some();
        (ahead > self.cfg.clock_jump_max_ms && !confirmed).then_some(Error::ClockAhead {
            now_ms: now,
            reference_ms: r,
            reference_what: what,
            ahead_ms: ahead,
            max_ms: self.cfg.clock_jump_max_ms,
        })
    }

    /// One run (see the module docs). Runs are serialised.
    pub fn run(
        &self,
        log: &Log,
        registry: &Registry,
        clock: &SharedClock,
        opts: RetentionRun,
        trigger: Trigger,
    ) -> Result<RetentionReport> {
        let _one_at_a_time = self.run_lock.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let now = clock.now_ms();
        let tz = log.config().tz_offset_ms;
        let months = self.cfg.months;
        let mut report = RetentionReport {
            dry_run: opts.dry_run,
            trigger,
            now_ms: now,
            months,
            cutoff_ms: retention_cutoff_ms(now, months, tz),
            ..RetentionReport::default()
        };
        let reference = Self::reference(log, registry)?;
        if let Some((r, what)) = reference {
            // Only the mark says the clock went back: the newest record may be a little ahead
            // of a right clock (`future_skew_ms`).
            if registry_mark(what) && r - now > 60_000 {
                let msg = format!(
                    "the clock ({}) is {} ms behind {what} ({}): acting on the clock, which deletes only what was \
                     already eligible then",
                    rfc3339_utc8(now),
                    r - now,
                    rfc3339_utc8(r)
                );
                tracing::warn!("retention: {msg}");
                report.warnings.push(msg);
            } else if now - r > self.cfg.clock_jump_max_ms {
                if let Some(c) = self.confirmed_until(now, opts.confirm_clock_until_ms) {
                    report.warnings.push(format!(
                        "the clock is {} ms ahead of {what} ({}); jump confirmed until {}",
                        now - r,
                        rfc3339_utc8(r),
                        rfc3339_utc8(c)
                    ));
                }
            }
        }
        if let Some(refusal) = self.clock_check(now, reference, opts.confirm_clock_until_ms) {
            tracing::warn!(error = %refusal, "retention refused");
            report.refused = Some(refusal.to_string());
            if !opts.dry_run {
                let first = trigger == Trigger::OnDemand || !self.scheduled_refused.swap(true, Ordering::AcqRel);
                if first {
                    report.duration_us = started.elapsed().as_micros() as u64;
                    registry.retention_commit(None, Some(&mut report))?;
                }
                return Err(refusal);
            }
        } else if trigger == Trigger::Schedule && !opts.dry_run {
            self.scheduled_refused.store(false, Ordering::Release);
        }

        let expiry = log.expire(&ExpireOptions {
            cutoff_ms: report.cutoff_ms,
            dry_run: opts.dry_run,
            pause: Duration::from_millis(self.cfg.delete_pause_ms),
            cancel: &self.cancel,
        })?;
        report.segments_deleted = expiry.segments.len() as u64;
        report.records_deleted = expiry.segments.iter().map(|s| s.records).sum();
        report.bytes_freed = expiry.segments.iter().map(|s| s.bytes).sum();
        report.open_segments_sealed =
            if opts.dry_run { expiry.segments.iter().filter(|s| s.open).count() as u64 } else { expiry.open_sealed };
        report.segments = expiry.segments;
        report.warnings.extend(expiry.warnings);
        report.oldest_record_ms = expiry.oldest_remaining_ms;

        let ctx = PurgeCtx {
            now_ms: now,
            months,
            tz_offset_ms: tz,
            dry_run: opts.dry_run,
            batch_rows: self.cfg.purge_batch_rows,
            cancel: &self.cancel,
        };
        if self.cfg.purge_rejects {
            (report.rejects_purged, report.reject_assignments) = registry.purge_rejects(&ctx)?;
        }
        if self.cfg.purge_consent {
            report.consents_purged = registry.purge_consents(&ctx)?;
        }
        if self.cfg.purge_ledger_history {
            report.ledger_events_purged = registry.purge_history(&ctx)?;
        }
        if self.cfg.purge_audit {
            report.audit_purged = registry.purge_audit(&ctx)?;
        }
        report.duration_us = started.elapsed().as_micros() as u64;
        if !opts.dry_run {
            let keep = trigger == Trigger::OnDemand || report.changed_anything() || !report.warnings.is_empty();
            registry.retention_commit(Some(now), keep.then_some(&mut report))?;
        }
        if report.changed_anything() || opts.dry_run {
            tracing::info!(
                dry_run = opts.dry_run,
                cutoff = %rfc3339_utc8(report.cutoff_ms),
                segments = report.segments_deleted,
                records = report.records_deleted,
                bytes = report.bytes_freed,
                rejects = report.rejects_purged,
                consents = report.consents_purged,
                us = report.duration_us,
                "retention run"
            );
        }
        Ok(report)
    }

    /// Where retention stands now.
    pub fn status(&self, log: &Log, registry: &Registry, clock: &SharedClock) -> Result<RetentionStatus> {
        let now = clock.now_ms();
        let cfg = log.config();
        let stats = log.stats();
        let reference = Self::reference(log, registry)?;
        let (runs_recorded, last_run) = registry.retention_last()?;
        Ok(RetentionStatus {
            enabled: self.cfg.enabled,
            months: self.cfg.months,
            interval_ms: self.cfg.interval_ms,
            now_ms: now,
            cutoff_ms: retention_cutoff_ms(now, self.cfg.months, cfg.tz_offset_ms),
            oldest_record_ms: stats.oldest_ts_ms,
            oldest_segment_eligible_ms: stats.oldest_ts_ms.map(|t| {
                let last = bucket_start_ms(t, cfg.bucket_ms, cfg.tz_offset_ms) + cfg.bucket_ms - 1;
                add_months_ms(last, self.cfg.months, cfg.tz_offset_ms)
            }),
            high_water_ms: registry.retention_high_water()?,
            runs_recorded,
            last_run,
            clock_warning: self.clock_check(now, reference, None).map(|e| e.to_string()),
        })
    }
}
