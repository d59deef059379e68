//! The columnar block of a sealed segment: up to `block_bytes_max` of records sorted by time,
//! laid out column by column so that zstd sees like next to like (times as deltas, a per-block
//! sub-port dictionary, numbers as 5-byte integers, texts together). Layout: docs/format.md.

use super::frame::{meta_byte, parse_meta};
use super::template::{self, TemplateBuilder, Templates};
use crate::codec::{put_varint, Reader};
use crate::record::{PhoneNumber, Record, SubPort};
use std::collections::HashMap;

/// Bytes of a number in the peers column (numbers are below 2^40).
const PEER_BYTES: usize = 5;
/// Upper bound on records in one block, checked when decoding.
pub const BLOCK_RECORDS_MAX: usize = 1 << 20;

/// Encodes `records` (sorted by `ts_ms`) into an uncompressed block, texts stored whole.
pub fn encode(records: &[&Record]) -> Vec<u8> {
    let text_bytes: usize = records.iter().map(|r| r.text.len()).sum();
    let mut out = Vec::with_capacity(text_bytes + records.len() * 12 + 64);
    encode_keys(records, &mut out);
    for r in records {
        put_varint(&mut out, r.text.len() as u64);
    }
    for r in records {
        out.extend_from_slice(r.text.as_bytes());
    }
    out
}

/// Encodes `records` (sorted by `ts_ms`) into an uncompressed templated block: each text split
/// into a template of `templates` (added there when new) and its digit runs, or stored
/// literally (docs/format.md, "Templated block"). Read back with the segment's table.
pub fn encode_templated(records: &[&Record], templates: &mut TemplateBuilder) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 32 + 64);
    encode_keys(records, &mut out);
    let (mut run_lens, mut digits, mut lit_lens, mut lits) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut tpl = Vec::new();
    for r in records {
        let (at_runs, at_digits) = (run_lens.len(), digits.len());
        let id = if template::splittable(&r.text) {
            template::split(&r.text, &mut tpl, &mut run_lens, &mut digits);
            templates.id(&tpl)
        } else {
            None
        };
        match id {
            Some(id) => put_varint(&mut out, u64::from(id)),
            None => {
                run_lens.truncate(at_runs);
                digits.truncate(at_digits);
                out.push(0);
                put_varint(&mut lit_lens, r.text.len() as u64);
                lits.extend_from_slice(r.text.as_bytes());
            }
        }
    }
    for l in run_lens {
        put_varint(&mut out, l as u64);
    }
    put_varint(&mut out, digits.len() as u64);
    out.extend_from_slice(&digits);
    out.extend_from_slice(&lit_lens);
    out.extend_from_slice(&lits);
    out
}

/// About the bytes `r` adds to an uncompressed block (what a sealer cuts blocks by):
/// its text and keys, or, in a templated block, its digit runs and keys.
pub fn encoded_bytes(r: &Record, templated: bool) -> usize {
    if templated && template::splittable(&r.text) {
        12 + template::run_bytes(&r.text)
    } else {
        r.text.len() + r.sub_port.as_str().len() + 16
    }
}

/// The columns every block starts with: count, sub-port dictionary, times, meta, sub-port
/// indexes, peers.
fn encode_keys(records: &[&Record], out: &mut Vec<u8>) {
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
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    put_varint(out, dict.len() as u64);
    for s in &dict {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    let first_ts = records.first().map_or(0, |r| r.ts_ms);
    out.extend_from_slice(&first_ts.to_le_bytes());
    let mut prev = first_ts;
    for r in records.iter().skip(1) {
        // Sorted input: the delta is never negative.
        put_varint(out, (r.ts_ms - prev) as u64);
        prev = r.ts_ms;
    }
    out.extend(records.iter().map(|r| meta_byte(r)));
    out.extend_from_slice(&sp_col);
    for r in records {
        out.extend_from_slice(&r.peer.as_u64().to_le_bytes()[..PEER_BYTES]);
    }
}

/// The columns of a decoded block, every length, index and digit run checked, texts not yet
/// built.
struct Columns<'a> {
    dict: Vec<&'a str>,
    ts: Vec<i64>,
    metas: &'a [u8],
    sps: Vec<usize>,
    peers: &'a [u8],
    /// Per record: its template id, and where its bytes are: for id 0 (a literal), its text's
    /// start and length in `lits`; for a template, its first digit in `digits` and the index
    /// of its first run in `run_lens`.
    spans: Vec<(u32, usize, usize)>,
    run_lens: Vec<u32>,
    digits: &'a [u8],
    lits: &'a [u8],
    templates: Option<&'a Templates>,
}

impl<'a> Columns<'a> {
    fn parse(raw: &'a [u8], templates: Option<&'a Templates>) -> Result<Self, &'static str> {
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
        let mut spans = Vec::with_capacity(n);
        let (mut run_lens, mut digits) = (Vec::new(), &[][..]);
        match templates {
            None => {
                let mut at = 0usize;
                for _ in 0..n {
                    let l = r.len(raw.len())?;
                    spans.push((0, at, l));
                    at = at.checked_add(l).ok_or("text lengths overflow")?;
                }
            }
            Some(t) => {
                let mut ids = Vec::with_capacity(n);
                let mut holes = 0usize;
                for _ in 0..n {
                    let id = u32::try_from(r.varint()?).map_err(|_| "template id out of range")?;
                    if id != 0 {
                        holes += t.get(id).ok_or("template id out of range")?.holes.len();
                    }
                    ids.push(id);
                }
                // Each run length takes at least a byte.
                if holes > r.remaining() {
                    return Err("digit run lengths truncated");
                }
                run_lens.reserve_exact(holes);
                let mut sum = 0usize;
                for _ in 0..holes {
                    let l = r.len(raw.len())?;
                    if l == 0 {
                        return Err("empty digit run");
                    }
                    sum += l;
                    run_lens.push(l as u32);
                }
                if r.len(raw.len())? != sum {
                    return Err("digit runs disagree with their lengths");
                }
                digits = r.bytes(sum)?;
                if digits.iter().fold(0u8, |bad, &b| bad | u8::from(b.wrapping_sub(b'0') >= 10)) != 0 {
                    return Err("digit run holds a non-digit");
                }
                let (mut run_ix, mut digit_at, mut lit_at) = (0usize, 0usize, 0usize);
                for id in ids {
                    match t.get(id) {
                        None => {
                            let l = r.len(raw.len())?;
                            spans.push((0, lit_at, l));
                            lit_at = lit_at.checked_add(l).ok_or("text lengths overflow")?;
                        }
                        Some(tpl) => {
                            spans.push((id, digit_at, run_ix));
                            let k = tpl.holes.len();
                            digit_at += run_lens[run_ix..run_ix + k].iter().map(|&l| l as usize).sum::<usize>();
                            run_ix += k;
                        }
                    }
                }
            }
        }
        let total = spans.iter().filter(|s| s.0 == 0).map(|s| s.2).sum::<usize>();
        let lits = r.bytes(r.remaining())?;
        match total.cmp(&lits.len()) {
            std::cmp::Ordering::Greater => Err("truncated"),
            std::cmp::Ordering::Less => Err("bytes after the last text"),
            std::cmp::Ordering::Equal => {
                Ok(Self { dict, ts, metas, sps, peers, spans, run_lens, digits, lits, templates })
            }
        }
    }

    fn peer(&self, i: usize) -> u64 {
        let mut p = [0u8; 8];
        p[..PEER_BYTES].copy_from_slice(&self.peers[i * PEER_BYTES..(i + 1) * PEER_BYTES]);
        u64::from_le_bytes(p)
    }

    /// Record `i`.
    fn record(&self, i: usize, sub_port: SubPort) -> Result<Record, &'static str> {
        let (dir, usage) = parse_meta(self.metas[i])?;
        let peer = PhoneNumber::from_u64(self.peer(i)).ok_or("peer out of range")?;
        // Spans were checked against their columns.
        let (id, at, len) = self.spans[i];
        let text = match self.templates.and_then(|t| t.get(id)) {
            None => std::str::from_utf8(&self.lits[at..at + len]).map_err(|_| "text not utf-8")?.to_owned(),
            Some(t) => {
                let lens = self.run_lens.get(len..len + t.holes.len()).ok_or("digit runs truncated")?;
                let mut b = String::with_capacity(t.text.len() + 16);
                t.expand(lens, self.digits.get(at..).ok_or("digit runs truncated")?, &mut b)?;
                b
            }
        };
        Ok(Record { dir, sub_port, peer, ts_ms: self.ts[i], usage, text })
    }
}

/// Decodes an uncompressed block whose texts are stored whole, checking every structural
/// invariant; a malformed block is an error, never a panic or a wrong record.
pub fn decode(raw: &[u8]) -> Result<Vec<Record>, &'static str> {
    decode_with(raw, None)
}

/// [`decode`] of a block of either layout: `templates` is the segment's table for a templated
/// block, `None` for one whose texts are stored whole.
pub fn decode_with(raw: &[u8], templates: Option<&Templates>) -> Result<Vec<Record>, &'static str> {
    let c = Columns::parse(raw, templates)?;
    let dict = c
        .dict
        .iter()
        .map(|s| SubPort::parse(s).map_err(|_| "bad sub_port in dictionary"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(c.ts.len());
    for i in 0..c.ts.len() {
        out.push(c.record(i, dict[c.sps[i]].clone())?);
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

impl Summary {
    /// The summary of a whole block's records.
    pub fn of(records: &[Record]) -> Self {
        Self {
            count: records.len(),
            first_ts: records.first().map(|r| r.ts_ms),
            last_ts: records.last().map(|r| r.ts_ms),
        }
    }
}

/// Decodes only the records of number `peer`, in block order: the columns are parsed and
/// checked as by [`decode`] (counts, lengths, indexes), but only the matching records are
/// built, so that a trace pays for the records it returns rather than for the whole block.
pub fn decode_peer(raw: &[u8], peer: u64) -> Result<(Summary, Vec<Record>), &'static str> {
    decode_peer_with(raw, None, peer)
}

/// [`decode_peer`] of a block of either layout (`templates` as in [`decode_with`]).
pub fn decode_peer_with(
    raw: &[u8],
    templates: Option<&Templates>,
    peer: u64,
) -> Result<(Summary, Vec<Record>), &'static str> {
    let c = Columns::parse(raw, templates)?;
    c.build_where(|i| c.peer(i) == peer)
}

/// Decodes only the records of `sub_port`, in block order, like [`decode_peer_with`] (a
/// read by sub-port pays for the records it returns).
pub fn decode_sub_port_with(
    raw: &[u8],
    templates: Option<&Templates>,
    sub_port: &str,
) -> Result<(Summary, Vec<Record>), &'static str> {
    let c = Columns::parse(raw, templates)?;
    let ix = c.dict.iter().position(|&s| s == sub_port);
    c.build_where(|i| Some(c.sps[i]) == ix)
}

impl Columns<'_> {
    /// The summary, and the records `i` for which `pick(i)`.
    fn build_where(&self, pick: impl Fn(usize) -> bool) -> Result<(Summary, Vec<Record>), &'static str> {
        let summary =
            Summary { count: self.ts.len(), first_ts: self.ts.first().copied(), last_ts: self.ts.last().copied() };
        let mut out = Vec::new();
        for i in (0..self.ts.len()).filter(|&i| pick(i)) {
            let sp = SubPort::parse(self.dict[self.sps[i]]).map_err(|_| "bad sub_port in dictionary")?;
            out.push(self.record(i, sp)?);
        }
        Ok((summary, out))
    }
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

    #[test]
    fn templated_blocks_round_trip_and_garbage_is_an_error() {
        let texts = template::tricky_texts();
        let recs: Vec<Record> = (0..60)
            .map(|i| Record {
                dir: Direction::Mt,
                sub_port: SubPort::parse(&format!("10690{}", i % 3)).unwrap(),
                peer: PhoneNumber::from_u64(13_800_000_000 + i * 7919).unwrap(),
                ts_ms: 1_000 + (i as i64) * 10,
                usage: Some(Usage::Service),
                text: texts[i as usize % texts.len()].clone(),
            })
            .collect();
        let refs: Vec<&Record> = recs.iter().collect();
        let mut b = TemplateBuilder::new();
        let raw = encode_templated(&refs, &mut b);
        // The two codes share a template; the literal texts have none.
        assert_eq!(b.len(), 4);
        let t = Templates::decode(&b.encode().unwrap()).unwrap();
        assert_eq!(decode_with(&raw, Some(&t)).unwrap(), recs);
        assert!(raw.len() < encode(&refs).len() - 500, "{} bytes templated", raw.len());
        for r in &recs[..6] {
            let (sum, got) = decode_peer_with(&raw, Some(&t), r.peer.as_u64()).unwrap();
            assert_eq!((got, sum.count), (vec![r.clone()], 60));
        }
        let (sum, got) = decode_sub_port_with(&raw, Some(&t), "106901").unwrap();
        assert_eq!(sum.count, 60);
        assert_eq!(got, recs.iter().filter(|r| r.sub_port.as_str() == "106901").cloned().collect::<Vec<_>>());
        assert!(decode_sub_port_with(&raw, Some(&t), "106909").unwrap().1.is_empty());
        for cut in 0..raw.len() {
            assert!(decode_with(&raw[..cut], Some(&t)).is_err(), "cut {cut}");
        }
        // A table that lacks a template, or has another with fewer holes, is an error.
        let mut fewer = TemplateBuilder::new();
        fewer.id("【星河银行】您的验证码为\u{1}".as_bytes());
        let fewer = Templates::decode(&fewer.encode().unwrap()).unwrap();
        assert!(decode_with(&raw, Some(&fewer)).is_err());
        // A digit run that is not digits.
        let runs_at = raw.windows(7).position(|w| w == b"0123455").unwrap();
        let mut bad = raw.clone();
        bad[runs_at + 2] = b'x';
        assert!(decode_with(&bad, Some(&t)).is_err());
    }
}
