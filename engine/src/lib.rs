//! # portlog-engine
//!
//! The embedded storage engine of portlog: the records a port-SMS provider must keep by
//! regulation. This crate holds the append-only **message log**, sharded by sub-port and
//! segmented by record time (see `docs/architecture.md` and `docs/format.md`).
//!
//! ```
//! use portlog_engine::{Log, LogConfig, Record, Direction, Usage, PhoneNumber, SubPort, ManualClock};
//! use std::sync::Arc;
//!
//! # fn main() -> portlog_engine::Result<()> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let now = portlog_engine::time::parse_time_ms("2026-05-01T09:30:00+08:00").expect("time");
//! let log = Log::open(dir.path(), LogConfig::default(), Arc::new(ManualClock::new(now)))?;
//! let rec = Record {
//!     dir: Direction::Mt,
//!     sub_port: SubPort::parse("1069012345601")?,
//!     peer: PhoneNumber::parse("+8613800138000")?,
//!     ts_ms: now,
//!     usage: Some(Usage::Commercial),
//!     text: "【星河银行】会员日满100减20。拒收请回复R".into(),
//! };
//! log.append(vec![rec.clone()])?; // returns once durable
//! let got: Vec<Record> = log.read_number(rec.peer, now - 1, now + 1)?.collect::<Result<_, _>>()?;
//! assert_eq!(got, vec![rec]);
//! # Ok(()) }
//! ```

#![deny(unsafe_code)]

pub mod alloc;
pub mod clock;
pub mod codec;
pub mod config;
pub mod crypto;
#[cfg(feature = "registry")]
pub mod engine;
pub mod error;
pub mod io;
pub mod log;
pub mod record;
#[cfg(feature = "registry")]
pub mod registry;
#[cfg(feature = "registry")]
pub mod retention;
pub mod time;

/// The registry's parts that need no RocksDB, when the `registry` feature is off: the content
/// rules ([`registry::check`]) and the public records ([`registry::types`]), at the same paths
/// as in the full build (the same files, `src/registry/check.rs` and `types.rs`).
#[cfg(not(feature = "registry"))]
pub mod registry {
    pub mod check;
    // `RejectSource`'s byte codes serve only the store.
    #[allow(dead_code)]
    pub mod types;
    pub use types::*;
}

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{EncryptionConfig, LogConfig, RegistryConfig, RetentionConfig, SyncPolicy};
pub use crypto::KeyRing;
#[cfg(feature = "registry")]
pub use engine::{Engine, EngineConfig, Finding, IngestOutcome};
pub use error::{Error, Result, RowError};
pub use log::expire::ExpiredSegment;
pub use log::journal::JournalStats;
pub use log::trace::TraceQuery;
pub use log::{Log, LogEnv, LogStats, PendingAppend, Records};
pub use record::{Direction, PhoneNumber, Record, SubPort, Usage};
#[cfg(feature = "registry")]
pub use registry::{Question, Registry};
pub use registry::{Reason, Verdict};
#[cfg(feature = "registry")]
pub use retention::{RetentionReport, RetentionRun, RetentionStatus, Trigger};
