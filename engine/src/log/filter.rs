//! The number filter of a sealed segment (footer section kind 4): a split-block Bloom filter
//! over the segment's distinct numbers, probed in place through the mmap. A probe reads one
//! 32-byte block (one cache line, one page), so a segment that does not hold a number costs one
//! memory access instead of a binary search through the number index. Layout and algorithm:
//! docs/format.md ("Number filter").
//!
//! Why not the `xorf` crate (binary fuse filters, ~9 bits per key for 0.4 % false positives):
//! its filters own their fingerprints (a copy out of the mmap per segment), its serialised form
//! and key-to-slot mapping are a crate version's implementation detail rather than a documented
//! format (a change of either in a later release would turn old segments' filters into false
//! negatives, i.e. silently missing records), and a probe touches three slots that usually lie
//! on two or three pages. The split-block Bloom filter below is the one Apache Parquet
//! specifies, with xxh3 instead of xxh64: thirty lines, fully described by format.md, one page
//! per probe.

use crate::codec::Reader;

/// Bytes of one filter block: eight 32-bit words.
pub const BLOCK_BYTES: usize = 32;
/// Bytes before the first block: block count (u32) and key count (u32).
pub const HEADER_BYTES: usize = 8;
/// Bits of filter per distinct number written by the sealer (about 0.5 % false positives).
pub const BITS_PER_KEY: usize = 12;
/// Largest block count accepted (2^26 blocks = 2 GiB; far above any segment).
const BLOCKS_MAX: u32 = 1 << 26;

/// The eight odd multipliers of the split-block Bloom filter (Apache Parquet's).
const SALT: [u32; 8] =
    [0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d, 0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31];

/// The key hash: xxh3-64 (seed 0) of the number as 8 little-endian bytes.
fn hash(number: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&number.to_le_bytes())
}

/// Block index of hash `h` among `blocks` blocks: the high 32 bits scaled to the block count.
fn block_of(h: u64, blocks: u32) -> usize {
    (((h >> 32) * u64::from(blocks)) >> 32) as usize
}

/// The eight bit masks of hash `h` (one per word of the block), from its low 32 bits.
fn masks(h: u64) -> [u32; 8] {
    let x = h as u32;
    let mut m = [0u32; 8];
    for (i, s) in SALT.iter().enumerate() {
        m[i] = 1u32 << (x.wrapping_mul(*s) >> 27);
    }
    m
}

/// Blocks for `keys` distinct numbers (at least one).
pub fn blocks_for(keys: usize) -> u32 {
    (keys.saturating_mul(BITS_PER_KEY).div_ceil(BLOCK_BYTES * 8)).clamp(1, BLOCKS_MAX as usize) as u32
}

/// Encodes the filter of `numbers` (distinct; any order).
pub fn encode<I>(numbers: I) -> Vec<u8>
where
    I: ExactSizeIterator<Item = u64>,
{
    let keys = numbers.len();
    let blocks = blocks_for(keys);
    let mut words = vec![0u32; blocks as usize * 8];
    for n in numbers {
        let h = hash(n);
        let b = block_of(h, blocks);
        for (w, m) in words[b * 8..b * 8 + 8].iter_mut().zip(masks(h)) {
            *w |= m;
        }
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + words.len() * 4);
    out.extend_from_slice(&blocks.to_le_bytes());
    out.extend_from_slice(&(keys as u32).to_le_bytes());
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

/// A number filter read in place.
#[derive(Debug, Clone, Copy)]
pub struct NumberFilter<'a> {
    blocks: u32,
    keys: u32,
    body: &'a [u8],
}

impl<'a> NumberFilter<'a> {
    /// Checks the framing: the block count agrees with the section's length.
    pub fn open(buf: &'a [u8]) -> Result<Self, &'static str> {
        let mut r = Reader::new(buf);
        let blocks = r.u32()?;
        let keys = r.u32()?;
        if blocks == 0 || blocks > BLOCKS_MAX {
            return Err("block count out of range");
        }
        let body = r.bytes(blocks as usize * BLOCK_BYTES)?;
        if r.remaining() != 0 {
            return Err("length disagrees with the block count");
        }
        Ok(Self { blocks, keys, body })
    }

    /// Distinct numbers the writer inserted.
    pub fn keys(&self) -> u32 {
        self.keys
    }

    /// Number of 32-byte blocks.
    pub fn blocks(&self) -> u32 {
        self.blocks
    }

    /// Byte offset, within the section, of the block that `number` probes.
    pub fn probe_offset(number: u64, blocks: u32) -> usize {
        HEADER_BYTES + block_of(hash(number), blocks) * BLOCK_BYTES
    }

    /// `false` when the segment certainly does not hold `number`; `true` when it may.
    pub fn may_contain(&self, number: u64) -> bool {
        let h = hash(number);
        let at = block_of(h, self.blocks) * BLOCK_BYTES;
        let block = &self.body[at..at + BLOCK_BYTES];
        masks(h).iter().zip(block.chunks_exact(4)).all(|(m, w)| {
            let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            w & m == *m
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        for n in [0usize, 1, 7, 1_000, 100_000] {
            let nums: Vec<u64> = (0..n as u64).map(|i| 13_000_000_000 + i * 7_919).collect();
            let buf = encode(nums.iter().copied());
            assert_eq!(buf.len(), HEADER_BYTES + blocks_for(n) as usize * BLOCK_BYTES);
            let f = NumberFilter::open(&buf).unwrap();
            assert_eq!(f.keys() as usize, n);
            assert!(nums.iter().all(|&x| f.may_contain(x)), "false negative at {n} keys");
            if n >= 1_000 {
                let probes = 200_000u64;
                let fp = (0..probes).filter(|i| f.may_contain(15_000_000_000 + i * 13)).count();
                let rate = fp as f64 / probes as f64;
                assert!(rate < 0.012, "{n} keys: false-positive rate {rate}");
            }
        }
    }

    #[test]
    fn the_algorithm_is_pinned() {
        // format.md fixes the hash, the block choice and the salts: a change here is a format
        // change (old filters would give false negatives).
        let buf = encode([13_800_138_000u64].into_iter());
        assert_eq!(&buf[..8], &[1, 0, 0, 0, 1, 0, 0, 0]);
        let words: Vec<u32> = buf[8..].chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let h = xxhash_rust::xxh3::xxh3_64(&13_800_138_000u64.to_le_bytes());
        for (i, w) in words.iter().enumerate() {
            assert_eq!(*w, 1u32 << ((h as u32).wrapping_mul(SALT[i]) >> 27));
        }
        assert_eq!(NumberFilter::probe_offset(13_800_138_000, 1), HEADER_BYTES);
    }

    #[test]
    fn bad_framing_is_an_error() {
        let buf = encode((0..100u32).map(|i| 13_000_000_000 + u64::from(i)));
        for cut in 0..buf.len() {
            assert!(NumberFilter::open(&buf[..cut]).is_err(), "cut {cut}");
        }
        let mut long = buf.clone();
        long.push(0);
        assert!(NumberFilter::open(&long).is_err());
        let mut zero = buf;
        zero[..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(NumberFilter::open(&zero).is_err());
    }
}
