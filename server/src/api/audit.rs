//! `portlog.v1.Audit`: reading the audit trail (written by `crate::audit`).

use super::{blocking, State};
use crate::audit::{split_action, DENIED};
use crate::error;
use portlog_client::proto::{audit_server::Audit, AuditEntry, AuditListRequest};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Audit service.
pub struct AuditApi {
    state: State,
}

impl AuditApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        AuditApi { state }
    }
}

/// A stream of audit entries.
pub type AuditStream = Pin<Box<dyn Stream<Item = Result<AuditEntry, Status>> + Send>>;

/// The wire form of an engine entry: the stored action split into the action and its detail.
pub fn entry_to_proto(e: portlog_engine::registry::AuditEntry) -> AuditEntry {
    let (action, detail) = split_action(&e.action);
    AuditEntry {
        at_ms: e.at_ms,
        who: e.who,
        allowed: !action.starts_with(DENIED),
        action: action.to_string(),
        detail: detail.to_string(),
        number: e.number.unwrap_or_default(),
        records: e.records,
        sub_port: e.sub_port.unwrap_or_default(),
        seq: e.seq,
    }
}

#[tonic::async_trait]
impl Audit for AuditApi {
    type ListStream = AuditStream;

    async fn list(&self, req: Request<AuditListRequest>) -> Result<Response<Self::ListStream>, Status> {
        let r = req.into_inner();
        let (from, to) = (r.from_ms.unwrap_or(i64::MIN), r.to_ms.unwrap_or(i64::MAX));
        if from > to {
            return Err(error::invalid("window", format!("from ({from} ms) is after to ({to} ms)")));
        }
        let state = self.state.clone();
        let entries = blocking(move || state.registry().audit_list(from, to).map_err(error::status)).await?;
        let out: Vec<Result<AuditEntry, Status>> = entries.into_iter().map(|e| Ok(entry_to_proto(e))).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(out))))
    }
}
