//! The audit trail of investigators' and administrators' calls: who, when, what, which number,
//! how many records, allowed or not.

use crate::auth::Caller;

/// Records one audited action.
///
/// ===== NOT WIRED YET: the engine's audit log. Until it lands, entries go to the structured
/// log only (target `portlog::audit`), which is NOT durable before the response as the issue
/// requires; once the engine offers a durable audit append, call it here (from the blocking
/// side) and fail the call if it fails. =====
pub fn record(caller: &Caller, action: &str, number: &str, records: u64, allowed: bool, detail: &str) {
    tracing::info!(
        target: "portlog::audit",
        who = %caller.name,
        action,
        number,
        records,
        allowed,
        detail,
        "audit"
    );
}
