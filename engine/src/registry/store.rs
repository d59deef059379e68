//! The registry's durable store: one RocksDB database with a column family per kind of record.
//! Keys are big-endian so that RocksDB's byte order is numeric order; every write goes through
//! a `WriteBatch` (all-or-nothing) with `sync` set unless the sync policy is `none`. RocksDB
//! checksums every block (xxh3) and its WAL records. Layout: docs/format.md, "Registry store".

use super::types::{Assignment, ConsentRecord, LedgerEvent, Provider, RejectSource};
use crate::crypto::{self, CryptoError, KeyRing, Purpose};
use crate::error::{Error, Result};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const CF_PROVIDERS: &str = "providers";
pub(crate) const CF_ASSIGNMENTS: &str = "assignments";
pub(crate) const CF_HISTORY: &str = "history";
pub(crate) const CF_REJECTS: &str = "rejects";
pub(crate) const CF_REJECTS_BY_NUMBER: &str = "rejects_by_number";
pub(crate) const CF_CONSENT: &str = "consent";
pub(crate) const CF_AUDIT: &str = "audit";
pub(crate) const CF_META: &str = "meta";
/// Reports of retention runs (docs/format.md, "Registry store").
pub(crate) const CF_RETENTION: &str = "retention";
const CFS: [&str; 9] = [
    CF_PROVIDERS,
    CF_ASSIGNMENTS,
    CF_HISTORY,
    CF_REJECTS,
    CF_REJECTS_BY_NUMBER,
    CF_CONSENT,
    CF_AUDIT,
    CF_META,
    CF_RETENTION,
];

/// A raw key and value.
pub(crate) type RawEntry = (Box<[u8]>, Box<[u8]>);

/// Version byte leading a reject value with a plaintext text.
const REJECT_VALUE_V1: u8 = 1;
/// Version byte leading a reject value whose text is encrypted (docs/format.md, "Registry
/// store"): `02 ‖ at_ms ‖ source ‖ key id u32 LE ‖ nonce ‖ ciphertext ‖ tag`.
const REJECT_VALUE_V2: u8 = 2;

/// First byte of an encrypted consent value: `02 ‖ key id u32 LE ‖ nonce ‖ ciphertext of the
/// JSON ‖ tag` (a plaintext one is JSON, starting with `{`).
const CONSENT_VALUE_ENCRYPTED: u8 = 2;

/// Why a stored reject value could not be read.
#[derive(Debug)]
pub(crate) enum RejectDecodeError {
    /// Not a reject value of a known version.
    Malformed,
    /// Its text could not be decrypted.
    Crypto(CryptoError),
}

/// The stored part of a reject (the key holds assignment and number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RejectValue {
    pub at_ms: i64,
    pub source: RejectSource,
    pub text: String,
}

impl RejectValue {
    /// The stored value of the reject under RocksDB key `rkey`: version 1 (plaintext text)
    /// without a key ring, version 2 (text encrypted with the active key, bound to `rkey`) with
    /// one.
    fn encode(&self, keys: Option<&KeyRing>, rkey: &[u8]) -> std::result::Result<Vec<u8>, CryptoError> {
        let mut v = Vec::with_capacity(14 + crypto::OVERHEAD + self.text.len());
        v.push(if keys.is_some() { REJECT_VALUE_V2 } else { REJECT_VALUE_V1 });
        v.extend_from_slice(&self.at_ms.to_le_bytes());
        v.push(self.source.code());
        match keys {
            None => v.extend_from_slice(self.text.as_bytes()),
            Some(k) => {
                v.extend_from_slice(&k.active_id().to_le_bytes());
                k.seal(k.active_id(), &crypto::aad(Purpose::RejectText, rkey), self.text.as_bytes(), &mut v)?;
            }
        }
        Ok(v)
    }

    /// The time a stored value (either version) records, without touching its text.
    fn at_ms_of(b: &[u8]) -> Option<i64> {
        if b.len() < 10 || (b[0] != REJECT_VALUE_V1 && b[0] != REJECT_VALUE_V2) {
            return None;
        }
        Some(i64::from_le_bytes(b[1..9].try_into().ok()?))
    }

    fn decode(b: &[u8], keys: Option<&KeyRing>, rkey: &[u8]) -> std::result::Result<Self, RejectDecodeError> {
        let at_ms = Self::at_ms_of(b).ok_or(RejectDecodeError::Malformed)?;
        let source = RejectSource::from_code(b[9]).ok_or(RejectDecodeError::Malformed)?;
        let text = if b[0] == REJECT_VALUE_V1 {
            b[10..].to_vec()
        } else {
            let id = b.get(10..14).and_then(|i| i.try_into().ok()).map(u32::from_le_bytes);
            let id = id.ok_or(RejectDecodeError::Malformed)?;
            let keys = keys.ok_or(RejectDecodeError::Crypto(CryptoError::MissingKey(id)))?;
            keys.open(id, &crypto::aad(Purpose::RejectText, rkey), &b[14..]).map_err(RejectDecodeError::Crypto)?
        };
        let text = String::from_utf8(text).map_err(|_| RejectDecodeError::Malformed)?;
        Ok(RejectValue { at_ms, source, text })
    }
}

pub(crate) fn reject_key(assignment: u32, key: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&assignment.to_be_bytes());
    k[4..].copy_from_slice(&key.to_be_bytes());
    k
}

fn by_number_key(key: u64, assignment: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&key.to_be_bytes());
    k[8..].copy_from_slice(&assignment.to_be_bytes());
    k
}

fn split_reject_key(k: &[u8]) -> Option<(u32, u64)> {
    let a = u32::from_be_bytes(k.get(..4)?.try_into().ok()?);
    let n = u64::from_be_bytes(k.get(4..12)?.try_into().ok()?);
    Some((a, n))
}

/// The RocksDB database of the registry.
pub(crate) struct Store {
    db: DB,
    path: PathBuf,
    sync: bool,
    /// With a ring, reject texts are written encrypted (and encrypted ones can be read).
    keys: Option<Arc<KeyRing>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).field("sync", &self.sync).finish()
    }
}

/// A read-only, point-in-time view of the store ([`Store::snapshot`]).
pub(crate) struct StoreSnapshot<'a> {
    store: &'a Store,
    snap: rocksdb::Snapshot<'a>,
}

impl StoreSnapshot<'_> {
    /// `meta` value `name` as of the snapshot (absent: 0).
    pub fn meta(&self, name: &str) -> Result<u64> {
        let v = self.meta_bytes(name)?;
        self.store.meta_u64(name, v)
    }

    /// The raw `meta` value `name` as of the snapshot, if set.
    pub fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.snap.get_cf(self.store.cf(CF_META)?, name.as_bytes()).map_err(self.store.rerr("read"))
    }

    /// Calls `f(key, value)` for every entry of `cf` in key order until it returns `false`.
    pub fn for_each_raw(&self, cf: &str, mut f: impl FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        for item in self.snap.iterator_cf(self.store.cf(cf)?, IteratorMode::Start) {
            let (k, v) = item.map_err(self.store.rerr("read"))?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }
}

/// A set of writes applied atomically by [`Store::write`].
pub(crate) struct Batch<'a> {
    store: &'a Store,
    wb: WriteBatch,
}

impl Batch<'_> {
    fn json(&mut self, cf: &str, key: &[u8], v: &impl serde::Serialize) -> Result<()> {
        let bytes = serde_json::to_vec(v).map_err(|e| self.store.corrupt(format!("encoding {cf}: {e}")))?;
        let h = self.store.cf(cf)?;
        self.wb.put_cf(h, key, bytes);
        Ok(())
    }

    pub fn provider(&mut self, versions: &[Provider]) -> Result<()> {
        let id = versions.first().map(|p| p.id.clone()).unwrap_or_default();
        self.json(CF_PROVIDERS, id.as_bytes(), &versions)
    }

    pub fn assignment(&mut self, a: &Assignment) -> Result<()> {
        self.json(CF_ASSIGNMENTS, &a.id.to_be_bytes(), a)
    }

    pub fn event(&mut self, e: &LedgerEvent) -> Result<()> {
        self.json(CF_HISTORY, &e.seq.to_be_bytes(), e)
    }

    /// A consent record: its JSON, encrypted (the whole value: number and evidence) when the
    /// store has a key ring.
    pub fn consent(&mut self, key: u64, seq: u64, c: &ConsentRecord) -> Result<()> {
        let mut k = Vec::with_capacity(20);
        k.extend_from_slice(&c.assignment.to_be_bytes());
        k.extend_from_slice(&key.to_be_bytes());
        k.extend_from_slice(&seq.to_be_bytes());
        let Some(keys) = self.store.keys.as_deref() else { return self.json(CF_CONSENT, &k, c) };
        let json = serde_json::to_vec(c).map_err(|e| self.store.corrupt(format!("encoding {CF_CONSENT}: {e}")))?;
        let mut v = Vec::with_capacity(5 + crypto::OVERHEAD + json.len());
        v.push(CONSENT_VALUE_ENCRYPTED);
        v.extend_from_slice(&keys.active_id().to_le_bytes());
        keys.seal(keys.active_id(), &crypto::aad(Purpose::ConsentRecord, &k), &json, &mut v)
            .map_err(|e| self.store.value_error(CF_CONSENT, &k, e))?;
        let h = self.store.cf(CF_CONSENT)?;
        self.wb.put_cf(h, k, v);
        Ok(())
    }

    pub fn reject(&mut self, assignment: u32, key: u64, v: &RejectValue) -> Result<()> {
        let h = self.store.cf(CF_REJECTS)?;
        let rkey = reject_key(assignment, key);
        let value = v.encode(self.store.keys.as_deref(), &rkey).map_err(|e| self.store.reject_error(&rkey, e))?;
        self.wb.put_cf(h, rkey, value);
        let h = self.store.cf(CF_REJECTS_BY_NUMBER)?;
        self.wb.put_cf(h, by_number_key(key, assignment), []);
        Ok(())
    }

    pub fn audit(&mut self, seq: u64, entry: &impl serde::Serialize) -> Result<()> {
        self.json(CF_AUDIT, &seq.to_be_bytes(), entry)
    }

    pub fn meta(&mut self, name: &str, v: u64) -> Result<()> {
        self.meta_bytes(name, &v.to_le_bytes())
    }

    /// A `meta` value that is not a u64 (the audit chain's anchor hash).
    pub fn meta_bytes(&mut self, name: &str, v: &[u8]) -> Result<()> {
        let h = self.store.cf(CF_META)?;
        self.wb.put_cf(h, name.as_bytes(), v);
        Ok(())
    }

    /// Removes a reject and its `rejects_by_number` entry.
    pub fn delete_reject(&mut self, assignment: u32, key: u64) -> Result<()> {
        let h = self.store.cf(CF_REJECTS)?;
        self.wb.delete_cf(h, reject_key(assignment, key));
        let h = self.store.cf(CF_REJECTS_BY_NUMBER)?;
        self.wb.delete_cf(h, by_number_key(key, assignment));
        Ok(())
    }

    /// Removes one entry of column family `cf` by its raw key.
    pub fn delete(&mut self, cf: &str, key: &[u8]) -> Result<()> {
        let h = self.store.cf(cf)?;
        self.wb.delete_cf(h, key);
        Ok(())
    }

    /// A retention report (JSON) under sequence `seq`.
    pub fn retention_report(&mut self, seq: u64, report: &impl serde::Serialize) -> Result<()> {
        self.json(CF_RETENTION, &seq.to_be_bytes(), report)
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.wb.is_empty()
    }
}

impl Store {
    pub fn open(path: &Path, sync: bool, keys: Option<Arc<KeyRing>>) -> Result<Store> {
        std::fs::create_dir_all(path).map_err(Error::io("create directory", path))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Zstd);
        opts.set_max_open_files(256);
        let mut cfs = Vec::new();
        for name in CFS {
            let mut o = Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::Zstd);
            let mut bb = BlockBasedOptions::default();
            bb.set_checksum_type(rocksdb::ChecksumType::XXH3);
            if name == CF_REJECTS {
                // Point lookups of a hit's since-time: a bloom filter and a cache.
                bb.set_bloom_filter(10.0, false);
                bb.set_block_cache(&rocksdb::Cache::new_lru_cache(64 << 20));
            }
            o.set_block_based_table_factory(&bb);
            cfs.push(ColumnFamilyDescriptor::new(name, o));
        }
        let db = DB::open_cf_descriptors(&opts, path, cfs)
            .map_err(|e| Error::Store { path: path.to_path_buf(), detail: format!("open: {}", e.into_string()) })?;
        Ok(Store { db, path: path.to_path_buf(), sync, keys })
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| self.corrupt(format!("column family {name} missing")))
    }

    fn corrupt(&self, detail: String) -> Error {
        Error::Store { path: self.path.clone(), detail }
    }

    /// The error for reject `rkey`'s value that does not decode (or encrypt).
    fn reject_error(&self, rkey: &[u8], e: CryptoError) -> Error {
        let (a, k) = split_reject_key(rkey).unwrap_or_default();
        match e {
            CryptoError::MissingKey(id) => Error::key_missing(&self.path, id, self.keys.as_deref()),
            e => self.corrupt(format!("reject {a}/{k}: {e}")),
        }
    }

    /// The error for a value of `cf` under `key` that does not decrypt (or encrypt).
    fn value_error(&self, cf: &str, key: &[u8], e: CryptoError) -> Error {
        match e {
            CryptoError::MissingKey(id) => Error::key_missing(&self.path, id, self.keys.as_deref()),
            e => self.corrupt(format!("{cf} entry {key:?}: {e}")),
        }
    }

    /// A consent value decoded: JSON, decrypted first when it is encrypted.
    fn decode_consent(&self, key: &[u8], v: &[u8]) -> Result<ConsentRecord> {
        let json = if v.first() == Some(&CONSENT_VALUE_ENCRYPTED) {
            let id = v.get(1..5).and_then(|i| i.try_into().ok()).map(u32::from_le_bytes);
            let id = id.ok_or_else(|| self.corrupt(format!("{CF_CONSENT} entry {key:?} is truncated")))?;
            let keys = self.keys.as_deref().ok_or_else(|| Error::key_missing(&self.path, id, None))?;
            let plain = keys
                .open(id, &crypto::aad(Purpose::ConsentRecord, key), &v[5..])
                .map_err(|e| self.value_error(CF_CONSENT, key, e))?;
            std::borrow::Cow::Owned(plain)
        } else {
            std::borrow::Cow::Borrowed(v)
        };
        serde_json::from_slice(&json).map_err(|e| self.corrupt(format!("consent entry {key:?}: {e}")))
    }

    fn decode_reject(&self, rkey: &[u8], v: &[u8]) -> Result<RejectValue> {
        RejectValue::decode(v, self.keys.as_deref(), rkey).map_err(|e| match e {
            RejectDecodeError::Crypto(e) => self.reject_error(rkey, e),
            RejectDecodeError::Malformed => {
                let (a, k) = split_reject_key(rkey).unwrap_or_default();
                self.corrupt(format!("reject {a}/{k} does not decode"))
            }
        })
    }

    fn rerr(&self, op: &str) -> impl Fn(rocksdb::Error) -> Error + '_ {
        let op = op.to_string();
        move |e| Error::Store { path: self.path.clone(), detail: format!("{op}: {}", e.into_string()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn batch(&self) -> Batch<'_> {
        Batch { store: self, wb: WriteBatch::default() }
    }

    /// Applies `b` atomically; durable on return unless the sync policy is `none`.
    pub fn write(&self, b: Batch<'_>) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync);
        self.db.write_opt(b.wb, &wo).map_err(self.rerr("write"))
    }

    fn load_json<T: serde::de::DeserializeOwned>(&self, cf: &str) -> Result<Vec<(Box<[u8]>, T)>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf)?, IteratorMode::Start) {
            let (k, v) = item.map_err(self.rerr("read"))?;
            let t = serde_json::from_slice(&v)
                .map_err(|e| self.corrupt(format!("{cf} entry {k:?} does not decode: {e}")))?;
            out.push((k, t));
        }
        Ok(out)
    }

    pub fn providers(&self) -> Result<Vec<Vec<Provider>>> {
        Ok(self.load_json(CF_PROVIDERS)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn assignments(&self) -> Result<Vec<Assignment>> {
        Ok(self.load_json(CF_ASSIGNMENTS)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn history(&self) -> Result<Vec<LedgerEvent>> {
        Ok(self.load_json(CF_HISTORY)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn consents(&self) -> Result<Vec<ConsentRecord>> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_CONSENT)?, IteratorMode::Start) {
            let (k, v) = item.map_err(self.rerr("read"))?;
            out.push(self.decode_consent(&k, &v)?);
        }
        Ok(out)
    }

    pub fn audit_entries<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        Ok(self.load_json(CF_AUDIT)?.into_iter().map(|(_, v)| v).collect())
    }

    pub fn meta(&self, name: &str) -> Result<u64> {
        let v = self.meta_bytes(name)?;
        self.meta_u64(name, v)
    }

    /// The raw `meta` value `name`, if set.
    pub fn meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(CF_META)?, name.as_bytes()).map_err(self.rerr("read"))
    }

    /// Decodes a u64 `meta` value (absent: 0).
    fn meta_u64(&self, name: &str, v: Option<Vec<u8>>) -> Result<u64> {
        match v {
            None => Ok(0),
            Some(b) => {
                let arr: [u8; 8] =
                    b.as_slice().try_into().map_err(|_| self.corrupt(format!("meta {name} is not 8 bytes")))?;
                Ok(u64::from_le_bytes(arr))
            }
        }
    }

    /// The last entry (raw key and value) of column family `cf`, if any.
    pub fn last_raw(&self, cf: &str) -> Result<Option<RawEntry>> {
        match self.db.iterator_cf(self.cf(cf)?, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => item.map(Some).map_err(self.rerr("read")),
        }
    }

    /// A consistent view of the whole store as of now (RocksDB snapshot): `meta` values and a
    /// column family read from it agree even while writers go on.
    pub fn snapshot(&self) -> StoreSnapshot<'_> {
        StoreSnapshot { store: self, snap: self.db.snapshot() }
    }

    /// Test hook: the raw value of `cf` under `key`. Used through
    /// [`super::Registry::audit_raw`] by tests that tamper with the audit trail.
    pub fn raw_get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf)?, key).map_err(self.rerr("read"))
    }

    /// Test hook: writes (`Some`) or deletes (`None`) the raw value of `cf` under `key`,
    /// bypassing every invariant kept by the registry's writer. Only for tests that tamper
    /// with the audit trail ([`super::Registry::audit_raw_put`]).
    pub fn raw_put(&self, cf: &str, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let mut b = self.batch();
        let h = self.cf(cf)?;
        match value {
            Some(v) => b.wb.put_cf(h, key, v),
            None => b.wb.delete_cf(h, key),
        }
        self.write(b)
    }

    /// Calls `f(assignment, key)` for every reject, in (assignment, key) order, reading keys only
    /// as far as RocksDB allows (values share blocks with keys).
    pub fn for_each_reject_key(&self, mut f: impl FnMut(u32, u64)) -> Result<()> {
        let mut it = self.db.raw_iterator_cf(self.cf(CF_REJECTS)?);
        it.seek_to_first();
        while it.valid() {
            if let Some((a, k)) = it.key().and_then(split_reject_key) {
                f(a, k);
            }
            it.next();
        }
        it.status().map_err(self.rerr("scan rejects"))
    }

    pub fn get_reject(&self, assignment: u32, key: u64) -> Result<Option<RejectValue>> {
        let k = reject_key(assignment, key);
        let v = self.db.get_pinned_cf(self.cf(CF_REJECTS)?, k).map_err(self.rerr("read reject"))?;
        match v {
            None => Ok(None),
            Some(b) => self.decode_reject(&k, &b).map(Some),
        }
    }

    /// The time of a reject, if there is one, without decrypting its text (the check's path).
    pub fn reject_at_ms(&self, assignment: u32, key: u64) -> Result<Option<i64>> {
        let k = reject_key(assignment, key);
        let v = self.db.get_pinned_cf(self.cf(CF_REJECTS)?, k).map_err(self.rerr("read reject"))?;
        match v {
            None => Ok(None),
            Some(b) => RejectValue::at_ms_of(&b)
                .map(Some)
                .ok_or_else(|| self.corrupt(format!("reject {assignment}/{key} does not decode"))),
        }
    }

    /// The rejects of one assignment, by number.
    pub fn rejects_of(&self, assignment: u32) -> Result<Vec<(u64, RejectValue)>> {
        let prefix = assignment.to_be_bytes();
        let mut out = Vec::new();
        let it = self.db.iterator_cf(self.cf(CF_REJECTS)?, IteratorMode::From(&prefix, Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(self.rerr("scan rejects"))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let (_, key) = split_reject_key(&k).ok_or_else(|| self.corrupt(format!("reject key {k:?}")))?;
            let val = self.decode_reject(&k, &v)?;
            out.push((key, val));
        }
        Ok(out)
    }

    /// Up to `limit` reject keys of `assignment` after `after` (from the first when `None`), in
    /// order.
    pub fn reject_keys_of(&self, assignment: u32, after: Option<u64>, limit: usize) -> Result<Vec<u64>> {
        let start = match after {
            Some(k) => match k.checked_add(1) {
                Some(next) => reject_key(assignment, next),
                None => return Ok(Vec::new()),
            },
            None => reject_key(assignment, 0),
        };
        let mut out = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(CF_REJECTS)?);
        it.seek(start);
        while it.valid() && out.len() < limit {
            match it.key().and_then(split_reject_key) {
                Some((a, k)) if a == assignment => out.push(k),
                _ => break,
            }
            it.next();
        }
        it.status().map_err(self.rerr("scan rejects"))?;
        Ok(out)
    }

    /// The consent records of `assignment` (of one number `key` only, if given) with their raw
    /// keys, in key (number, sequence) order.
    pub fn consents_of(&self, assignment: u32, key: Option<u64>) -> Result<Vec<(Box<[u8]>, ConsentRecord)>> {
        let mut prefix = assignment.to_be_bytes().to_vec();
        if let Some(k) = key {
            prefix.extend_from_slice(&k.to_be_bytes());
        }
        let mut out = Vec::new();
        let it = self.db.iterator_cf(self.cf(CF_CONSENT)?, IteratorMode::From(&prefix, Direction::Forward));
        for item in it {
            let (k, v) = item.map_err(self.rerr("scan consent"))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let c = self.decode_consent(&k, &v)?;
            out.push((k, c));
        }
        Ok(out)
    }

    /// Up to `limit` entries of a JSON column family in key order, starting after `after` (raw
    /// key; from the first when `None`).
    pub fn json_entries<T: serde::de::DeserializeOwned>(
        &self,
        cf: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Box<[u8]>, T)>> {
        let mode = match after {
            Some(k) => IteratorMode::From(k, Direction::Forward),
            None => IteratorMode::Start,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf)?, mode) {
            let (k, v) = item.map_err(self.rerr("read"))?;
            if after.is_some_and(|a| *k == *a) {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            let t = serde_json::from_slice(&v)
                .map_err(|e| self.corrupt(format!("{cf} entry {k:?} does not decode: {e}")))?;
            out.push((k, t));
        }
        Ok(out)
    }

    /// Every retention report, oldest first.
    pub fn retention_reports<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>> {
        Ok(self.load_json(CF_RETENTION)?.into_iter().map(|(_, v)| v).collect())
    }

    /// The assignments under which number `key` has a reject.
    pub fn assignments_rejected_by(&self, key: u64) -> Result<Vec<u32>> {
        let prefix = key.to_be_bytes();
        let mut out = Vec::new();
        let it = self.db.iterator_cf(self.cf(CF_REJECTS_BY_NUMBER)?, IteratorMode::From(&prefix, Direction::Forward));
        for item in it {
            let (k, _) = item.map_err(self.rerr("scan rejects by number"))?;
            if !k.starts_with(&prefix) {
                break;
            }
            let a = k.get(8..12).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
            out.push(a.ok_or_else(|| self.corrupt(format!("rejects_by_number key {k:?}")))?);
        }
        Ok(out)
    }
}
