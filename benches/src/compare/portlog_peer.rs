//! portlog in process, through its public API: `Engine::ingest` (which registers the rejects of
//! MO "R"s in the registry before the append is acknowledged), `Log::seal_all`,
//! `Registry::decide`, `Engine::trace`, and `Engine::retention_run_with` on a manual clock, as
//! `portlog-retention-bench` drives it.
//!
//! Configuration: the embedded defaults (4 shards, `SyncPolicy::Data`: fdatasync per group
//! commit, 8 KiB blocks with a per-segment dictionary; registry writes synced), retention's
//! background thread off (the expiry is run on demand). Every sub-port is assigned, the first
//! time it appears and untimed, to one commercial provider for all time, so that MO "R"s
//! register rejects and checks answer from them. The engine clock follows the records (set to
//! the last record time of each group before it is ingested), so that each day's segments are
//! sealed in the background once the day is over, as in production.
//!
//! Disk: every file of the data directory (sealed segments with their footer indexes, what is
//! still open, the registry's RocksDB). Peak memory: `VmHWM` of this process (resident pages,
//! mapped segment pages included).

use super::{procfs, Counts, Disk, Peer, Spec};
use crate::disk::dir_bytes;
use anyhow::{anyhow, Result};
use portlog_engine::registry::{AssignInput, ProviderInput};
use portlog_engine::time::{add_months_ms, UTC8_OFFSET_MS};
use portlog_engine::{
    Engine, EngineConfig, LogConfig, ManualClock, PhoneNumber, Record, RegistryConfig, RetentionConfig, RetentionRun,
    SubPort, TraceQuery, Usage,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

const PROVIDER: &str = "P1";

/// The portlog engine under test.
pub struct PortlogPeer {
    engine: Engine,
    clock: ManualClock,
    assigned: HashSet<SubPort>,
    rejects_registered: u64,
    dir: std::path::PathBuf,
    /// Figures of the retention run.
    expiry: Vec<(String, f64)>,
}

impl PortlogPeer {
    /// Opens a new engine in `spec.dir`.
    pub fn open(spec: &Spec) -> Result<Self> {
        let cfg = EngineConfig {
            log: LogConfig::default(),
            registry: RegistryConfig::default(),
            retention: RetentionConfig { enabled: false, ..RetentionConfig::default() },
            ..EngineConfig::default()
        };
        let clock = ManualClock::new(spec.workload.start_ms);
        let engine = Engine::open(&spec.dir, cfg, Arc::new(clock.clone()))?;
        engine.registry().provider_put(ProviderInput {
            id: PROVIDER.into(),
            name: "星河银行".into(),
            signatures: vec!["星河银行".into()],
            blacklisted: false,
            whitelisted: false,
        })?;
        Ok(Self {
            engine,
            clock,
            assigned: HashSet::new(),
            rejects_registered: 0,
            dir: spec.dir.clone(),
            expiry: Vec::new(),
        })
    }
}

impl Peer for PortlogPeer {
    fn prepare(&mut self, group: &[Record]) -> Result<()> {
        let mut new: Vec<AssignInput> = Vec::new();
        for r in group {
            if self.assigned.insert(r.sub_port.clone()) {
                new.push(AssignInput {
                    sub_port: r.sub_port.as_str().into(),
                    provider: PROVIDER.into(),
                    usage: Usage::Commercial,
                    from_ms: 0,
                    to_ms: i64::MAX / 2,
                    consent_required: false,
                });
            }
        }
        if !new.is_empty() {
            self.engine.registry().assign_many(new)?;
        }
        if let Some(last) = group.iter().map(|r| r.ts_ms).max() {
            self.clock.set_ms(last);
        }
        Ok(())
    }

    fn ingest(&mut self, group: Vec<Record>, _is_reject: &[bool]) -> Result<()> {
        // The engine recognises the reject keywords itself.
        let out = self.engine.ingest(group)?;
        self.rejects_registered += out.rejects_registered;
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        Ok(self.engine.log().seal_all()?)
    }

    fn counts(&mut self) -> Result<Counts> {
        Ok(Counts { records: self.engine.log().stats().records, rejects: self.rejects_registered })
    }

    fn disk(&mut self) -> Result<Disk> {
        let all = dir_bytes(&self.dir, ".seg")?;
        let registry = dir_bytes(&self.dir.join("registry"), ".sst")?;
        let stats = self.engine.log().stats();
        let detail = BTreeMap::from([
            ("seg_files".to_string(), all.data),
            ("open_segment_files".to_string(), stats.open_bytes),
            ("footer_indexes".to_string(), stats.index_bytes),
            ("registry_dir".to_string(), registry.total),
        ]);
        Ok(Disk { bytes: all.total, detail })
    }

    fn is_denied(&mut self, sub_port: &SubPort, number: PhoneNumber) -> Result<bool> {
        let v = self.engine.registry().decide(sub_port.as_str(), number, Usage::Commercial, None)?;
        Ok(!v.allow)
    }

    fn trace(&mut self, number: PhoneNumber, from_ms: i64, to_ms: i64) -> Result<u64> {
        let mut n = 0u64;
        for r in self.engine.trace(&TraceQuery::new(number).window(from_ms, to_ms))? {
            let r = r?;
            if r.peer != number {
                return Err(anyhow!("trace of {number} returned a record of {}", r.peer));
            }
            n += 1;
        }
        Ok(n)
    }

    fn expire(&mut self, _from_ms: i64, to_ms: i64) -> Result<(u64, f64)> {
        // The instant the month's last record becomes eligible under the default 5 months. The
        // newest record is two months younger than that: a clock jump that retention refuses
        // unless confirmed.
        let at = add_months_ms(to_ms - 1, self.engine_months(), UTC8_OFFSET_MS);
        self.clock.set_ms(at);
        let t = std::time::Instant::now();
        let report =
            self.engine.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(at) })?;
        let secs = t.elapsed().as_secs_f64();
        self.expiry = vec![
            ("expiry_segments_deleted".into(), report.segments_deleted as f64),
            ("expiry_run_duration_us".into(), report.duration_us as f64),
        ];
        Ok((report.records_deleted, secs))
    }

    fn write_bytes(&mut self) -> Result<u64> {
        procfs::write_bytes("self")
    }

    fn peak_memory(&mut self) -> Result<(u64, String)> {
        Ok((procfs::status_bytes("self", "VmHWM:")?, "VmHWM of the harness process running the engine".into()))
    }

    fn extra(&mut self) -> Result<BTreeMap<String, f64>> {
        let s = self.engine.log().stats();
        let mut m = BTreeMap::from([("sealed_segments_left".to_string(), s.sealed_segments as f64)]);
        m.extend(self.expiry.iter().cloned());
        Ok(m)
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.engine.close();
        Ok(())
    }
}

impl PortlogPeer {
    fn engine_months(&self) -> u32 {
        RetentionConfig::default().months
    }
}
