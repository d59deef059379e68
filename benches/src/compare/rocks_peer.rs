//! RocksDB in process, with a layout that serves the same three reads as portlog.
//!
//! # Layout: three column families
//!
//! | column family | key | value |
//! |---|---|---|
//! | `default` (records) | [`crate::rocks`]: sub-port (20 bytes, `0x00`-padded), `ts_ms` u64 BE, sequence u64 BE | [`crate::rocks::encode_value`]: dir/usage byte, peer u64 LE, text |
//! | `by_number` (trace index) | peer u64 BE, `ts_ms` u64 BE, sequence u64 BE (24 bytes) | the record's sub-port, 20 bytes padded: with the index key it makes the record's key |
//! | `rejects` | sub-port (20 bytes padded), peer u64 BE | empty |
//!
//! Records and index use [`crate::rocks::options`] (zstd on every level, zstd 9 at the
//! bottom, 4 KiB blocks); rejects add a 10-bit bloom filter. A record, its index entry and the
//! reject of an MO "R" go in one `WriteBatch` per group, written with `sync=true`.
//!
//! * check: `get_pinned_cf(rejects, (sub-port, number))`;
//! * trace: a range scan of `by_number` over (number, from) .. (number, to), then one
//!   `multi_get_cf` of the records' keys, every value decoded;
//! * expiry: record time is not the first part of either key, so a month is spread over the
//!   whole key space; a compaction filter on both families drops entries older than a cutoff
//!   (the `ttl-subport` method of `portlog-retention-bench`, its cheapest for sub-port-first
//!   keys), applied by a forced full compaction of both. Time: until that compaction is done.
//!
//! Settle: flush and a forced full compaction, until no background work is left. Disk: every
//! file of the directory. Peak memory: `VmHWM` of this process.

use super::{procfs, Counts, Disk, Peer, Spec};
use crate::disk::dir_bytes;
use crate::rocks::{decode, encode_key, encode_value, options, KEY_LEN};
use anyhow::{anyhow, bail, Result};
use portlog_engine::record::SUB_PORT_DIGITS_MAX;
use portlog_engine::{PhoneNumber, Record, SubPort};
use rocksdb::compaction_filter::Decision;
use rocksdb::{
    BlockBasedOptions, BottommostLevelCompaction, ColumnFamilyDescriptor, CompactOptions, Options, WriteBatch,
    WriteOptions, DB,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORDS: &str = "default";
const BY_NUMBER: &str = "by_number";
const REJECTS: &str = "rejects";
/// Length of a `by_number` key.
const INDEX_KEY_LEN: usize = 24;

/// The RocksDB database under test.
pub struct RocksPeer {
    db: DB,
    dir: PathBuf,
    seq: u64,
    cutoff: Arc<AtomicI64>,
    /// Entries the TTL filter removed, per family (records, index).
    removed: [Arc<AtomicU64>; 2],
}

fn index_key(peer: u64, ts_ms: i64, seq: u64) -> [u8; INDEX_KEY_LEN] {
    let mut k = [0u8; INDEX_KEY_LEN];
    k[..8].copy_from_slice(&peer.to_be_bytes());
    k[8..16].copy_from_slice(&(ts_ms.max(0) as u64).to_be_bytes());
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn reject_key(sub_port: &SubPort, peer: u64) -> [u8; SUB_PORT_DIGITS_MAX + 8] {
    let mut k = [0u8; SUB_PORT_DIGITS_MAX + 8];
    let sp = sub_port.as_str().as_bytes();
    k[..sp.len()].copy_from_slice(sp);
    k[SUB_PORT_DIGITS_MAX..].copy_from_slice(&peer.to_be_bytes());
    k
}

/// `ts_ms` of a key of the family whose time starts at byte `at`.
fn ts_at(key: &[u8], at: usize) -> i64 {
    key.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(i64::MAX, |b| u64::from_be_bytes(b) as i64)
}

fn ttl_options(cutoff: &Arc<AtomicI64>, removed: &Arc<AtomicU64>, ts_offset: usize) -> Options {
    let mut o = options(9, 4 << 10);
    let (c, r) = (cutoff.clone(), removed.clone());
    o.set_compaction_filter("portlog-compare-ttl", move |_level: u32, key: &[u8], _value: &[u8]| {
        if ts_at(key, ts_offset) < c.load(Ordering::Acquire) {
            r.fetch_add(1, Ordering::Relaxed);
            Decision::Remove
        } else {
            Decision::Keep
        }
    });
    o
}

fn forced() -> CompactOptions {
    let mut o = CompactOptions::default();
    o.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
    o.set_exclusive_manual_compaction(true);
    o
}

impl RocksPeer {
    /// Creates the database in `spec.dir`.
    pub fn open(spec: &Spec) -> Result<Self> {
        let cutoff = Arc::new(AtomicI64::new(i64::MIN));
        let removed = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
        let mut rejects = options(9, 4 << 10);
        let mut t = BlockBasedOptions::default();
        t.set_bloom_filter(10.0, false);
        rejects.set_block_based_table_factory(&t);
        let cfs = vec![
            ColumnFamilyDescriptor::new(RECORDS, ttl_options(&cutoff, &removed[0], SUB_PORT_DIGITS_MAX)),
            ColumnFamilyDescriptor::new(BY_NUMBER, ttl_options(&cutoff, &removed[1], 8)),
            ColumnFamilyDescriptor::new(REJECTS, rejects),
        ];
        let mut db_opts = options(9, 4 << 10);
        db_opts.create_missing_column_families(true);
        let db = DB::open_cf_descriptors(&db_opts, &spec.dir, cfs)?;
        Ok(Self { db, dir: spec.dir.clone(), seq: 0, cutoff, removed })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| anyhow!("column family {name} missing"))
    }

    /// Waits until no flush or compaction runs or is pending.
    fn settle_background(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(3_600);
        loop {
            let p = |name: &str| -> Result<u64> { Ok(self.db.property_int_value(name)?.unwrap_or(0)) };
            let busy = p("rocksdb.num-running-compactions")?
                + p("rocksdb.compaction-pending")?
                + p("rocksdb.num-running-flushes")?;
            if busy == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("RocksDB background work did not finish within an hour");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn count(&self, family: &str) -> Result<u64> {
        let mut it = self.db.raw_iterator_cf(self.cf(family)?);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    fn compact_all(&self) -> Result<()> {
        for name in [RECORDS, BY_NUMBER, REJECTS] {
            self.db.compact_range_cf_opt(self.cf(name)?, None::<&[u8]>, None::<&[u8]>, &forced());
        }
        self.settle_background()
    }
}

impl Peer for RocksPeer {
    fn ingest(&mut self, group: Vec<Record>, is_reject: &[bool]) -> Result<()> {
        let (records, index, rejects) = (self.cf(RECORDS)?, self.cf(BY_NUMBER)?, self.cf(REJECTS)?);
        let mut b = WriteBatch::default();
        let mut v = Vec::with_capacity(256);
        let mut seq = self.seq;
        for (r, &reject) in group.iter().zip(is_reject) {
            seq += 1;
            let key = encode_key(r, seq);
            v.clear();
            encode_value(r, &mut v);
            b.put_cf(records, key, &v);
            b.put_cf(index, index_key(r.peer.as_u64(), r.ts_ms, seq), &key[..SUB_PORT_DIGITS_MAX]);
            if reject {
                b.put_cf(rejects, reject_key(&r.sub_port, r.peer.as_u64()), []);
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(b, &wo)?;
        self.seq = seq;
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        for name in [RECORDS, BY_NUMBER, REJECTS] {
            self.db.flush_cf(self.cf(name)?)?;
        }
        self.compact_all()
    }

    fn counts(&mut self) -> Result<Counts> {
        let records = self.count(RECORDS)?;
        let index = self.count(BY_NUMBER)?;
        if index != records {
            bail!("rocksdb: {records} records but {index} index entries");
        }
        Ok(Counts { records, rejects: self.count(REJECTS)? })
    }

    fn disk(&mut self) -> Result<Disk> {
        let d = dir_bytes(&self.dir, ".sst")?;
        let mut detail = BTreeMap::from([("sst_files".to_string(), d.data)]);
        for name in [RECORDS, BY_NUMBER, REJECTS] {
            let live = self.db.property_int_value_cf(self.cf(name)?, "rocksdb.live-sst-files-size")?.unwrap_or(0);
            detail.insert(format!("sst_{name}"), live);
        }
        Ok(Disk { bytes: d.total, detail })
    }

    fn is_denied(&mut self, sub_port: &SubPort, number: PhoneNumber) -> Result<bool> {
        Ok(self.db.get_pinned_cf(self.cf(REJECTS)?, reject_key(sub_port, number.as_u64()))?.is_some())
    }

    fn trace(&mut self, number: PhoneNumber, from_ms: i64, to_ms: i64) -> Result<u64> {
        let hi = index_key(number.as_u64(), to_ms, 0);
        let mut it = self.db.raw_iterator_cf(self.cf(BY_NUMBER)?);
        it.seek(index_key(number.as_u64(), from_ms, 0));
        let mut keys: Vec<[u8; KEY_LEN]> = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k >= &hi[..] || k.len() != INDEX_KEY_LEN || v.len() != SUB_PORT_DIGITS_MAX {
                break;
            }
            let mut key = [0u8; KEY_LEN];
            key[..SUB_PORT_DIGITS_MAX].copy_from_slice(v);
            key[SUB_PORT_DIGITS_MAX..].copy_from_slice(&k[8..]);
            keys.push(key);
            it.next();
        }
        it.status()?;
        let records = self.cf(RECORDS)?;
        let mut n = 0u64;
        for (key, got) in keys.iter().zip(self.db.multi_get_cf(keys.iter().map(|k| (records, k)))) {
            let Some(v) = got? else { bail!("rocksdb: index entry without its record") };
            let (r, _) = decode(key, &v)?;
            if r.peer != number {
                bail!("rocksdb: trace of {number} returned a record of {}", r.peer);
            }
            n += 1;
        }
        Ok(n)
    }

    fn expire(&mut self, _from_ms: i64, to_ms: i64) -> Result<(u64, f64)> {
        let before = [self.removed[0].load(Ordering::Relaxed), self.removed[1].load(Ordering::Relaxed)];
        let t = Instant::now();
        self.cutoff.store(to_ms, Ordering::Release);
        for name in [RECORDS, BY_NUMBER] {
            self.db.compact_range_cf_opt(self.cf(name)?, None::<&[u8]>, None::<&[u8]>, &forced());
        }
        self.settle_background()?;
        let secs = t.elapsed().as_secs_f64();
        let records = self.removed[0].load(Ordering::Relaxed) - before[0];
        let index = self.removed[1].load(Ordering::Relaxed) - before[1];
        if records != index {
            bail!("rocksdb: the expiry removed {records} records but {index} index entries");
        }
        Ok((records, secs))
    }

    fn write_bytes(&mut self) -> Result<u64> {
        procfs::write_bytes("self")
    }

    fn peak_memory(&mut self) -> Result<(u64, String)> {
        Ok((procfs::status_bytes("self", "VmHWM:")?, "VmHWM of the harness process running RocksDB".into()))
    }

    fn close(self: Box<Self>) -> Result<()> {
        drop(self);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_sort_by_number_then_time_and_carry_the_time() {
        let a = index_key(13_800_000_000, 5, 9);
        let b = index_key(13_800_000_000, 6, 1);
        let c = index_key(13_800_000_001, 0, 0);
        assert!(a < b && b < c);
        assert_eq!(ts_at(&b, 8), 6);
        let sp = SubPort::parse("1069012345601").unwrap();
        assert_eq!(&reject_key(&sp, 1)[..13], b"1069012345601");
    }
}
