//! Footer indexes of a sealed segment: which blocks hold a sub-port, which blocks hold a number.
//! The number index is searched in place (through the mmap) without decoding it whole: a table
//! of group heads for binary search, then up to [`GROUP`] delta-coded entries. Layout:
//! docs/format.md ("Sub-port index", "Number index").

use crate::codec::{put_varint, Reader};
use std::collections::BTreeMap;

/// Entries per group of the number index.
pub const GROUP: usize = 64;
const GROUP_HEAD: usize = 12;

fn put_blocks(out: &mut Vec<u8>, blocks: &[u32]) {
    put_varint(out, blocks.len() as u64);
    let mut prev = 0u32;
    for (i, &b) in blocks.iter().enumerate() {
        put_varint(out, u64::from(if i == 0 { b } else { b - prev }));
        prev = b;
    }
}

fn read_blocks(r: &mut Reader<'_>, block_count: u32) -> Result<Vec<u32>, &'static str> {
    let mut out = Vec::new();
    each_block(r, block_count, |b| out.push(b))?;
    Ok(out)
}

/// Reads and checks one list of block ids, handing each to `f`.
fn each_block(r: &mut Reader<'_>, block_count: u32, mut f: impl FnMut(u32)) -> Result<(), &'static str> {
    let n = r.len(block_count as usize)?;
    let mut prev = 0u64;
    for i in 0..n {
        let d = r.varint()?;
        if i > 0 && d == 0 {
            return Err("block ids not increasing");
        }
        let b = if i == 0 { d } else { prev.checked_add(d).ok_or("block id overflow")? };
        if b >= u64::from(block_count) {
            return Err("block id out of range");
        }
        f(b as u32);
        prev = b;
    }
    Ok(())
}

/// Encodes the sub-port index from `sub_port -> sorted block ids`.
pub fn encode_sub_ports(map: &BTreeMap<String, Vec<u32>>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    for (sp, blocks) in map {
        out.push(sp.len() as u8);
        out.extend_from_slice(sp.as_bytes());
        put_blocks(&mut out, blocks);
    }
    out
}

/// Decodes the sub-port index.
pub fn decode_sub_ports(buf: &[u8], block_count: u32) -> Result<BTreeMap<String, Vec<u32>>, &'static str> {
    let mut r = Reader::new(buf);
    let n = r.u32()? as usize;
    if n > buf.len() {
        return Err("sub-port count out of range");
    }
    let mut map = BTreeMap::new();
    for _ in 0..n {
        let len = usize::from(r.u8()?);
        let sp = std::str::from_utf8(r.bytes(len)?).map_err(|_| "sub_port not utf-8")?.to_owned();
        let blocks = read_blocks(&mut r, block_count)?;
        if map.insert(sp, blocks).is_some() {
            return Err("duplicate sub-port");
        }
    }
    if r.remaining() != 0 {
        return Err("bytes after the sub-port index");
    }
    Ok(map)
}

/// Encodes the number index from `number -> sorted block ids` (numbers ascending).
pub fn encode_numbers(map: &BTreeMap<u64, Vec<u32>>) -> Vec<u8> {
    let groups = map.len().div_ceil(GROUP);
    let mut heads = Vec::with_capacity(groups * GROUP_HEAD);
    let mut data = Vec::new();
    let mut prev = 0u64;
    for (i, (&num, blocks)) in map.iter().enumerate() {
        if i % GROUP == 0 {
            heads.extend_from_slice(&num.to_le_bytes());
            heads.extend_from_slice(&(data.len() as u32).to_le_bytes());
            prev = num;
        }
        put_varint(&mut data, num - prev);
        prev = num;
        put_blocks(&mut data, blocks);
    }
    let mut out = Vec::with_capacity(8 + heads.len() + data.len());
    out.extend_from_slice(&(map.len() as u32).to_le_bytes());
    out.extend_from_slice(&(groups as u32).to_le_bytes());
    out.extend_from_slice(&heads);
    out.extend_from_slice(&data);
    out
}

/// A number index read in place.
pub struct NumberIndex<'a> {
    entries: usize,
    heads: &'a [u8],
    data: &'a [u8],
    block_count: u32,
}

impl<'a> NumberIndex<'a> {
    /// Checks the index's framing (not every entry: those are checked as they are read).
    pub fn open(buf: &'a [u8], block_count: u32) -> Result<Self, &'static str> {
        let mut r = Reader::new(buf);
        let entries = r.u32()? as usize;
        let groups = r.u32()? as usize;
        if groups != entries.div_ceil(GROUP) {
            return Err("group count does not match entry count");
        }
        let heads = r.bytes(groups.checked_mul(GROUP_HEAD).ok_or("overflow")?)?;
        let data = r.bytes(r.remaining())?;
        Ok(Self { entries, heads, data, block_count })
    }

    /// Number of distinct numbers.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    fn head(&self, g: usize) -> (u64, usize) {
        let h = &self.heads[g * GROUP_HEAD..(g + 1) * GROUP_HEAD];
        let mut n = [0u8; 8];
        n.copy_from_slice(&h[..8]);
        let mut o = [0u8; 4];
        o.copy_from_slice(&h[8..12]);
        (u64::from_le_bytes(n), u32::from_le_bytes(o) as usize)
    }

    /// The blocks holding `number`, or an empty list.
    pub fn lookup(&self, number: u64) -> Result<Vec<u32>, &'static str> {
        Ok(self.find(number)?.map(|(_, b)| b).unwrap_or_default())
    }

    /// The rank of `number` (its position among the index's numbers, ascending) and the blocks
    /// holding it, or `None`.
    pub fn find(&self, number: u64) -> Result<Option<(u32, Vec<u32>)>, &'static str> {
        let groups = self.heads.len() / GROUP_HEAD;
        // Last group whose first number is <= number.
        let (mut lo, mut hi) = (0usize, groups);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.head(mid).0 <= number {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 0 {
            return Ok(None);
        }
        let g = lo - 1;
        let (first, off) = self.head(g);
        let mut r = Reader::new(self.data.get(off..).ok_or("group offset out of range")?);
        let in_group = (self.entries - g * GROUP).min(GROUP);
        let mut cur = first;
        for i in 0..in_group {
            let d = r.varint()?;
            if i == 0 && d != 0 {
                return Err("first entry of a group has a delta");
            }
            cur = cur.checked_add(d).ok_or("number overflow")?;
            if cur == number {
                return Ok(Some(((g * GROUP + i) as u32, read_blocks(&mut r, self.block_count)?)));
            }
            if cur > number {
                break;
            }
            each_block(&mut r, self.block_count, |_| ())?;
        }
        Ok(None)
    }

    /// The numbers of `ranks` (each below [`Self::len`]), in their order. Each group one of them
    /// falls in is decoded once, its block lists skipped.
    pub fn numbers_at(&self, ranks: &[u32]) -> Result<Vec<u64>, &'static str> {
        let mut order: Vec<usize> = (0..ranks.len()).collect();
        order.sort_unstable_by_key(|&i| ranks[i]);
        let mut out = vec![0u64; ranks.len()];
        let mut group: Option<(usize, Vec<u64>)> = None;
        for (at, &i) in order.iter().enumerate() {
            let rank = ranks[i] as usize;
            if rank >= self.entries {
                return Err("number rank out of range");
            }
            let g = rank / GROUP;
            if group.as_ref().map(|x| x.0) != Some(g) {
                // Ranks come sorted: decode the group up to the last one of it asked for.
                let last = order[at..].iter().map(|&j| ranks[j] as usize).take_while(|&r| r / GROUP == g).last();
                group = Some((g, self.group(g, last.unwrap_or(rank) % GROUP)?));
            }
            let nums = &group.as_ref().ok_or("number index group missing")?.1;
            out[i] = *nums.get(rank % GROUP).ok_or("number rank out of range")?;
        }
        Ok(out)
    }

    /// The numbers of group `g` up to its entry `last` (included), their deltas checked; the
    /// block lists between them are skipped (counted, not decoded: a rank's number does not
    /// need them, and [`Self::find`] checks the list it returns).
    fn group(&self, g: usize, last: usize) -> Result<Vec<u64>, &'static str> {
        let (first, off) = self.head(g);
        let data = self.data.get(off..).ok_or("group offset out of range")?;
        let mut r = Reader::new(data);
        let mut cur = first;
        let mut out = Vec::with_capacity(last + 1);
        for i in 0..=last {
            let d = r.varint()?;
            if (i == 0) != (d == 0) {
                return Err("number index deltas out of order");
            }
            cur = cur.checked_add(d).ok_or("number overflow")?;
            out.push(cur);
            if i == last {
                break;
            }
            let n = r.len(self.block_count as usize)?;
            // Skip n varints: each ends at a byte below 0x80.
            let rest = &data[r.pos()..];
            let mut ends = 0usize;
            let skip = rest.iter().position(|&b| {
                ends += usize::from(b < 0x80);
                ends == n
            });
            match (n, skip) {
                (0, _) => {}
                (_, Some(p)) => {
                    r.bytes(p + 1)?;
                }
                (_, None) => return Err("truncated"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_index_finds_every_entry_and_nothing_else() {
        let mut map = BTreeMap::new();
        for i in 0..1000u64 {
            let num = 13_000_000_000 + i * i * 37;
            map.insert(num, vec![(i % 5) as u32, 5 + (i % 3) as u32]);
        }
        let buf = encode_numbers(&map);
        let ix = NumberIndex::open(&buf, 8).unwrap();
        assert_eq!(ix.len(), 1000);
        for (&n, b) in &map {
            assert_eq!(&ix.lookup(n).unwrap(), b);
            assert!(ix.lookup(n + 1).unwrap().is_empty() || map.contains_key(&(n + 1)));
        }
        let ranks: Vec<u32> = (0..1000).rev().step_by(7).chain([3, 3, 999, 0]).collect();
        let want: Vec<u64> = ranks.iter().map(|&r| *map.keys().nth(r as usize).unwrap()).collect();
        assert_eq!(ix.numbers_at(&ranks).unwrap(), want);
        for (rank, (&n, b)) in map.iter().enumerate() {
            assert_eq!(ix.find(n).unwrap(), Some((rank as u32, b.clone())));
        }
        assert_eq!(ix.find(13_000_000_001).unwrap(), None);
        assert!(ix.numbers_at(&[1000]).is_err());
        assert!(ix.lookup(1).unwrap().is_empty());
        assert!(ix.lookup(u64::MAX).unwrap().is_empty());
        // Block ids beyond the segment's block count are corruption.
        assert!(NumberIndex::open(&buf, 5).unwrap().lookup(13_000_000_000).is_err());
    }

    #[test]
    fn sub_port_index_round_trip() {
        let mut map = BTreeMap::new();
        map.insert("106901".to_string(), vec![0, 3, 9]);
        map.insert("1069012345601".to_string(), vec![2]);
        let buf = encode_sub_ports(&map);
        assert_eq!(decode_sub_ports(&buf, 10).unwrap(), map);
        assert!(decode_sub_ports(&buf, 9).is_err());
        for cut in 0..buf.len() {
            assert!(decode_sub_ports(&buf[..cut], 10).is_err());
        }
    }
}
