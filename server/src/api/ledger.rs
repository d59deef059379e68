//! `portlog.v1.Ledger`: providers and assignments. Registered, answering UNIMPLEMENTED until the
//! engine's ledger API is wired. Every change must go through `crate::audit::record`.

use super::State;
use portlog_client::proto::{
    ledger_server::Ledger, AssignRequest, Assignment, EndRequest, Provider, ShowReply, ShowRequest,
};
use tonic::{Request, Response, Status};

/// The Ledger service.
pub struct LedgerApi {
    #[allow(dead_code)] // used once the ledger is wired
    state: State,
}

impl LedgerApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        LedgerApi { state }
    }
}

// ===== NOT WIRED YET: every method below answers this until the engine's ledger API lands. =====
fn not_wired(method: &str) -> Status {
    Status::unimplemented(format!("Ledger.{method} is not wired yet (the engine's ledger API has not landed)"))
}

#[tonic::async_trait]
impl Ledger for LedgerApi {
    async fn add_provider(&self, _req: Request<Provider>) -> Result<Response<Provider>, Status> {
        Err(not_wired("AddProvider"))
    }

    async fn assign(&self, _req: Request<AssignRequest>) -> Result<Response<Assignment>, Status> {
        Err(not_wired("Assign"))
    }

    async fn end(&self, _req: Request<EndRequest>) -> Result<Response<Assignment>, Status> {
        Err(not_wired("End"))
    }

    async fn show(&self, _req: Request<ShowRequest>) -> Result<Response<ShowReply>, Status> {
        Err(not_wired("Show"))
    }
}
