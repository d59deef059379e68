//! What the fuzz targets and the seed generator share: scratch paths, sample records, a small
//! valid data directory made by the engine's own log, the mutations the `recovery` target
//! applies to it, the reads that exercise a sealed segment and a whole log, and checksum
//! fix-ups that let mutated headers, frames, footers and manifests through their checksums so
//! that the parsers behind them are reached.
//!
//! Nothing here may panic on any input: a panic is what the targets look for.

use portlog_engine::codec::checksum;
use portlog_engine::log::frame::{FRAME_HEADER_LEN, FRAME_MAGIC, HEADER_LEN, OPEN_MAGIC, ROW_HEADER_LEN, SEALED_MAGIC};
use portlog_engine::log::packed::{self, ShapeBuilder, Shapes};
use portlog_engine::log::sealed::{SealedSegment, SectionKind, TRAILER_LEN};
use portlog_engine::log::template::{TemplateBuilder, Templates};
use portlog_engine::{Direction, Log, LogConfig, ManualClock, PhoneNumber, Record, SubPort, SyncPolicy, Usage};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// 2026-05-10T00:00:00+08:00: the clock of every log the targets open.
pub const NOW_MS: i64 = 1_778_342_400_000;
/// One day, ms.
pub const DAY_MS: i64 = 86_400_000;
/// Most records one read drains (a bound, so that no input can keep a target reading).
pub const READ_MAX: usize = 10_000;
/// Most blocks of one sealed segment the `footer` target decodes.
pub const BLOCKS_READ_MAX: usize = 256;

/// A scratch path private to this process: under `$PORTLOG_FUZZ_SCRATCH` (set by smoke.sh),
/// else `/dev/shm` when it exists (no disk I/O, cheap fsync), else the temp directory.
pub fn scratch(name: &str) -> PathBuf {
    let base = match std::env::var_os("PORTLOG_FUZZ_SCRATCH") {
        Some(d) => PathBuf::from(d),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    base.join(format!("portlog-fuzz-{}-{name}", std::process::id()))
}

/// `n` deterministic records, `step_ms` apart from `first_ts_ms`: three sub-ports, seven
/// numbers, MT (commercial or service) and MO "R" replies.
pub fn records(n: usize, first_ts_ms: i64, step_ms: i64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mo = i % 5 == 4;
            Record {
                dir: if mo { Direction::Mo } else { Direction::Mt },
                sub_port: SubPort::parse(&format!("10690123456{:02}", i % 3)).expect("a valid sub-port"),
                peer: PhoneNumber::from_u64(13_800_138_000 + (i as u64 % 7) * 1_111).expect("a valid number"),
                ts_ms: first_ts_ms + i as i64 * step_ms,
                usage: match (mo, i % 2) {
                    (true, _) => None,
                    (false, 0) => Some(Usage::Commercial),
                    (false, _) => Some(Usage::Service),
                },
                text: if mo {
                    "R".into()
                } else {
                    format!("【星河银行】第{i}期会员日满100减20。拒收请回复R")
                },
            }
        })
        .collect()
}

/// Fixed segment tables for packed blocks, and a block written against them (the `decode`
/// target's and its seed's): the sub-ports and numbers of [`records`], and the templates and
/// shapes of its first records with a templated code, an "R" and a literal text.
pub struct PackedFixture {
    /// Sorted sub-ports (a block's ranks).
    pub sub_ports: Vec<String>,
    /// The same, parsed.
    pub sub_port_keys: Vec<SubPort>,
    /// Sorted numbers (a block's ranks).
    pub numbers: Vec<u64>,
    /// The templates.
    pub templates: Templates,
    /// The shapes.
    pub shapes: Shapes,
    /// Records of the block.
    pub records: Vec<Record>,
    /// The block.
    pub block: Vec<u8>,
}

impl PackedFixture {
    /// The tables as a packed block's parser takes them.
    pub fn tables(&self) -> packed::Tables<'_> {
        packed::Tables {
            templates: &self.templates,
            shapes: &self.shapes,
            sub_ports: &self.sub_port_keys,
            numbers: self.numbers.len(),
        }
    }

    /// Encodes `recs` (over this fixture's sub-ports and numbers) into a packed block with
    /// tables of its own, and returns the block with them.
    pub fn encode(&self, recs: &[Record]) -> (Vec<u8>, Templates, Shapes) {
        let (mut t, mut s) = (TemplateBuilder::new(), ShapeBuilder::new());
        let mut b =
            packed::Builders { sub_ports: &self.sub_ports, numbers: &self.numbers, templates: &mut t, shapes: &mut s };
        let block = packed::encode(&recs.iter().collect::<Vec<_>>(), &mut b, 3).expect("records of the tables encode");
        let t = Templates::decode(&t.encode().expect("zstd compresses")).expect("a table just encoded decodes");
        let s = Shapes::decode(&s.encode().expect("zstd compresses"), &t).expect("shapes just encoded decode");
        (block, t, s)
    }

    /// The records of a packed block parsed against `tables`, numbers from this fixture.
    pub fn decode(&self, raw: &[u8], tables: packed::Tables<'_>) -> Result<Vec<Record>, &'static str> {
        let p = packed::Packed::parse(raw, tables)?;
        (0..p.len())
            .map(|i| {
                let n = self.numbers[p.peer_rank(i) as usize];
                p.record(i, PhoneNumber::from_u64(n).ok_or("number out of range")?)
            })
            .collect()
    }
}

/// The [`PackedFixture`], built once.
pub fn packed_fixture() -> &'static PackedFixture {
    static F: std::sync::OnceLock<PackedFixture> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let mut recs = records(7, NOW_MS - 60_000, 7_000);
        recs[0].text = "【星河银行】验证码012345，5分钟内有效".into();
        recs[2].text = "literal: holds the hole byte \u{1} 42".into();
        let (sub_ports, numbers) = packed::segment_keys(&recs);
        let sub_port_keys = sub_ports.iter().map(|s| SubPort::parse(s).expect("a valid sub-port")).collect();
        let mut f = PackedFixture {
            sub_ports,
            sub_port_keys,
            numbers,
            templates: Templates::default(),
            shapes: Shapes::default(),
            records: recs,
            block: Vec::new(),
        };
        let (block, templates, shapes) = f.encode(&f.records);
        (f.block, f.templates, f.shapes) = (block, templates, shapes);
        f
    })
}

/// The log configuration of the seed directory (and of every open in the `recovery` target):
/// two shards, small blocks, a small dictionary, no fsync.
pub fn log_config() -> LogConfig {
    LogConfig {
        shards: 2,
        sync: SyncPolicy::None,
        block_bytes_max: 4096,
        zstd_level: 3,
        zstd_dict_bytes: 4096,
        ..LogConfig::default()
    }
}

/// Records in the seed directory's sealed segments, and in its open segments.
pub const SEED_SEALED_RECORDS: usize = 120;
/// See [`SEED_SEALED_RECORDS`].
pub const SEED_OPEN_RECORDS: usize = 30;

/// Builds the seed data directory in `dir` (emptied first) with the engine's own log: sealed
/// segments of the three days before [`NOW_MS`] in both shards, then open segments of the
/// last half hour before it and the first minutes after.
pub fn build_seed_dir(dir: &Path) -> portlog_engine::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    let log = Log::open(dir, log_config(), Arc::new(ManualClock::new(NOW_MS)))?;
    log.append(records(SEED_SEALED_RECORDS, NOW_MS - 2 * DAY_MS - 3_600_000, 1_200_000))?;
    log.seal_all()?;
    log.append(records(SEED_OPEN_RECORDS, NOW_MS - 1_800_000, 80_000))?;
    log.close();
    Ok(())
}

/// The files of a data directory (not `LOCK`), as (path relative to `dir`, bytes), sorted by
/// path.
pub fn snapshot(dir: &Path) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> std::io::Result<()> {
        for e in std::fs::read_dir(at)? {
            let p = e?.path();
            if p.is_dir() {
                walk(root, &p, out)?;
            } else if p.file_name().is_some_and(|n| n != "LOCK") {
                let rel = p.strip_prefix(root).map_err(std::io::Error::other)?.to_path_buf();
                out.push((rel, std::fs::read(&p)?));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// Writes `files` (from [`snapshot`]) into `dir`, emptied first.
pub fn restore(dir: &Path, files: &[(PathBuf, Vec<u8>)]) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    for (rel, bytes) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes)?;
    }
    Ok(())
}

/// Bytes of one mutation in a `recovery` input: `[kind, file, pos_lo, pos_hi, value]`.
pub const OP_LEN: usize = 5;
/// Most mutations applied from one input.
pub const OPS_MAX: usize = 24;
/// Suffixes a rename or copy may give a file (the stem is kept).
const SUFFIXES: [&str; 6] = [".seg", ".open", ".seg.tmp", ".seg.expired", ".bak", ""];

/// Applies the mutations encoded in `input` to the files of a data directory. Each op is
/// [`OP_LEN`] bytes: `kind % 9`, `file % files`, a 16-bit position scaled to the file's length
/// (`pos * (len + 1) >> 16`, so every byte is reachable in a file under 64 KiB) and a value:
///
/// | kind | effect |
/// |---|---|
/// | 0 | flip: `byte[pos] ^= max(value, 1)` |
/// | 1 | truncate the file at `pos` |
/// | 2 | set `byte[pos] = value` |
/// | 3 | zero `value + 1` bytes from `pos` |
/// | 4 | delete the file |
/// | 5 | rename: suffix `SUFFIXES[value % 6]`, and into the other shard's directory if `value & 0x80` |
/// | 6 | fix every checksum of the file (header, frames and rows; footer, sections and blocks; manifest) |
/// | 7 | copy the file under a new name (as op 5) |
/// | 8 | append a copy of the file's bytes `pos .. pos + value` |
pub fn apply_ops(files: &mut Vec<(PathBuf, Vec<u8>)>, input: &[u8]) {
    for op in input.chunks_exact(OP_LEN).take(OPS_MAX) {
        if files.is_empty() {
            return;
        }
        let (kind, fi, pos16, val) =
            (op[0] % 9, usize::from(op[1]) % files.len(), u16::from_le_bytes([op[2], op[3]]), op[4]);
        let len = files[fi].1.len();
        let pos = (usize::from(pos16) * (len + 1)) >> 16;
        match kind {
            0 => {
                if let Some(b) = files[fi].1.get_mut(pos) {
                    *b ^= val.max(1);
                }
            }
            1 => files[fi].1.truncate(pos),
            2 => {
                if let Some(b) = files[fi].1.get_mut(pos) {
                    *b = val;
                }
            }
            3 => {
                let end = (pos + usize::from(val) + 1).min(len);
                files[fi].1[pos.min(end)..end].fill(0);
            }
            4 => {
                files.remove(fi);
            }
            5 | 7 => {
                let name = renamed(&files[fi].0, val);
                if files.iter().any(|(p, _)| *p == name) {
                    continue;
                }
                if kind == 5 {
                    files[fi].0 = name;
                } else {
                    let bytes = files[fi].1.clone();
                    files.push((name, bytes));
                }
            }
            6 => fix_checksums(&files[fi].0.clone(), &mut files[fi].1),
            _ => {
                let end = (pos + usize::from(val)).min(len);
                let tail = files[fi].1[pos.min(end)..end].to_vec();
                files[fi].1.extend_from_slice(&tail);
            }
        }
    }
}

fn renamed(path: &Path, val: u8) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let stem = name.split('.').next().unwrap_or(name);
    let new = format!("{stem}{}", SUFFIXES[usize::from(val) % SUFFIXES.len()]);
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let parent = if val & 0x80 == 0 {
        parent
    } else {
        match parent.file_name().and_then(|n| n.to_str()) {
            Some("shard-000") => parent.with_file_name("shard-001"),
            Some("shard-001") => parent.with_file_name("shard-000"),
            _ => parent,
        }
    };
    parent.join(new)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    if let Some(s) = at.checked_add(8).and_then(|end| b.get_mut(at..end)) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// Recomputes every checksum of a file of a data directory, chosen by its magic (or name for
/// the manifest), so that a mutation of the bytes they cover is parsed rather than refused at
/// the checksum. Bytes that cannot be framed are left alone.
pub fn fix_checksums(path: &Path, b: &mut [u8]) {
    if b.starts_with(&OPEN_MAGIC) {
        fix_open(b);
    } else if b.starts_with(&SEALED_MAGIC) {
        fix_sealed(b);
    } else if path.file_name().is_some_and(|n| n == "MANIFEST") {
        fix_manifest(b);
    }
}

fn fix_header(b: &mut [u8]) {
    if b.len() >= HEADER_LEN {
        let c = checksum(&[&b[0..32]]);
        put_u64(b, 32, c);
    }
}

/// Open segment: the header, then each frame that can be framed (magic, length within the
/// file): its rows' checksums (as far as they can be framed), then its own.
pub fn fix_open(b: &mut [u8]) {
    fix_header(b);
    let mut pos = HEADER_LEN;
    while pos + FRAME_HEADER_LEN <= b.len() {
        if u32_at(b, pos) != Some(FRAME_MAGIC) {
            return;
        }
        let Some(plen) = u32_at(b, pos + 4).map(|l| l as usize) else { return };
        let end = pos + FRAME_HEADER_LEN + plen;
        if plen < 4 || end > b.len() {
            return;
        }
        let count = u32_at(b, pos + FRAME_HEADER_LEN).unwrap_or(0);
        let mut rp = pos + FRAME_HEADER_LEN + 4;
        for _ in 0..count.min(1 << 16) {
            let Some(blen) = u32_at(b, rp).map(|l| l as usize) else { break };
            let body = rp + ROW_HEADER_LEN;
            if body.checked_add(blen).is_none_or(|e| e > end) {
                break;
            }
            let crc = checksum(&[&b[body..body + blen]]) as u32;
            b[rp + 4..rp + 8].copy_from_slice(&crc.to_le_bytes());
            rp = body + blen;
        }
        let c = checksum(&[&b[pos..pos + 8], &b[pos + FRAME_HEADER_LEN..end]]);
        put_u64(b, pos + 8, c);
        pos = end;
    }
}

/// Sealed segment: the header, the block table's per-block checksums, each section's checksum
/// and the footer's, when the trailer's section table can be framed.
pub fn fix_sealed(b: &mut [u8]) {
    fix_header(b);
    let len = b.len();
    if len < HEADER_LEN + TRAILER_LEN {
        return;
    }
    let t0 = len - TRAILER_LEN;
    let (Some(so), Some(n)) = (u64_at(b, t0 + 24), u32_at(b, t0 + 32)) else { return };
    let (so, n) = (so as usize, n as usize);
    if n > 64 || so < HEADER_LEN || so.checked_add(n * 32) != Some(t0) {
        return;
    }
    let section = |b: &[u8], i: usize| -> Option<(u32, usize, usize)> {
        let e = so + i * 32;
        let (kind, off, slen) = (u32_at(b, e)?, u64_at(b, e + 8)?, u64_at(b, e + 16)?);
        let (off, slen) = (usize::try_from(off).ok()?, usize::try_from(slen).ok()?);
        (off >= HEADER_LEN && off.checked_add(slen)? <= so).then_some((kind, off, slen))
    };
    for i in 0..n {
        if let Some((kind, off, slen)) = section(b, i) {
            if kind == SectionKind::Blocks as u32 {
                for e in (off..off + slen - slen % 48).step_by(48) {
                    let (Some(boff), Some(clen)) = (u64_at(b, e), u32_at(b, e + 8)) else { continue };
                    let Ok(boff) = usize::try_from(boff) else { continue };
                    if let Some(bend) = boff.checked_add(clen as usize).filter(|&x| x <= len) {
                        let c = checksum(&[&b[boff..bend]]);
                        put_u64(b, e + 40, c);
                    }
                }
            }
        }
    }
    for i in 0..n {
        if let Some((_, off, slen)) = section(b, i) {
            let c = checksum(&[&b[off..off + slen]]);
            put_u64(b, so + i * 32 + 24, c);
        }
    }
    let c = checksum(&[&b[so..len - 16]]);
    put_u64(b, t0 + 40, c);
}

/// Manifest: the `checksum` line recomputed over the text before it (UTF-8 only).
pub fn fix_manifest(b: &mut [u8]) {
    let Ok(text) = std::str::from_utf8(b) else { return };
    let Some((body, sum)) = text.rsplit_once("checksum ") else { return };
    let want = format!("{:016x}", checksum(&[body.as_bytes()]));
    let at = body.len() + "checksum ".len();
    if sum.len() >= 16 && sum.is_char_boundary(16) {
        b[at..at + 16].copy_from_slice(want.as_bytes());
    }
}

/// Reads everything a sealed segment file offers through its public API; never panics on any
/// file. Checks: when every block decodes, they hold exactly the trailer's record count; the
/// records a number's blocks give are that number's.
pub fn exercise_sealed(path: &Path) {
    let Ok(seg) = SealedSegment::open(path) else { return };
    let _ = (seg.file_bytes(), seg.index_bytes(), seg.section_bytes(SectionKind::Dictionary));
    let mut peers = BTreeSet::from([13_800_138_000u64, 13_800_139_111]);
    let mut sub_ports = BTreeSet::from(["1069012345600".to_string()]);
    if let Ok(n_blocks) = seg.blocks().map(|m| m.len()) {
        let (mut read, mut all_ok) = (0u64, true);
        for i in 0..n_blocks.min(BLOCKS_READ_MAX) {
            match seg.read_block(i) {
                Ok(recs) => {
                    read += recs.len() as u64;
                    for r in recs.iter().take(64) {
                        peers.insert(r.peer.as_u64());
                        sub_ports.insert(r.sub_port.as_str().to_owned());
                    }
                }
                Err(_) => all_ok = false,
            }
        }
        if all_ok && n_blocks <= BLOCKS_READ_MAX {
            assert_eq!(read, seg.records, "every block decoded, but they disagree with the trailer's count");
        }
    }
    for &p in peers.iter().take(16) {
        let _ = seg.may_contain_number(p);
        if let Ok(blocks) = seg.blocks_of_number(p) {
            for &b in blocks.iter().take(8) {
                if let Ok(recs) = seg.read_block_of_number(b as usize, p) {
                    assert!(recs.iter().all(|r| r.peer.as_u64() == p), "a record of another number");
                }
            }
        }
    }
    for sp in sub_ports.iter().take(16) {
        if let Ok(blocks) = seg.blocks_of_sub_port(sp) {
            for &b in blocks.iter().take(8) {
                if let Ok(recs) = seg.read_block_of_sub_port(b as usize, sp) {
                    assert!(recs.iter().all(|r| r.sub_port.as_str() == sp), "a record of another sub-port");
                }
            }
        }
    }
    let _ = seg.number_filter_memory();
}

/// Reads everything an opened log offers (every shard, a number, a sub-port, a trace, the
/// stats), each read bounded by [`READ_MAX`]; returns the records the shard scans gave
/// without error.
pub fn exercise_log(log: &Log) -> usize {
    fn drain(r: portlog_engine::Result<portlog_engine::Records>) -> usize {
        r.map_or(0, |it| it.take(READ_MAX).filter(Result::is_ok).count())
    }
    let mut scanned = 0;
    for s in 0..log.shard_count() {
        scanned += drain(log.scan_shard(s, 0, i64::MAX));
    }
    // One of each other read (each read costs: the target's speed is mostly reading).
    let r = records(2, NOW_MS, 1);
    drain(log.read_number(r[0].peer, 0, i64::MAX));
    drain(log.read_sub_port(&r[0].sub_port, NOW_MS - 3 * DAY_MS, NOW_MS + DAY_MS));
    drain(log.trace(&portlog_engine::TraceQuery::new(r[1].peer)));
    let _ = log.stats();
    scanned
}
