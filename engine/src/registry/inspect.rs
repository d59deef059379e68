//! Ledger inspection of traffic: which records break the ledger or the content rules.

use super::check::content_violation;
use super::view::ProviderCell;
use super::Registry;
use crate::record::{Direction, Record, Usage};
use serde::Serialize;

/// What an inspected record is found to break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Traffic on a sub-port never put in the ledger.
    UnknownSubPort,
    /// Traffic on a sub-port with no assignment in force (none yet, or a gap between terms).
    NoAssignment,
    /// Traffic after the sub-port's last term ended.
    TermEnded,
    /// An MT whose declared usage is not the assignment's.
    UsageMismatch,
    /// A commercial MT without a registered signature.
    BadSignature,
    /// A commercial MT without the reject instruction at its end.
    MissingRejectInstruction,
}

impl Registry {
    /// The finding for one logged record, if any.
    pub fn inspect_record(&self, r: &Record) -> Option<FindingKind> {
        let state = self.state.load();
        let Some(list) = state.view.assignments_of(r.sub_port.as_str()) else {
            return Some(FindingKind::UnknownSubPort);
        };
        let Some(slot) = list.iter().rev().find(|s| s.in_force(r.ts_ms)) else {
            let ended = list.iter().all(|s| s.to_ms() <= r.ts_ms);
            return Some(if ended { FindingKind::TermEnded } else { FindingKind::NoAssignment });
        };
        if r.dir != Direction::Mt {
            return None;
        }
        let usage = r.usage?;
        if usage != slot.created().usage {
            return Some(FindingKind::UsageMismatch);
        }
        if usage == Usage::Commercial {
            let versions = slot.provider.versions.load();
            let provider = ProviderCell::at(&versions, r.ts_ms)?;
            return match content_violation(&r.text, provider)? {
                super::Reason::BadSignature => Some(FindingKind::BadSignature),
                _ => Some(FindingKind::MissingRejectInstruction),
            };
        }
        None
    }
}
