//! `portlog.v1.Ingest`: a client stream of message chunks, answered once every accepted message
//! is durable. Each chunk is validated record by record (a bad record is reported with its index
//! and does not hold back its neighbours), the good ones are submitted to the engine at once
//! (`Engine::submit`: MOs whose text is a reject keyword register their rejects durably first,
//! then the append is queued), and up to `ingest_chunks_in_flight_max` chunks wait for their
//! group commit concurrently.

use super::{record_from_proto, State};
use crate::auth::Caller;
use crate::error;
use portlog_client::proto::{self, ingest_server::Ingest, IngestError, IngestReply, IngestRequest};
use portlog_engine::PendingAppend;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use tonic::{Request, Response, Status, Streaming};

/// The Ingest service.
pub struct IngestApi {
    state: State,
}

impl IngestApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        IngestApi { state }
    }
}

#[tonic::async_trait]
impl Ingest for IngestApi {
    async fn append(&self, req: Request<Streaming<IngestRequest>>) -> Result<Response<IngestReply>, Status> {
        let caller = Caller::of(&req);
        let mut stream = req.into_inner();
        let cfg = &self.state.cfg;
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<proto::Message>>(cfg.ingest_chunks_in_flight_max);
        let state = self.state.clone();
        let worker = crate::api::spawn_background(move || append_chunks(&state, rx));
        let mut chunks = 0u64;
        let mut refused = None;
        while let Some(chunk) = stream.message().await? {
            chunks += 1;
            if chunks > cfg.stream_messages_max {
                refused = Some(Status::resource_exhausted(format!(
                    "more than {} chunks on one ingest stream (stream_messages_max); split the input over several calls",
                    cfg.stream_messages_max
                )));
                break;
            }
            if chunk.messages.len() > cfg.ingest_chunk_messages_max {
                refused = Some(Status::invalid_argument(format!(
                    "chunk {chunks} holds {} messages; at most {} per chunk (ingest_chunk_messages_max)",
                    chunk.messages.len(),
                    cfg.ingest_chunk_messages_max
                )));
                break;
            }
            if tx.send(chunk.messages).await.is_err() {
                break; // the worker stopped on an engine failure: its result says why
            }
        }
        drop(tx);
        let outcome = worker.await.map_err(|e| Status::internal(format!("ingest task failed: {e}")))?;
        if let Some(st) = refused {
            tracing::warn!(caller = %caller.name, reason = st.message(), "ingest stream refused");
            return Err(st);
        }
        let reply = outcome?;
        tracing::info!(
            caller = %caller.name,
            accepted = reply.accepted,
            rejected = reply.rejected,
            rejects_registered = reply.rejects_registered,
            "ingest call done"
        );
        Ok(Response::new(reply))
    }
}

/// The blocking side: validates, submits and waits for durability.
fn append_chunks(
    state: &State,
    mut rx: tokio::sync::mpsc::Receiver<Vec<proto::Message>>,
) -> Result<IngestReply, Status> {
    let (engine, cfg, metrics) = (&state.engine, &state.cfg, &state.metrics);
    let log = engine.log();
    let mut reply = IngestReply::default();
    let mut index = 0u64;
    let mut pending: VecDeque<(PendingAppend, u64)> = VecDeque::new();
    let wait = |p: PendingAppend, n: u64, reply: &mut IngestReply| -> Result<(), Status> {
        p.wait().map_err(error::status)?;
        reply.accepted += n;
        metrics.ingest_accepted.fetch_add(n, Relaxed);
        Ok(())
    };
    while let Some(chunk) = rx.blocking_recv() {
        let mut good = Vec::with_capacity(chunk.len());
        for m in chunk {
            let checked = record_from_proto(m).and_then(|r| match log.check_record(&r) {
                Ok(()) => Ok(r),
                Err(e) => Err(error::field_reason(&e).unwrap_or(("record", e.to_string()))),
            });
            match checked {
                Ok(r) => good.push(r),
                Err((field, reason)) => {
                    reply.rejected += 1;
                    if reply.errors.len() < cfg.ingest_errors_max {
                        reply.errors.push(IngestError { index, field: field.to_string(), reason });
                    }
                }
            }
            index += 1;
        }
        if !good.is_empty() {
            let n = good.len() as u64;
            // Every record passed check_record, and time only makes a record more acceptable:
            // submit fails only on a limit, a poisoned shard, a registry write failing or
            // shutdown, which end the call.
            let (p, outcome) = engine.submit(good).map_err(error::status)?;
            reply.rejects_registered += outcome.rejects_registered;
            metrics.ingest_rejects_registered.fetch_add(outcome.rejects_registered, Relaxed);
            pending.push_back((p, n));
        }
        while pending.len() >= cfg.ingest_chunks_in_flight_max {
            if let Some((p, n)) = pending.pop_front() {
                wait(p, n, &mut reply)?;
            }
        }
    }
    for (p, n) in pending {
        wait(p, n, &mut reply)?;
    }
    metrics.ingest_rejected.fetch_add(reply.rejected, Relaxed);
    Ok(reply)
}
