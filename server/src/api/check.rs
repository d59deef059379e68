//! `portlog.v1.Check`: the gateways' hot path. Registered, answering UNIMPLEMENTED until the
//! engine's check API is wired.

use super::State;
use portlog_client::proto::{check_server::Check, CheckBatchReply, CheckBatchRequest, CheckReply, CheckRequest};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The Check service.
pub struct CheckApi {
    #[allow(dead_code)] // used once the check is wired
    state: State,
}

impl CheckApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        CheckApi { state }
    }
}

// ===== NOT WIRED YET: every method below answers this until the engine's check API lands. =====
fn not_wired(method: &str) -> Status {
    Status::unimplemented(format!("Check.{method} is not wired yet (the engine's check API has not landed)"))
}

/// The reply stream of CheckStream.
pub type CheckReplies = Pin<Box<dyn Stream<Item = Result<CheckBatchReply, Status>> + Send>>;

#[tonic::async_trait]
impl Check for CheckApi {
    type CheckStreamStream = CheckReplies;

    async fn check(&self, _req: Request<CheckRequest>) -> Result<Response<CheckReply>, Status> {
        Err(not_wired("Check"))
    }

    async fn check_batch(&self, _req: Request<CheckBatchRequest>) -> Result<Response<CheckBatchReply>, Status> {
        Err(not_wired("CheckBatch"))
    }

    async fn check_stream(
        &self,
        _req: Request<Streaming<CheckBatchRequest>>,
    ) -> Result<Response<Self::CheckStreamStream>, Status> {
        Err(not_wired("CheckStream"))
    }
}
