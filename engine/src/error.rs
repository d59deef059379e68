//! Errors of the engine: one umbrella [`Error`] whose variants carry what an operator needs to act
//! (the field of a bad record, the file and offset of corruption, the operation that failed).

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A record or argument was malformed; `field` names the offending field.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field that is wrong (`peer`, `sub_port`, `ts`, `text`, ...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A record dated further in the future than the configured clock skew allows.
    #[error("invalid ts: {ts_ms} ms is {ahead_ms} ms ahead of the engine clock ({now_ms} ms); at most {skew_ms} ms of skew is accepted")]
    FutureRecord {
        /// The record's time.
        ts_ms: i64,
        /// The engine clock when the record was refused.
        now_ms: i64,
        /// How far ahead it was.
        ahead_ms: i64,
        /// The configured tolerance (`future_skew_ms`).
        skew_ms: i64,
    },
    /// Data on disk failed a checksum or a structural check.
    #[error("corruption in {}: at byte offset {offset}: {detail}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged structure inside the file.
        offset: u64,
        /// What check failed.
        detail: String,
    },
    /// An I/O operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `write`, `fsync`, `rename`, ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A shard writer failed to make data durable earlier and refuses further appends. The data
    /// directory must be reopened (after the fault is fixed) to recover what was acknowledged.
    #[error("shard {shard} is poisoned after an earlier write or fsync failure ({cause}); reopen the engine")]
    Poisoned {
        /// The shard whose writer stopped.
        shard: u32,
        /// The first failure.
        cause: String,
    },
    /// The data directory is held by another process or engine instance.
    #[error("data directory {} is locked by another portlog instance", path.display())]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The data directory was created with settings that the given configuration contradicts.
    #[error("data directory {} was created with {what}; the configuration asks for {asked}", path.display())]
    ConfigMismatch {
        /// The data directory.
        path: PathBuf,
        /// The stored setting.
        what: String,
        /// The requested setting.
        asked: String,
    },
    /// A bounded resource is exhausted (queue full, too many open segments, ...).
    #[error("limit reached: {0}")]
    Limit(String),
    /// The engine is shutting down or closed.
    #[error("the engine is closed")]
    Closed,
    /// A change contradicts what is stored (an overlapping assignment, ...); the message names
    /// the conflicting entry.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Something named by the caller does not exist.
    #[error("{what} {key} not found")]
    NotFound {
        /// What kind of thing (`provider`, `assignment`, `sub_port`, ...).
        what: &'static str,
        /// The name or id that was looked up.
        key: String,
    },
    /// An all-or-nothing import refused its input: every bad row with its line number.
    #[error("{} bad row(s), nothing imported; first: line {}: {}", rows.len(), rows.first().map_or(0, |r| r.line), rows.first().map_or("", |r| r.reason.as_str()))]
    BadRows {
        /// The rows that failed, in input order.
        rows: Vec<RowError>,
    },
    /// Retention refused to act: the clock is further ahead of the last run's time (or of the
    /// newest record) than `retention.clock_jump_max_ms`. Nothing was deleted. Check the clock;
    /// then confirm with `retention.future_clock_confirm_until` or an on-demand run's
    /// confirmation.
    #[error("retention refused: the clock ({now}) is {ahead_ms} ms ahead of {reference_what} ({reference}), more than clock_jump_max_ms ({max_ms}); nothing was deleted. Check the clock, then confirm the jump (retention.future_clock_confirm_until)", now = crate::time::rfc3339_utc8(*now_ms), reference = crate::time::rfc3339_utc8(*reference_ms))]
    ClockAhead {
        /// The engine clock.
        now_ms: i64,
        /// The time it was compared with.
        reference_ms: i64,
        /// What that time is (`the last retention run`, `the newest record`).
        reference_what: &'static str,
        /// How far ahead the clock is.
        ahead_ms: i64,
        /// The configured limit.
        max_ms: i64,
    },
    /// Data is encrypted with a key that is not in the key ring (or no key file is configured):
    /// it is not read, never returned as garbage. Restore the key's line in the key file.
    #[error("{}: encrypted with key {key_id}; {detail}", path.display())]
    KeyMissing {
        /// The encrypted file (segment, or the registry's store).
        path: PathBuf,
        /// The id of the key it needs.
        key_id: u32,
        /// What the ring holds instead.
        detail: String,
    },
    /// The key file is unusable: unreadable, readable by others, or a line is malformed.
    #[error("key file {}{}: {detail}", path.display(), if *line > 0 { format!(" line {line}") } else { String::new() })]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// 1-based line number (0: the file as a whole).
        line: u64,
        /// What is wrong (never key material).
        detail: String,
    },
    /// The embedded key-value store (RocksDB) failed.
    #[error("registry store {}: {detail}", path.display())]
    Store {
        /// The store's directory.
        path: PathBuf,
        /// RocksDB's message.
        detail: String,
    },
}

/// One bad row of an import.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// 1-based line number in the input.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid { field, reason: reason.into() }
    }

    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, detail: impl Into<String>) -> Self {
        Error::Corrupt { path: path.into(), offset, detail: detail.into() }
    }

    /// An equal error for a second recipient (`io::Error` is not `Clone`: its kind and message
    /// are kept).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Invalid { field, reason } => Error::Invalid { field, reason: reason.clone() },
            Error::FutureRecord { ts_ms, now_ms, ahead_ms, skew_ms } => {
                Error::FutureRecord { ts_ms: *ts_ms, now_ms: *now_ms, ahead_ms: *ahead_ms, skew_ms: *skew_ms }
            }
            Error::Corrupt { path, offset, detail } => {
                Error::Corrupt { path: path.clone(), offset: *offset, detail: detail.clone() }
            }
            Error::Io { op, path, source } => {
                Error::Io { op, path: path.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
            Error::Poisoned { shard, cause } => Error::Poisoned { shard: *shard, cause: cause.clone() },
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::ConfigMismatch { path, what, asked } => {
                Error::ConfigMismatch { path: path.clone(), what: what.clone(), asked: asked.clone() }
            }
            Error::Limit(s) => Error::Limit(s.clone()),
            Error::Closed => Error::Closed,
            Error::Conflict(s) => Error::Conflict(s.clone()),
            Error::NotFound { what, key } => Error::NotFound { what, key: key.clone() },
            Error::BadRows { rows } => Error::BadRows { rows: rows.clone() },
            Error::Store { path, detail } => Error::Store { path: path.clone(), detail: detail.clone() },
            Error::KeyMissing { path, key_id, detail } => {
                Error::KeyMissing { path: path.clone(), key_id: *key_id, detail: detail.clone() }
            }
            Error::KeyFile { path, line, detail } => {
                Error::KeyFile { path: path.clone(), line: *line, detail: detail.clone() }
            }
            Error::ClockAhead { now_ms, reference_ms, reference_what, ahead_ms, max_ms } => Error::ClockAhead {
                now_ms: *now_ms,
                reference_ms: *reference_ms,
                reference_what,
                ahead_ms: *ahead_ms,
                max_ms: *max_ms,
            },
        }
    }

    /// [`Error::KeyMissing`] for data of `path` needing key `key_id`, saying what `keys` holds.
    pub fn key_missing(path: impl Into<PathBuf>, key_id: u32, keys: Option<&crate::crypto::KeyRing>) -> Self {
        let detail = match keys {
            Some(k) => format!(
                "the key file {} holds keys {:?} but not {key_id}: put its line back ([encryption] key_file)",
                k.source().display(),
                k.ids()
            ),
            None => "no key file is configured ([encryption] key_file)".to_string(),
        };
        Error::KeyMissing { path: path.into(), key_id, detail }
    }

    /// Maps a [`crate::crypto::CryptoError`] met in `path` at byte `offset`: a missing key is
    /// [`Error::KeyMissing`], anything else [`Error::Corrupt`].
    pub fn crypto(
        path: &std::path::Path,
        offset: u64,
        what: &str,
        keys: Option<&crate::crypto::KeyRing>,
        e: crate::crypto::CryptoError,
    ) -> Self {
        match e {
            crate::crypto::CryptoError::MissingKey(id) => Error::key_missing(path, id, keys),
            crate::crypto::CryptoError::Random(r) => {
                Error::Io { op: "draw a random nonce for", path: path.to_owned(), source: std::io::Error::other(r) }
            }
            other => Error::corrupt(path, offset, format!("{what}: {other}")),
        }
    }

    /// Returns a closure mapping an `io::Error` to [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
