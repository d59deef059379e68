//! Where a sealed segment's bytes go: the benchmark workload appended, sealed, and every
//! sealed file's blocks and footer sections summed, per record.
//!
//! ```sh
//! cargo run --release --workspace --example space_breakdown -- [RECORDS] [--whole-texts | --zstd-blocks]
//! ```
//!
//! `PORTLOG_BLOCK_BYTES`, `PORTLOG_BLOCK_RECORDS` and `PORTLOG_DICT_BYTES` override
//! `block_bytes_max`, `block_records_max` and `zstd_dict_bytes`; `--whole-texts` turns `text_templates` off (the layout before format 4),
//! `--zstd-blocks` turns `packed_blocks` off (templated blocks compressed by zstd, format 4).

use anyhow::{Context, Result};
use portlog_benches::generator::{Generator, WorkloadConfig};
use portlog_benches::templates::Templates;
use portlog_engine::log::sealed::{SealedSegment, SectionKind};
use portlog_engine::{Log, LogConfig, ManualClock, Record, SyncPolicy};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}: {v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn seg_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            seg_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "seg") {
            out.push(p);
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = match args.iter().find(|a| !a.starts_with("--")) {
        Some(v) => v.parse().with_context(|| format!("RECORDS: {v:?} is not a number"))?,
        None => 1_000_000,
    };
    let defaults = LogConfig::default();
    let cfg = LogConfig {
        sync: SyncPolicy::None,
        block_bytes_max: env_usize("PORTLOG_BLOCK_BYTES", defaults.block_bytes_max)?,
        zstd_dict_bytes: env_usize("PORTLOG_DICT_BYTES", defaults.zstd_dict_bytes)?,
        block_records_max: env_usize("PORTLOG_BLOCK_RECORDS", defaults.block_records_max)?,
        text_templates: !args.iter().any(|a| a == "--whole-texts"),
        packed_blocks: !args.iter().any(|a| a == "--zstd-blocks"),
        ..defaults
    };
    let records: Vec<Record> =
        Generator::new(Arc::new(Templates::load_default()?), WorkloadConfig::default())?.take(n).collect();
    let now = records.iter().map(|r| r.ts_ms).max().unwrap_or(0) + 1_000;
    let dir = tempfile::tempdir()?;
    let log = Log::open(dir.path(), cfg.clone(), Arc::new(ManualClock::new(now)))?;
    for c in records.chunks(1_000) {
        log.append(c.to_vec())?;
    }
    log.seal_all()?;
    let st = log.stats();
    log.close();
    let mut files = Vec::new();
    seg_files(dir.path(), &mut files)?;
    let kinds = [
        ("block table", SectionKind::Blocks),
        ("sub-port index", SectionKind::SubPorts),
        ("number index", SectionKind::Numbers),
        ("number filter", SectionKind::NumberFilter),
        ("zstd dictionary", SectionKind::Dictionary),
        ("text templates", SectionKind::Templates),
        ("record shapes", SectionKind::Shapes),
    ];
    let (mut blocks, mut raw, mut count, mut sections) = (0u64, 0u64, 0usize, [0u64; 7]);
    for f in &files {
        let s = SealedSegment::open(f)?;
        for m in s.blocks()? {
            blocks += u64::from(m.clen);
            raw += u64::from(m.rlen);
            count += 1;
        }
        for (i, (_, k)) in kinds.iter().enumerate() {
            sections[i] += s.section_bytes(*k);
        }
    }
    let per = |b: u64| b as f64 / n as f64;
    println!(
        "{n} records, {} segments, block_bytes_max {}, block_records_max {}, dictionary {} B, templates {}, packed {}",
        files.len(),
        cfg.block_bytes_max,
        cfg.block_records_max,
        cfg.zstd_dict_bytes,
        cfg.text_templates,
        cfg.text_templates && cfg.packed_blocks
    );
    println!("| part | B/record |\n|---|---:|");
    let each = count.max(1) as f64;
    println!(
        "| blocks ({count}, {:.0} records and {:.1} KiB uncompressed each) | {:.2} |",
        n as f64 / each,
        raw as f64 / each / 1024.0,
        per(blocks)
    );
    for (i, (name, _)) in kinds.iter().enumerate() {
        println!("| {name} | {:.2} |", per(sections[i]));
    }
    println!("| **sealed files** | **{:.2}** |", per(st.sealed_bytes));
    Ok(())
}
