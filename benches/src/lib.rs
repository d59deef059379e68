//! # portlog-benches
//!
//! Workload generation and measurement helpers for portlog's benchmarks:
//!
//! * [`Templates`]: the message templates of `shared/data/templates.tsv` (located by
//!   [`Templates::locate`]), parsed into literal text and typed placeholders;
//! * [`Generator`]: a deterministic, endless iterator of realistic [`Record`]s (Zipf-popular
//!   sub-ports and numbers, an MT/MO mix with reject keywords, record time advancing at a set
//!   rate), configured by [`WorkloadConfig`];
//! * [`to_json_line`]: a record in the ingest format of the design (JSON lines), also the
//!   common "logical bytes" measure of the side-by-side benchmark;
//! * [`rocks`]: the compact key/value layout and options of the RocksDB side;
//! * [`disk`]: bytes a data directory occupies;
//! * [`stats`]: the median the harnesses report over rounds;
//! * [`pg`]: a throw-away PostgreSQL server (initdb, pg_ctl) on loopback;
//! * [`compare`]: the side-by-side harness `portlog-compare` (portlog, RocksDB, PostgreSQL);
//! * [`docs`]: docs/benchmarks.md's generated sections, their commands and the marker
//!   replacement of `portlog-bench-docs` (`./x bench-docs`).
//!
//! The `portlog-bench` binary runs the side-by-side append benchmark (portlog, RocksDB, and
//! zstd -3 of JSON lines); `benches/append.rs` holds the criterion micro-benchmarks.
//!
//! ```
//! use portlog_benches::{Generator, Templates, WorkloadConfig, to_json_line};
//! use std::sync::Arc;
//!
//! # fn main() -> anyhow::Result<()> {
//! let templates = Arc::new(Templates::load_default()?);
//! let first: Vec<String> =
//!     Generator::new(templates, WorkloadConfig::default())?.take(3).map(|r| to_json_line(&r)).collect();
//! assert!(first[0].starts_with(r#"{"dir":"#));
//! # Ok(()) }
//! ```

pub mod args;
pub mod compare;
pub mod disk;
pub mod docs;
pub mod generator;
pub mod host;
pub mod pg;
pub mod rocks;
pub mod stats;
pub mod templates;

pub use generator::{Generator, WorkloadConfig, DEFAULT_START_MS};
pub use portlog_engine::Record;
pub use templates::{Templates, TEMPLATES_ENV};

use serde::Serialize;
use std::io::Write as _;

/// One ingest line; field order and names as in the design's ingest format.
#[derive(Serialize)]
struct JsonLine<'a> {
    dir: &'static str,
    sub_port: &'a str,
    peer: String,
    ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'static str>,
    text: &'a str,
}

/// `r` as one line of the ingest format, without the newline:
/// `{"dir":"mt","sub_port":"1069012345601","peer":"13800138000","ts":1777597200000,"usage":"commercial","text":"…"}`
/// (`ts` in ms since the epoch; no `usage` on an MO).
pub fn to_json_line(r: &Record) -> String {
    let line = JsonLine {
        dir: r.dir.as_str(),
        sub_port: r.sub_port.as_str(),
        peer: r.peer.to_string(),
        ts: r.ts_ms,
        usage: r.usage.map(|u| u.as_str()),
        text: &r.text,
    };
    // A struct of strings and integers always serialises.
    serde_json::to_string(&line).expect("JSON of strings and integers")
}

/// Size of `records` as JSON lines (each line plus its newline) and the size of that stream
/// compressed by zstd at `level` as one frame, single-threaded.
pub fn jsonl_zstd_bytes<'a>(records: impl IntoIterator<Item = &'a Record>, level: i32) -> anyhow::Result<(u64, u64)> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), level)?;
    let mut raw = 0u64;
    for r in records {
        let line = to_json_line(r);
        enc.write_all(line.as_bytes())?;
        enc.write_all(b"\n")?;
        raw += line.len() as u64 + 1;
    }
    let out = enc.finish()?;
    Ok((raw, out.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portlog_engine::{Direction, PhoneNumber, SubPort, Usage};
    use std::sync::Arc;

    #[test]
    fn json_line_matches_the_ingest_format() {
        let mut r = Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse("1069012345601").unwrap(),
            peer: PhoneNumber::from_u64(13_800_138_000).unwrap(),
            ts_ms: 1_777_597_200_000,
            usage: Some(Usage::Commercial),
            text: "【星河银行】\"满100减20\"。拒收请回复R".into(),
        };
        assert_eq!(
            to_json_line(&r),
            r#"{"dir":"mt","sub_port":"1069012345601","peer":"13800138000","ts":1777597200000,"usage":"commercial","text":"【星河银行】\"满100减20\"。拒收请回复R"}"#
        );
        r.dir = Direction::Mo;
        r.usage = None;
        r.text = "R".into();
        assert_eq!(
            to_json_line(&r),
            r#"{"dir":"mo","sub_port":"1069012345601","peer":"13800138000","ts":1777597200000,"text":"R"}"#
        );
    }

    #[test]
    fn zstd_baseline_compresses() {
        let g = Generator::new(Arc::new(Templates::load_default().unwrap()), WorkloadConfig::default()).unwrap();
        let recs: Vec<Record> = g.take(5_000).collect();
        let (raw, z) = jsonl_zstd_bytes(&recs, 3).unwrap();
        assert!(raw > 100 * 5_000 && z * 3 < raw, "{raw} -> {z}");
    }
}
