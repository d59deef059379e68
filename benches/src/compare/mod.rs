//! The side-by-side harness (`portlog-compare`, issue 7): one workload, run in one invocation
//! against portlog and its peers, every figure measured the same way for all.
//!
//! A peer implements [`Peer`]: durable ingest of a group of records (with the rejects its MO
//! "R"s register), settling, counting, the check, the trace, and the expiry of one month.
//! [`run_peer`] drives it through the phases below and returns a [`PeerReport`]. Each peer runs
//! in a process of its own (the harness re-executes itself), so that its peak memory is its own.
//!
//! | phase | what is timed | peers |
//! |---|---|---|
//! | ingest | only the peer's calls: one durable group of `--group` records per call (the generator runs between calls, untimed) | portlog `Engine::ingest` (`SyncPolicy::Data`); RocksDB one `WriteBatch`, `sync=true`; PostgreSQL one transaction: binary `COPY` + rejects `INSERT`, committed |
//! | settle | until background work is done | portlog `seal_all`; RocksDB flush + full compaction; PostgreSQL `VACUUM (ANALYZE)` + `CHECKPOINT` |
//! | disk | — | after settling: see each peer |
//! | check | each call on its own (`Instant`, its ~20 ns included), after an untimed warm-up of 1,000 | portlog `Registry::decide`; RocksDB point lookup; PostgreSQL prepared `SELECT` by primary key over the socket |
//! | trace | each whole trace (every record of a number over the whole workload, decoded), after an untimed pass | portlog `Engine::trace`; RocksDB index prefix scan + `multi_get`; PostgreSQL prepared `SELECT` by number |
//! | expire | the month the workload starts in, until its space is freed and the change durable | portlog retention run; RocksDB TTL compaction filter + forced compaction; PostgreSQL `DROP TABLE` of the partition + `CHECKPOINT` |
//!
//! Bytes written are [`Peer::write_bytes`] differences: `write_bytes` of `/proc/self/io` for
//! the in-process peers, the server's processes sampled for PostgreSQL ([`procfs`]).

pub mod pg_peer;
pub mod portlog_peer;
pub mod procfs;
pub mod report;
pub mod rocks_peer;
pub mod workload;

use anyhow::{bail, Result};
use portlog_engine::{PhoneNumber, Record, SubPort};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use workload::{expiry_month, Pass};

/// The peers, by the names `--peers` takes.
pub const PEERS: [&str; 3] = ["portlog", "rocksdb", "postgres"];

/// Everything a peer's process needs to run its part; the same for every peer of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Records to generate.
    pub records: u64,
    /// Months of record time they span (the generator's rate follows from it).
    pub months: f64,
    /// Records per durable ingest call.
    pub group: usize,
    /// Check queries.
    pub checks: usize,
    /// Percentage of the check queries that are pairs an MO "R" rejected.
    pub check_hit_percent: f64,
    /// Numbers traced.
    pub traces: usize,
    /// The workload (its `rate_per_s` is ignored: [`Spec::workload`] derives it from
    /// `records` and `months`).
    pub workload: crate::WorkloadConfig,
    /// The peer's data directory (created by the harness, removed after).
    pub dir: PathBuf,
    /// Directory of PostgreSQL's binaries (initdb, pg_ctl), when not the default.
    pub pg_bin: Option<PathBuf>,
}

impl Spec {
    /// The generator's configuration: the workload at the rate that spreads `records` over
    /// `months`.
    pub fn workload(&self) -> crate::WorkloadConfig {
        crate::WorkloadConfig { rate_per_s: workload::rate_for(self.records, self.months), ..self.workload.clone() }
    }

    /// A spec with the defaults of `portlog-compare` and the workload of `w`.
    pub fn new(w: &crate::WorkloadConfig, records: u64, months: f64, dir: PathBuf) -> Self {
        Self {
            records,
            months,
            group: 1_000,
            checks: 20_000,
            check_hit_percent: 10.0,
            traces: 200,
            workload: w.clone(),
            dir,
            pg_bin: None,
        }
    }
}

/// Counts a peer holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Message records.
    pub records: u64,
    /// Distinct (sub-port, number) rejects.
    pub rejects: u64,
}

/// Bytes a peer occupies on disk: `bytes` is what the comparison counts; `detail` names parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// Bytes counted as the peer's size.
    pub bytes: u64,
    /// Named parts and other measures, bytes.
    pub detail: BTreeMap<String, u64>,
}

/// One peer under test. Every method but [`Peer::prepare`] may be timed by the caller.
pub trait Peer {
    /// Untimed set-up a group needs before it is ingested (portlog: the ledger assignments of
    /// sub-ports not seen before, and the engine clock).
    fn prepare(&mut self, _group: &[Record]) -> Result<()> {
        Ok(())
    }
    /// Stores `group` durably, and the rejects of the MOs flagged in `is_reject`.
    fn ingest(&mut self, group: Vec<Record>, is_reject: &[bool]) -> Result<()>;
    /// Finishes the background work ingest left (sealing, compaction, vacuum).
    fn settle(&mut self) -> Result<()>;
    /// What it holds.
    fn counts(&mut self) -> Result<Counts>;
    /// What it occupies.
    fn disk(&mut self) -> Result<Disk>;
    /// Whether a commercial message from `sub_port` to `number` is refused.
    fn is_denied(&mut self, sub_port: &SubPort, number: PhoneNumber) -> Result<bool>;
    /// Every record of `number` in `[from_ms, to_ms)`, read and decoded; their count.
    fn trace(&mut self, number: PhoneNumber, from_ms: i64, to_ms: i64) -> Result<u64>;
    /// Removes the records of `[from_ms, to_ms)` (a calendar month); records removed and the
    /// seconds it took, the peer timing itself (it may count first, untimed).
    fn expire(&mut self, from_ms: i64, to_ms: i64) -> Result<(u64, f64)>;
    /// Bytes the peer has caused to be written to storage so far.
    fn write_bytes(&mut self) -> Result<u64>;
    /// Peak memory in bytes, and how it was measured.
    fn peak_memory(&mut self) -> Result<(u64, String)>;
    /// Peer-specific figures for the report.
    fn extra(&mut self) -> Result<BTreeMap<String, f64>> {
        Ok(BTreeMap::new())
    }
    /// Shuts down (a server is stopped).
    fn close(self: Box<Self>) -> Result<()>;
}

/// Latencies of one kind of call, µs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lat {
    /// Calls.
    pub n: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Lat {
    /// Percentiles of `ns` (nanoseconds), nearest rank.
    pub fn of(mut ns: Vec<u64>) -> Self {
        if ns.is_empty() {
            return Lat::default();
        }
        ns.sort_unstable();
        let q = |f: f64| ns[((ns.len() - 1) as f64 * f).round() as usize] as f64 / 1e3;
        let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1e3;
        Lat { n: ns.len(), p50_us: q(0.5), p99_us: q(0.99), max_us: q(1.0), mean_us: mean }
    }
}

/// The expiry of one month.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Expiry {
    /// The month, as `YYYY_MM` (UTC+8).
    pub month: String,
    /// Records removed.
    pub records: u64,
    /// Seconds until the space was freed and the change durable.
    pub secs: f64,
    /// Bytes written meanwhile.
    pub write_bytes: u64,
    /// Bytes on disk before minus after.
    pub bytes_freed: u64,
    /// Records left after it.
    pub records_left: u64,
}

/// What one peer measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    /// The peer (`portlog`, `rocksdb`, `postgres`).
    pub peer: String,
    /// Records generated and ingested.
    pub records: u64,
    /// Their size as JSON lines, bytes.
    pub json_bytes: u64,
    /// Seconds spent inside the ingest calls.
    pub ingest_secs: f64,
    /// Seconds of the whole ingest loop (generation and untimed preparation included).
    pub ingest_wall_secs: f64,
    /// records / ingest_secs.
    pub ingest_msgs_per_s: f64,
    /// JSON MB (10^6 bytes) / ingest_secs.
    pub ingest_mb_per_s: f64,
    /// Seconds of the settle phase.
    pub settle_secs: f64,
    /// Bytes written by ingest and settle.
    pub ingest_write_bytes: u64,
    /// Counted after settling.
    pub stored: Counts,
    /// MOs the workload flagged as reject keywords.
    pub reject_mos: u64,
    /// Size after settling.
    pub disk: Disk,
    /// disk.bytes / records.
    pub disk_bytes_per_msg: f64,
    /// Check latencies.
    pub check: Lat,
    /// Checks that answered "denied".
    pub checks_denied: u64,
    /// Checks drawn from rejected pairs (each must be denied).
    pub check_hits: u64,
    /// Trace latencies.
    pub trace: Lat,
    /// Records returned by the timed traces, summed.
    pub trace_records: u64,
    /// The expiry of the first month.
    pub expiry: Expiry,
    /// Peak memory, bytes.
    pub peak_memory_bytes: u64,
    /// How the peak memory was measured.
    pub memory_method: String,
    /// Peer-specific figures.
    pub extra: BTreeMap<String, f64>,
}

fn progress(peer: &str, what: &str, t: Instant) {
    eprintln!("[{peer}] {what} ({:.1} s)", t.elapsed().as_secs_f64());
}

/// Runs every phase of the comparison on `peer` (see the module docs).
pub fn run_peer(name: &str, mut peer: Box<dyn Peer>, spec: &Spec) -> Result<PeerReport> {
    let t0 = Instant::now();
    let mut pass =
        Pass::new(spec.workload(), spec.records, spec.group, spec.checks, spec.check_hit_percent, spec.traces)?;
    let wb0 = peer.write_bytes()?;
    let mut ingest_ns = 0u128;
    let mut next_note = spec.records / 10;
    let mut done = 0u64;
    while let Some(group) = pass.next_group() {
        let flags: Vec<bool> = group.iter().map(|r| pass.is_reject(r)).collect();
        peer.prepare(&group)?;
        done += group.len() as u64;
        let t = Instant::now();
        peer.ingest(group, &flags)?;
        ingest_ns += t.elapsed().as_nanos();
        if done >= next_note && spec.records >= 100_000 {
            progress(name, &format!("{done} records ingested"), t0);
            next_note += spec.records / 10;
        }
    }
    let ingest_wall_secs = t0.elapsed().as_secs_f64();
    let s = pass.finish();
    let ingest_secs = ingest_ns as f64 / 1e9;
    let t = Instant::now();
    peer.settle()?;
    let settle_secs = t.elapsed().as_secs_f64();
    let ingest_write_bytes = peer.write_bytes()?.saturating_sub(wb0);
    progress(name, "settled", t0);
    let stored = peer.counts()?;
    let disk = peer.disk()?;

    let warm = s.checks.len().min(1_000);
    for (sp, n) in &s.checks[..warm] {
        peer.is_denied(sp, *n)?;
    }
    let mut check_ns = Vec::with_capacity(s.checks.len());
    let mut checks_denied = 0u64;
    for (sp, n) in &s.checks {
        let t = Instant::now();
        let denied = peer.is_denied(sp, *n)?;
        check_ns.push(t.elapsed().as_nanos() as u64);
        checks_denied += u64::from(denied);
    }
    progress(name, "checks done", t0);

    let (from, to) = (s.first_ts_ms, s.last_ts_ms + 1);
    let mut untimed = 0u64;
    for n in &s.traces {
        untimed += peer.trace(*n, from, to)?;
    }
    let mut trace_ns = Vec::with_capacity(s.traces.len());
    let mut trace_records = 0u64;
    for n in &s.traces {
        let t = Instant::now();
        trace_records += peer.trace(*n, from, to)?;
        trace_ns.push(t.elapsed().as_nanos() as u64);
    }
    if untimed != trace_records {
        bail!("{name}: two passes of the same traces returned {untimed} and {trace_records} records");
    }
    progress(name, "traces done", t0);

    let month = expiry_month(&spec.workload());
    if s.last_ts_ms < month.1 {
        eprintln!("[{name}] warning: the workload ends inside the expired month; raise --months");
    }
    let before = peer.disk()?.bytes;
    let wb = peer.write_bytes()?;
    let (records, secs) = peer.expire(month.0, month.1)?;
    let write_bytes = peer.write_bytes()?.saturating_sub(wb);
    let after = peer.disk()?.bytes;
    let records_left = peer.counts()?.records;
    progress(name, "month expired", t0);
    let (peak_memory_bytes, memory_method) = peer.peak_memory()?;
    let extra = peer.extra()?;
    peer.close()?;
    let records_n = s.records;
    Ok(PeerReport {
        peer: name.to_string(),
        records: records_n,
        json_bytes: s.json_bytes,
        ingest_secs,
        ingest_wall_secs,
        ingest_msgs_per_s: records_n as f64 / ingest_secs.max(1e-9),
        ingest_mb_per_s: s.json_bytes as f64 / 1e6 / ingest_secs.max(1e-9),
        settle_secs,
        ingest_write_bytes,
        stored,
        reject_mos: s.reject_mos,
        disk_bytes_per_msg: disk.bytes as f64 / records_n.max(1) as f64,
        disk,
        check: Lat::of(check_ns),
        checks_denied,
        check_hits: s.check_hits as u64,
        trace: Lat::of(trace_ns),
        trace_records,
        expiry: Expiry {
            month: workload::month_suffix(month.0),
            records,
            secs,
            write_bytes,
            bytes_freed: before.saturating_sub(after),
            records_left,
        },
        peak_memory_bytes,
        memory_method,
        extra,
    })
}

/// Opens the peer `name` on `spec` (in this process; the server too for PostgreSQL).
pub fn open_peer(name: &str, spec: &Spec) -> Result<Box<dyn Peer>> {
    Ok(match name {
        "portlog" => Box::new(portlog_peer::PortlogPeer::open(spec)?),
        "rocksdb" => Box::new(rocks_peer::RocksPeer::open(spec)?),
        "postgres" => Box::new(pg_peer::PgPeer::open(spec)?),
        _ => bail!("unknown peer {name:?} (known: {})", PEERS.join(", ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let l = Lat::of((1..=100).map(|v| v * 1_000).collect());
        assert_eq!((l.n, l.p50_us, l.p99_us, l.max_us), (100, 51.0, 99.0, 100.0));
        assert_eq!(Lat::of(vec![]).n, 0);
    }
}
