//! Sealed segments: immutable files of zstd-compressed columnar blocks sorted by time, with a
//! footer indexing blocks, sub-ports and numbers, read through a memory map.
//! Layout: docs/format.md ("Sealed segment").

#![allow(unsafe_code)]

use super::block;
use super::filter::{self, NumberFilter};
use super::frame::{SegmentHeader, HEADER_LEN, SEALED_MAGIC};
use super::index::{self, NumberIndex};
use super::packed::{self, Packed, ShapeBuilder, Shapes};
use super::template::{TemplateBuilder, Templates};
use crate::codec::{checksum, Reader};
use crate::crypto::{KeyRing, Purpose, SegmentCipher};
use crate::error::{Error, Result};
use crate::io::{FileWriter, Io};
use crate::record::{PhoneNumber, Record, SubPort};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Magic closing a sealed segment.
pub const TRAILER_MAGIC: [u8; 8] = *b"PLOGEND\0";
/// Size of the trailer at the end of a sealed segment.
pub const TRAILER_LEN: usize = 56;
const SECTION_LEN: usize = 32;
const BLOCK_ENTRY_LEN: usize = 48;

/// Section kinds of the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SectionKind {
    /// Fixed-width block table.
    Blocks = 1,
    /// Sub-port → blocks.
    SubPorts = 2,
    /// Number → blocks.
    Numbers = 3,
    /// Split-block Bloom filter of the numbers (optional: segments written before it have none).
    NumberFilter = 4,
    /// The zstd dictionary the segment's flagged blocks were compressed with (format version 2).
    Dictionary = 5,
    /// The text templates of the segment's templated blocks (format versions 3 to 5).
    Templates = 6,
    /// The record shapes of the segment's packed blocks (format versions 3 and 5).
    Shapes = 7,
}

/// Block flag: compressed with the segment's dictionary (section kind 5).
pub const BLOCK_FLAG_DICT: u32 = 1;
/// Block flag: a templated block, its texts split over the segment's templates (section kind
/// 6; format versions 3 and 4).
pub const BLOCK_FLAG_TEMPLATES: u32 = 2;
/// Block flag: a packed block (with [`BLOCK_FLAG_TEMPLATES`]): columns bit-packed against the
/// segment's sub-ports, numbers, templates and shapes (section kind 7), not compressed
/// (format versions 3 and 5).
pub const BLOCK_FLAG_PACKED: u32 = 4;
/// Trailer format version of a segment without a dictionary (every block flag 0).
pub const SEALED_VERSION_PLAIN: u16 = 1;
/// Trailer format version of a segment with a dictionary section.
pub const SEALED_VERSION_DICT: u16 = 2;
/// Trailer format version of an encrypted segment (header version 2, with the key id): every
/// block and the personal footer sections (kinds 2-5) encrypted; a dictionary is optional.
pub const SEALED_VERSION_ENCRYPTED: u16 = 3;
/// Trailer format version of a plaintext segment with templated blocks (section kind 6), with or
/// without a dictionary.
pub const SEALED_VERSION_TEMPLATES: u16 = 4;
/// Trailer format version of a plaintext segment with packed blocks (section kinds 6 and 7).
pub const SEALED_VERSION_PACKED: u16 = 5;
/// Section encoding: the bytes as they are.
pub const ENCODING_RAW: u32 = 0;
/// Section encoding (format version 3): `nonce ‖ ciphertext ‖ tag` of the section's bytes.
pub const ENCODING_ENCRYPTED: u32 = 1;
/// Raw block bytes the sealer gathers to train a segment's dictionary on (the first blocks).
const DICT_SAMPLE_BYTES: usize = 4 << 20;
/// Fewest blocks worth a dictionary: with fewer, the blocks are compressed alone.
const DICT_MIN_BLOCKS: usize = 8;
/// Largest uncompressed block a reader accepts, in bytes. A sealer cuts a block once its
/// records reach `block_bytes_max` (at most 16 MiB), so a block holds at most that plus its last
/// record (text at most 1 MiB) plus a few bytes of columns per record: 64 MiB leaves room. A
/// block table entry above it is corruption, refused before memory is reserved for it.
pub const BLOCK_RAW_BYTES_MAX: usize = 64 << 20;

/// One block's entry in the block table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    /// File offset of the compressed block.
    pub offset: u64,
    /// Compressed length.
    pub clen: u32,
    /// Uncompressed length.
    pub rlen: u32,
    /// Records in the block.
    pub count: u32,
    /// [`BLOCK_FLAG_DICT`] or 0.
    pub flags: u32,
    /// Smallest record time.
    pub min_ts_ms: i64,
    /// Largest record time.
    pub max_ts_ms: i64,
    /// xxh3-64 of the compressed bytes.
    pub checksum: u64,
}

#[derive(Debug, Clone, Copy)]
struct Section {
    kind: u32,
    encoding: u32,
    offset: u64,
    len: u64,
    checksum: u64,
}

/// What sealing produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct SealStats {
    /// Records written.
    pub records: u64,
    /// Blocks written.
    pub blocks: u32,
    /// File size.
    pub bytes: u64,
    /// Bytes of the footer indexes (sub-ports, numbers, block table).
    pub index_bytes: u64,
    /// Bytes of the compression dictionary (0: none).
    pub dict_bytes: u64,
}

/// How a sealer compresses blocks: the level, and the dictionary once trained.
struct BlockCompressor {
    dict: Option<Vec<u8>>,
    zc: zstd::bulk::Compressor<'static>,
}

impl BlockCompressor {
    /// Trains a dictionary of at most `dict_bytes_max` bytes on `samples` when there are enough
    /// of them; without one (too few samples, training failed, `dict_bytes_max` 0) blocks are
    /// compressed alone.
    fn new(level: i32, dict_bytes_max: usize, samples: &[&[u8]], path: &Path) -> Result<Self> {
        let dict = if dict_bytes_max > 0 && samples.len() >= DICT_MIN_BLOCKS {
            zstd::dict::from_samples(samples, dict_bytes_max).ok().filter(|d| !d.is_empty())
        } else {
            None
        };
        let zc = match &dict {
            Some(d) => zstd::bulk::Compressor::with_dictionary(level, d),
            None => zstd::bulk::Compressor::new(level),
        }
        .map_err(Error::io("set up zstd for", path))?;
        Ok(Self { dict, zc })
    }

    fn compress(&mut self, raw: &[u8], path: &Path) -> Result<(Vec<u8>, u32)> {
        let comp = self.zc.compress(raw).map_err(Error::io("compress block for", path))?;
        Ok((comp, if self.dict.is_some() { BLOCK_FLAG_DICT } else { 0 }))
    }
}

/// How [`write_sealed_with`] builds a segment.
#[derive(Debug, Clone, Copy)]
pub struct SealOptions<'a> {
    /// A block is cut once its records reach this many bytes.
    pub block_bytes_max: usize,
    /// ... or reach this many.
    pub block_records_max: usize,
    /// zstd level.
    pub zstd_level: i32,
    /// Largest dictionary (0: none).
    pub dict_bytes_max: usize,
    /// Encrypts the blocks and the personal footer sections (format version 3) when given.
    pub cipher: Option<&'a SegmentCipher>,
    /// Splits texts into templates and digit runs (templated blocks, section kind 6).
    pub templates: bool,
    /// With `templates`: packed blocks (section kind 7), the columns bit-packed rather than
    /// compressed.
    pub packed: bool,
}

/// Writes a sealed segment holding `records` (sorted by time, ties in arrival order) to `path`
/// and fsyncs it. `records` is consumed block by block; the first blocks (up to 4 MiB raw) are
/// held to train the segment's zstd dictionary of at most `dict_bytes_max` bytes (0: none),
/// then every block is compressed with it and written. Plaintext: see [`write_sealed_with`].
pub fn write_sealed<I>(
    io: &dyn Io,
    path: &Path,
    header: SegmentHeader,
    records: I,
    block_bytes_max: usize,
    zstd_level: i32,
    dict_bytes_max: usize,
) -> Result<SealStats>
where
    I: Iterator<Item = Result<Record>> + Clone,
{
    write_sealed_with(
        io,
        path,
        header,
        records,
        SealOptions {
            block_bytes_max,
            block_records_max: crate::config::LogConfig::default().block_records_max,
            zstd_level,
            dict_bytes_max,
            cipher: None,
            templates: true,
            packed: crate::config::LogConfig::default().packed_blocks,
        },
    )
}

/// [`write_sealed`] with options: with a cipher, every block's compressed bytes and the footer
/// sections that hold personal data (sub-port index, number index, number filter, dictionary,
/// templates, shapes) are stored encrypted, bound to the segment's identity and their block
/// number or section kind; checksums cover the bytes as stored. Packed blocks need the
/// segment's sorted sub-ports and numbers before the first block: `records` is then read twice
/// (a clone of the iterator first).
pub fn write_sealed_with<I>(
    io: &dyn Io,
    path: &Path,
    header: SegmentHeader,
    mut records: I,
    opts: SealOptions<'_>,
) -> Result<SealStats>
where
    I: Iterator<Item = Result<Record>> + Clone,
{
    let SealOptions { block_bytes_max, block_records_max, zstd_level, dict_bytes_max, cipher, templates, packed } =
        opts;
    let block_records_max = block_records_max.clamp(1, block::BLOCK_RECORDS_MAX);
    let mut templates = templates.then(TemplateBuilder::new);
    let templated = templates.is_some();
    let packed = packed && templated;
    let mut shapes = packed.then(ShapeBuilder::new);
    // The ranks of a packed block's sub-ports and numbers: the sorted keys of the indexes.
    let (mut all_sub_ports, mut all_numbers) = (Vec::<String>::new(), Vec::<u64>::new());
    if packed {
        let mut keys = packed::SegmentKeys::default();
        for r in records.clone() {
            keys.add(&r?);
        }
        (all_sub_ports, all_numbers) = keys.finish();
    }
    let file = io.create(path).map_err(Error::io("create", path))?;
    let mut w = BufWriter::with_capacity(1 << 20, FileWriter::new(file));
    let wr = |w: &mut BufWriter<FileWriter>, b: &[u8]| w.write_all(b).map_err(Error::io("write", path));
    wr(&mut w, &header.encode_keyed(SEALED_MAGIC, cipher.map(|c| c.key_id)))?;
    let mut pos = HEADER_LEN as u64;
    let mut metas: Vec<BlockMeta> = Vec::new();
    let mut sub_ports: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let mut numbers: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let mut pending: Vec<Record> = Vec::new();
    let mut pending_bytes = 0usize;
    let (mut total, mut min_ts, mut max_ts) = (0u64, i64::MAX, i64::MIN);
    let mut last_ts = i64::MIN;
    // Encoded blocks not yet written (while the dictionary's samples are gathered), with their
    // (count, min_ts, max_ts); the compressor once the dictionary is decided.
    let mut staged: Vec<EncodedBlock> = Vec::new();
    let mut staged_bytes = 0usize;
    let mut next_id = 0u32;
    let mut zc: Option<BlockCompressor> = None;

    // A packed block is emitted as it is (`zc` None); others are compressed.
    let emit = |raw: &[u8],
                (count, lo, hi): (u32, i64, i64),
                zc: Option<&mut BlockCompressor>,
                w: &mut BufWriter<FileWriter>,
                pos: &mut u64,
                metas: &mut Vec<BlockMeta>|
     -> Result<()> {
        let (mut comp, mut flags) = match zc {
            Some(zc) => zc.compress(raw, path)?,
            None => (raw.to_vec(), BLOCK_FLAG_PACKED),
        };
        if templated {
            flags |= BLOCK_FLAG_TEMPLATES;
        }
        if let Some(c) = cipher {
            let mut sealed = Vec::with_capacity(comp.len() + crate::crypto::OVERHEAD);
            c.seal(Purpose::Block, metas.len() as u64, &comp, &mut sealed)
                .map_err(|e| Error::crypto(path, *pos, "block", None, e))?;
            comp = sealed;
        }
        metas.push(BlockMeta {
            offset: *pos,
            clen: comp.len() as u32,
            rlen: raw.len() as u32,
            count,
            flags,
            min_ts_ms: lo,
            max_ts_ms: hi,
            checksum: checksum(&[&comp]),
        });
        w.write_all(&comp).map_err(Error::io("write", path))?;
        *pos += comp.len() as u64;
        Ok(())
    };

    // Encodes the pending records as block `next_id` and records it in the indexes.
    let mut encode = |pending: &mut Vec<Record>, next_id: &mut u32| -> Result<Option<EncodedBlock>> {
        if pending.is_empty() {
            return Ok(None);
        }
        let id = *next_id;
        *next_id += 1;
        for r in pending.iter() {
            let b = sub_ports.entry(r.sub_port.as_str().to_owned()).or_default();
            if b.last() != Some(&id) {
                b.push(id);
            }
            let b = numbers.entry(r.peer.as_u64()).or_default();
            if b.last() != Some(&id) {
                b.push(id);
            }
        }
        let refs: Vec<&Record> = pending.iter().collect();
        let raw = match (templates.as_mut(), shapes.as_mut()) {
            (Some(t), Some(s)) => {
                let mut b =
                    packed::Builders { sub_ports: &all_sub_ports, numbers: &all_numbers, templates: t, shapes: s };
                packed::encode(&refs, &mut b, zstd_level)
                    .map_err(|e| Error::invalid("records", format!("sealing {}: {e}", path.display())))?
            }
            (Some(t), None) => block::encode_templated(&refs, t),
            (None, _) => block::encode(&refs),
        };
        let span =
            (pending.len() as u32, pending.first().map_or(0, |r| r.ts_ms), pending.last().map_or(0, |r| r.ts_ms));
        pending.clear();
        Ok(Some((raw, span)))
    };

    let mut done = false;
    while !done {
        let next = records.next().transpose()?;
        let cut = match next {
            Some(r) => {
                if r.ts_ms < last_ts {
                    return Err(Error::invalid("ts", "records given to the sealer are not sorted by time"));
                }
                last_ts = r.ts_ms;
                total += 1;
                min_ts = min_ts.min(r.ts_ms);
                max_ts = max_ts.max(r.ts_ms);
                pending_bytes += block::encoded_bytes(&r, templated);
                pending.push(r);
                pending_bytes >= block_bytes_max || pending.len() >= block_records_max
            }
            None => {
                done = true;
                true
            }
        };
        if !cut {
            continue;
        }
        pending_bytes = 0;
        if let Some(block) = encode(&mut pending, &mut next_id)? {
            match zc.as_mut() {
                _ if packed => emit(&block.0, block.1, None, &mut w, &mut pos, &mut metas)?,
                Some(c) => emit(&block.0, block.1, Some(c), &mut w, &mut pos, &mut metas)?,
                None => {
                    staged_bytes += block.0.len();
                    staged.push(block);
                }
            }
        }
        if !packed && zc.is_none() && (done || staged_bytes >= DICT_SAMPLE_BYTES) {
            let samples: Vec<&[u8]> = staged.iter().map(|(raw, _)| raw.as_slice()).collect();
            let mut c = BlockCompressor::new(zstd_level, dict_bytes_max, &samples, path)?;
            for (raw, span) in staged.drain(..) {
                emit(&raw, span, Some(&mut c), &mut w, &mut pos, &mut metas)?;
            }
            zc = Some(c);
        }
    }
    let dict = zc.and_then(|c| c.dict);
    if packed && (sub_ports.len() != all_sub_ports.len() || numbers.len() != all_numbers.len()) {
        return Err(Error::invalid("records", format!("sealing {}: records changed between reads", path.display())));
    }

    let mut table = Vec::with_capacity(metas.len() * BLOCK_ENTRY_LEN);
    for m in &metas {
        table.extend_from_slice(&m.offset.to_le_bytes());
        table.extend_from_slice(&m.clen.to_le_bytes());
        table.extend_from_slice(&m.rlen.to_le_bytes());
        table.extend_from_slice(&m.count.to_le_bytes());
        table.extend_from_slice(&m.flags.to_le_bytes());
        table.extend_from_slice(&m.min_ts_ms.to_le_bytes());
        table.extend_from_slice(&m.max_ts_ms.to_le_bytes());
        table.extend_from_slice(&m.checksum.to_le_bytes());
    }
    let mut bodies = vec![
        (SectionKind::Blocks, table),
        (SectionKind::SubPorts, index::encode_sub_ports(&sub_ports)),
        // Packed blocks look numbers up by rank: layout 2 reads a rank's number directly.
        (
            SectionKind::Numbers,
            if packed { index::encode_numbers_ranked(&numbers) } else { index::encode_numbers(&numbers) },
        ),
        (SectionKind::NumberFilter, filter::encode(numbers.keys().copied())),
    ];
    let dict_bytes = dict.as_ref().map_or(0, |d| d.len() as u64);
    let version = if let Some(d) = dict {
        bodies.push((SectionKind::Dictionary, d));
        SEALED_VERSION_DICT
    } else {
        SEALED_VERSION_PLAIN
    };
    let version = match templates.as_ref().filter(|_| !metas.is_empty()) {
        Some(t) => {
            bodies.push((SectionKind::Templates, t.encode().map_err(Error::io("compress templates for", path))?));
            match &shapes {
                Some(s) => {
                    bodies.push((SectionKind::Shapes, s.encode().map_err(Error::io("compress shapes for", path))?));
                    SEALED_VERSION_PACKED
                }
                None => SEALED_VERSION_TEMPLATES,
            }
        }
        None => version,
    };
    let version = if cipher.is_some() { SEALED_VERSION_ENCRYPTED } else { version };
    let mut sections = Vec::new();
    let mut index_bytes = 0u64;
    for (kind, body) in &mut bodies {
        let mut encoding = ENCODING_RAW;
        if let Some(c) = cipher.filter(|_| *kind != SectionKind::Blocks) {
            let mut sealed = Vec::with_capacity(body.len() + crate::crypto::OVERHEAD);
            c.seal(Purpose::Section, *kind as u64, body, &mut sealed)
                .map_err(|e| Error::crypto(path, pos, "section", None, e))?;
            *body = sealed;
            encoding = ENCODING_ENCRYPTED;
        }
        let body = &*body;
        sections.push(Section {
            kind: *kind as u32,
            encoding,
            offset: pos,
            len: body.len() as u64,
            checksum: checksum(&[body]),
        });
        wr(&mut w, body)?;
        pos += body.len() as u64;
        if *kind != SectionKind::Dictionary {
            index_bytes += body.len() as u64;
        }
    }
    let sections_off = pos;
    let mut tail = Vec::with_capacity(sections.len() * SECTION_LEN + TRAILER_LEN);
    for s in &sections {
        tail.extend_from_slice(&s.kind.to_le_bytes());
        tail.extend_from_slice(&s.encoding.to_le_bytes());
        tail.extend_from_slice(&s.offset.to_le_bytes());
        tail.extend_from_slice(&s.len.to_le_bytes());
        tail.extend_from_slice(&s.checksum.to_le_bytes());
    }
    if total == 0 {
        (min_ts, max_ts) = (0, 0);
    }
    tail.extend_from_slice(&total.to_le_bytes());
    tail.extend_from_slice(&min_ts.to_le_bytes());
    tail.extend_from_slice(&max_ts.to_le_bytes());
    tail.extend_from_slice(&sections_off.to_le_bytes());
    tail.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    tail.extend_from_slice(&version.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    let c = checksum(&[&tail]);
    tail.extend_from_slice(&c.to_le_bytes());
    tail.extend_from_slice(&TRAILER_MAGIC);
    wr(&mut w, &tail)?;
    pos += tail.len() as u64;
    let file = w.into_inner().map_err(|e| Error::io("write", path)(e.into_error()))?.into_file();
    file.sync_all().map_err(Error::io("fsync", path))?;
    Ok(SealStats {
        records: total,
        blocks: metas.len() as u32,
        bytes: pos,
        index_bytes: index_bytes + tail.len() as u64,
        dict_bytes,
    })
}

/// An encoded block with its (count, min_ts, max_ts).
type EncodedBlock = (Vec<u8>, (u32, i64, i64));

/// The number index's offset and stored length, and its decrypted bytes when it is encrypted.
type NumbersSection = (u64, u64, Option<Box<[u8]>>);

/// Length of the first section of `kind` (0 when there is none).
fn len_of(sections: &[Section], kind: SectionKind) -> u64 {
    sections.iter().find(|s| s.kind == kind as u32).map_or(0, |s| s.len)
}

thread_local! {
    /// One zstd decompression context per reading thread: creating one per block costs about a
    /// third of decompressing a 256 KiB block.
    static DCTX: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { std::cell::RefCell::new(None) };
}

/// Decompresses one block of `rlen` bytes with the thread's context, and `dict` when the block
/// was compressed with the segment's dictionary.
fn decompress(
    comp: &[u8],
    rlen: usize,
    dict: Option<&zstd::zstd_safe::DDict<'static>>,
) -> std::result::Result<Vec<u8>, String> {
    DCTX.with(|c| {
        let mut c = c.try_borrow_mut().map_err(|e| e.to_string())?;
        let ctx = c.get_or_insert_with(zstd::zstd_safe::DCtx::create);
        let mut out: Vec<u8> = Vec::with_capacity(rlen);
        let r = match dict {
            Some(d) => ctx.decompress_using_ddict(&mut out, comp, d),
            None => ctx.decompress(&mut out, comp),
        };
        r.map_err(|code| zstd::zstd_safe::get_error_name(code).to_string())?;
        Ok(out)
    })
}

/// The fixed trailer at the end of a sealed segment.
struct Trailer {
    records: u64,
    min_ts_ms: i64,
    max_ts_ms: i64,
    sections_off: u64,
    sections: u32,
    version: u16,
    checksum: u64,
}

impl Trailer {
    fn parse(buf: &[u8]) -> std::result::Result<Self, &'static str> {
        let mut r = Reader::new(buf);
        let records = r.u64()?;
        let min_ts_ms = r.i64()?;
        let max_ts_ms = r.i64()?;
        let sections_off = r.u64()?;
        let sections = r.u32()?;
        let version = r.u16()?;
        let _reserved = r.u16()?;
        Ok(Self { records, min_ts_ms, max_ts_ms, sections_off, sections, version, checksum: r.u64()? })
    }
}

/// A sealed segment opened for reading.
pub struct SealedSegment {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Identity from the header.
    pub header: SegmentHeader,
    /// Number of records.
    pub records: u64,
    /// Smallest record time (0 when empty).
    pub min_ts_ms: i64,
    /// Largest record time (0 when empty).
    pub max_ts_ms: i64,
    sections: Vec<Section>,
    blocks: OnceLock<Vec<BlockMeta>>,
    sub_ports: OnceLock<BTreeMap<String, Vec<u32>>>,
    /// Offset and length of the number index once its checksum has been verified, and its
    /// decrypted bytes when the section is encrypted (a plaintext one is searched in the map).
    numbers: OnceLock<NumbersSection>,
    /// The number filter, copied to memory once its checksum has been verified (it is about
    /// 1.5 bytes per distinct number); `None` when the segment has no filter section.
    number_filter: OnceLock<Option<(u64, Box<[u8]>)>>,
    /// The trailer's format version ([`SEALED_VERSION_PLAIN`] or [`SEALED_VERSION_DICT`]).
    version: u16,
    /// The zstd dictionary, loaded once its checksum has been verified.
    dict: OnceLock<zstd::zstd_safe::DDict<'static>>,
    /// The text templates, decoded once their section has been verified.
    templates: OnceLock<Templates>,
    /// The record shapes, decoded once their section has been verified.
    shapes: OnceLock<Shapes>,
    /// The sub-ports of the sub-port index in its (sorted) order: a packed block's ranks.
    sub_port_keys: OnceLock<Vec<SubPort>>,
    /// The key id of an encrypted segment (header version 2).
    key_id: Option<u32>,
    /// Its cipher, when the key ring holds that key.
    cipher: Option<SegmentCipher>,
    /// The key ring it was opened with (named in errors).
    keys: Option<Arc<KeyRing>>,
}

impl std::fmt::Debug for SealedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSegment").field("path", &self.path).field("records", &self.records).finish()
    }
}

impl SealedSegment {
    /// Maps `path` and verifies its header and trailer (not its blocks: those are verified on
    /// every read), so that opening costs the same whatever the segment's size. An encrypted
    /// segment opens, and its reads fail naming the key: see [`SealedSegment::open_with_keys`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_keys(path, None)
    }

    /// [`SealedSegment::open`] with the key ring that decrypts an encrypted segment. Without
    /// the segment's key it still opens (the footer's checksums need no key), and every read
    /// of a block or an encrypted section fails with [`Error::KeyMissing`].
    pub fn open_with_keys(path: &Path, keys: Option<Arc<KeyRing>>) -> Result<Self> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        // SAFETY: a sealed segment is never written again once renamed into place; the engine
        // only unlinks it, which leaves the mapping valid. An outside process truncating the file
        // would fault the mapping; docs/operations.md forbids editing the data directory.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io("mmap", path))?;
        let corrupt = |off: usize, d: &str| Error::corrupt(path, off as u64, d);
        let len = map.len();
        if len < HEADER_LEN + TRAILER_LEN {
            return Err(corrupt(0, "file too short for a sealed segment"));
        }
        let (header, key_id) = SegmentHeader::decode_keyed(&map, SEALED_MAGIC).map_err(|d| corrupt(0, d))?;
        let t0 = len - TRAILER_LEN;
        if map[len - 8..] != TRAILER_MAGIC {
            return Err(corrupt(len - 8, "bad trailer magic"));
        }
        let Trailer { records, min_ts_ms, max_ts_ms, sections_off, sections: n, version, checksum: stored } =
            Trailer::parse(&map[t0..]).map_err(|d| corrupt(t0, d))?;
        let n = n as usize;
        let so = usize::try_from(sections_off)
            .ok()
            .filter(|&so| so >= HEADER_LEN && so.checked_add(n * SECTION_LEN) == Some(t0));
        let Some(so) = so.filter(|_| n <= 64) else {
            return Err(corrupt(t0, "section table offset or count out of range"));
        };
        if checksum(&[&map[so..len - 16]]) != stored {
            return Err(corrupt(so, "footer checksum mismatch"));
        }
        match (version, key_id) {
            (SEALED_VERSION_PLAIN | SEALED_VERSION_DICT | SEALED_VERSION_TEMPLATES | SEALED_VERSION_PACKED, None)
            | (SEALED_VERSION_ENCRYPTED, Some(_)) => {}
            (
                SEALED_VERSION_PLAIN
                | SEALED_VERSION_DICT
                | SEALED_VERSION_ENCRYPTED
                | SEALED_VERSION_TEMPLATES
                | SEALED_VERSION_PACKED,
                _,
            ) => {
                return Err(corrupt(t0, "trailer version and header disagree about encryption"));
            }
            _ => return Err(corrupt(t0, "unsupported format version")),
        }
        let mut sections = Vec::with_capacity(n);
        let mut r = Reader::new(&map[so..t0]);
        for i in 0..n {
            let s = (|| -> std::result::Result<Section, &'static str> {
                let kind = r.u32()?;
                let encoding = r.u32()?;
                Ok(Section { kind, encoding, offset: r.u64()?, len: r.u64()?, checksum: r.u64()? })
            })()
            .map_err(|d| corrupt(so + i * SECTION_LEN, d))?;
            let encodings_allowed: &[u32] = if version == SEALED_VERSION_ENCRYPTED {
                &[ENCODING_RAW, ENCODING_ENCRYPTED]
            } else {
                // Written as 0 since version 1, and read as 0 (it was ignored before version 3).
                &[ENCODING_RAW]
            };
            if !encodings_allowed.contains(&s.encoding) {
                return Err(corrupt(
                    so + i * SECTION_LEN,
                    &format!("section encoding {} not valid in format version {version}", s.encoding),
                ));
            }
            if s.offset < HEADER_LEN as u64 || s.offset.checked_add(s.len).is_none_or(|e| e > sections_off) {
                return Err(corrupt(so + i * SECTION_LEN, "section out of range"));
            }
            sections.push(s);
        }
        Ok(Self {
            path: path.to_owned(),
            map,
            header,
            records,
            min_ts_ms,
            max_ts_ms,
            sections,
            blocks: OnceLock::new(),
            sub_ports: OnceLock::new(),
            numbers: OnceLock::new(),
            number_filter: OnceLock::new(),
            version,
            dict: OnceLock::new(),
            templates: OnceLock::new(),
            shapes: OnceLock::new(),
            sub_port_keys: OnceLock::new(),
            cipher: key_id
                .zip(keys.as_ref())
                .filter(|(k, r)| r.has(*k))
                .map(|(k, r)| SegmentCipher::new(r.clone(), k, header.shard, header.bucket_start_ms, header.gen)),
            key_id,
            keys,
        })
    }

    /// The key id of an encrypted segment (`None`: plaintext).
    pub fn key_id(&self) -> Option<u32> {
        self.key_id
    }

    /// The cipher for an encrypted item: `Ok(None)` for a plaintext segment,
    /// [`Error::KeyMissing`] when the ring lacks the segment's key.
    fn cipher(&self) -> Result<Option<&SegmentCipher>> {
        match (self.key_id, &self.cipher) {
            (None, _) => Ok(None),
            (Some(_), Some(c)) => Ok(Some(c)),
            (Some(k), None) => Err(Error::key_missing(&self.path, k, self.keys.as_deref())),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.map.len() as u64
    }

    fn corrupt(&self, off: u64, d: impl Into<String>) -> Error {
        Error::corrupt(&self.path, off, d)
    }

    /// A section's file offset and bytes, its checksum verified, decrypted when it is
    /// encrypted.
    fn section(&self, kind: SectionKind) -> Result<(u64, Cow<'_, [u8]>)> {
        let s = self
            .sections
            .iter()
            .find(|s| s.kind == kind as u32)
            .ok_or_else(|| self.corrupt(self.map.len() as u64, format!("missing footer section {kind:?}")))?;
        // Bounds were checked at open.
        let body = &self.map[s.offset as usize..(s.offset + s.len) as usize];
        if checksum(&[body]) != s.checksum {
            return Err(self.corrupt(s.offset, format!("{kind:?} section checksum mismatch")));
        }
        if s.encoding != ENCODING_ENCRYPTED {
            return Ok((s.offset, Cow::Borrowed(body)));
        }
        let Some(c) = self.cipher()? else {
            // Refused at open: only version 3 segments (which have a key id) have encryption.
            return Err(self.corrupt(s.offset, format!("{kind:?} section encrypted in a plaintext segment")));
        };
        let plain = c
            .open(Purpose::Section, u64::from(s.kind), body)
            .map_err(|e| Error::crypto(&self.path, s.offset, &format!("{kind:?} section"), self.keys.as_deref(), e))?;
        Ok((s.offset, Cow::Owned(plain)))
    }

    /// Bytes of the footer sections of `kind` (0 when the segment has none).
    pub fn section_bytes(&self, kind: SectionKind) -> u64 {
        self.sections.iter().filter(|s| s.kind == kind as u32).map(|s| s.len).sum()
    }

    /// Bytes of the footer indexes.
    pub fn index_bytes(&self) -> u64 {
        self.sections.iter().map(|s| s.len).sum::<u64>() + (self.sections.len() * SECTION_LEN + TRAILER_LEN) as u64
    }

    /// The block table, parsed and verified on first use.
    pub fn blocks(&self) -> Result<&[BlockMeta]> {
        if let Some(b) = self.blocks.get() {
            return Ok(b);
        }
        let (off, body) = self.section(SectionKind::Blocks)?;
        if body.len() % BLOCK_ENTRY_LEN != 0 {
            return Err(self.corrupt(off, "block table length not a multiple of its entry"));
        }
        let mut out = Vec::with_capacity(body.len() / BLOCK_ENTRY_LEN);
        let mut r = Reader::new(&body);
        let mut end = HEADER_LEN as u64;
        let mut count = 0u64;
        while r.remaining() > 0 {
            let at = off + r.pos() as u64;
            let m = (|| -> std::result::Result<BlockMeta, &'static str> {
                let offset = r.u64()?;
                let clen = r.u32()?;
                let rlen = r.u32()?;
                let count = r.u32()?;
                let flags = r.u32()?;
                Ok(BlockMeta {
                    offset,
                    clen,
                    rlen,
                    count,
                    flags,
                    min_ts_ms: r.i64()?,
                    max_ts_ms: r.i64()?,
                    checksum: r.u64()?,
                })
            })()
            .map_err(|d| self.corrupt(at, d))?;
            if m.offset != end || m.min_ts_ms > m.max_ts_ms {
                return Err(self.corrupt(at, "block table entry out of order"));
            }
            let allowed = match self.version {
                SEALED_VERSION_PLAIN => 0,
                SEALED_VERSION_DICT => BLOCK_FLAG_DICT,
                SEALED_VERSION_TEMPLATES => BLOCK_FLAG_DICT | BLOCK_FLAG_TEMPLATES,
                SEALED_VERSION_PACKED => BLOCK_FLAG_TEMPLATES | BLOCK_FLAG_PACKED,
                _ => BLOCK_FLAG_DICT | BLOCK_FLAG_TEMPLATES | BLOCK_FLAG_PACKED,
            };
            let packed = BLOCK_FLAG_PACKED | BLOCK_FLAG_TEMPLATES;
            if m.flags & !allowed != 0 || (m.flags & BLOCK_FLAG_PACKED != 0 && m.flags != packed) {
                return Err(self
                    .corrupt(at, format!("block flags {:#x} not valid in format version {}", m.flags, self.version)));
            }
            end = m.offset + u64::from(m.clen);
            count += u64::from(m.count);
            out.push(m);
        }
        if count != self.records || end > off {
            return Err(self.corrupt(off, "block table disagrees with the trailer"));
        }
        Ok(self.blocks.get_or_init(|| out))
    }

    /// Block `i`'s table entry and its bytes, checksum verified, decompressed and checked
    /// against the table's length.
    fn block_raw(&self, i: usize) -> Result<(BlockMeta, Vec<u8>)> {
        let m = *self.blocks()?.get(i).ok_or_else(|| self.corrupt(0, format!("block {i} does not exist")))?;
        let comp = &self.map[m.offset as usize..(m.offset + u64::from(m.clen)) as usize];
        if checksum(&[comp]) != m.checksum {
            return Err(self.corrupt(m.offset, format!("block {i} checksum mismatch")));
        }
        if m.rlen as usize > BLOCK_RAW_BYTES_MAX {
            return Err(self.corrupt(
                m.offset,
                format!(
                    "block {i}: uncompressed length {} above the {BLOCK_RAW_BYTES_MAX} bytes a block can have",
                    m.rlen
                ),
            ));
        }
        let comp = match self.cipher()? {
            None => Cow::Borrowed(comp),
            Some(c) => Cow::Owned(
                c.open(Purpose::Block, i as u64, comp)
                    .map_err(|e| Error::crypto(&self.path, m.offset, &format!("block {i}"), self.keys.as_deref(), e))?,
            ),
        };
        if m.flags & BLOCK_FLAG_PACKED != 0 {
            if comp.len() != m.rlen as usize {
                return Err(self.corrupt(m.offset, format!("block {i}: length differs from the table")));
            }
            return Ok((m, comp.into_owned()));
        }
        let dict = if m.flags & BLOCK_FLAG_DICT != 0 { Some(self.dictionary()?) } else { None };
        let raw = decompress(&comp, m.rlen as usize, dict)
            .map_err(|e| self.corrupt(m.offset, format!("block {i}: zstd: {e}")))?;
        if raw.len() != m.rlen as usize {
            return Err(self.corrupt(m.offset, format!("block {i}: decompressed length differs from the table")));
        }
        Ok((m, raw))
    }

    /// The segment's dictionary, its section verified on first use.
    fn dictionary(&self) -> Result<&zstd::zstd_safe::DDict<'static>> {
        if let Some(d) = self.dict.get() {
            return Ok(d);
        }
        let (off, body) = self.section(SectionKind::Dictionary)?;
        // zstd refuses (null) a dictionary whose header is zstd's but whose tables are not:
        // corruption behind a right checksum, an error rather than `DDict::create`'s panic.
        let d = zstd::zstd_safe::DDict::try_create(&body)
            .ok_or_else(|| self.corrupt(off, "Dictionary section is not a zstd dictionary"))?;
        Ok(self.dict.get_or_init(|| d))
    }

    /// The segment's templates, its section verified and decoded on first use.
    fn templates(&self) -> Result<&Templates> {
        if let Some(t) = self.templates.get() {
            return Ok(t);
        }
        let (off, body) = self.section(SectionKind::Templates)?;
        let t = Templates::decode(&body).map_err(|d| self.corrupt(off, d))?;
        Ok(self.templates.get_or_init(|| t))
    }

    /// The templates block `m` is to be decoded with (`None`: its texts are stored whole).
    fn templates_of(&self, m: &BlockMeta) -> Result<Option<&Templates>> {
        if m.flags & BLOCK_FLAG_TEMPLATES == 0 {
            return Ok(None);
        }
        self.templates().map(Some)
    }

    /// The segment's shapes, their section verified and decoded on first use.
    fn shapes(&self) -> Result<&Shapes> {
        if let Some(s) = self.shapes.get() {
            return Ok(s);
        }
        let t = self.templates()?;
        let (off, body) = self.section(SectionKind::Shapes)?;
        let s = Shapes::decode(&body, t).map_err(|d| self.corrupt(off, d))?;
        Ok(self.shapes.get_or_init(|| s))
    }

    /// The sub-port index, verified and decoded on first use.
    fn sub_port_index(&self) -> Result<&BTreeMap<String, Vec<u32>>> {
        if let Some(m) = self.sub_ports.get() {
            return Ok(m);
        }
        let (off, body) = self.section(SectionKind::SubPorts)?;
        let n = self.blocks()?.len() as u32;
        let map = index::decode_sub_ports(&body, n).map_err(|d| self.corrupt(off, format!("sub-port index: {d}")))?;
        Ok(self.sub_ports.get_or_init(|| map))
    }

    /// The sub-ports of the sub-port index in its order, each checked.
    fn sub_port_keys(&self) -> Result<&[SubPort]> {
        if let Some(k) = self.sub_port_keys.get() {
            return Ok(k);
        }
        let keys = self
            .sub_port_index()?
            .keys()
            .map(|s| SubPort::parse(s))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| self.corrupt(0, format!("sub-port index: {e}")))?;
        Ok(self.sub_port_keys.get_or_init(|| keys))
    }

    /// The records `pick`ed of packed block `i` (its bytes `raw`), parsed against the
    /// segment's tables once the whole block agrees with its table entry, their numbers read by
    /// rank from the number index.
    fn packed_records(
        &self,
        i: usize,
        m: &BlockMeta,
        raw: &[u8],
        pick: impl Fn(&Packed<'_>, usize) -> bool,
    ) -> Result<Vec<Record>> {
        let numbers = self.number_index()?;
        let tables = packed::Tables {
            templates: self.templates()?,
            shapes: self.shapes()?,
            sub_ports: self.sub_port_keys()?,
            numbers: numbers.len(),
        };
        let p = Packed::parse(raw, tables).map_err(|d| self.corrupt(m.offset, format!("block {i}: {d}")))?;
        let (first_ts, last_ts) = p.span();
        let sum = block::Summary { count: p.len(), first_ts, last_ts };
        self.checked(i, m, Ok((sum, Vec::new())))?;
        let at: Vec<usize> = (0..p.len()).filter(|&j| pick(&p, j)).collect();
        let ranks: Vec<u32> = at.iter().map(|&j| p.peer_rank(j)).collect();
        let nums = numbers
            .numbers_at(&ranks)
            .map_err(|d| self.corrupt(self.numbers_offset(), format!("number index: {d}")))?;
        at.iter()
            .zip(nums)
            .map(|(&j, n)| {
                let peer = PhoneNumber::from_u64(n)
                    .ok_or_else(|| self.corrupt(m.offset, format!("block {i}: number {n} out of range")))?;
                p.record(j, peer).map_err(|d| self.corrupt(m.offset, format!("block {i}: {d}")))
            })
            .collect()
    }

    /// Reads, verifies and decodes block `i`.
    pub fn read_block(&self, i: usize) -> Result<Vec<Record>> {
        let (m, raw) = self.block_raw(i)?;
        if m.flags & BLOCK_FLAG_PACKED != 0 {
            return self.packed_records(i, &m, &raw, |_, _| true);
        }
        let decoded = block::decode_with(&raw, self.templates_of(&m)?).map(|recs| (block::Summary::of(&recs), recs));
        self.checked(i, &m, decoded)
    }

    /// Reads and verifies block `i` like [`Self::read_block`], but builds only the records of
    /// `number` (in block order).
    pub fn read_block_of_number(&self, i: usize, number: u64) -> Result<Vec<Record>> {
        let (m, raw) = self.block_raw(i)?;
        if m.flags & BLOCK_FLAG_PACKED != 0 {
            let rank = self.find_number(number)?.map(|(rank, _)| rank);
            return self.packed_records(i, &m, &raw, |p, j| Some(p.peer_rank(j)) == rank);
        }
        let t = self.templates_of(&m)?;
        self.checked(i, &m, block::decode_peer_with(&raw, t, number))
    }

    /// Reads and verifies block `i` like [`Self::read_block`], but builds only the records of
    /// `sub_port` (in block order).
    pub fn read_block_of_sub_port(&self, i: usize, sub_port: &str) -> Result<Vec<Record>> {
        let (m, raw) = self.block_raw(i)?;
        if m.flags & BLOCK_FLAG_PACKED != 0 {
            let rank = self.sub_port_keys()?.binary_search_by(|k| k.as_str().cmp(sub_port)).ok();
            return self.packed_records(i, &m, &raw, |p, j| Some(p.sub_port_rank(j) as usize) == rank);
        }
        let t = self.templates_of(&m)?;
        self.checked(i, &m, block::decode_sub_port_with(&raw, t, sub_port))
    }

    /// The records of a decode of block `i` (whole or partial), once the summary of the whole
    /// block agrees with its table entry.
    fn checked(
        &self,
        i: usize,
        m: &BlockMeta,
        decoded: std::result::Result<(block::Summary, Vec<Record>), &'static str>,
    ) -> Result<Vec<Record>> {
        let (sum, recs) = decoded.map_err(|d| self.corrupt(m.offset, format!("block {i}: {d}")))?;
        if sum.count != m.count as usize || sum.first_ts != Some(m.min_ts_ms) || sum.last_ts != Some(m.max_ts_ms) {
            return Err(self.corrupt(m.offset, format!("block {i}: contents disagree with the block table")));
        }
        Ok(recs)
    }

    /// Blocks that hold `sub_port` (ascending).
    pub fn blocks_of_sub_port(&self, sub_port: &str) -> Result<Vec<u32>> {
        Ok(self.sub_port_index()?.get(sub_port).cloned().unwrap_or_default())
    }

    /// Blocks that hold `number` (ascending).
    pub fn blocks_of_number(&self, number: u64) -> Result<Vec<u32>> {
        Ok(self.find_number(number)?.map(|(_, b)| b).unwrap_or_default())
    }

    /// The rank of `number` in the number index and the blocks holding it, or `None`.
    fn find_number(&self, number: u64) -> Result<Option<(u32, Vec<u32>)>> {
        let ix = self.number_index()?;
        ix.find(number).map_err(|d| self.corrupt(self.numbers_offset(), format!("number index: {d}")))
    }

    fn numbers_offset(&self) -> u64 {
        self.numbers.get().map_or(0, |n| n.0)
    }

    /// The number index, its section verified on first use.
    fn number_index(&self) -> Result<NumberIndex<'_>> {
        // The section's checksum is verified once per segment, not on every lookup.
        let (off, len, owned) = match self.numbers.get() {
            Some(n) => n,
            None => {
                let (off, body) = self.section(SectionKind::Numbers)?;
                let owned = match body {
                    Cow::Borrowed(_) => None,
                    Cow::Owned(v) => Some(v.into_boxed_slice()),
                };
                self.numbers.get_or_init(|| (off, len_of(&self.sections, SectionKind::Numbers), owned))
            }
        };
        let off = *off;
        let body: &[u8] = match owned {
            Some(b) => b,
            None => &self.map[off as usize..(off + len) as usize],
        };
        let n = self.blocks()?.len() as u32;
        // A segment with record shapes (packed blocks) has a layout 2 number index.
        let ix = if self.sections.iter().any(|s| s.kind == SectionKind::Shapes as u32) {
            NumberIndex::open_ranked(body, n)
        } else {
            NumberIndex::open(body, n)
        };
        ix.map_err(|d| self.corrupt(off, format!("number index: {d}")))
    }

    /// Whether the segment has a number filter (segments sealed before it existed do not).
    pub fn has_number_filter(&self) -> bool {
        self.sections.iter().any(|s| s.kind == SectionKind::NumberFilter as u32)
    }

    /// `Ok(false)` when the segment certainly holds no record of `number`, `Ok(true)` when it
    /// may (always, for a segment without a filter). On first use the filter's checksum and
    /// framing are verified and its bytes copied to memory, once per segment: later probes
    /// read one 32-byte block and no page of the file, so a segment without the number costs
    /// no I/O even when its file has left the page cache.
    pub fn may_contain_number(&self, number: u64) -> Result<bool> {
        let f = match self.number_filter.get() {
            Some(f) => f,
            None => {
                let f = if self.has_number_filter() {
                    let (off, body) = self.section(SectionKind::NumberFilter)?;
                    NumberFilter::open(&body).map_err(|d| self.corrupt(off, format!("number filter: {d}")))?;
                    Some((off, Box::from(&*body)))
                } else {
                    None
                };
                self.number_filter.get_or_init(|| f)
            }
        };
        let Some((off, body)) = f else { return Ok(true) };
        // The framing was verified when it was loaded: this cannot fail, but a failure would
        // still be reported rather than answered.
        let f = NumberFilter::open(body).map_err(|d| self.corrupt(*off, format!("number filter: {d}")))?;
        Ok(f.may_contain(number))
    }

    /// Bytes of the number filter held in memory (0 before its first use or without one).
    pub fn number_filter_memory(&self) -> usize {
        self.number_filter.get().and_then(|f| f.as_ref()).map_or(0, |f| f.1.len())
    }

    /// Drops this process's page mappings of the file (`madvise(DONTNEED)`), so that its pages
    /// can leave the page cache (`posix_fadvise(DONTNEED)` or the kernel's reclaim). Parsed
    /// caches (block table, verified checksums) are kept. For cold-cache benchmarks.
    pub fn release_pages(&self) -> Result<()> {
        // SAFETY: the mapping is read-only and shared, and the file is never written after its
        // rename: MADV_DONTNEED only drops page-table entries, and the next access faults the
        // same bytes back in from the file. No reference into the map is invalidated.
        unsafe { self.map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) }
            .map_err(Error::io("madvise", &self.path))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::record::{Direction, PhoneNumber, SubPort, Usage};

    fn records(n: u64) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                dir: Direction::Mt,
                sub_port: SubPort::parse(&format!("1069012{:03}", i % 97)).unwrap(),
                peer: PhoneNumber::from_u64(13_800_000_000 + (i * 7_919) % 1_000_000).unwrap(),
                ts_ms: 1_777_564_800_000 + i as i64 * 1_000,
                usage: Some(Usage::Commercial),
                text: format!("【星河银行】尊敬的客户，您的第{i}号积分活动即将结束，满{}减20。拒收请回复R", i % 300),
            })
            .collect()
    }

    /// How a test seals its records.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Layout {
        Whole,
        Templated,
        Packed,
    }

    /// Seals `recs` with texts stored whole (versions 1 and 2).
    fn seal(dir: &Path, name: &str, recs: &[Record], block: usize, dict: usize) -> (SealStats, SealedSegment) {
        seal_with(dir, name, recs, block, dict, Layout::Whole)
    }

    fn seal_with(
        dir: &Path,
        name: &str,
        recs: &[Record],
        block_bytes_max: usize,
        dict_bytes_max: usize,
        layout: Layout,
    ) -> (SealStats, SealedSegment) {
        let path = dir.join(name);
        let h = SegmentHeader { shard: 0, bucket_start_ms: 1_777_564_800_000, gen: 0 };
        let opts = SealOptions {
            block_bytes_max,
            block_records_max: 128,
            zstd_level: 9,
            dict_bytes_max,
            cipher: None,
            templates: layout != Layout::Whole,
            packed: layout == Layout::Packed,
        };
        let st = write_sealed_with(&crate::io::OsIo, &path, h, recs.iter().cloned().map(Ok), opts).unwrap();
        (st, SealedSegment::open(&path).unwrap())
    }

    fn read_all(seg: &SealedSegment) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for i in 0..seg.blocks()?.len() {
            out.extend(seg.read_block(i)?);
        }
        Ok(out)
    }

    #[test]
    fn a_dictionary_segment_reads_back_and_is_smaller_than_plain_small_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(40_000);
        let (plain_st, plain) = seal(dir.path(), "plain.seg", &recs, 16 << 10, 0);
        let (dict_st, dict) = seal(dir.path(), "dict.seg", &recs, 16 << 10, 64 << 10);
        assert_eq!((plain.version, dict.version), (SEALED_VERSION_PLAIN, SEALED_VERSION_DICT));
        assert_eq!(plain_st.dict_bytes, 0);
        assert!(dict_st.dict_bytes > 0 && dict.section_bytes(SectionKind::Dictionary) == dict_st.dict_bytes);
        assert!(dict.blocks().unwrap().iter().all(|m| m.flags == BLOCK_FLAG_DICT));
        assert!(plain.blocks().unwrap().iter().all(|m| m.flags == 0));
        assert_eq!(read_all(&plain).unwrap(), recs);
        assert_eq!(read_all(&dict).unwrap(), recs);
        let n = recs[12_345].peer.as_u64();
        let b = dict.blocks_of_number(n).unwrap()[0] as usize;
        assert!(dict.read_block_of_number(b, n).unwrap().contains(&recs[12_345]));
        assert!(dict_st.bytes < plain_st.bytes, "dictionary {} B against plain {} B", dict_st.bytes, plain_st.bytes);
    }

    #[test]
    fn a_templated_segment_reads_back_smaller_and_its_damaged_table_is_an_error() {
        split_texts_read_back(Layout::Templated, SEALED_VERSION_TEMPLATES, BLOCK_FLAG_DICT | BLOCK_FLAG_TEMPLATES);
    }

    #[test]
    fn a_packed_segment_reads_back_smaller_and_its_damaged_table_is_an_error() {
        split_texts_read_back(Layout::Packed, SEALED_VERSION_PACKED, BLOCK_FLAG_PACKED | BLOCK_FLAG_TEMPLATES);
    }

    /// Texts split into templates (`layout`) read back whole, by number and by sub-port, from a
    /// segment of `version` whose blocks have `flags`; a damaged table is an error.
    fn split_texts_read_back(layout: Layout, version: u16, flags: u32) {
        let dir = tempfile::tempdir().unwrap();
        let mut recs = records(40_000);
        // Texts that cannot be templated, among the rest.
        recs[7].text = "holds the hole byte \u{1} 42".into();
        recs[8].text = "8".repeat(super::super::template::TEMPLATE_BYTES_MAX + 3);
        let (whole_st, _) = seal(dir.path(), "whole.seg", &recs, 8 << 10, 64 << 10);
        let (st, seg) = seal_with(dir.path(), "tpl.seg", &recs, 8 << 10, 64 << 10, layout);
        assert_eq!(seg.version, version);
        assert!(seg.blocks().unwrap().iter().all(|m| m.flags == flags));
        assert!(seg.section_bytes(SectionKind::Templates) > 0);
        assert_eq!(read_all(&seg).unwrap(), recs);
        for i in [0, 7, 8, 12_345, 39_999] {
            let n = recs[i].peer.as_u64();
            let found: Vec<Record> = seg
                .blocks_of_number(n)
                .unwrap()
                .into_iter()
                .flat_map(|b| seg.read_block_of_number(b as usize, n).unwrap())
                .collect();
            assert!(found.contains(&recs[i]), "record {i}");
        }
        let sp = recs[12_345].sub_port.as_str();
        let by_sp: Vec<Record> = seg
            .blocks_of_sub_port(sp)
            .unwrap()
            .into_iter()
            .flat_map(|b| seg.read_block_of_sub_port(b as usize, sp).unwrap())
            .collect();
        assert_eq!(by_sp, recs.iter().filter(|r| r.sub_port.as_str() == sp).cloned().collect::<Vec<_>>());
        // These records' texts and numbers count up, which zstd finds better than bit-packing
        // does: the space of realistic records is measured by the space_breakdown example.
        let ratio = if layout == Layout::Packed { 97 } else { 90 };
        assert!(
            st.bytes * 100 < whole_st.bytes * ratio,
            "templated {} B against whole texts {} B",
            st.bytes,
            whole_st.bytes
        );

        assert!(seg.read_block_of_number(0, 13_999_999_999).unwrap().is_empty());
        assert!(seg.read_block_of_sub_port(0, "1069099").unwrap().is_empty());
        let mut kinds = vec![SectionKind::Templates];
        if layout == Layout::Packed {
            kinds.extend([SectionKind::Shapes, SectionKind::SubPorts, SectionKind::Numbers]);
        }
        let path = seg.path().to_owned();
        drop(seg);
        let good = std::fs::read(&path).unwrap();
        for kind in kinds {
            std::fs::write(&path, &good).unwrap();
            let e = damage_section(SealedSegment::open(&path).unwrap(), kind).read_block(0).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }), "{e}");
            assert!(e.to_string().contains("tpl.seg") && e.to_string().contains(&format!("{kind:?}")), "{e}");
        }
    }

    /// `seg` with a bit flipped in the middle of its section `kind`, reopened.
    fn damage_section(seg: SealedSegment, kind: SectionKind) -> SealedSegment {
        let s = *seg.sections.iter().find(|s| s.kind == kind as u32).unwrap();
        let path = seg.path().to_owned();
        drop(seg);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(s.offset + s.len / 2) as usize] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        SealedSegment::open(&path).unwrap()
    }

    #[test]
    fn few_blocks_get_no_dictionary() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(200);
        let (st, seg) = seal(dir.path(), "small.seg", &recs, 16 << 10, 64 << 10);
        assert_eq!((st.dict_bytes, seg.version), (0, SEALED_VERSION_PLAIN));
        assert_eq!(read_all(&seg).unwrap(), recs);
    }

    #[test]
    fn a_damaged_dictionary_is_an_error_naming_the_file_never_a_wrong_record() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(40_000);
        let (_, seg) = seal(dir.path(), "dict.seg", &recs, 16 << 10, 64 << 10);
        let e = damage_section(seg, SectionKind::Dictionary).read_block(0).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("dict.seg") && e.to_string().contains("Dictionary"), "{e}");
    }

    #[test]
    fn a_dictionary_flag_in_a_version_1_segment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let recs = records(5_000);
        let (_, seg) = seal(dir.path(), "plain.seg", &recs, 16 << 10, 0);
        let (off, body) = seg.section(SectionKind::Blocks).unwrap();
        let (off, len) = (off as usize, body.len());
        let ix = seg.sections.iter().position(|s| s.kind == SectionKind::Blocks as u32).unwrap();
        let n = seg.sections.len();
        let path = seg.path().to_owned();
        drop(seg);
        let mut bytes = std::fs::read(&path).unwrap();
        // Set flag 1 in block 0's entry and fix every checksum over it, so that only the flag
        // is wrong.
        bytes[off + 20] = 1;
        let t0 = bytes.len() - TRAILER_LEN;
        let so = t0 - n * SECTION_LEN;
        let c = checksum(&[&bytes[off..off + len]]);
        bytes[so + ix * SECTION_LEN + 24..so + ix * SECTION_LEN + 32].copy_from_slice(&c.to_le_bytes());
        let c = checksum(&[&bytes[so..bytes.len() - 16]]);
        bytes[t0 + 40..t0 + 48].copy_from_slice(&c.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let seg = SealedSegment::open(&path).unwrap();
        let e = seg.blocks().unwrap_err();
        assert!(e.to_string().contains("not valid in format version 1"), "{e}");
    }
}
