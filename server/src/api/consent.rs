//! `portlog.v1.Consent`: consent records. Registered, answering UNIMPLEMENTED until the engine's
//! consent API is wired.

use super::State;
use portlog_client::proto::{consent_server::Consent, ConsentRecord, ConsentRequest};
use tonic::{Request, Response, Status};

/// The Consent service.
pub struct ConsentApi {
    #[allow(dead_code)] // used once consent is wired
    state: State,
}

impl ConsentApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        ConsentApi { state }
    }
}

// ===== NOT WIRED YET: every method below answers this until the engine's consent API lands. =====
fn not_wired(method: &str) -> Status {
    Status::unimplemented(format!("Consent.{method} is not wired yet (the engine's consent API has not landed)"))
}

#[tonic::async_trait]
impl Consent for ConsentApi {
    async fn add(&self, _req: Request<ConsentRequest>) -> Result<Response<ConsentRecord>, Status> {
        Err(not_wired("Add"))
    }

    async fn withdraw(&self, _req: Request<ConsentRequest>) -> Result<Response<ConsentRecord>, Status> {
        Err(not_wired("Withdraw"))
    }
}
