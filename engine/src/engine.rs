//! The engine: the message log and the registry in one data directory, and what needs both —
//! ingest that registers MO rejects before acknowledging, and the inspection of traffic.
//!
//! Layout (docs/format.md): the log's `DIR/LOCK`, `DIR/MANIFEST` and `DIR/log/`, and the
//! registry's RocksDB in `DIR/registry/`.

use crate::clock::SharedClock;
use crate::config::{LogConfig, RegistryConfig};
use crate::error::Result;
use crate::log::{Log, PendingAppend};
use crate::record::{Direction, Record};
use crate::registry::check::is_reject_keyword;
use crate::registry::{FindingKind, Registry, RejectInput, RejectSource};
use crate::time::rfc3339_utc8;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Configuration of the whole engine (the `[log]` and `[registry]` tables of the TOML file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The message log.
    pub log: LogConfig,
    /// The ledger and reject registry.
    pub registry: RegistryConfig,
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

/// The message log and the registry (see the module docs).
#[derive(Debug)]
pub struct Engine {
    log: Log,
    registry: Registry,
    dir: PathBuf,
}

impl Engine {
    /// Opens (or creates) the engine in `dir`.
    pub fn open(dir: impl AsRef<Path>, cfg: EngineConfig, clock: SharedClock) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        // The log first: its LOCK keeps a second engine out of the whole directory.
        let log = Log::open(&dir, cfg.log, clock.clone())?;
        let registry = Registry::open(dir.join("registry"), cfg.registry, clock)?;
        Ok(Engine { log, registry, dir })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The message log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The ledger and reject registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Validates `records`, durably registers the rejects their MO reject keywords carry (for
    /// the assignment in force at each MO's time; an MO on a sub-port without one is logged,
    /// registers nothing, and shows up in the inspection), then queues the append. Nothing is
    /// registered or queued if a record is invalid. Wait on the returned [`PendingAppend`] for
    /// durability of the records.
    pub fn submit(&self, records: Vec<Record>) -> Result<(PendingAppend, IngestOutcome)> {
        for r in &records {
            self.log.check_record(r)?;
        }
        let now = self.registry.now_ms();
        let keywords = &self.registry.config().reject_keywords;
        let mut rejects = Vec::new();
        for r in records.iter().filter(|r| r.dir == Direction::Mo && is_reject_keyword(&r.text, keywords)) {
            if let Some(a) = self.registry.in_force(r.sub_port.as_str(), r.ts_ms) {
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
            self.registry.register_rejects(&rejects)?.iter().filter(|o| o.registered).count() as u64
        };
        let n = records.len() as u64;
        let pending = self.log.submit(records)?;
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
        for shard in 0..self.log.shard_count() {
            for r in self.log.scan_shard(shard, from_ms, to_ms)? {
                let r = r?;
                if let Some(kind) = self.registry.inspect_record(&r) {
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

    /// Stops the log's threads after flushing; the registry closes when dropped.
    pub fn close(self) {
        self.log.close();
    }
}
