//! `portlog.v1.Check`: the gateways' hot path. The engine's check reads an in-memory snapshot
//! of the ledger and the reject sets, never waits for ingest or a ledger change, and takes well
//! under a microsecond in process: it is called inline in the async handlers, with no
//! `spawn_blocking` hop. A `rejected` answer reads its since-time from RocksDB (a cached point
//! read, about a microsecond) unless the request sets `skip_since` (`Registry::decide`).

use super::{parse_number, parse_sub_port, usage_from_proto, State};
use crate::error;
use portlog_client::proto::{
    check_server::Check, CheckBatchReply, CheckBatchRequest, CheckReply, CheckRequest, DenyReason,
};
use portlog_engine::{PhoneNumber, Question, Reason, SubPort, Usage, Verdict};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The Check service.
pub struct CheckApi {
    state: State,
}

impl CheckApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        CheckApi { state }
    }
}

/// The reply stream of CheckStream.
pub type CheckReplies = Pin<Box<dyn Stream<Item = Result<CheckBatchReply, Status>> + Send>>;

/// Replies buffered on a check stream before the server stops reading requests (the client
/// must read its answers: HTTP/2 flow control then pushes back on its requests).
const STREAM_REPLIES_BUFFERED: usize = 16;

/// The wire reason of a verdict's reason.
pub fn reason_to_proto(r: Option<Reason>) -> DenyReason {
    match r {
        None => DenyReason::Unspecified,
        Some(Reason::UnknownSubPort) => DenyReason::UnknownSubPort,
        Some(Reason::NoAssignment) => DenyReason::NoAssignment,
        Some(Reason::UsageMismatch) => DenyReason::UsageMismatch,
        Some(Reason::Rejected) => DenyReason::Rejected,
        Some(Reason::NoConsent) => DenyReason::NoConsent,
        Some(Reason::Blacklisted) => DenyReason::Blacklisted,
        Some(Reason::BadSignature) => DenyReason::BadSignature,
        Some(Reason::MissingRejectInstruction) => DenyReason::MissingRejectInstruction,
    }
}

fn reply_of(v: Verdict) -> CheckReply {
    CheckReply {
        allow: v.allow,
        reason: reason_to_proto(v.reason) as i32,
        since_ms: v.since_ms.unwrap_or(0),
        assignment_id: v.assignment.map_or(0, u64::from),
        error: String::new(),
    }
}

/// The validated fields of a question; a malformed one is INVALID_ARGUMENT naming the field.
fn parse_question(r: &CheckRequest) -> Result<(SubPort, PhoneNumber, Usage), Status> {
    let sub_port = parse_sub_port("sub_port", &r.sub_port)?;
    let number = parse_number("number", &r.number)?;
    let usage = usage_from_proto(r.usage).map_err(|(f, why)| error::invalid(f, why))?.unwrap_or(Usage::Commercial);
    Ok((sub_port, number, usage))
}

/// The text of a question, if it has one.
fn text_of(r: &CheckRequest) -> Option<&str> {
    (!r.text.is_empty()).then_some(r.text.as_str())
}

/// Counts a verdict and turns it into its reply.
fn counted(state: &State, v: Verdict) -> CheckReply {
    let m = &state.metrics;
    if v.allow { &m.checks_allowed } else { &m.checks_denied }.fetch_add(1, Relaxed);
    reply_of(v)
}

/// Whether a question is answered from memory alone (`Registry::decide`): about now, without
/// the since-time.
fn from_memory(r: &CheckRequest) -> bool {
    r.skip_since && r.at_ms == 0
}

/// Answers one question; a malformed request is INVALID_ARGUMENT naming the field.
pub fn check_one(state: &State, r: &CheckRequest) -> Result<CheckReply, Status> {
    let (sub_port, number, usage) = parse_question(r)?;
    let text = text_of(r);
    let reg = state.registry();
    let v = if from_memory(r) {
        reg.decide(sub_port.as_str(), number, usage, text)
    } else {
        reg.check(sub_port.as_str(), number, usage, (r.at_ms != 0).then_some(r.at_ms), text)
    }
    .map_err(error::status)?;
    Ok(counted(state, v))
}

/// A per-item failure: a bad field, or (rarely) a store read failing for one item.
fn item_error(st: &Status) -> CheckReply {
    CheckReply { error: st.message().to_string(), ..CheckReply::default() }
}

/// Answers a batch: one reply per question, in order; a malformed question gets its own `error`.
/// More than `batch_items_max` questions: INVALID_ARGUMENT. The questions about now with
/// `skip_since` (a gateway's) go through one `Registry::decide_batch`, which overlaps their
/// cache misses; the others are answered one by one.
pub fn check_many(state: &State, req: CheckBatchRequest) -> Result<CheckBatchReply, Status> {
    let max = state.cfg.batch_items_max;
    if req.checks.len() > max {
        return Err(Status::invalid_argument(format!(
            "request {} holds {} checks; at most {max} per batch (batch_items_max)",
            req.request_id,
            req.checks.len()
        )));
    }
    let mut results = vec![CheckReply::default(); req.checks.len()];
    let mut batched = Vec::with_capacity(req.checks.len());
    for (i, c) in req.checks.iter().enumerate() {
        if from_memory(c) {
            match parse_question(c) {
                Ok(q) => batched.push((i, q)),
                Err(st) => results[i] = item_error(&st),
            }
        } else {
            results[i] = check_one(state, c).unwrap_or_else(|st| item_error(&st));
        }
    }
    if !batched.is_empty() {
        let questions: Vec<Question<'_>> = batched
            .iter()
            .map(|(i, (sub_port, number, usage))| Question {
                sub_port: sub_port.as_str(),
                number: *number,
                usage: *usage,
                text: text_of(&req.checks[*i]),
            })
            .collect();
        let mut verdicts = Vec::with_capacity(questions.len());
        state.registry().decide_batch(&questions, &mut verdicts);
        for ((i, _), v) in batched.iter().zip(verdicts) {
            results[*i] = match v {
                Ok(v) => counted(state, v),
                Err(e) => item_error(&error::status(e)),
            };
        }
    }
    Ok(CheckBatchReply { request_id: req.request_id, results })
}

#[tonic::async_trait]
impl Check for CheckApi {
    type CheckStreamStream = CheckReplies;

    async fn check(&self, req: Request<CheckRequest>) -> Result<Response<CheckReply>, Status> {
        Ok(Response::new(check_one(&self.state, req.get_ref())?))
    }

    async fn check_batch(&self, req: Request<CheckBatchRequest>) -> Result<Response<CheckBatchReply>, Status> {
        Ok(Response::new(check_many(&self.state, req.into_inner())?))
    }

    async fn check_stream(
        &self,
        req: Request<Streaming<CheckBatchRequest>>,
    ) -> Result<Response<Self::CheckStreamStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_REPLIES_BUFFERED);
        let state = self.state.clone();
        // One task per stream: reads a request, answers it inline, sends the reply. It ends when
        // the client ends its side, goes away (the reply channel closes), or passes a limit.
        tokio::spawn(async move {
            let max = state.cfg.stream_messages_max;
            let mut n = 0u64;
            loop {
                let msg = tokio::select! {
                    m = inbound.message() => m,
                    _ = tx.closed() => return,
                };
                let reply = match msg {
                    Ok(None) => return,
                    Ok(Some(_)) if n >= max => Err(Status::resource_exhausted(format!(
                        "more than {max} requests on one check stream (stream_messages_max); open a new stream"
                    ))),
                    Ok(Some(r)) => {
                        n += 1;
                        check_many(&state, r)
                    }
                    Err(st) => Err(st),
                };
                let end = reply.is_err();
                if tx.send(reply).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
