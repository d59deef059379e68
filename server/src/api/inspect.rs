//! `portlog.v1.Inspect`: the ledger inspection report. Registered, answering UNIMPLEMENTED until
//! the engine's ledger and check APIs are wired.

use super::State;
use portlog_client::proto::{inspect_server::Inspect, Finding, InspectRequest};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Inspect service.
pub struct InspectApi {
    #[allow(dead_code)] // used once inspection is wired
    state: State,
}

impl InspectApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        InspectApi { state }
    }
}

// ===== NOT WIRED YET: every method below answers this until the engine's ledger API lands. =====
fn not_wired(method: &str) -> Status {
    Status::unimplemented(format!("Inspect.{method} is not wired yet (the engine's ledger API has not landed)"))
}

/// A stream of findings.
pub type FindingStream = Pin<Box<dyn Stream<Item = Result<Finding, Status>> + Send>>;

#[tonic::async_trait]
impl Inspect for InspectApi {
    type RunStream = FindingStream;

    async fn run(&self, _req: Request<InspectRequest>) -> Result<Response<Self::RunStream>, Status> {
        Err(not_wired("Run"))
    }
}
