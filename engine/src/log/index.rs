//! Footer indexes of a sealed segment: which blocks hold a sub-port, which blocks hold a number.
//! The number index is searched in place (through the mmap) without decoding it whole: a table
//! of group heads for binary search, then up to [`GROUP`] delta-coded entries. Layout:
//! docs/format.md ("Sub-port index", "Number index").

use super::packed::{BitReader, BitWriter};
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

/// Largest width of a ranked group's offsets: numbers are below 2^40.
const OFFSET_BITS_MAX: u32 = 40;

/// Encodes the number index from `number -> sorted block ids` (numbers ascending), layout 1:
/// each entry a delta varint and its block list.
pub fn encode_numbers(map: &BTreeMap<u64, Vec<u32>>) -> Vec<u8> {
    encode_with(map, false)
}

/// Encodes the number index, layout 2 (segments with packed blocks): each group's numbers as
/// fixed-width offsets from its first, then their block lists, so that the number of a rank
/// is read without decoding anything else.
pub fn encode_numbers_ranked(map: &BTreeMap<u64, Vec<u32>>) -> Vec<u8> {
    encode_with(map, true)
}

fn encode_with(map: &BTreeMap<u64, Vec<u32>>, ranked: bool) -> Vec<u8> {
    let groups = map.len().div_ceil(GROUP);
    let mut heads = Vec::with_capacity(groups * GROUP_HEAD);
    let mut data = Vec::new();
    let entries: Vec<(&u64, &Vec<u32>)> = map.iter().collect();
    for group in entries.chunks(GROUP) {
        let first = *group[0].0;
        heads.extend_from_slice(&first.to_le_bytes());
        heads.extend_from_slice(&(data.len() as u32).to_le_bytes());
        if ranked {
            let last = *group[group.len() - 1].0;
            let width = u64::BITS - (last - first).leading_zeros();
            data.push(width as u8);
            let mut bits = BitWriter::new();
            for (&num, _) in &group[1..] {
                bits.put(num - first, width);
            }
            data.extend_from_slice(&bits.finish());
            for (_, blocks) in group {
                put_blocks(&mut data, blocks);
            }
        } else {
            let mut prev = first;
            for (&num, blocks) in group {
                put_varint(&mut data, num - prev);
                prev = num;
                put_blocks(&mut data, blocks);
            }
        }
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
    /// Layout 2 ([`encode_numbers_ranked`]).
    ranked: bool,
}

/// A ranked group, parsed: its first number, offsets and the data after them.
struct RankedGroup<'a> {
    first: u64,
    width: u32,
    offsets: &'a [u8],
    lists: &'a [u8],
    len: usize,
}

impl RankedGroup<'_> {
    /// The number of entry `i` of the group.
    fn number(&self, i: usize) -> Result<u64, &'static str> {
        if i == 0 {
            return Ok(self.first);
        }
        let off = BitReader::at(self.offsets, (i - 1) * self.width as usize)
            .get(self.width)
            .map_err(|_| "number offsets truncated")?;
        self.first.checked_add(off).ok_or("number overflow")
    }
}

impl<'a> NumberIndex<'a> {
    /// Opens a layout 2 index ([`encode_numbers_ranked`]), checking its framing.
    pub fn open_ranked(buf: &'a [u8], block_count: u32) -> Result<Self, &'static str> {
        Ok(Self { ranked: true, ..Self::open(buf, block_count)? })
    }

    fn ranked_group(&self, g: usize) -> Result<RankedGroup<'a>, &'static str> {
        let (first, off) = self.head(g);
        let data = self.data.get(off..).ok_or("group offset out of range")?;
        let (&width, rest) = data.split_first().ok_or("number index truncated")?;
        let width = u32::from(width);
        if width > OFFSET_BITS_MAX {
            return Err("number offset width out of range");
        }
        let len = (self.entries - g * GROUP).min(GROUP);
        let bytes = ((len - 1) * width as usize).div_ceil(8);
        if rest.len() < bytes {
            return Err("number offsets truncated");
        }
        let (offsets, lists) = rest.split_at(bytes);
        Ok(RankedGroup { first, width, offsets, lists, len })
    }

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
        Ok(Self { entries, heads, data, block_count, ranked: false })
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
        if self.ranked {
            let grp = self.ranked_group(g)?;
            // The entry whose number is `number`: offsets ascend within the group.
            let (mut a, mut b) = (0usize, grp.len);
            while a < b {
                let mid = (a + b) / 2;
                if grp.number(mid)? < number {
                    a = mid + 1;
                } else {
                    b = mid;
                }
            }
            if a == grp.len || grp.number(a)? != number {
                return Ok(None);
            }
            let mut r = Reader::new(grp.lists);
            for _ in 0..a {
                each_block(&mut r, self.block_count, |_| ())?;
            }
            return Ok(Some(((g * GROUP + a) as u32, read_blocks(&mut r, self.block_count)?)));
        }
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

    /// The numbers of `ranks` (each below [`Self::len`]), in their order: each read in one
    /// step from its group's offsets. Only layout 2 has them (packed blocks, the only readers of
    /// ranks, are always written with it); a layout 1 index refuses.
    pub fn numbers_at(&self, ranks: &[u32]) -> Result<Vec<u64>, &'static str> {
        if !self.ranked {
            return Err("number index layout 1 has no rank lookups");
        }
        ranks
            .iter()
            .map(|&rank| {
                let rank = rank as usize;
                if rank >= self.entries {
                    return Err("number rank out of range");
                }
                self.ranked_group(rank / GROUP)?.number(rank % GROUP)
            })
            .collect()
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
        // Ranks are read from layout 2 only (the same map, ranked); layout 1 refuses them.
        let ranks: Vec<u32> = (0..1000).rev().step_by(7).chain([3, 3, 999, 0]).collect();
        let want: Vec<u64> = ranks.iter().map(|&r| *map.keys().nth(r as usize).unwrap()).collect();
        let ranked_buf = encode_numbers_ranked(&map);
        let ranked = NumberIndex::open_ranked(&ranked_buf, 8).unwrap();
        assert_eq!(ranked.numbers_at(&ranks).unwrap(), want);
        assert!(ix.numbers_at(&[0]).is_err());
        for (rank, (&n, b)) in map.iter().enumerate() {
            assert_eq!(ix.find(n).unwrap(), Some((rank as u32, b.clone())));
        }
        assert_eq!(ix.find(13_000_000_001).unwrap(), None);
        assert!(ranked.numbers_at(&[1000]).is_err());
        assert!(ix.lookup(1).unwrap().is_empty());
        assert!(ix.lookup(u64::MAX).unwrap().is_empty());
        // Block ids beyond the segment's block count are corruption.
        assert!(NumberIndex::open(&buf, 5).unwrap().lookup(13_000_000_000).is_err());
    }

    #[test]
    fn ranked_number_index_finds_every_entry_and_every_rank() {
        let mut map = BTreeMap::new();
        for i in 0..1000u64 {
            map.insert(13_000_000_000 + i * i * 37 + (i % 7), vec![(i % 5) as u32, 5 + (i % 3) as u32]);
        }
        // A group of one entry, and numbers far apart (wide offsets).
        map.insert(19_999_999_999, vec![7]);
        let buf = encode_numbers_ranked(&map);
        let ix = NumberIndex::open_ranked(&buf, 8).unwrap();
        assert_eq!(ix.len(), 1001);
        for (rank, (&n, b)) in map.iter().enumerate() {
            assert_eq!(ix.find(n).unwrap(), Some((rank as u32, b.clone())), "{n}");
            assert_eq!(ix.lookup(n + 1).unwrap().is_empty(), !map.contains_key(&(n + 1)));
        }
        let ranks: Vec<u32> = (0..1001).rev().step_by(3).chain([0, 64, 1000]).collect();
        let want: Vec<u64> = ranks.iter().map(|&r| *map.keys().nth(r as usize).unwrap()).collect();
        assert_eq!(ix.numbers_at(&ranks).unwrap(), want);
        assert!(ix.numbers_at(&[1001]).is_err());
        assert_eq!(ix.find(1).unwrap(), None);
        assert_eq!(ix.find(u64::MAX).unwrap(), None);
        assert!(NumberIndex::open_ranked(&buf, 5).unwrap().find(13_000_000_000).is_err());
        // Cut anywhere, it is an error or finds less, never a panic.
        for cut in 0..buf.len() {
            if let Ok(ix) = NumberIndex::open_ranked(&buf[..cut], 8) {
                let _ = ix.find(19_999_999_999);
                let _ = ix.numbers_at(&[0, 999, 1000]);
            }
        }
        // Smaller than layout 1 on these numbers.
        assert!(buf.len() < encode_numbers(&map).len(), "{} against {}", buf.len(), encode_numbers(&map).len());
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
