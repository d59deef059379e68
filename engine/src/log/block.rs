//! The columnar block of a sealed segment: up to `block_bytes_max` of records sorted by time,
//! laid out column by column so that zstd sees like next to like (times as deltas, a per-block
//! sub-port dictionary, numbers as 5-byte integers, texts together). Layout: docs/format.md.

use super::frame::{meta_byte, parse_meta};
use crate::codec::{put_varint, Reader};
use crate::record::{PhoneNumber, Record, SubPort};
use std::collections::HashMap;

/// Bytes of a number in the peers column (numbers are below 2^40).
const PEER_BYTES: usize = 5;
/// Upper bound on records in one block, checked when decoding.
pub const BLOCK_RECORDS_MAX: usize = 1 << 20;

/// Encodes `records` (sorted by `ts_ms`) into an uncompressed block.
pub fn encode(records: &[&Record]) -> Vec<u8> {
    let mut dict: Vec<&str> = Vec::new();
    let mut dict_ix: HashMap<&str, u64> = HashMap::new();
    let mut sp_col = Vec::with_capacity(records.len());
    for r in records {
        let s = r.sub_port.as_str();
        let ix = *dict_ix.entry(s).or_insert_with(|| {
            dict.push(s);
            (dict.len() - 1) as u64
        });
        put_varint(&mut sp_col, ix);
    }
    let text_bytes: usize = records.iter().map(|r| r.text.len()).sum();
    let mut out = Vec::with_capacity(text_bytes + records.len() * 12 + 64);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    put_varint(&mut out, dict.len() as u64);
    for s in &dict {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    let first_ts = records.first().map_or(0, |r| r.ts_ms);
    out.extend_from_slice(&first_ts.to_le_bytes());
    let mut prev = first_ts;
    for r in records.iter().skip(1) {
        // Sorted input: the delta is never negative.
        put_varint(&mut out, (r.ts_ms - prev) as u64);
        prev = r.ts_ms;
    }
    out.extend(records.iter().map(|r| meta_byte(r)));
    out.extend_from_slice(&sp_col);
    for r in records {
        out.extend_from_slice(&r.peer.as_u64().to_le_bytes()[..PEER_BYTES]);
    }
    for r in records {
        put_varint(&mut out, r.text.len() as u64);
    }
    for r in records {
        out.extend_from_slice(r.text.as_bytes());
    }
    out
}

/// The columns of a decoded block, every length and index checked, texts not yet split.
struct Columns<'a> {
    dict: Vec<&'a str>,
    ts: Vec<i64>,
    metas: &'a [u8],
    sps: Vec<usize>,
    peers: &'a [u8],
    lens: Vec<usize>,
    texts: &'a [u8],
}

impl<'a> Columns<'a> {
    fn parse(raw: &'a [u8]) -> Result<Self, &'static str> {
        let mut r = Reader::new(raw);
        let n = r.u32()? as usize;
        if n > BLOCK_RECORDS_MAX || n > raw.len() {
            return Err("record count out of range");
        }
        let dict_n = r.len(n.max(1))?;
        let mut dict = Vec::with_capacity(dict_n);
        for _ in 0..dict_n {
            let len = usize::from(r.u8()?);
            dict.push(std::str::from_utf8(r.bytes(len)?).map_err(|_| "sub_port not utf-8")?);
        }
        let mut ts = Vec::with_capacity(n);
        if n > 0 {
            let mut t = r.i64()?;
            ts.push(t);
            for _ in 1..n {
                let d = i64::try_from(r.varint()?).map_err(|_| "time delta out of range")?;
                t = t.checked_add(d).ok_or("time overflow")?;
                ts.push(t);
            }
        } else {
            r.i64()?;
        }
        let metas = r.bytes(n)?;
        let mut sps = Vec::with_capacity(n);
        for _ in 0..n {
            let ix = r.len(dict_n.saturating_sub(1))?;
            if ix >= dict_n {
                return Err("sub_port index out of range");
            }
            sps.push(ix);
        }
        let peers = r.bytes(n * PEER_BYTES)?;
        let mut lens = Vec::with_capacity(n);
        let mut total = 0usize;
        for _ in 0..n {
            let l = r.len(raw.len())?;
            total = total.checked_add(l).ok_or("text lengths overflow")?;
            lens.push(l);
        }
        let texts = r.bytes(r.remaining())?;
        match total.cmp(&texts.len()) {
            std::cmp::Ordering::Greater => Err("truncated"),
            std::cmp::Ordering::Less => Err("bytes after the last text"),
            std::cmp::Ordering::Equal => Ok(Self { dict, ts, metas, sps, peers, lens, texts }),
        }
    }

    fn peer(&self, i: usize) -> u64 {
        let mut p = [0u8; 8];
        p[..PEER_BYTES].copy_from_slice(&self.peers[i * PEER_BYTES..(i + 1) * PEER_BYTES]);
        u64::from_le_bytes(p)
    }

    /// Record `i`, whose text starts at `text_at` in the texts column.
    fn record(&self, i: usize, sub_port: SubPort, text_at: usize) -> Result<Record, &'static str> {
        let (dir, usage) = parse_meta(self.metas[i])?;
        let peer = PhoneNumber::from_u64(self.peer(i)).ok_or("peer out of range")?;
        // Lengths were checked to add up to the column.
        let text = std::str::from_utf8(&self.texts[text_at..text_at + self.lens[i]]).map_err(|_| "text not utf-8")?;
        Ok(Record { dir, sub_port, peer, ts_ms: self.ts[i], usage, text: text.to_owned() })
    }
}

/// Decodes an uncompressed block, checking every structural invariant; a malformed block is an
/// error, never a panic or a wrong record.
pub fn decode(raw: &[u8]) -> Result<Vec<Record>, &'static str> {
    let c = Columns::parse(raw)?;
    let dict = c
        .dict
        .iter()
        .map(|s| SubPort::parse(s).map_err(|_| "bad sub_port in dictionary"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(c.ts.len());
    let mut at = 0usize;
    for i in 0..c.ts.len() {
        out.push(c.record(i, dict[c.sps[i]].clone(), at)?);
        at += c.lens[i];
    }
    Ok(out)
}

/// What [`decode_peer`] found besides the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Records in the block.
    pub count: usize,
    /// Time of its first record.
    pub first_ts: Option<i64>,
    /// Time of its last record.
    pub last_ts: Option<i64>,
}

/// Decodes only the records of number `peer`, in block order: the columns are parsed and
/// checked as by [`decode`] (counts, lengths, indexes), but only the matching records are
/// built, so that a trace pays for the records it returns rather than for the whole block.
pub fn decode_peer(raw: &[u8], peer: u64) -> Result<(Summary, Vec<Record>), &'static str> {
    let c = Columns::parse(raw)?;
    let summary = Summary { count: c.ts.len(), first_ts: c.ts.first().copied(), last_ts: c.ts.last().copied() };
    let mut out = Vec::new();
    let mut at = 0usize;
    for i in 0..c.ts.len() {
        if c.peer(i) == peer {
            let sp = SubPort::parse(c.dict[c.sps[i]]).map_err(|_| "bad sub_port in dictionary")?;
            out.push(c.record(i, sp, at)?);
        }
        at += c.lens[i];
    }
    Ok((summary, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Direction, Usage};

    #[test]
    fn round_trip_and_garbage_is_an_error() {
        let recs: Vec<Record> = (0..50)
            .map(|i| Record {
                dir: if i % 3 == 0 { Direction::Mo } else { Direction::Mt },
                sub_port: SubPort::parse(&format!("10690{}", i % 4)).unwrap(),
                peer: PhoneNumber::from_u64(13_800_000_000 + i * 7919).unwrap(),
                ts_ms: 1_000 + (i as i64) * 10,
                usage: if i % 3 == 0 { None } else { Some(Usage::Service) },
                text: format!("第{i}条 message"),
            })
            .collect();
        let refs: Vec<&Record> = recs.iter().collect();
        let raw = encode(&refs);
        assert_eq!(decode(&raw).unwrap(), recs);
        assert!(decode(&encode(&[])).unwrap().is_empty());
        for cut in 0..raw.len() {
            assert!(decode(&raw[..cut]).is_err(), "cut {cut}");
            assert!(decode_peer(&raw[..cut], recs[0].peer.as_u64()).is_err(), "cut {cut}");
        }
        let mut long = raw.clone();
        long.push(b'x');
        assert!(decode(&long).is_err() && decode_peer(&long, 1).is_err());
        // Only one number's records, the rest skipped.
        for r in &recs {
            let (sum, got) = decode_peer(&raw, r.peer.as_u64()).unwrap();
            assert_eq!(got, vec![r.clone()]);
            assert_eq!(sum, Summary { count: 50, first_ts: Some(1_000), last_ts: Some(1_490) });
        }
        assert!(decode_peer(&raw, 13_900_000_000).unwrap().1.is_empty());
    }
}
