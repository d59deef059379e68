//! The audit trail: every trace, reject listing or export, and every change of the ledger, the
//! reject registry or consent, allowed or refused, is written to the engine's durable audit log
//! (`Registry::audit`, synced) with the caller's name BEFORE the response goes out. If the entry
//! cannot be written, the call fails (for a change: after the change, and the message says so).
//!
//! Refused calls: for the methods of [`crate::auth::AUDITED`], the gate does not answer a missing
//! or unknown token or a role that may not call the method itself; it passes the call on with a
//! [`Refusal`] in the request extensions, so that the handler can audit the attempt as
//! `denied:ACTION` with the request's arguments (which number, which sub-port) and then answer the
//! refusal. Every audited handler starts with [`Audit::admit`].
//!
//! The engine's entry has `who`, `action`, `number`, `sub_port` and `records`; the server writes
//! `action` as the action's name followed, after a space, by a short detail
//! (`ledger.assign assignment=3 provider=p1`), and `Audit.List` splits them again.

use crate::api::State;
use crate::auth::Caller;
use crate::error;
use portlog_engine::registry::AuditEntry;
use portlog_engine::{PhoneNumber, SubPort};
use tonic::{Code, Request, Status};

/// Prefix of the action of a refused call.
pub const DENIED: &str = "denied:";

/// Put in the request extensions by the gate when it refused a call to an audited method.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// UNAUTHENTICATED or PERMISSION_DENIED.
    pub code: Code,
    /// The message naming why.
    pub message: String,
}

/// What an audit entry is about. The number and sub-port are normalised when they parse and kept
/// as given (at most 64 characters) otherwise: a refused call's arguments are recorded unchecked.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    number: Option<String>,
    sub_port: Option<String>,
    detail: String,
}

/// At most 64 characters of an unchecked argument, control characters and whitespace replaced:
/// a refused caller's input is recorded, never interpreted.
pub fn clip(s: &str) -> String {
    s.trim().chars().take(64).map(|c| if c.is_control() || c.is_whitespace() { '_' } else { c }).collect()
}

impl Subject {
    /// Nothing in particular (a provider change: the detail names it).
    pub fn none() -> Self {
        Subject::default()
    }

    /// About a number (as given in the request; empty: none).
    pub fn number(mut self, n: &str) -> Self {
        if !n.trim().is_empty() {
            self.number = Some(PhoneNumber::parse(n).map_or_else(|_| clip(n), |p| p.to_string()));
        }
        self
    }

    /// About a sub-port (as given in the request; empty: none).
    pub fn sub_port(mut self, sp: &str) -> Self {
        if !sp.trim().is_empty() {
            self.sub_port = Some(SubPort::parse(sp).map_or_else(|_| clip(sp), |s| s.to_string()));
        }
        self
    }

    /// With a short detail (`assignment=3`, ...).
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = d.into();
        self
    }
}

/// The audit context of one call to an audited method.
pub struct Audit {
    state: State,
    caller: Caller,
    refusal: Option<Refusal>,
}

impl Audit {
    /// The context of `req` (its caller, and the gate's refusal if any).
    pub fn of<T>(state: &State, req: &Request<T>) -> Audit {
        Audit { state: state.clone(), caller: Caller::of(req), refusal: req.extensions().get::<Refusal>().cloned() }
    }

    /// The caller.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// If the gate refused the call: writes `denied:ACTION` and answers the refusal (the error).
    /// Otherwise `Ok`: the call may proceed.
    pub async fn admit(&self, action: &str, subject: Subject) -> Result<(), Status> {
        let Some(r) = &self.refusal else { return Ok(()) };
        let refused = Status::new(r.code, r.message.clone());
        let denied = format!("{DENIED}{action}");
        if let Err(st) = self.record(&denied, subject, 0).await {
            tracing::error!(reason = st.message(), "a refused call could not be audited");
        }
        Err(refused)
    }

    /// Writes an entry for an allowed action; returns once it is durable.
    pub async fn record(&self, action: &str, subject: Subject, records: u64) -> Result<(), Status> {
        let (state, entry) = (self.state.clone(), self.entry(action, subject, records));
        crate::api::blocking(move || write(&state, entry)).await
    }

    /// [`Audit::record`] from a blocking thread.
    pub fn record_blocking(&self, action: &str, subject: Subject, records: u64) -> Result<(), Status> {
        write(&self.state, self.entry(action, subject, records))
    }

    fn entry(&self, action: &str, s: Subject, records: u64) -> AuditEntry {
        let action = if s.detail.is_empty() { action.to_string() } else { format!("{action} {}", s.detail) };
        AuditEntry {
            seq: 0,
            at_ms: 0,
            who: self.caller.name.clone(),
            action,
            number: s.number,
            sub_port: s.sub_port,
            records,
        }
    }
}

fn write(state: &State, entry: AuditEntry) -> Result<(), Status> {
    tracing::info!(
        target: "portlog::audit",
        who = %entry.who,
        action = entry.action.as_str(),
        // Never the number: the daemon's logs carry no personal data (the audit trail does).
        sub_port = entry.sub_port.as_deref().unwrap_or(""),
        records = entry.records,
        "audit"
    );
    match state.engine.registry().audit(entry) {
        Ok(_) => Ok(()),
        Err(e) => {
            let st = error::status(e);
            Err(Status::new(st.code(), format!("the audit trail could not be written: {}", st.message())))
        }
    }
}

/// An audit entry's action split into the action's name and its detail.
pub fn split_action(action: &str) -> (&str, &str) {
    action.split_once(' ').unwrap_or((action, ""))
}
