//! `portlog.v1.Trace`: a number's messages in time order, streamed in chunks from a blocking
//! reader thread.
//!
//! The audit entry (caller, number, records returned) is durable before the first record goes
//! out. So the reader first counts the records of the window, keeping the first
//! `trace_chunk_records × 4` of them: a trace that fits (the usual complaint) is read once; a
//! longer one is read a second time to stream it: only the records counted (by fingerprint, so
//! that records committed meanwhile with earlier times do not push counted ones out), at most
//! the audited count. Counting first also lets a trace past `trace_records_max` end
//! RESOURCE_EXHAUSTED before anything is sent. The reader stops when the client goes away, and
//! when the call's deadline passes (DEADLINE_EXCEEDED).

use super::{deadline, direction_from_proto, parse_number, parse_sub_port, record_to_proto, State};
use crate::audit::{Audit, Subject};
use crate::error;
use portlog_client::proto::{trace_server::Trace, TraceChunk, TraceRequest};
use portlog_engine::{Direction, Record, TraceQuery};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
use tokio::sync::mpsc::Sender;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The Trace service.
pub struct TraceApi {
    state: State,
}

impl TraceApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        TraceApi { state }
    }
}

/// Chunks buffered between the reader thread and the network.
const CHUNKS_BUFFERED: usize = 4;

/// Records between two checks of the deadline and of the client's presence while counting.
const CHECK_EVERY_RECORDS: u64 = 4096;

type Tx = Sender<Result<TraceChunk, Status>>;

/// One trace's arguments.
struct Query {
    q: TraceQuery,
    deadline: Option<Instant>,
}

impl Query {
    fn records(&self, state: &State) -> Result<impl Iterator<Item = Result<Record, Status>> + '_, Status> {
        let it = state.engine.trace(&self.q).map_err(error::status)?;
        Ok(it.map(|r| r.map_err(error::status)))
    }

    fn check(&self, tx: &Tx) -> Result<(), Status> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Status::deadline_exceeded("deadline passed while reading the trace"));
        }
        if tx.is_closed() {
            return Err(Status::cancelled("the client went away"));
        }
        Ok(())
    }
}

fn send(tx: &Tx, messages: Vec<portlog_client::proto::Message>) -> Result<(), Status> {
    tx.blocking_send(Ok(TraceChunk { messages })).map_err(|_| Status::cancelled("the client went away"))
}

/// A record's fingerprint among those of one trace (one number): 64 bits, so two different
/// records of a trace share one with a chance of about n² / 2⁶⁵.
fn fingerprint(r: &Record) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    (r.ts_ms, r.dir, &r.sub_port, r.usage, &r.text).hash(&mut h);
    h.finish()
}

/// The blocking side: count, audit, stream. Returns the records sent.
fn run(state: &State, audit: &Audit, q: &Query, detail: String, tx: &Tx) -> Result<u64, Status> {
    let (chunk_max, records_max) = (state.cfg.trace_chunk_records, state.cfg.trace_records_max);
    let keep_max = chunk_max.saturating_mul(CHUNKS_BUFFERED);
    let mut kept: Vec<Record> = Vec::new();
    // Fingerprints of the records counted past `kept`: 8 bytes each, at most trace_records_max.
    let mut rest: Vec<u64> = Vec::new();
    let mut count = 0u64;
    for rec in q.records(state)? {
        let rec = rec?;
        count += 1;
        if count > records_max {
            return Err(Status::resource_exhausted(format!(
                "more than {records_max} records (trace_records_max): narrow the window with from/to"
            )));
        }
        if kept.len() < keep_max {
            kept.push(rec);
        } else {
            rest.push(fingerprint(&rec));
        }
        if count.is_multiple_of(CHECK_EVERY_RECORDS) {
            q.check(tx)?;
        }
    }
    q.check(tx)?;
    let subject =
        Subject::none().number(&q.q.number.to_string()).sub_port(q.q.sub_port.as_ref().map_or("", |s| s.as_str()));
    audit.record_blocking("trace", subject.detail(detail), count)?;
    let mut sent = 0u64;
    let mut chunk = Vec::with_capacity(chunk_max.min(count as usize));
    let push = |rec: Record, chunk: &mut Vec<_>| -> Result<(), Status> {
        chunk.push(record_to_proto(rec));
        if chunk.len() >= chunk_max {
            q.check(tx)?;
            send(tx, std::mem::replace(chunk, Vec::with_capacity(chunk_max)))?;
        }
        Ok(())
    };
    if kept.len() as u64 == count {
        for rec in kept {
            push(rec, &mut chunk)?;
            sent += 1;
        }
    } else {
        // Read again, sending only the records counted: one committed meanwhile with an earlier
        // time (a late or back-filled record) would otherwise push a counted one out of the
        // first `count` (an acknowledged record missing from the answer). A counted record
        // expired meanwhile is not sent; never more than the audited count goes out.
        let mut counted: HashMap<u64, u32> = HashMap::with_capacity(count as usize);
        for f in kept.iter().map(fingerprint).chain(rest) {
            *counted.entry(f).or_default() += 1;
        }
        drop(kept);
        let all = TraceQuery { limit: None, ..q.q.clone() };
        let mut scanned = 0u64;
        for rec in state.engine.trace(&all).map_err(error::status)? {
            let rec = rec.map_err(error::status)?;
            scanned += 1;
            if scanned.is_multiple_of(CHECK_EVERY_RECORDS) {
                q.check(tx)?;
            }
            if let Some(n) = counted.get_mut(&fingerprint(&rec)).filter(|n| **n > 0) {
                *n -= 1;
                push(rec, &mut chunk)?;
                sent += 1;
                if sent == count {
                    break;
                }
            }
        }
    }
    if !chunk.is_empty() {
        send(tx, chunk)?;
    }
    Ok(sent)
}

#[tonic::async_trait]
impl Trace for TraceApi {
    type TraceStream = ReceiverStream<Result<TraceChunk, Status>>;

    async fn trace(&self, req: Request<TraceRequest>) -> Result<Response<Self::TraceStream>, Status> {
        let audit = Audit::of(&self.state, &req);
        let deadline = deadline(&req);
        let r = req.into_inner();
        audit.admit("trace", Subject::none().number(&r.number).sub_port(&r.sub_port)).await?;
        let number = parse_number("number", &r.number)?;
        let sub_port = if r.sub_port.is_empty() { None } else { Some(parse_sub_port("sub_port", &r.sub_port)?) };
        let direction = direction_from_proto(r.direction).map_err(|why| error::invalid("direction", why))?;
        // A limit of 0 is refused by `validate`, naming the field.
        let limit = r.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let (from_ms, to_ms) = (r.from_ms.unwrap_or(0), r.to_ms.unwrap_or(i64::MAX));
        let q = TraceQuery { number, from_ms, to_ms, sub_port, direction, limit };
        q.validate().map_err(error::status)?;
        let q = Query { q, deadline };
        let mut detail: Vec<String> = Vec::new();
        if let Some(f) = r.from_ms {
            detail.push(format!("from_ms={f}"));
        }
        if let Some(t) = r.to_ms {
            detail.push(format!("to_ms={t}"));
        }
        if let Some(d) = direction {
            detail.push(format!("direction={}", if d == Direction::Mt { "mt" } else { "mo" }));
        }
        if let Some(l) = r.limit {
            detail.push(format!("limit={l}"));
        }
        let detail = detail.join(" ");
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_BUFFERED);
        let state = self.state.clone();
        crate::api::spawn_background(move || {
            let outcome = run(&state, &audit, &q, detail, &tx);
            match outcome {
                Ok(sent) => {
                    state.metrics.trace_records.fetch_add(sent, Relaxed);
                }
                Err(st) => {
                    // No number here: the daemon's logs carry no personal data (the audit does).
                    tracing::warn!(caller = %audit.caller().name, reason = st.message(), "trace ended early");
                    let _ = tx.blocking_send(Err(st));
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
