//! The one place where engine errors become gRPC statuses. Handlers return
//! `Err(error::status(e))` and never pick a code for an engine error themselves.

use portlog_engine::Error;
use tonic::{Code, Status};

/// The gRPC code of an engine error.
pub fn code(e: &Error) -> Code {
    match e {
        // The caller sent something wrong: the message names the field.
        Error::Invalid { .. } | Error::FutureRecord { .. } | Error::BadRows { .. } => Code::InvalidArgument,
        // Something named by the caller does not exist.
        Error::NotFound { .. } => Code::NotFound,
        // A change contradicts what is stored (an overlapping assignment, ...).
        Error::Conflict(_) => Code::FailedPrecondition,
        // A bounded resource (queue, batch, open segments) is full: retry later or send less.
        Error::Limit(_) => Code::ResourceExhausted,
        // Shutting down, or a shard refusing writes until the daemon is restarted.
        Error::Closed | Error::Poisoned { .. } => Code::Unavailable,
        // Stored data failed a checksum: the message names the file and offset.
        Error::Corrupt { .. } => Code::DataLoss,
        // Start-up conditions; not expected on a running daemon.
        Error::Locked { .. } | Error::ConfigMismatch { .. } => Code::FailedPrecondition,
        // Retention refuses to act on a clock far ahead of its last run until confirmed.
        Error::ClockAhead { .. } => Code::FailedPrecondition,
        // Encrypted data whose key the key file does not hold (an operator removed it too
        // early), or an unusable key file: the key file must be fixed, nothing is lost.
        Error::KeyMissing { .. } | Error::KeyFile { .. } => Code::FailedPrecondition,
        // Disk or RocksDB failures, and anything added to the engine later.
        _ => Code::Internal,
    }
}

/// The status for an engine error, with the engine's message (which names the field, file or
/// limit concerned).
pub fn status(e: Error) -> Status {
    let code = code(&e);
    if code == Code::Internal || code == Code::DataLoss {
        tracing::error!(error = %e, "engine failure");
    }
    match &e {
        Error::BadRows { rows } => Status::new(code, bad_rows(rows)),
        _ => Status::new(code, e.to_string()),
    }
}

/// Bad rows listed in a status message (at most this many; the count says how many there are).
pub const BAD_ROWS_LISTED_MAX: usize = 20;

/// `N bad row(s), nothing imported: line 3: …; line 7: …` (the first [`BAD_ROWS_LISTED_MAX`]).
fn bad_rows(rows: &[portlog_engine::RowError]) -> String {
    let listed: Vec<String> =
        rows.iter().take(BAD_ROWS_LISTED_MAX).map(|r| format!("line {}: {}", r.line, r.reason)).collect();
    let more = rows.len().saturating_sub(BAD_ROWS_LISTED_MAX);
    let tail = if more > 0 { format!("; and {more} more") } else { String::new() };
    format!("{} bad row(s), nothing imported: {}{tail}", rows.len(), listed.join("; "))
}

/// The offending field and the reason of a refused record, for per-record errors (ingest,
/// check batches); `None` if the error is not about the record itself.
pub fn field_reason(e: &Error) -> Option<(&'static str, String)> {
    match e {
        Error::Invalid { field, reason } => Some((field, reason.clone())),
        Error::FutureRecord { .. } => {
            let msg = e.to_string();
            Some(("ts", msg.strip_prefix("invalid ts: ").unwrap_or(&msg).to_string()))
        }
        _ => None,
    }
}

/// INVALID_ARGUMENT naming a request field, for checks the server does before the engine.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid {field}: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(code(&Error::invalid("peer", "x")), Code::InvalidArgument);
        assert_eq!(code(&Error::Limit("queue".into())), Code::ResourceExhausted);
        assert_eq!(code(&Error::Closed), Code::Unavailable);
        assert_eq!(code(&Error::corrupt("/x", 4, "checksum")), Code::DataLoss);
        let missing = Error::KeyMissing { path: "/x".into(), key_id: 1, detail: "no key file".into() };
        assert_eq!(code(&missing), Code::FailedPrecondition);
        assert_eq!(code(&Error::Conflict("overlap".into())), Code::FailedPrecondition);
        assert_eq!(code(&Error::NotFound { what: "provider", key: "p1".into() }), Code::NotFound);
        let st = status(Error::invalid("peer", "bad"));
        assert_eq!(st.message(), "invalid peer: bad");
        let rows = (1..=25).map(|line| portlog_engine::RowError { line, reason: "bad".into() }).collect();
        let st = status(Error::BadRows { rows });
        assert_eq!(st.code(), Code::InvalidArgument);
        assert!(
            st.message().starts_with("25 bad row(s), nothing imported: line 1: bad; line 2: bad"),
            "{}",
            st.message()
        );
        assert!(st.message().ends_with("line 20: bad; and 5 more"), "{}", st.message());
        let fut = Error::FutureRecord { ts_ms: 10, now_ms: 1, ahead_ms: 9, skew_ms: 0 };
        let (f, r) = field_reason(&fut).unwrap();
        assert_eq!(f, "ts");
        assert!(r.starts_with("10 ms is 9 ms ahead"), "{r}");
    }
}
