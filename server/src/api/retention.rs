//! `portlog.v1.Retention`: expiry on demand. Registered, answering UNIMPLEMENTED until the
//! engine's retention API is wired.

use super::State;
use portlog_client::proto::{retention_server::Retention, RetentionReply, RetentionRequest};
use tonic::{Request, Response, Status};

/// The Retention service.
pub struct RetentionApi {
    #[allow(dead_code)] // used once retention is wired
    state: State,
}

impl RetentionApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        RetentionApi { state }
    }
}

// ===== NOT WIRED YET: every method below answers this until the engine's retention API lands. =====
fn not_wired(method: &str) -> Status {
    Status::unimplemented(format!("Retention.{method} is not wired yet (the engine's retention API has not landed)"))
}

#[tonic::async_trait]
impl Retention for RetentionApi {
    async fn run(&self, _req: Request<RetentionRequest>) -> Result<Response<RetentionReply>, Status> {
        Err(not_wired("Run"))
    }
}
