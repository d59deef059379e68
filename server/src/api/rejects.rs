//! `portlog.v1.Rejects`: the reject registry. Registered, answering UNIMPLEMENTED until the
//! engine's registry API is wired. The lists must go through `crate::audit::record`.

use super::State;
use portlog_client::proto::{
    rejects_server::Rejects, AddRejectRequest, ListByNumberRequest, ListBySubPortRequest, Reject,
};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Rejects service.
pub struct RejectsApi {
    #[allow(dead_code)] // used once the registry is wired
    state: State,
}

impl RejectsApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        RejectsApi { state }
    }
}

// ===== NOT WIRED YET: every method below answers this until the engine's registry API lands. =====
fn not_wired(method: &str) -> Status {
    Status::unimplemented(format!("Rejects.{method} is not wired yet (the engine's reject registry has not landed)"))
}

/// A stream of rejects.
pub type RejectStream = Pin<Box<dyn Stream<Item = Result<Reject, Status>> + Send>>;

#[tonic::async_trait]
impl Rejects for RejectsApi {
    type ListBySubPortStream = RejectStream;
    type ListByNumberStream = RejectStream;

    async fn add(&self, _req: Request<AddRejectRequest>) -> Result<Response<Reject>, Status> {
        Err(not_wired("Add"))
    }

    async fn list_by_sub_port(
        &self,
        _req: Request<ListBySubPortRequest>,
    ) -> Result<Response<Self::ListBySubPortStream>, Status> {
        Err(not_wired("ListBySubPort"))
    }

    async fn list_by_number(
        &self,
        _req: Request<ListByNumberRequest>,
    ) -> Result<Response<Self::ListByNumberStream>, Status> {
        Err(not_wired("ListByNumber"))
    }
}
