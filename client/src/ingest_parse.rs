//! One line of the JSON-lines ingest format (design.md), parsed and checked locally before
//! anything is sent: the `portlog ingest` command's parser, apart from its I/O and gRPC types.
//!
//! Self-contained on purpose (it uses only `serde`, `serde_json` and `portlog-engine`'s records
//! and time parser, never `crate::`): the fuzz workspace compiles this very file into its
//! `ingest_jsonl` target without the gRPC stack (fuzz/README.md).

use portlog_engine::time::parse_time_ms;
use portlog_engine::{Direction, Usage};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    dir: String,
    sub_port: Value,
    peer: Value,
    ts: Value,
    #[serde(default)]
    usage: Option<String>,
    text: String,
}

/// A line that parsed: the fields of one message as the ingest call sends them. The sub-port
/// and the number are as given (the server validates and normalises them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestLine {
    /// `mt` or `mo`.
    pub dir: Direction,
    /// The sub-port, as given (a JSON integer is written in decimal).
    pub sub_port: String,
    /// The user's number, as given (a JSON integer is written in decimal).
    pub peer: String,
    /// Record time, ms since the epoch (from RFC 3339 or an integer).
    pub ts_ms: i64,
    /// The declared usage, if the line has one.
    pub usage: Option<Usage>,
    /// The message text.
    pub text: String,
}

fn text_of(field: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() => Ok(n.to_string()),
        other => Err(format!("invalid {field}: {other} is neither a string nor a non-negative integer")),
    }
}

/// Parses one (trimmed, non-blank) line. The error names what is wrong: `malformed JSON at
/// column N: ...`, `invalid dir: ...`, `invalid ts: ...`, `invalid usage: ...`,
/// `invalid sub_port: ...` or `invalid peer: ...`, checked in that order.
pub fn parse_line(s: &str) -> Result<IngestLine, String> {
    let l: Line = serde_json::from_str(s).map_err(|e| {
        // serde_json says "at line 1 column N" of the one line it was given: keep the column.
        let msg = e.to_string();
        let what = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(w, _)| w);
        format!("malformed JSON at column {}: {what}", e.column())
    })?;
    let dir = Direction::parse(&l.dir).map_err(|e| e.to_string())?;
    let ts_ms = match &l.ts {
        Value::String(t) => parse_time_ms(t).map_err(|e| format!("invalid ts: {e}"))?,
        Value::Number(n) => n.as_i64().ok_or_else(|| format!("invalid ts: {n} is not whole milliseconds"))?,
        other => return Err(format!("invalid ts: {other} is neither RFC 3339 nor milliseconds since the epoch")),
    };
    let usage = match l.usage.as_deref() {
        None => None,
        Some(u) => Some(Usage::parse(u).map_err(|e| e.to_string())?),
    };
    Ok(IngestLine {
        dir,
        sub_port: text_of("sub_port", &l.sub_port)?,
        peer: text_of("peer", &l.peer)?,
        ts_ms,
        usage,
        text: l.text,
    })
}
