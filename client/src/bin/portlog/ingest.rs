//! `portlog ingest FILE|-`: JSON lines (design.md) streamed to the daemon in chunks. Lines that
//! cannot be read locally (bad JSON, bad time, bad direction or usage) are reported with their
//! number and not sent; the server reports the others it refuses by index, which is mapped back
//! to the line number. Good lines are never dropped because of a bad neighbour.

use portlog_client::ingest_parse::{self, IngestLine};
use portlog_client::proto::{self, IngestRequest};
use portlog_engine::{Direction, Usage};
use std::io::{BufRead, BufReader, IsTerminal, Read};

/// Largest encoded chunk the CLI sends, in bytes (well under the server's message limit).
const CHUNK_BYTES_MAX: usize = 4 << 20;

/// One line as the message the ingest call sends (the parser is
/// [`portlog_client::ingest_parse`]).
fn parse_line(s: &str) -> Result<proto::Message, String> {
    let IngestLine { dir, sub_port, peer, ts_ms, usage, text } = ingest_parse::parse_line(s)?;
    let usage = match usage {
        None => proto::Usage::Unspecified,
        Some(Usage::Commercial) => proto::Usage::Commercial,
        Some(Usage::Service) => proto::Usage::Service,
        Some(Usage::Public) => proto::Usage::Public,
    };
    Ok(proto::Message {
        dir: match dir {
            Direction::Mt => proto::Direction::Mt,
            Direction::Mo => proto::Direction::Mo,
        } as i32,
        sub_port,
        peer,
        ts_ms,
        usage: usage as i32,
        text,
    })
}

/// What the reader thread saw.
#[derive(Default)]
pub struct ReadOutcome {
    /// (line, error) of lines refused locally.
    pub errors: Vec<(u64, String)>,
    /// Line numbers not sent (refused locally or blank), ascending.
    pub skipped: Vec<u64>,
    /// A read error that stopped the input.
    pub io_error: Option<String>,
}

/// The 1-based line of the `index`-th (0-based) message sent, given the ascending line numbers
/// that were not sent.
pub fn line_of(index: u64, skipped: &[u64]) -> u64 {
    // The answer L is the least fixed point of L = index + 1 + |{s in skipped : s <= L}|;
    // iterating from below reaches it.
    let want = index + 1;
    let mut line = want;
    loop {
        let next = want + skipped.partition_point(|s| *s <= line) as u64;
        if next == line {
            return line;
        }
        line = next;
    }
}

/// Reads `file` (or stdin for `-`) on the current thread, sending chunks to `tx`.
pub fn read_input(file: &str, chunk_max: usize, tx: tokio::sync::mpsc::Sender<IngestRequest>) -> ReadOutcome {
    let mut outcome = ReadOutcome::default();
    let (reader, len): (Box<dyn Read>, Option<u64>) = if file == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        match std::fs::File::open(file) {
            Ok(f) => {
                let len = f.metadata().ok().map(|m| m.len());
                (Box::new(f), len)
            }
            Err(e) => {
                outcome.io_error = Some(format!("cannot open {file}: {e}"));
                return outcome;
            }
        }
    };
    let bar = if std::io::stderr().is_terminal() {
        let b = match len {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {bar:40} {binary_bytes_per_sec} eta {eta} {msg}",
        ) {
            b.set_style(style);
        }
        Some(b)
    } else {
        None
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut buf = String::new();
    let mut line_no = 0u64;
    let mut chunk: Vec<proto::Message> = Vec::with_capacity(chunk_max);
    let mut chunk_bytes = 0usize;
    let mut sent = 0u64;
    loop {
        buf.clear();
        match reader.read_line(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                line_no += 1;
                if let Some(b) = &bar {
                    b.inc(n as u64);
                }
            }
            Err(e) => {
                outcome.io_error = Some(format!("reading {file} after line {line_no}: {e}"));
                break;
            }
        }
        let t = buf.trim();
        if t.is_empty() {
            outcome.skipped.push(line_no);
            continue;
        }
        match parse_line(t) {
            Ok(m) => {
                chunk_bytes += m.text.len() + m.sub_port.len() + m.peer.len() + 32;
                chunk.push(m);
                if chunk.len() >= chunk_max || chunk_bytes >= CHUNK_BYTES_MAX {
                    sent += chunk.len() as u64;
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_max));
                    chunk_bytes = 0;
                    if tx.blocking_send(IngestRequest { messages: full }).is_err() {
                        break; // the call ended early; its status says why
                    }
                    if let Some(b) = &bar {
                        b.set_message(format!("{sent} sent"));
                    }
                }
            }
            Err(e) => {
                outcome.skipped.push(line_no);
                outcome.errors.push((line_no, e));
            }
        }
    }
    if !chunk.is_empty() {
        let _ = tx.blocking_send(IngestRequest { messages: chunk });
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_map_to_lines() {
        // Lines 2 and 3 were skipped: messages are lines 1, 4, 5, ...
        let skipped = [2, 3, 7];
        let got: Vec<u64> = (0..6).map(|i| line_of(i, &skipped)).collect();
        assert_eq!(got, vec![1, 4, 5, 6, 8, 9]);
        assert_eq!(line_of(0, &[1, 2]), 3);
        assert_eq!(line_of(4, &[]), 5);
    }

    #[test]
    fn lines_parse_with_named_errors() {
        let ok = r#"{"dir":"mt","sub_port":"1069012345601","peer":"13800138000","ts":"2026-05-01T09:30:00+08:00","usage":"commercial","text":"x"}"#;
        let m = parse_line(ok).unwrap();
        assert_eq!(m.ts_ms, 1_777_599_000_000);
        let bad_ts = ok.replace("2026-05-01T09:30:00+08:00", "yesterday");
        assert!(parse_line(&bad_ts).unwrap_err().starts_with("invalid ts:"));
        assert!(parse_line("{not json").unwrap_err().starts_with("malformed JSON"));
        let bad_dir = ok.replace("\"mt\"", "\"up\"");
        assert!(parse_line(&bad_dir).unwrap_err().starts_with("invalid dir"));
    }
}
