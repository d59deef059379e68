//! `portlog.v1.Audit`: reading the audit trail. Registered, answering UNIMPLEMENTED until the
//! engine's durable audit log is wired (see `crate::audit`).

use super::State;
use portlog_client::proto::{audit_server::Audit, AuditEntry, AuditListRequest};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Audit service.
pub struct AuditApi {
    #[allow(dead_code)] // used once the audit log is wired
    state: State,
}

impl AuditApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        AuditApi { state }
    }
}

// ===== NOT WIRED YET: every method below answers this until the engine's audit log lands. =====
fn not_wired(method: &str) -> Status {
    Status::unimplemented(format!("Audit.{method} is not wired yet (the engine's audit log has not landed)"))
}

/// A stream of audit entries.
pub type AuditStream = Pin<Box<dyn Stream<Item = Result<AuditEntry, Status>> + Send>>;

#[tonic::async_trait]
impl Audit for AuditApi {
    type ListStream = AuditStream;

    async fn list(&self, _req: Request<AuditListRequest>) -> Result<Response<Self::ListStream>, Status> {
        Err(not_wired("List"))
    }
}
