//! The run's outcome: one JSON object, a text table, a markdown table for the docs.

use super::{PeerReport, Spec};
use crate::docs::thousands;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// What became of one peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The peer.
    pub peer: String,
    /// `ok`, `skipped` (not installed) or `failed`.
    pub status: String,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its figures, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<PeerReport>,
}

/// The machine it ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores available.
    pub cores: usize,
    /// Memory, bytes.
    pub mem_bytes: u64,
    /// Kernel release.
    pub kernel: String,
    /// File system of the data directories.
    pub fs: String,
    /// Where the data directories were.
    pub dir: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// The command line.
    pub command: String,
    /// When it started, RFC 3339 (UTC+8).
    pub date: String,
    /// Seconds it took.
    pub secs: f64,
    /// The machine.
    pub machine: Machine,
    /// The workload and query counts (the data directory is that of the first peer).
    pub spec: Spec,
    /// Records per second of record time.
    pub rate_per_s: f64,
    /// The month expired, `YYYY_MM` (UTC+8).
    pub expiry_month: String,
    /// Each peer, in the order run.
    pub peers: Vec<Outcome>,
}

/// A latency in µs with the precision it deserves.
fn us(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1_000.0 {
        format!("{v:.1}")
    } else {
        thousands(v.round() as u64)
    }
}

fn ms(v_us: f64) -> String {
    let v = v_us / 1e3;
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn mib(b: u64) -> String {
    let v = b as f64 / (1u64 << 20) as f64;
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// Display name of a peer.
pub fn title(peer: &str) -> &str {
    match peer {
        "portlog" => "portlog",
        "rocksdb" => "RocksDB",
        "postgres" => "PostgreSQL",
        other => other,
    }
}

/// The table's rows: a label and one cell per peer.
pub fn rows(peers: &[&PeerReport]) -> Vec<(String, Vec<String>)> {
    type Cell = fn(&PeerReport) -> String;
    let spec: [(&str, Cell); 14] = [
        ("records ingested / counted after", |p| format!("{} / {}", thousands(p.records), thousands(p.stored.records))),
        ("ingest, msgs/s (durable groups)", |p| thousands(p.ingest_msgs_per_s.round() as u64)),
        ("ingest, MB/s of JSON lines", |p| format!("{:.1}", p.ingest_mb_per_s)),
        ("settle after ingest, s", |p| format!("{:.1}", p.settle_secs)),
        ("bytes written per msg, ingest + settle", |p| {
            format!("{:.0}", p.ingest_write_bytes as f64 / p.records.max(1) as f64)
        }),
        ("bytes on disk per msg", |p| format!("{:.1}", p.disk_bytes_per_msg)),
        ("rejects stored", |p| thousands(p.stored.rejects)),
        ("check p50 / p99, µs", |p| format!("{} / {}", us(p.check.p50_us), us(p.check.p99_us))),
        ("trace p50 / p99, ms", |p| format!("{} / {}", ms(p.trace.p50_us), ms(p.trace.p99_us))),
        ("records per trace, mean", |p| format!("{:.1}", p.trace_records as f64 / p.trace.n.max(1) as f64)),
        ("expire a month: records", |p| thousands(p.expiry.records)),
        ("expire a month: s", |p| format!("{:.3}", p.expiry.secs)),
        ("expire a month: MiB written / freed", |p| {
            format!("{} / {}", mib(p.expiry.write_bytes), mib(p.expiry.bytes_freed))
        }),
        ("peak memory, MiB", |p| mib(p.peak_memory_bytes)),
    ];
    spec.iter().map(|(label, f)| (label.to_string(), peers.iter().map(|p| f(p)).collect())).collect()
}

fn ok_reports(run: &Run) -> Vec<&PeerReport> {
    run.peers.iter().filter_map(|o| o.report.as_ref()).collect()
}

fn not_run(run: &Run) -> Vec<String> {
    run.peers
        .iter()
        .filter(|o| o.report.is_none())
        .map(|o| format!("{} {}: {}", title(&o.peer), o.status, o.reason.as_deref().unwrap_or("")))
        .collect()
}

fn workload_line(run: &Run) -> String {
    let s = &run.spec;
    format!(
        "{} records over {} months from {} ({:.3} records/s of record time), seed {}, {} sub-ports (Zipf {}), \
         {} numbers (Zipf {}), {:.0} % MO of which {:.0} % \"R\"; durable groups of {}; {} checks ({} % rejected \
         pairs), {} traces; month expired: {}",
        thousands(s.records),
        s.months,
        portlog_engine::time::rfc3339_utc8(s.workload.start_ms),
        run.rate_per_s,
        s.workload.seed,
        thousands(u64::from(s.workload.sub_ports)),
        s.workload.sub_port_zipf,
        thousands(s.workload.numbers),
        s.workload.number_zipf,
        s.workload.mo_fraction * 100.0,
        s.workload.reject_rate * 100.0,
        thousands(s.group as u64),
        thousands(s.checks as u64),
        s.check_hit_percent,
        thousands(s.traces as u64),
        run.expiry_month.replace('_', "-"),
    )
}

/// The readable table.
pub fn text(run: &Run) -> String {
    let reports = ok_reports(run);
    let rows = rows(&reports);
    let mut header = vec![String::new()];
    header.extend(reports.iter().map(|p| title(&p.peer).to_string()));
    let mut table: Vec<Vec<String>> = vec![header];
    for (label, cells) in rows {
        let mut r = vec![label];
        r.extend(cells);
        table.push(r);
    }
    let widths: Vec<usize> =
        (0..table[0].len()).map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "portlog-compare: {}", workload_line(run));
    let _ = writeln!(out);
    for r in table.iter().filter(|_| !reports.is_empty()) {
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                let _ = write!(out, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "  {}{cell}", " ".repeat(pad));
            }
        }
        out.push('\n');
    }
    for line in not_run(run) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "({:.0} s in all)", run.secs);
    out
}

/// The markdown block for docs/benchmarks.md: machine, date, command, table.
pub fn markdown(run: &Run) -> String {
    let reports = ok_reports(run);
    let m = &run.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "**Machine:** {}, {} cores, {:.0} GiB, kernel {}, data on {} ({}). **Date:** {}. **Run took** {:.0} s.",
        m.cpu,
        m.cores,
        m.mem_bytes as f64 / (1u64 << 30) as f64,
        m.kernel,
        m.fs,
        m.dir,
        run.date,
        run.secs
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "**Command:** `{}`", run.command);
    let _ = writeln!(out);
    let _ = writeln!(out, "**Workload:** {}.", workload_line(run));
    let _ = writeln!(out);
    let _ = write!(out, "| |");
    for p in &reports {
        let _ = write!(out, " {} |", title(&p.peer));
    }
    let _ = write!(out, "\n|---|");
    for _ in &reports {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for (label, cells) in rows(&reports) {
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }
    for line in not_run(run) {
        let _ = writeln!(out, "\n{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(us(0.1234), "0.12");
        assert_eq!(us(52.31), "52.3");
        assert_eq!(ms(12_600.0), "12.6");
        let p = PeerReport { peer: "portlog".into(), records: 10, ..PeerReport::default() };
        let r = rows(&[&p]);
        assert_eq!(r.len(), 14);
        assert_eq!(r[0].1[0], "10 / 0");
    }
}
