//! `portlog.v1.Ledger`: providers and assignments. Every change is written by the registry
//! (synced), then audited (synced), then answered; a refused change is audited as `denied:…`.
//! An overlapping assignment is FAILED_PRECONDITION naming the assignment it overlaps.

use super::{assignment_to_proto, blocking, parse_sub_port, usage_from_proto, State};
use crate::audit::{Audit, Subject};
use crate::error;
use portlog_client::proto::{
    ledger_server::Ledger, AssignRequest, Assignment, EndRequest, LedgerEvent, Provider, ShowReply, ShowRequest,
};
use portlog_engine::registry::{self, AssignInput, ProviderInput};
use tonic::{Request, Response, Status};

/// The Ledger service.
pub struct LedgerApi {
    state: State,
}

impl LedgerApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        LedgerApi { state }
    }
}

/// An engine provider as a wire provider.
pub fn provider_to_proto(p: &registry::Provider) -> Provider {
    Provider {
        id: p.id.clone(),
        name: p.name.clone(),
        signatures: p.signatures.clone(),
        blacklisted: p.blacklisted,
        whitelisted: p.whitelisted,
        changed_ms: p.changed_ms,
    }
}

fn event_to_proto(e: &registry::LedgerEvent) -> LedgerEvent {
    LedgerEvent {
        seq: e.seq,
        at_ms: e.at_ms,
        kind: e.kind.clone(),
        provider: e.provider.as_ref().map(provider_to_proto),
        assignment: e.assignment.as_ref().map(assignment_to_proto),
    }
}

/// Audits a change that was made; if the entry cannot be written, says that the change stands.
async fn audit_change(audit: &Audit, action: &str, subject: Subject) -> Result<(), Status> {
    audit
        .record(action, subject, 0)
        .await
        .map_err(|st| Status::new(st.code(), format!("{action} was recorded, but {}", st.message())))
}

#[tonic::async_trait]
impl Ledger for LedgerApi {
    async fn add_provider(&self, req: Request<Provider>) -> Result<Response<Provider>, Status> {
        let audit = Audit::of(&self.state, &req);
        let p = req.into_inner();
        let subject = Subject::none().detail(format!("provider={}", crate::audit::clip(&p.id)));
        audit.admit("ledger.provider", subject.clone()).await?;
        let input = ProviderInput {
            id: p.id,
            name: p.name,
            signatures: p.signatures,
            blacklisted: p.blacklisted,
            whitelisted: p.whitelisted,
        };
        let state = self.state.clone();
        let stored = blocking(move || state.registry().provider_put(input).map_err(error::status)).await?;
        audit_change(&audit, "ledger.provider", subject).await?;
        Ok(Response::new(provider_to_proto(&stored)))
    }

    async fn assign(&self, req: Request<AssignRequest>) -> Result<Response<Assignment>, Status> {
        let audit = Audit::of(&self.state, &req);
        let r = req.into_inner();
        let subject = Subject::none().sub_port(&r.sub_port);
        audit
            .admit("ledger.assign", subject.clone().detail(format!("provider={}", crate::audit::clip(&r.provider_id))))
            .await?;
        let sub_port = parse_sub_port("sub_port", &r.sub_port)?;
        let usage = usage_from_proto(r.usage)
            .map_err(|(f, why)| error::invalid(f, why))?
            .ok_or_else(|| error::invalid("usage", "required: commercial, service or public"))?;
        let input = AssignInput {
            sub_port: sub_port.to_string(),
            provider: r.provider_id,
            usage,
            from_ms: r.from_ms,
            to_ms: r.to_ms,
            consent_required: r.consent_required,
        };
        let state = self.state.clone();
        let a = blocking(move || state.registry().assign(input).map_err(error::status)).await?;
        let detail = format!("assignment={} provider={} usage={}", a.id, a.provider, a.usage.as_str());
        audit_change(&audit, "ledger.assign", subject.detail(detail)).await?;
        Ok(Response::new(assignment_to_proto(&a)))
    }

    async fn end(&self, req: Request<EndRequest>) -> Result<Response<Assignment>, Status> {
        let audit = Audit::of(&self.state, &req);
        let r = req.into_inner();
        let subject = Subject::none().sub_port(&r.sub_port);
        audit.admit("ledger.end", subject.clone()).await?;
        let sub_port = parse_sub_port("sub_port", &r.sub_port)?;
        let at = if r.at_ms == 0 { self.state.now_ms() } else { r.at_ms };
        let state = self.state.clone();
        let a = blocking(move || state.registry().end(sub_port.as_str(), at).map_err(error::status)).await?;
        audit_change(&audit, "ledger.end", subject.detail(format!("assignment={} to_ms={}", a.id, a.to_ms))).await?;
        Ok(Response::new(assignment_to_proto(&a)))
    }

    async fn show(&self, req: Request<ShowRequest>) -> Result<Response<ShowReply>, Status> {
        let sub_port = parse_sub_port("sub_port", &req.get_ref().sub_port)?;
        let state = self.state.clone();
        let l = blocking(move || state.registry().show(sub_port.as_str()).map_err(error::status)).await?;
        Ok(Response::new(ShowReply {
            sub_port: l.sub_port,
            current: l.current.as_ref().map(assignment_to_proto),
            history: l.assignments.iter().map(assignment_to_proto).collect(),
            events: l.history.iter().map(event_to_proto).collect(),
        }))
    }
}
