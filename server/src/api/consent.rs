//! `portlog.v1.Consent`: consent and withdrawal records, with their evidence, for assignments
//! that require consent. Every record is audited before the answer goes out.

use super::{at_or_now, blocking, parse_number, parse_sub_port, State};
use crate::audit::{Audit, Subject};
use crate::error;
use portlog_client::proto::{consent_server::Consent, ConsentRecord, ConsentRequest};
use tonic::{Request, Response, Status};

/// The Consent service.
pub struct ConsentApi {
    state: State,
}

impl ConsentApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        ConsentApi { state }
    }

    async fn record(&self, req: Request<ConsentRequest>, granted: bool) -> Result<Response<ConsentRecord>, Status> {
        let action = if granted { "consent.add" } else { "consent.withdraw" };
        let audit = Audit::of(&self.state, &req);
        let r = req.into_inner();
        let subject = Subject::none().number(&r.number).sub_port(&r.sub_port);
        audit.admit(action, subject.clone()).await?;
        let sub_port = parse_sub_port("sub_port", &r.sub_port)?;
        let number = parse_number("number", &r.number)?;
        let state = self.state.clone();
        let sp = sub_port.clone();
        let rec = blocking(move || {
            state
                .registry()
                .consent(sp.as_str(), number, granted, &r.evidence, at_or_now(r.at_ms))
                .map_err(error::status)
        })
        .await?;
        audit
            .record(action, subject.detail(format!("assignment={}", rec.assignment)), 0)
            .await
            .map_err(|st| Status::new(st.code(), format!("the record was stored, but {}", st.message())))?;
        Ok(Response::new(ConsentRecord {
            sub_port: sub_port.to_string(),
            assignment_id: u64::from(rec.assignment),
            number: rec.number,
            granted: rec.granted,
            at_ms: rec.at_ms,
            evidence: rec.evidence,
        }))
    }
}

#[tonic::async_trait]
impl Consent for ConsentApi {
    async fn add(&self, req: Request<ConsentRequest>) -> Result<Response<ConsentRecord>, Status> {
        self.record(req, true).await
    }

    async fn withdraw(&self, req: Request<ConsentRequest>) -> Result<Response<ConsentRecord>, Status> {
        self.record(req, false).await
    }
}
