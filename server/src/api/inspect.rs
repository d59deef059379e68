//! `portlog.v1.Inspect`: the ledger inspection of the traffic logged in a window
//! (`Engine::inspect`, a scan of the log read by a blocking thread): one finding per sub-port and
//! kind, with counts, first and last time, the assignment and provider concerned and an example.

use super::{blocking, State};
use crate::error;
use portlog_client::proto::{inspect_server::Inspect, Finding, InspectRequest};
use portlog_engine::registry::FindingKind;
use portlog_engine::time::parse_time_ms;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Inspect service.
pub struct InspectApi {
    state: State,
}

impl InspectApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        InspectApi { state }
    }
}

/// A stream of findings.
pub type FindingStream = Pin<Box<dyn Stream<Item = Result<Finding, Status>> + Send>>;

/// Default window: the last day.
const DEFAULT_WINDOW_MS: i64 = 86_400_000;

/// The name of a finding's kind (cli.md's vocabulary).
pub fn kind_name(k: FindingKind) -> &'static str {
    match k {
        FindingKind::UnknownSubPort => "unknown_sub_port",
        FindingKind::NoAssignment => "no_assignment",
        FindingKind::TermEnded => "term_ended",
        FindingKind::UsageMismatch => "usage_mismatch",
        FindingKind::BadSignature => "bad_signature",
        FindingKind::MissingRejectInstruction => "missing_reject_instruction",
    }
}

fn explain(k: FindingKind) -> &'static str {
    match k {
        FindingKind::UnknownSubPort => "traffic on a sub-port that is not in the ledger",
        FindingKind::NoAssignment => "traffic while no assignment of the sub-port is in force",
        FindingKind::TermEnded => "traffic after the sub-port's last contract term ended",
        FindingKind::UsageMismatch => "MT messages whose usage is not the assignment's",
        FindingKind::BadSignature => "commercial MT messages without a registered 【signature】",
        FindingKind::MissingRejectInstruction => "commercial MT messages not ending with 拒收请回复R",
    }
}

fn finding_to_proto(state: &State, f: portlog_engine::Finding) -> Finding {
    let first_ms = parse_time_ms(&f.first).unwrap_or(0);
    let last_ms = parse_time_ms(&f.last).unwrap_or(0);
    let reg = state.registry();
    let assignment = match f.kind {
        FindingKind::UnknownSubPort | FindingKind::NoAssignment => None,
        FindingKind::TermEnded => reg.show(&f.sub_port).ok().and_then(|l| l.assignments.last().cloned()),
        FindingKind::UsageMismatch | FindingKind::BadSignature | FindingKind::MissingRejectInstruction => {
            reg.in_force(&f.sub_port, first_ms)
        }
    };
    let detail =
        format!("{}: {} message(s) from {} to {}; e.g. {:?}", explain(f.kind), f.count, f.first, f.last, f.example);
    Finding {
        kind: kind_name(f.kind).to_string(),
        sub_port: f.sub_port,
        assignment_id: assignment.as_ref().map_or(0, |a| u64::from(a.id)),
        provider_id: assignment.map(|a| a.provider).unwrap_or_default(),
        messages: f.count,
        first_ms,
        detail,
        last_ms,
        example: f.example,
    }
}

#[tonic::async_trait]
impl Inspect for InspectApi {
    type RunStream = FindingStream;

    async fn run(&self, req: Request<InspectRequest>) -> Result<Response<Self::RunStream>, Status> {
        let r = req.into_inner();
        let now = self.state.now_ms();
        let to = r.to_ms.unwrap_or(now);
        let from = r.from_ms.unwrap_or(to.saturating_sub(DEFAULT_WINDOW_MS));
        if from > to {
            return Err(error::invalid("window", format!("from ({from} ms) is after to ({to} ms)")));
        }
        let state = self.state.clone();
        let findings = blocking(move || {
            let found = state.engine.inspect(from, to).map_err(error::status)?;
            Ok(found.into_iter().map(|f| Ok(finding_to_proto(&state, f))).collect::<Vec<_>>())
        })
        .await?;
        Ok(Response::new(Box::pin(tokio_stream::iter(findings))))
    }
}
