//! The registry's public records: providers, assignments, rejects, consent, ledger events and the
//! check's verdict. Ledger records are stored as JSON in RocksDB (they change rarely and an
//! operator may want to read them with `ldb`); reject events use a compact binary value
//! (docs/format.md, "Registry store").

use crate::record::Usage;
use serde::{Deserialize, Serialize};

/// A content provider (one version of it: every change stores a new version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provider {
    /// The provider's id, chosen by the operator (e.g. its licence number).
    pub id: String,
    /// Registered name.
    pub name: String,
    /// Registered signatures: full name, short name, trademark. A commercial text must start
    /// with `【s】` for one of these (or the name).
    pub signatures: Vec<String>,
    /// Linked to fraud: every sub-port of the provider is denied (`blacklisted`).
    pub blacklisted: bool,
    /// Life-safety, emergency or government sender: exempt from rejects and consent.
    pub whitelisted: bool,
    /// When this version took effect, ms since the epoch.
    pub changed_ms: i64,
}

/// What an operator gives to register or update a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderInput {
    /// Id (1 to 64 characters, no control characters).
    pub id: String,
    /// Registered name.
    pub name: String,
    /// Registered signatures (without the 【】 brackets).
    pub signatures: Vec<String>,
    /// Blacklisted flag.
    pub blacklisted: bool,
    /// Whitelisted flag.
    pub whitelisted: bool,
}

/// A sub-port put under a provider's contract for one usage, in force over `[from_ms, to_ms)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Registry-wide id, from 1, never reused.
    pub id: u32,
    /// The sub-port.
    pub sub_port: String,
    /// The provider's id.
    pub provider: String,
    /// The usage the sub-port serves.
    pub usage: Usage,
    /// Start of the contract term, ms since the epoch (inclusive).
    pub from_ms: i64,
    /// End of the contract term, ms since the epoch (exclusive).
    pub to_ms: i64,
    /// Commercial messages need the recipient's consent in force.
    pub consent_required: bool,
    /// When the assignment was recorded, ms since the epoch.
    pub created_ms: i64,
}

impl Assignment {
    /// True when in force at `at_ms`.
    pub fn in_force(&self, at_ms: i64) -> bool {
        self.from_ms <= at_ms && at_ms < self.to_ms
    }
}

/// What an operator gives to assign a sub-port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignInput {
    /// The sub-port (validated with `SubPort::parse`).
    pub sub_port: String,
    /// The provider's id (must exist).
    pub provider: String,
    /// Usage.
    pub usage: Usage,
    /// Term start, ms.
    pub from_ms: i64,
    /// Term end, ms (exclusive, after `from_ms`).
    pub to_ms: i64,
    /// Consent mode.
    pub consent_required: bool,
}

/// One ledger change, kept forever as history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEvent {
    /// Sequence number, from 1.
    pub seq: u64,
    /// When the change was recorded, ms since the epoch.
    pub at_ms: i64,
    /// `provider`, `assign` or `end`.
    pub kind: String,
    /// The provider version written (kind `provider`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provider: Option<Provider>,
    /// The assignment as written (kinds `assign` and `end`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub assignment: Option<Assignment>,
}

/// Where a reject came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RejectSource {
    /// An MO reject keyword ("R") detected at ingest.
    Mo,
    /// Registered through the API (`reject add`): complaint, web form, call centre.
    Api,
    /// A bulk import from another system.
    Import,
}

impl RejectSource {
    /// `mo`, `api` or `import`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectSource::Mo => "mo",
            RejectSource::Api => "api",
            RejectSource::Import => "import",
        }
    }

    /// Parses the names above.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mo" => Some(RejectSource::Mo),
            "api" => Some(RejectSource::Api),
            "import" => Some(RejectSource::Import),
            _ => None,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            RejectSource::Mo => 1,
            RejectSource::Api => 2,
            RejectSource::Import => 3,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(RejectSource::Mo),
            2 => Some(RejectSource::Api),
            3 => Some(RejectSource::Import),
            _ => None,
        }
    }
}

/// A stored reject: user `number` refuses commercial SMS under `assignment` since `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// The assignment it binds.
    pub assignment: u32,
    /// The sub-port of that assignment.
    pub sub_port: String,
    /// The user's number (11 digits).
    pub number: String,
    /// Since when, ms since the epoch.
    pub at_ms: i64,
    /// Where it came from.
    pub source: RejectSource,
    /// The reject message's text (the MO's text, or the note given with it).
    pub text: String,
}

/// A consent or withdrawal record with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The assignment it belongs to.
    pub assignment: u32,
    /// The user's number (11 digits).
    pub number: String,
    /// True for consent, false for withdrawal.
    pub granted: bool,
    /// When it takes effect, ms since the epoch.
    pub at_ms: i64,
    /// The evidence (a reference to a signed form, a recording, a web log line, ...).
    pub evidence: String,
}

/// Why a check denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The sub-port was never put in the ledger.
    UnknownSubPort,
    /// No assignment of the sub-port is in force at that instant.
    NoAssignment,
    /// The message's usage is not the assignment's usage.
    UsageMismatch,
    /// The user replied "R" (or was registered as refusing) under this assignment.
    Rejected,
    /// The assignment requires consent and none is in force.
    NoConsent,
    /// The provider is blacklisted.
    Blacklisted,
    /// A commercial text does not start with `【signature】` naming a registered signature.
    BadSignature,
    /// A commercial text does not end with `拒收请回复R`.
    MissingRejectInstruction,
}

impl Reason {
    /// The snake_case name of cli.md.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownSubPort => "unknown_sub_port",
            Reason::NoAssignment => "no_assignment",
            Reason::UsageMismatch => "usage_mismatch",
            Reason::Rejected => "rejected",
            Reason::NoConsent => "no_consent",
            Reason::Blacklisted => "blacklisted",
            Reason::BadSignature => "bad_signature",
            Reason::MissingRejectInstruction => "missing_reject_instruction",
        }
    }
}

/// The answer of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// May the message be sent.
    pub allow: bool,
    /// Why not (None when allowed).
    pub reason: Option<Reason>,
    /// For `rejected`: since when, ms since the epoch.
    pub since_ms: Option<i64>,
    /// The assignment in force that answered, if any.
    pub assignment: Option<u32>,
}

impl Verdict {
    pub(crate) fn allow(assignment: u32) -> Self {
        Verdict { allow: true, reason: None, since_ms: None, assignment: Some(assignment) }
    }

    pub(crate) fn deny(reason: Reason, assignment: Option<u32>) -> Self {
        Verdict { allow: false, reason: Some(reason), since_ms: None, assignment }
    }
}

/// Counts of the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RegistryStats {
    /// Providers registered.
    pub providers: u64,
    /// Assignments ever made.
    pub assignments: u64,
    /// Assignments in force now.
    pub assignments_in_force: u64,
    /// Rejects held (all assignments).
    pub rejects: u64,
    /// Heap bytes of the in-memory reject sets.
    pub reject_set_bytes: u64,
}
