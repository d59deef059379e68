//! `portlog.v1.Trace`: a number's messages in time order, streamed in chunks from a blocking
//! reader thread. The reader stops when the client goes away, when the call's deadline passes
//! (DEADLINE_EXCEEDED) or past `trace_records_max` (RESOURCE_EXHAUSTED).

use super::{deadline, parse_number, parse_sub_port, record_to_proto, State};
use crate::auth::Caller;
use crate::{audit, error};
use portlog_client::proto::{trace_server::Trace, TraceChunk, TraceRequest};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;
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

#[tonic::async_trait]
impl Trace for TraceApi {
    type TraceStream = ReceiverStream<Result<TraceChunk, Status>>;

    async fn trace(&self, req: Request<TraceRequest>) -> Result<Response<Self::TraceStream>, Status> {
        let caller = Caller::of(&req);
        let deadline = deadline(&req);
        let r = req.into_inner();
        let parsed = (|| {
            let number = parse_number("number", &r.number)?;
            let sub_port = if r.sub_port.is_empty() { None } else { Some(parse_sub_port("sub_port", &r.sub_port)?) };
            let (from_ms, to_ms) = (r.from_ms.unwrap_or(0), r.to_ms.unwrap_or(i64::MAX));
            if from_ms > to_ms {
                return Err(error::invalid("window", format!("from ({from_ms} ms) is after to ({to_ms} ms)")));
            }
            Ok((number, sub_port, from_ms, to_ms))
        })();
        let (number, sub_port, from_ms, to_ms) = match parsed {
            Ok(p) => p,
            Err(st) => {
                audit::record(&caller, "trace", &r.number, 0, false, st.message());
                return Err(st);
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_BUFFERED);
        let state = self.state.clone();
        let detail = format!("from_ms={from_ms} to_ms={to_ms} sub_port={}", r.sub_port);
        tokio::task::spawn_blocking(move || {
            let (chunk_max, records_max) = (state.cfg.trace_chunk_records, state.cfg.trace_records_max);
            let mut sent = 0u64;
            let outcome: Result<(), Status> = (|| {
                let records = state.log.read_number(number, from_ms, to_ms).map_err(error::status)?;
                let mut chunk = Vec::with_capacity(chunk_max);
                let records = records.filter(|r| match (r, &sub_port) {
                    (Ok(rec), Some(sp)) => rec.sub_port == *sp,
                    _ => true,
                });
                for rec in records {
                    let rec = rec.map_err(error::status)?;
                    if sent >= records_max {
                        return Err(Status::resource_exhausted(format!(
                            "more than {records_max} records (trace_records_max): narrow the window with from/to"
                        )));
                    }
                    chunk.push(record_to_proto(rec));
                    sent += 1;
                    if chunk.len() >= chunk_max {
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Err(Status::deadline_exceeded("deadline passed while reading the trace"));
                        }
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_max));
                        if tx.blocking_send(Ok(TraceChunk { messages: full })).is_err() {
                            return Err(Status::cancelled("the client went away"));
                        }
                    }
                }
                if !chunk.is_empty() && tx.blocking_send(Ok(TraceChunk { messages: chunk })).is_err() {
                    return Err(Status::cancelled("the client went away"));
                }
                Ok(())
            })();
            state.metrics.trace_records.fetch_add(sent, Relaxed);
            let ok = outcome.is_ok();
            let why = outcome.as_ref().err().map_or(detail.clone(), |st| format!("{detail}: {}", st.message()));
            audit::record(&caller, "trace", &number.to_string(), sent, ok, &why);
            if let Err(st) = outcome {
                let _ = tx.blocking_send(Err(st));
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
