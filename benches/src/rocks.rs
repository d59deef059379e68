//! The RocksDB side of the comparison: a compact key/value layout for message records, and the
//! options the harness opens RocksDB with.
//!
//! # Layout
//!
//! One key/value pair per record, so that a sub-port's records are one contiguous range in time
//! order (what `read_sub_port` serves in portlog):
//!
//! | part  | bytes | content |
//! |-------|-------|---------|
//! | key   | 20    | sub-port digits, right-padded with `0x00` (digits are never `0x00`, so the padding cannot collide) |
//! | key   | 8     | record time `ts_ms`, u64 big-endian (records are validated non-negative) |
//! | key   | 8     | a sequence number unique within the run, u64 big-endian (two records of one sub-port may share a millisecond) |
//! | value | 1     | `dir_usage`: bit 7 set for MO; bits 0-1 the usage (0 none, 1 commercial, 2 service, 3 public) |
//! | value | 8     | peer number, u64 little-endian |
//! | value | n     | the text, UTF-8, to the end of the value |
//!
//! The key is 36 bytes, the value 9 + text bytes: no JSON, no field names. RocksDB's block
//! format delta-encodes neighbouring keys, so the repeated sub-port prefix costs little.

use anyhow::{bail, Result};
use portlog_engine::record::SUB_PORT_DIGITS_MAX;
use portlog_engine::{Direction, PhoneNumber, Record, SubPort, Usage};
use rocksdb::{BlockBasedOptions, DBCompressionType, Options};

/// Length of an encoded key.
pub const KEY_LEN: usize = SUB_PORT_DIGITS_MAX + 8 + 8;

/// The key of `r` with sequence number `seq`.
pub fn encode_key(r: &Record, seq: u64) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    let sp = r.sub_port.as_str().as_bytes();
    k[..sp.len()].copy_from_slice(sp);
    k[SUB_PORT_DIGITS_MAX..SUB_PORT_DIGITS_MAX + 8].copy_from_slice(&(r.ts_ms as u64).to_be_bytes());
    k[SUB_PORT_DIGITS_MAX + 8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Appends the value of `r` to `out`.
pub fn encode_value(r: &Record, out: &mut Vec<u8>) {
    let usage = match r.usage {
        None => 0u8,
        Some(Usage::Commercial) => 1,
        Some(Usage::Service) => 2,
        Some(Usage::Public) => 3,
    };
    let dir = if r.dir == Direction::Mo { 0x80u8 } else { 0 };
    out.push(dir | usage);
    out.extend_from_slice(&r.peer.as_u64().to_le_bytes());
    out.extend_from_slice(r.text.as_bytes());
}

/// The record and sequence number of a key/value pair written by [`encode_key`] and
/// [`encode_value`].
pub fn decode(key: &[u8], value: &[u8]) -> Result<(Record, u64)> {
    if key.len() != KEY_LEN || value.len() < 9 {
        bail!("bad key or value length ({} / {})", key.len(), value.len());
    }
    let sp_end = key[..SUB_PORT_DIGITS_MAX].iter().position(|&b| b == 0).unwrap_or(SUB_PORT_DIGITS_MAX);
    let sub_port = SubPort::parse(std::str::from_utf8(&key[..sp_end])?)?;
    let be = |b: &[u8]| -> Result<u64> { Ok(u64::from_be_bytes(b.try_into()?)) };
    let ts_ms = i64::try_from(be(&key[SUB_PORT_DIGITS_MAX..SUB_PORT_DIGITS_MAX + 8])?)?;
    let seq = be(&key[SUB_PORT_DIGITS_MAX + 8..])?;
    let dir = if value[0] & 0x80 != 0 { Direction::Mo } else { Direction::Mt };
    let usage = match value[0] & 0x03 {
        0 => None,
        1 => Some(Usage::Commercial),
        2 => Some(Usage::Service),
        _ => Some(Usage::Public),
    };
    let peer_raw = u64::from_le_bytes(value[1..9].try_into()?);
    let Some(peer) = PhoneNumber::from_u64(peer_raw) else { bail!("bad peer {peer_raw}") };
    let text = String::from_utf8(value[9..].to_vec())?;
    Ok((Record { dir, sub_port, peer, ts_ms, usage, text }, seq))
}

/// RocksDB options for the comparison: defaults except zstd on every level (the bottommost
/// one, where a full compaction leaves everything, at `zstd_level`) and a block size of
/// `block_bytes` (RocksDB's default is 4 KiB).
pub fn options(zstd_level: i32, block_bytes: usize) -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_compression_type(DBCompressionType::Zstd);
    o.set_compression_per_level(&[DBCompressionType::Zstd; 7]);
    o.set_bottommost_compression_type(DBCompressionType::Zstd);
    // window_bits, level, strategy, max_dict_bytes, enabled: -14 and 0 are RocksDB's defaults.
    o.set_bottommost_compression_options(-14, zstd_level, 0, 0, true);
    let mut t = BlockBasedOptions::default();
    t.set_block_size(block_bytes);
    o.set_block_based_table_factory(&t);
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Generator, Templates, WorkloadConfig};
    use std::sync::Arc;

    #[test]
    fn keys_and_values_round_trip_and_sort_by_sub_port_then_time() {
        let g = Generator::new(Arc::new(Templates::load_default().unwrap()), WorkloadConfig::default()).unwrap();
        let recs: Vec<Record> = g.take(500).collect();
        let mut keys = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            let k = encode_key(r, i as u64);
            let mut v = Vec::new();
            encode_value(r, &mut v);
            assert_eq!(v.len(), 9 + r.text.len());
            let (back, seq) = decode(&k, &v).unwrap();
            assert_eq!((&back, seq), (r, i as u64));
            keys.push((k, (r.sub_port.clone(), r.ts_ms, i)));
        }
        // Byte order of keys is (sub-port, time, sequence) order (all sub-ports here have 13 digits).
        let mut by_key = keys.clone();
        by_key.sort_by_key(|a| a.0);
        keys.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(by_key, keys);
    }
}
