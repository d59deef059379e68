//! Prometheus metrics: counters kept with atomics by the service layer and the handlers, the
//! log's figures read at scrape time, and a tiny plain-HTTP endpoint (`GET /metrics`).

use crate::auth::METHOD_ACCESS;
use portlog_engine::Engine;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Upper bounds of the call latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS_S: [f64; 16] =
    [0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// Number of gRPC status codes (0 OK ..= 16 UNAUTHENTICATED).
const CODES: usize = 17;

struct MethodMetrics {
    by_code: [AtomicU64; CODES],
    buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
}

impl MethodMetrics {
    fn new() -> Self {
        MethodMetrics {
            by_code: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// Every metric of the daemon.
pub struct Metrics {
    methods: Vec<MethodMetrics>,
    /// Calls in progress.
    pub in_flight: AtomicI64,
    /// Calls refused because `concurrent_calls_max` were in progress.
    pub overloaded: AtomicU64,
    /// Messages stored by ingest.
    pub ingest_accepted: AtomicU64,
    /// Messages refused by ingest.
    pub ingest_rejected: AtomicU64,
    /// Records returned by trace calls.
    pub trace_records: AtomicU64,
    /// Rejects registered by MO reject keywords at ingest.
    pub ingest_rejects_registered: AtomicU64,
    /// Checks answered "allow".
    pub checks_allowed: AtomicU64,
    /// Checks answered "deny".
    pub checks_denied: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            // One per method of the role table, plus one for anything else.
            methods: (0..=METHOD_ACCESS.len()).map(|_| MethodMetrics::new()).collect(),
            in_flight: AtomicI64::new(0),
            overloaded: AtomicU64::new(0),
            ingest_accepted: AtomicU64::new(0),
            ingest_rejected: AtomicU64::new(0),
            trace_records: AtomicU64::new(0),
            ingest_rejects_registered: AtomicU64::new(0),
            checks_allowed: AtomicU64::new(0),
            checks_denied: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Index of a method path (the last index is "other").
    pub fn method_index(path: &str) -> usize {
        METHOD_ACCESS.iter().position(|(p, _)| *p == path).unwrap_or(METHOD_ACCESS.len())
    }

    /// Records one finished call.
    pub fn record_call(&self, method: usize, code: i32, elapsed: Duration) {
        let Some(m) = self.methods.get(method) else { return };
        let code = usize::try_from(code).ok().filter(|c| *c < CODES).unwrap_or(2);
        m.by_code[code].fetch_add(1, Relaxed);
        let s = elapsed.as_secs_f64();
        let b = LATENCY_BUCKETS_S.iter().position(|ub| s <= *ub).unwrap_or(LATENCY_BUCKETS_S.len());
        m.buckets[b].fetch_add(1, Relaxed);
        m.sum_us.fetch_add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The Prometheus text exposition of everything, with the engine's figures now.
    pub fn render(&self, engine: &Engine) -> String {
        let mut o = String::with_capacity(16 << 10);
        let name =
            |i: usize| METHOD_ACCESS.get(i).map_or_else(|| "other".to_string(), |(p, _)| crate::auth::short_method(p));
        o.push_str("# HELP portlog_grpc_calls_total Finished gRPC calls by method and status code.\n");
        o.push_str("# TYPE portlog_grpc_calls_total counter\n");
        for (i, m) in self.methods.iter().enumerate() {
            for (c, n) in m.by_code.iter().enumerate() {
                let n = n.load(Relaxed);
                if n > 0 {
                    let code = format!("{:?}", tonic::Code::from_i32(c as i32));
                    let _ = writeln!(o, "portlog_grpc_calls_total{{method=\"{}\",code=\"{code}\"}} {n}", name(i));
                }
            }
        }
        o.push_str("# HELP portlog_grpc_call_seconds Time to the response headers (unary: the whole call; the check latency is method=\"Check.Check\").\n");
        o.push_str("# TYPE portlog_grpc_call_seconds histogram\n");
        for (i, m) in self.methods.iter().enumerate() {
            let total: u64 = m.buckets.iter().map(|b| b.load(Relaxed)).sum();
            if total == 0 {
                continue;
            }
            let mut cum = 0;
            for (b, ub) in LATENCY_BUCKETS_S.iter().enumerate() {
                cum += m.buckets[b].load(Relaxed);
                let _ = writeln!(o, "portlog_grpc_call_seconds_bucket{{method=\"{}\",le=\"{ub}\"}} {cum}", name(i));
            }
            let _ = writeln!(o, "portlog_grpc_call_seconds_bucket{{method=\"{}\",le=\"+Inf\"}} {total}", name(i));
            let sum = m.sum_us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(o, "portlog_grpc_call_seconds_sum{{method=\"{}\"}} {sum}", name(i));
            let _ = writeln!(o, "portlog_grpc_call_seconds_count{{method=\"{}\"}} {total}", name(i));
        }
        let st = engine.log().stats();
        let rs = engine.registry().stats();
        let mut gauges: Vec<(&str, &str, String)> = vec![
            ("portlog_grpc_calls_in_flight", "gRPC calls in progress.", self.in_flight.load(Relaxed).to_string()),
            (
                "portlog_grpc_overloaded_total",
                "Calls refused with RESOURCE_EXHAUSTED because concurrent_calls_max were in progress.",
                self.overloaded.load(Relaxed).to_string(),
            ),
            (
                "portlog_ingest_accepted_total",
                "Messages appended (durable) through Ingest.",
                self.ingest_accepted.load(Relaxed).to_string(),
            ),
            (
                "portlog_ingest_rejected_total",
                "Messages refused by Ingest (bad fields).",
                self.ingest_rejected.load(Relaxed).to_string(),
            ),
            ("portlog_trace_records_total", "Records returned by Trace.", self.trace_records.load(Relaxed).to_string()),
            (
                "portlog_ingest_rejects_registered_total",
                "Rejects registered by MO reject keywords at ingest.",
                self.ingest_rejects_registered.load(Relaxed).to_string(),
            ),
            ("portlog_checks_allowed_total", "Checks answered allow.", self.checks_allowed.load(Relaxed).to_string()),
            ("portlog_checks_denied_total", "Checks answered deny.", self.checks_denied.load(Relaxed).to_string()),
            ("portlog_registry_rejects", "Rejects held (all assignments).", rs.rejects.to_string()),
            (
                "portlog_registry_reject_set_bytes",
                "Heap bytes of the in-memory reject sets.",
                rs.reject_set_bytes.to_string(),
            ),
            ("portlog_registry_assignments", "Assignments ever made.", rs.assignments.to_string()),
            ("portlog_registry_assignments_in_force", "Assignments in force now.", rs.assignments_in_force.to_string()),
            ("portlog_registry_providers", "Providers registered.", rs.providers.to_string()),
            ("portlog_log_records", "Messages held in the log.", st.records.to_string()),
            ("portlog_log_sealed_segments", "Sealed segments.", st.sealed_segments.to_string()),
            ("portlog_log_open_segments", "Open segments.", st.open_segments.to_string()),
            ("portlog_log_sealed_bytes", "Bytes of sealed segment files.", st.sealed_bytes.to_string()),
            ("portlog_log_open_bytes", "Bytes of open segment files.", st.open_bytes.to_string()),
        ];
        // The journal's group commits since the daemon opened the log: appends per frame and
        // seconds per sync are ratios of these (docs/operations.md, "Watching the group commits").
        if let Some(j) = st.journal {
            gauges.extend([
                (
                    "portlog_journal_frames_total",
                    "Journal frames written and synced, one fdatasync each.",
                    j.frames.to_string(),
                ),
                ("portlog_journal_appends_total", "Append requests the journal frames carried.", j.appends.to_string()),
                ("portlog_journal_records_total", "Messages the journal frames carried.", j.records.to_string()),
                ("portlog_journal_bytes_total", "Bytes of the journal frames.", j.bytes.to_string()),
                (
                    "portlog_journal_sync_seconds_total",
                    "Seconds spent writing and syncing journal frames.",
                    format!("{:.6}", j.sync_ns as f64 / 1e9),
                ),
                ("portlog_journal_checkpoints_total", "Journal checkpoints completed.", j.checkpoints.to_string()),
            ]);
        }
        // Retention, from its durable history (scheduled runs happen inside the engine).
        if let Ok(r) = engine.retention_status() {
            let last = r.last_run.unwrap_or_default();
            gauges.extend([
                (
                    "portlog_retention_runs_total",
                    "Retention runs recorded in the history.",
                    r.runs_recorded.to_string(),
                ),
                (
                    "portlog_retention_last_run_timestamp_seconds",
                    "Clock of the last recorded retention run (0: none).",
                    (last.now_ms / 1000).to_string(),
                ),
                (
                    "portlog_retention_last_run_segments_deleted",
                    "Segments the last recorded run deleted.",
                    last.segments_deleted.to_string(),
                ),
                (
                    "portlog_retention_last_run_bytes_freed",
                    "Bytes the last recorded run freed.",
                    last.bytes_freed.to_string(),
                ),
                (
                    "portlog_log_oldest_record_timestamp_seconds",
                    "Time of the oldest record held (0: empty log).",
                    r.oldest_record_ms.map_or(0, |t| t / 1000).to_string(),
                ),
                (
                    "portlog_retention_clock_refused",
                    "1 when the clock is too far ahead of the last run and retention refuses to act.",
                    u8::from(r.clock_warning.is_some()).to_string(),
                ),
            ]);
        }
        for (n, help, v) in gauges {
            let kind = if n.ends_with("_total") { "counter" } else { "gauge" };
            let _ = writeln!(o, "# HELP {n} {help}\n# TYPE {n} {kind}\n{n} {v}");
        }
        o
    }
}

/// Largest HTTP request head read by the metrics endpoint, in bytes.
const REQUEST_BYTES_MAX: usize = 8 << 10;

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, engine: Arc<Engine>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { continue };
        let (metrics, engine) = (metrics.clone(), engine.clone());
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let head_done = loop {
                match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
                    Ok(Ok(n)) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break true;
                        }
                        if buf.len() > REQUEST_BYTES_MAX {
                            break false;
                        }
                    }
                }
            };
            if !head_done {
                return;
            }
            let (status, body) = if buf.starts_with(b"GET /metrics ") || buf.starts_with(b"GET /metrics?") {
                let body = crate::api::spawn_background(move || metrics.render(&engine)).await.unwrap_or_default();
                ("200 OK", body)
            } else {
                ("404 Not Found", "only GET /metrics is served here\n".to_string())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
