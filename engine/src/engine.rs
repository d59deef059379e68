//! The engine: the message log and the registry in one data directory, and what needs both —
//! ingest that registers MO rejects before acknowledging, the inspection of traffic, and
//! retention (crate::retention), which runs on a background thread of its own.
//!
//! Layout (docs/format.md): the log's `DIR/LOCK`, `DIR/MANIFEST` and `DIR/log/`, and the
//! registry's RocksDB in `DIR/registry/`.

use crate::clock::SharedClock;
use crate::config::{EncryptionConfig, LogConfig, RegistryConfig, RetentionConfig};
use crate::error::{Error, Result};
use crate::log::trace::TraceQuery;
use crate::log::{Log, PendingAppend, Records};
use crate::record::{Direction, Record};
use crate::registry::check::is_reject_keyword;
use crate::registry::{FindingKind, Registry, RejectInput, RejectSource};
use crate::retention::{Retention, RetentionReport, RetentionRun, RetentionStatus, Trigger};
use crate::time::rfc3339_utc8;
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Configuration of the whole engine (the `[log]`, `[registry]`, `[retention]` and
/// `[encryption]` tables of the TOML file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The message log.
    pub log: LogConfig,
    /// The ledger and reject registry.
    pub registry: RegistryConfig,
    /// Retention of the log, rejects and consent.
    pub retention: RetentionConfig,
    /// Encryption at rest of the log and of reject texts (off without a key file).
    pub encryption: EncryptionConfig,
}

/// What an ingest did beyond appending.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Records appended.
    pub records: u64,
    /// New rejects registered from MO reject keywords.
    pub rejects_registered: u64,
}

/// One inspection finding: a sub-port and a kind, with counts and an example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The sub-port.
    pub sub_port: String,
    /// What is wrong.
    pub kind: FindingKind,
    /// How many records.
    pub count: u64,
    /// First and last record time, RFC 3339 (UTC+8).
    pub first: String,
    /// Last record time.
    pub last: String,
    /// One offending record's text (MT) or peer (MO), as an example.
    pub example: String,
}

/// What the engine's threads share.
#[derive(Debug)]
struct Core {
    log: Log,
    registry: Registry,
    retention: Retention,
    clock: SharedClock,
}

/// The retention thread: dropping `stop` wakes it up and ends it.
#[derive(Debug)]
struct Scheduler {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

/// The message log and the registry (see the module docs).
#[derive(Debug)]
pub struct Engine {
    core: Arc<Core>,
    scheduler: Option<Scheduler>,
    dir: PathBuf,
}

impl Engine {
    /// Opens (or creates) the engine in `dir`, and starts retention's background thread
    /// (`portlog-retention`) unless `cfg.retention.enabled` is off.
    pub fn open(dir: impl AsRef<Path>, cfg: EngineConfig, clock: SharedClock) -> Result<Self> {
        Self::open_with_io(dir, cfg, clock, crate::io::OsIo::shared())
    }

    /// [`Engine::open`] with the message log's file operations going through `io` (tests inject
    /// faults with [`crate::io::FaultyIo`]; the registry's RocksDB does its own I/O).
    pub fn open_with_io(
        dir: impl AsRef<Path>,
        cfg: EngineConfig,
        clock: SharedClock,
        io: crate::io::SharedIo,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let retention = Retention::new(cfg.retention)?;
        let keys = cfg.encryption.load()?;
        // The log first: its LOCK keeps a second engine out of the whole directory.
        let log = Log::open_with(&dir, cfg.log, clock.clone(), crate::log::LogEnv { io, keys: keys.clone() })?;
        let registry = Registry::open_with_keys(dir.join("registry"), cfg.registry, clock.clone(), keys)?;
        let core = Arc::new(Core { log, registry, retention, clock });
        let scheduler = if core.retention.cfg.enabled { Some(Self::spawn_scheduler(&core, &dir)?) } else { None };
        Ok(Engine { core, scheduler, dir })
    }

    fn spawn_scheduler(core: &Arc<Core>, dir: &Path) -> Result<Scheduler> {
        let (stop, stopped) = bounded::<()>(1);
        let interval = Duration::from_millis(core.retention.cfg.interval_ms);
        let core = core.clone();
        let handle = std::thread::Builder::new()
            .name("portlog-retention".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                let c = &core;
                match c.retention.run(&c.log, &c.registry, &c.clock, RetentionRun::default(), Trigger::Schedule) {
                    Ok(_) => {}
                    // Already logged as a warning, and recorded in the history once.
                    Err(Error::ClockAhead { .. }) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "scheduled retention run failed; retried at the next interval")
                    }
                }
            })
            .map_err(Error::io("spawn retention thread for", dir))?;
        Ok(Scheduler { stop, handle })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The message log.
    pub fn log(&self) -> &Log {
        &self.core.log
    }

    /// The ledger and reject registry.
    pub fn registry(&self) -> &Registry {
        &self.core.registry
    }

    /// Runs retention now (`dry_run`: only report what would go, with sizes). A real run is
    /// recorded in the history. Refused with [`Error::ClockAhead`] when the clock is too far
    /// ahead of the last run (see [`crate::retention`]).
    pub fn retention_run(&self, dry_run: bool) -> Result<RetentionReport> {
        self.retention_run_with(RetentionRun { dry_run, ..RetentionRun::default() })
    }

    /// [`Engine::retention_run`] with options (a confirmation of a clock jump).
    pub fn retention_run_with(&self, opts: RetentionRun) -> Result<RetentionReport> {
        let c = &self.core;
        c.retention.run(&c.log, &c.registry, &c.clock, opts, Trigger::OnDemand)
    }

    /// Every recorded retention run (real runs on demand, and scheduled runs that removed
    /// something, warned or were refused), oldest first.
    pub fn retention_history(&self) -> Result<Vec<RetentionReport>> {
        self.core.registry.retention_reports()
    }

    /// Where retention stands: cutoff, oldest record, high-water mark, the last run, and a
    /// warning when the clock is too far ahead.
    pub fn retention_status(&self) -> Result<RetentionStatus> {
        let c = &self.core;
        c.retention.status(&c.log, &c.registry, &c.clock)
    }

    /// A number's records in time order across every shard and segment ([`Log::trace`]), with
    /// the query's filters. A sub-port filter naming a sub-port that the ledger has never
    /// assigned and that the log holds no record of is refused ([`Error::NotFound`] naming
    /// `sub_port`): it is a typo, not an empty answer. (Traffic on a sub-port unknown to the
    /// ledger, which the inspection reports, stays traceable.)
    pub fn trace(&self, q: &TraceQuery) -> Result<Records> {
        q.validate()?;
        if let Some(sp) = &q.sub_port {
            let c = &self.core;
            if !c.registry.knows_sub_port(sp) && c.log.read_sub_port(sp, i64::MIN, i64::MAX)?.next().is_none() {
                return Err(Error::NotFound { what: "sub_port", key: sp.to_string() });
            }
        }
        self.core.log.trace(q)
    }

    /// Validates `records`, durably registers the rejects their MO reject keywords carry (for
    /// the assignment in force at each MO's time; an MO on a sub-port without one is logged,
    /// registers nothing, and shows up in the inspection), then queues the append. Nothing is
    /// registered or queued if a record is invalid. Wait on the returned [`PendingAppend`] for
    /// durability of the records.
    pub fn submit(&self, records: Vec<Record>) -> Result<(PendingAppend, IngestOutcome)> {
        for r in &records {
            self.core.log.check_record(r)?;
        }
        let now = self.core.registry.now_ms();
        let keywords = &self.core.registry.config().reject_keywords;
        let mut rejects = Vec::new();
        for r in records.iter().filter(|r| r.dir == Direction::Mo && is_reject_keyword(&r.text, keywords)) {
            if let Some(a) = self.core.registry.in_force(r.sub_port.as_str(), r.ts_ms) {
                rejects.push(RejectInput {
                    sub_port: r.sub_port.as_str().to_string(),
                    number: r.peer,
                    // A record a little ahead of the clock binds from now: no reject starts
                    // in the future.
                    at_ms: Some(r.ts_ms.min(now)),
                    source: RejectSource::Mo,
                    text: r.text.clone(),
                    assignment: Some(a.id),
                });
            }
        }
        let registered = if rejects.is_empty() {
            0
        } else {
            self.core.registry.register_rejects(&rejects)?.iter().filter(|o| o.registered).count() as u64
        };
        let n = records.len() as u64;
        let pending = self.core.log.submit(records)?;
        Ok((pending, IngestOutcome { records: n, rejects_registered: registered }))
    }

    /// [`Engine::submit`] and wait: returns once the records (and their rejects) are durable.
    pub fn ingest(&self, records: Vec<Record>) -> Result<IngestOutcome> {
        let (pending, outcome) = self.submit(records)?;
        pending.wait()?;
        Ok(outcome)
    }

    /// Inspects the traffic logged in `[from_ms, to_ms)` against the ledger: per sub-port and
    /// kind of finding, counts, first and last time and an example.
    pub fn inspect(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Finding>> {
        let mut acc: BTreeMap<(String, FindingKind), (u64, i64, i64, String)> = BTreeMap::new();
        for shard in 0..self.core.log.shard_count() {
            for r in self.core.log.scan_shard(shard, from_ms, to_ms)? {
                let r = r?;
                if let Some(kind) = self.core.registry.inspect_record(&r) {
                    let e = acc.entry((r.sub_port.as_str().to_string(), kind)).or_insert_with(|| {
                        let example =
                            if r.dir == Direction::Mt { r.text.clone() } else { format!("MO from {}", r.peer) };
                        (0, r.ts_ms, r.ts_ms, example)
                    });
                    e.0 += 1;
                    e.1 = e.1.min(r.ts_ms);
                    e.2 = e.2.max(r.ts_ms);
                }
            }
        }
        Ok(acc
            .into_iter()
            .map(|((sub_port, kind), (count, first, last, example))| Finding {
                sub_port,
                kind,
                count,
                first: rfc3339_utc8(first),
                last: rfc3339_utc8(last),
                example,
            })
            .collect())
    }

    fn stop_scheduler(&mut self) {
        if let Some(s) = self.scheduler.take() {
            // A run in progress stops at its next step; what it removed is consistent.
            self.core.retention.cancel.store(true, Ordering::Release);
            drop(s.stop);
            let _ = s.handle.join();
        }
    }

    /// Stops retention's thread, then the log's threads after flushing; the registry closes
    /// when dropped.
    pub fn close(mut self) {
        self.stop_scheduler();
        let core = self.core.clone();
        drop(self);
        // Only this handle is left once the retention thread has ended; otherwise the log's
        // own Drop shuts it down.
        if let Ok(core) = Arc::try_unwrap(core) {
            core.log.close();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_scheduler();
    }
}
