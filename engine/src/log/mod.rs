//! The message log: append-only, sharded by sub-port, segmented by record time.
//!
//! * [`Log::append`] validates records, routes each to its sub-port's shard writer and returns
//!   once every one is durable (group commit; see [`crate::config::SyncPolicy`]).
//! * Reads ([`Log::scan_shard`], [`Log::read_sub_port`], [`Log::read_number`], [`Log::trace`]) stream records in
//!   time order from a snapshot of the acknowledged data, verifying checksums as they go.
//! * Open segments are sealed in the background into compressed, indexed, mmap-read files.

pub mod ahead;
pub mod block;
pub mod chunked;
pub mod expire;
pub mod filter;
pub mod frame;
pub mod index;
pub mod journal;
pub mod lastrow;
pub mod manifest;
pub mod merge;
pub mod open_segment;
pub mod packed;
pub mod sealed;
pub mod sealer;
pub mod shard;
pub mod template;
pub mod trace;
pub mod writer;

use crate::clock::SharedClock;
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::io::{OsIo, SharedIo};
use crate::record::{PhoneNumber, Record, SubPort};
use crossbeam_channel::{bounded, Receiver, Sender};
use manifest::Manifest;
use merge::{Cursor, Filter, Merge, OpenCursor, SealedCursor};
use sealer::SealJob;
use shard::{RecoveryReport, Shard};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use writer::{Request, Writer};

/// A stream of records in time order.
pub type Records = Box<dyn Iterator<Item = Result<Record>> + Send>;

/// Figures about the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Records held (sealed and open).
    pub records: u64,
    /// Sealed segments.
    pub sealed_segments: u64,
    /// Open segments.
    pub open_segments: u64,
    /// Bytes of sealed segment files.
    pub sealed_bytes: u64,
    /// Records in sealed segments.
    pub sealed_records: u64,
    /// Bytes of the sealed segments' footers (block table, sub-port and number indexes, number
    /// filter, zstd dictionary, section table and trailer).
    pub index_bytes: u64,
    /// Of `index_bytes`, the sealed segments' zstd dictionaries (footer section kind 5).
    pub dict_bytes: u64,
    /// Bytes of open segment files.
    pub open_bytes: u64,
    /// Smallest record time held, if any.
    pub oldest_ts_ms: Option<i64>,
    /// Largest record time held, if any.
    pub newest_ts_ms: Option<i64>,
    /// The journal's group commits since the log was opened; `None` without a journal.
    pub journal: Option<journal::JournalStats>,
}

/// What a log is opened with besides its directory, configuration and clock.
#[derive(Debug, Clone)]
pub struct LogEnv {
    /// File operations ([`OsIo`] in production; tests inject faults through
    /// [`crate::io::FaultyIo`]).
    pub io: SharedIo,
    /// The key ring: with one, new segments are encrypted with its active key and encrypted
    /// segments are readable; without, nothing new is encrypted (docs/format.md, "Encryption").
    pub keys: Option<Arc<crate::crypto::KeyRing>>,
}

impl Default for LogEnv {
    fn default() -> Self {
        Self { io: OsIo::shared(), keys: None }
    }
}

/// An append that has been queued; [`PendingAppend::wait`] returns once it is durable.
#[must_use = "an append is acknowledged only by wait()"]
pub struct PendingAppend {
    acks: Vec<Receiver<Result<()>>>,
}

impl PendingAppend {
    /// Blocks until every record of the append is durable, or returns the first failure.
    pub fn wait(self) -> Result<()> {
        let mut first_err = None;
        for rx in self.acks {
            match rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(Error::Closed);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The sharded message log of one data directory.
pub struct Log {
    cfg: Arc<LogConfig>,
    dir: PathBuf,
    clock: SharedClock,
    manifest: Manifest,
    shards: Vec<Arc<Shard>>,
    senders: Vec<Sender<Request>>,
    writers: Vec<JoinHandle<()>>,
    sealer_tx: Sender<SealJob>,
    sealer: Option<JoinHandle<()>>,
    journal: Option<journal::Running>,
    recovery: RecoveryReport,
    _lock: File,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("dir", &self.dir).field("shards", &self.shards.len()).finish()
    }
}

impl Log {
    /// Opens the log in `dir` (created if missing), recovering every shard: sealed segments are
    /// mapped and their footers verified, open segments scanned and torn tails cut.
    pub fn open(dir: impl AsRef<Path>, cfg: LogConfig, clock: SharedClock) -> Result<Self> {
        Self::open_with_io(dir, cfg, clock, OsIo::shared())
    }

    /// [`Log::open`] with the file operations of `io` (tests inject faults through
    /// [`crate::io::FaultyIo`]).
    pub fn open_with_io(dir: impl AsRef<Path>, cfg: LogConfig, clock: SharedClock, io: SharedIo) -> Result<Self> {
        Self::open_with(dir, cfg, clock, LogEnv { io, keys: None })
    }

    /// [`Log::open`] with file operations and a key ring ([`LogEnv`]).
    pub fn open_with(dir: impl AsRef<Path>, cfg: LogConfig, clock: SharedClock, env: LogEnv) -> Result<Self> {
        let LogEnv { io, keys } = env;
        cfg.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: dir }),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &lock_path)(e)),
        }
        let wanted = Manifest::from_config(&cfg);
        let manifest = match Manifest::read(&dir)? {
            Some(m) if m != wanted => {
                return Err(Error::ConfigMismatch { path: dir, what: format!("{m:?}"), asked: format!("{wanted:?}") });
            }
            Some(m) => m,
            None => {
                wanted.write(&*io, &dir)?;
                wanted
            }
        };
        let cfg = Arc::new(cfg);
        let now = clock.now_ms();
        // The journal's checkpoint first: the open segments go back to it before their
        // recovery (past it they were never synced, and may hold holes).
        let journal_dir = dir.join(journal::JOURNAL_DIR);
        let checkpoint = journal::Checkpoint::read(&journal_dir)?;
        let mut recovery = RecoveryReport::default();
        if let Some(c) = &checkpoint {
            let r = journal::rewind(&*io, &dir, manifest.shards, c)?;
            recovery.journal_rewound_bytes = r.bytes_cut;
            recovery.journal_removed_segments = r.removed;
        }
        let (sealer_tx, sealer_rx) = bounded::<SealJob>(4096);
        let mut shards = Vec::new();
        for id in 0..manifest.shards {
            let sdir = shard::shard_dir(&dir, id);
            let (s, r) = Shard::open(id, sdir, now, io.clone(), keys.clone())?;
            recovery.open_segments += r.open_segments;
            recovery.sealed_segments += r.sealed_segments;
            recovery.bytes_cut += r.bytes_cut;
            recovery.leftovers_removed += r.leftovers_removed;
            recovery.expired_removed += r.expired_removed;
            recovery.damaged.extend(r.damaged);
            shards.push(Arc::new(s));
        }
        let shared = cfg.journaled().then(|| Arc::new(journal::Shared::default()));
        let (jtx, jrx) = bounded::<journal::JRequest>(cfg.channel_capacity);
        let handle = shared.as_ref().map(|sh| journal::Handle { shared: sh.clone(), tx: jtx.clone() });
        let sealer = {
            let (cfg, handle) = (cfg.clone(), handle.clone());
            std::thread::Builder::new()
                .name("portlog-sealer".into())
                .spawn(move || sealer::run(sealer_rx, cfg, handle))
                .map_err(Error::io("spawn sealer thread for", &dir))?
        };
        let mut senders = Vec::new();
        let mut writers = Vec::new();
        for s in &shards {
            let (tx, rx) = bounded(cfg.channel_capacity);
            let floor = checkpoint.iter().flat_map(|c| &c.segments).filter(|g| g.shard == s.id).fold(
                std::collections::BTreeMap::new(),
                |mut m, g| {
                    let e = m.entry(g.bucket).or_insert(0);
                    *e = (*e).max(g.gen + 1);
                    m
                },
            );
            let w = Writer::new(s.clone(), cfg.clone(), clock.clone(), sealer_tx.clone(), shared.clone(), floor);
            let h = std::thread::Builder::new()
                .name(format!("portlog-writer-{}", s.id))
                .spawn(move || w.run(rx))
                .map_err(Error::io("spawn writer thread for", &dir))?;
            senders.push(tx);
            writers.push(h);
        }
        let mut log = Self {
            cfg: cfg.clone(),
            dir: dir.clone(),
            clock,
            manifest,
            shards,
            senders,
            writers,
            sealer_tx,
            sealer: Some(sealer),
            journal: None,
            recovery,
            _lock: lock,
        };
        let end = match &checkpoint {
            Some(c) => Some(log.replay_journal(&journal_dir, c, keys.as_ref(), shared.as_deref())?),
            None => None,
        };
        match shared {
            Some(shared) => {
                let running = journal::Journal::start(journal::Start {
                    dir: journal_dir,
                    io: io.clone(),
                    cfg: cfg.clone(),
                    keys: keys.clone(),
                    shards: log.shards.clone(),
                    senders: log.senders.clone(),
                    shared,
                    end,
                    rx: jrx,
                    tx: jtx,
                })?;
                let first = running.handle.wait_first_checkpoint();
                log.journal = Some(running);
                first.map_err(|cause| Error::Poisoned { shard: 0, cause })?;
            }
            None if checkpoint.is_some() => {
                // The journal is off now: the replayed rows were synced by their writers (or are
                // synced here, with sync = "none"), then the journal goes.
                for s in &log.shards {
                    for seg in s.read().open.values() {
                        seg.sync(true)?;
                    }
                }
                journal::remove(&*io, &journal_dir)?;
            }
            None => {}
        }
        let r = &log.recovery;
        tracing::info!(dir = %dir.display(), shards = log.manifest.shards, journal = log.journal.is_some(), encryption_key = ?keys.as_ref().map(|k| k.active_id()), open = r.open_segments, sealed = r.sealed_segments, bytes_cut = r.bytes_cut, expired_removed = r.expired_removed, journal_frames = r.journal_frames, journal_records = r.journal_records, "message log opened");
        Ok(log)
    }

    /// Replays the journal's frames after checkpoint `c` through the writers (each frame's LSN
    /// is durable: it is on disk) and waits until every one is written.
    fn replay_journal(
        &mut self,
        dir: &Path,
        c: &journal::Checkpoint,
        keys: Option<&Arc<crate::crypto::KeyRing>>,
        shared: Option<&journal::Shared>,
    ) -> Result<journal::JournalEnd> {
        let mut acks = Vec::new();
        let end = journal::replay(dir, c, keys, |lsn, records| {
            if let Some(sh) = shared {
                sh.set_durable(lsn);
            }
            for (s, recs) in self.split_by_shard(records).into_iter().enumerate() {
                if recs.is_empty() {
                    continue;
                }
                let (tx, rx) = bounded(1);
                self.senders[s]
                    .send(Request::Append { records: recs, rows: Vec::new(), ack: tx, lsn })
                    .map_err(|_| Error::Closed)?;
                acks.push(rx);
            }
            Ok(())
        })?;
        for a in acks {
            a.recv().map_err(|_| Error::Closed)??;
        }
        self.recovery.journal_frames = end.frames;
        self.recovery.journal_records = end.records;
        if end.frames > 0 {
            tracing::warn!(frames = end.frames, records = end.records, "replayed the journal after its checkpoint");
        }
        Ok(end)
    }

    /// `records` by shard, in their order.
    fn split_by_shard(&self, records: Vec<Record>) -> Vec<Vec<Record>> {
        let n = self.shards.len();
        let mut per: Vec<Vec<Record>> = (0..n).map(|_| Vec::new()).collect();
        if n == 1 {
            per[0] = records;
        } else {
            for r in records {
                let s = self.shard_of(&r.sub_port) as usize;
                per[s].push(r);
            }
        }
        per
    }

    /// What recovery found when the log was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.cfg
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.manifest.shards
    }

    /// The shard holding `sub_port`.
    pub fn shard_of(&self, sub_port: &SubPort) -> u32 {
        (sub_port.hash64() % u64::from(self.manifest.shards)) as u32
    }

    /// Validates one record against the log's rules and clock.
    pub fn check_record(&self, r: &Record) -> Result<()> {
        r.validate(self.cfg.text_bytes_max)?;
        let now = self.clock.now_ms();
        if r.ts_ms > now.saturating_add(self.cfg.future_skew_ms) {
            return Err(Error::FutureRecord {
                ts_ms: r.ts_ms,
                now_ms: now,
                ahead_ms: r.ts_ms - now,
                skew_ms: self.cfg.future_skew_ms,
            });
        }
        Ok(())
    }

    /// Queues `records` for appending after validating all of them; nothing is queued if any is
    /// invalid (the error names the record's position and the field).
    pub fn submit(&self, records: Vec<Record>) -> Result<PendingAppend> {
        if records.len() > self.cfg.append_records_max {
            return Err(Error::Limit(format!(
                "{} records in one append; the limit is {}",
                records.len(),
                self.cfg.append_records_max
            )));
        }
        for (i, r) in records.iter().enumerate() {
            self.check_record(r).map_err(|e| match e {
                Error::Invalid { field, reason } => Error::Invalid { field, reason: format!("record {i}: {reason}") },
                other => other,
            })?;
        }
        if let Some(j) = &self.journal {
            return self.submit_journaled(records, &j.handle.tx);
        }
        let mut acks = Vec::new();
        for (s, recs) in self.parts_to_send(records)? {
            let (tx, rx) = bounded(1);
            self.senders[s]
                .send(Request::Append { records: recs, rows: Vec::new(), ack: tx, lsn: 0 })
                .map_err(|_| Error::Closed)?;
            acks.push(rx);
        }
        Ok(PendingAppend { acks })
    }

    /// `records` by shard (the shards they touch only, in their order), refused before anything
    /// is sent when one of those shards is poisoned.
    fn parts_to_send(&self, records: Vec<Record>) -> Result<Vec<(usize, Vec<Record>)>> {
        let mut parts = Vec::new();
        for (s, recs) in self.split_by_shard(records).into_iter().enumerate() {
            if recs.is_empty() {
                continue;
            }
            if let Some(cause) = self.shards[s].poison_cause() {
                return Err(Error::Poisoned { shard: s as u32, cause });
            }
            parts.push((s, recs));
        }
        Ok(parts)
    }

    /// [`Log::submit`] through the journal: the records in frames of at most
    /// [`LogConfig::journal_frame_bytes`], each frame's part of every shard acknowledged by
    /// that shard's writer.
    fn submit_journaled(&self, records: Vec<Record>, tx: &Sender<journal::JRequest>) -> Result<PendingAppend> {
        let cap = self.cfg.journal_frame_bytes();
        let mut chunks: Vec<Vec<Record>> = vec![Vec::new()];
        let mut bytes = 0;
        for r in records {
            let b = r.approx_bytes();
            if bytes + b > cap && bytes > 0 {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += b;
            if let Some(c) = chunks.last_mut() {
                c.push(r);
            }
        }
        let mut acks = Vec::new();
        let mut requests = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let mut parts = Vec::new();
            for (s, recs) in self.parts_to_send(chunk)? {
                let (atx, arx) = bounded(1);
                let mut rows = Vec::with_capacity(recs.iter().map(Record::approx_bytes).sum());
                journal::encode_rows(&mut rows, &recs);
                parts.push(journal::Part { shard: s, records: recs, rows, ack: atx });
                acks.push(arx);
            }
            if !parts.is_empty() {
                requests.push(parts);
            }
        }
        for parts in requests {
            tx.send(journal::JRequest::Append(parts)).map_err(|_| Error::Closed)?;
        }
        Ok(PendingAppend { acks })
    }

    /// The first poisoned shard and why, if any: its writer failed to make data durable and
    /// refuses appends until the log is reopened (the daemon's health turns NOT_SERVING).
    pub fn poisoned(&self) -> Option<(u32, String)> {
        self.shards.iter().find_map(|s| s.poison_cause().map(|c| (s.id, c)))
    }

    /// Appends `records` and returns once all are durable.
    pub fn append(&self, records: Vec<Record>) -> Result<()> {
        self.submit(records)?.wait()
    }

    fn check_window(from_ms: i64, to_ms: i64) -> Result<()> {
        if from_ms > to_ms {
            return Err(Error::invalid("window", format!("from ({from_ms} ms) is after to ({to_ms} ms)")));
        }
        Ok(())
    }

    fn cursors(&self, shard: &Shard, filter: &Arc<Filter>, out: &mut Vec<Box<dyn Cursor>>) -> Result<()> {
        let cat = shard.read();
        // Sealed and open segments of one key never coexist in the catalogue; iterate both in
        // key order so that ties break by (bucket, generation).
        let mut keyed: Vec<((i64, u32), Box<dyn Cursor>)> = Vec::new();
        for (k, s) in &cat.sealed {
            if let Some(c) = SealedCursor::new(s.clone(), filter.clone())? {
                keyed.push((*k, Box::new(c)));
            }
        }
        for (k, s) in &cat.open {
            if let Some(c) = OpenCursor::new(s.clone(), filter.clone()) {
                keyed.push((*k, Box::new(c)));
            }
        }
        keyed.sort_by_key(|(k, _)| *k);
        out.extend(keyed.into_iter().map(|(_, c)| c));
        Ok(())
    }

    fn read(&self, shards: &[&Arc<Shard>], filter: Filter) -> Result<Records> {
        Self::check_window(filter.from_ms, filter.to_ms)?;
        let filter = Arc::new(filter);
        let mut cursors = Vec::new();
        for s in shards {
            self.cursors(s, &filter, &mut cursors)?;
        }
        Ok(Box::new(Merge::new(cursors)))
    }

    /// Every record of `shard` with time in `[from_ms, to_ms)`, in time order.
    pub fn scan_shard(&self, shard: u32, from_ms: i64, to_ms: i64) -> Result<Records> {
        let s = self
            .shards
            .get(shard as usize)
            .ok_or_else(|| Error::invalid("shard", format!("{shard} does not exist")))?;
        self.read(&[s], Filter { from_ms, to_ms, ..Filter::default() })
    }

    /// Every record of `sub_port` with time in `[from_ms, to_ms)`, in time order.
    pub fn read_sub_port(&self, sub_port: &SubPort, from_ms: i64, to_ms: i64) -> Result<Records> {
        let s = &self.shards[self.shard_of(sub_port) as usize];
        self.read(&[s], Filter { from_ms, to_ms, sub_port: Some(sub_port.as_str().to_owned()), peer: None })
    }

    /// Every record to or from `number`, all sub-ports, time in `[from_ms, to_ms)`, in time order.
    pub fn read_number(&self, number: PhoneNumber, from_ms: i64, to_ms: i64) -> Result<Records> {
        let all: Vec<&Arc<Shard>> = self.shards.iter().collect();
        self.read(&all, Filter { from_ms, to_ms, sub_port: None, peer: Some(number.as_u64()) })
    }

    /// Seals every open segment now and waits until done (for tests, benchmarks and operators
    /// preparing a backup; the background policy does this by itself otherwise).
    pub fn seal_all(&self) -> Result<()> {
        let mut acks = Vec::new();
        for tx in &self.senders {
            let (atx, arx) = bounded(1);
            tx.send(Request::Retire { buckets: None, ack: atx }).map_err(|_| Error::Closed)?;
            acks.push(arx);
        }
        for a in acks {
            a.recv().map_err(|_| Error::Closed)?;
        }
        let (btx, brx) = bounded(1);
        self.sealer_tx.send(SealJob::Barrier(btx)).map_err(|_| Error::Closed)?;
        brx.recv().map_err(|_| Error::Closed)
    }

    /// Figures about what the log holds.
    pub fn stats(&self) -> LogStats {
        let mut st = LogStats::default();
        let mut span = |lo: i64, hi: i64| {
            st.oldest_ts_ms = Some(st.oldest_ts_ms.map_or(lo, |o| o.min(lo)));
            st.newest_ts_ms = Some(st.newest_ts_ms.map_or(hi, |o| o.max(hi)));
        };
        let mut records = 0;
        let (mut ss, mut os, mut sb, mut sr, mut ib, mut ob, mut db) = (0, 0, 0, 0, 0, 0, 0);
        for s in &self.shards {
            let cat = s.read();
            for seg in cat.sealed.values() {
                ss += 1;
                sb += seg.file_bytes();
                sr += seg.records;
                ib += seg.index_bytes();
                db += seg.section_bytes(sealed::SectionKind::Dictionary);
                if seg.records > 0 {
                    span(seg.min_ts_ms, seg.max_ts_ms);
                }
            }
            for seg in cat.open.values() {
                os += 1;
                ob += seg.bytes();
                let ix = seg.read_index();
                records += ix.rows.len() as u64;
                if !ix.rows.is_empty() {
                    span(ix.min_ts_ms, ix.max_ts_ms);
                }
            }
        }
        st.records = records + sr;
        (st.sealed_segments, st.open_segments, st.sealed_bytes, st.sealed_records, st.index_bytes, st.open_bytes) =
            (ss, os, sb, sr, ib, ob);
        st.dict_bytes = db;
        st.journal = self.journal.as_ref().map(|j| j.handle.shared.stats());
        st
    }

    /// Stops accepting appends, lets the writers finish what is queued, lets the sealer finish
    /// its queue, and joins every thread. Everything acknowledged is already durable.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // The journal first: its last checkpoint needs the writers.
        if let Some(mut j) = self.journal.take() {
            j.stop();
        }
        self.senders.clear();
        for h in self.writers.drain(..) {
            let _ = h.join();
        }
        let _ = self.sealer_tx.send(SealJob::Stop);
        if let Some(h) = self.sealer.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.shutdown();
    }
}
