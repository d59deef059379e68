//! One handler file per gRPC service (Qdrant's `src/tonic/api/<service>_api.rs`), the shared
//! state they work on, and the conversions between the wire types and the engine's.

pub mod audit;
pub mod check;
pub mod consent;
pub mod ingest;
pub mod inspect;
pub mod ledger;
pub mod rejects;
pub mod retention;
pub mod stats;
pub mod trace;

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use portlog_client::proto;
use portlog_engine::{Direction, Log, PhoneNumber, Record, SubPort, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Status;

/// What every handler works on.
pub struct AppState {
    /// The message log (blocking API: call it from `spawn_blocking` or a dedicated thread).
    pub log: Arc<Log>,
    /// The `[server]` limits.
    pub cfg: ServerConfig,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Shared handle to the state.
pub type State = Arc<AppState>;

/// Runs blocking engine work off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Status> + Send + 'static) -> Result<T, Status> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Status::internal(format!("engine task failed: {e}")))?
}

/// The client's deadline of a call (`grpc-timeout` header), as an instant. tonic cancels the
/// handler's future at that instant; streaming handlers, whose work continues after the
/// future, check it themselves.
pub fn deadline<T>(req: &tonic::Request<T>) -> Option<Instant> {
    let v = req.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let d = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    Instant::now().checked_add(d)
}

/// The engine usage of a wire usage (`None` for unspecified).
pub fn usage_from_proto(u: i32) -> Result<Option<Usage>, (&'static str, String)> {
    match proto::Usage::try_from(u) {
        Ok(proto::Usage::Unspecified) => Ok(None),
        Ok(proto::Usage::Commercial) => Ok(Some(Usage::Commercial)),
        Ok(proto::Usage::Service) => Ok(Some(Usage::Service)),
        Ok(proto::Usage::Public) => Ok(Some(Usage::Public)),
        Err(_) => Err(("usage", format!("{u} is not a usage (1 commercial, 2 service, 3 public)"))),
    }
}

/// The wire usage of an engine usage.
pub fn usage_to_proto(u: Option<Usage>) -> proto::Usage {
    match u {
        None => proto::Usage::Unspecified,
        Some(Usage::Commercial) => proto::Usage::Commercial,
        Some(Usage::Service) => proto::Usage::Service,
        Some(Usage::Public) => proto::Usage::Public,
    }
}

/// A wire message as an engine record; the error names the field. The record is not yet
/// validated against the log's rules (`Log::check_record`).
pub fn record_from_proto(m: proto::Message) -> Result<Record, (&'static str, String)> {
    let reason = |e: portlog_engine::Error| crate::error::field_reason(&e).map_or_else(|| e.to_string(), |(_, r)| r);
    let dir = match proto::Direction::try_from(m.dir) {
        Ok(proto::Direction::Mt) => Direction::Mt,
        Ok(proto::Direction::Mo) => Direction::Mo,
        _ => return Err(("dir", format!("{} is not a direction (1 mt, 2 mo)", m.dir))),
    };
    let sub_port = SubPort::parse(&m.sub_port).map_err(|e| ("sub_port", reason(e)))?;
    let peer = PhoneNumber::parse(&m.peer).map_err(|e| ("peer", reason(e)))?;
    let usage = usage_from_proto(m.usage)?;
    Ok(Record { dir, sub_port, peer, ts_ms: m.ts_ms, usage, text: m.text })
}

/// An engine record as a wire message.
pub fn record_to_proto(r: Record) -> proto::Message {
    proto::Message {
        dir: match r.dir {
            Direction::Mt => proto::Direction::Mt,
            Direction::Mo => proto::Direction::Mo,
        } as i32,
        sub_port: r.sub_port.to_string(),
        peer: r.peer.to_string(),
        ts_ms: r.ts_ms,
        usage: usage_to_proto(r.usage) as i32,
        text: r.text,
    }
}

/// Parses a request's phone number field or answers INVALID_ARGUMENT naming it.
pub fn parse_number(field: &str, s: &str) -> Result<PhoneNumber, Status> {
    PhoneNumber::parse(s).map_err(|e| crate::error::invalid(field, field_reason_text(e)))
}

/// Parses a request's sub-port field or answers INVALID_ARGUMENT naming it.
pub fn parse_sub_port(field: &str, s: &str) -> Result<SubPort, Status> {
    SubPort::parse(s).map_err(|e| crate::error::invalid(field, field_reason_text(e)))
}

fn field_reason_text(e: portlog_engine::Error) -> String {
    crate::error::field_reason(&e).map_or_else(|| e.to_string(), |(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_parse() {
        let mut r = tonic::Request::new(());
        assert!(deadline(&r).is_none());
        r.metadata_mut().insert("grpc-timeout", "250m".parse().unwrap());
        let d = deadline(&r).unwrap();
        assert!(d > Instant::now() + Duration::from_millis(200) && d <= Instant::now() + Duration::from_millis(250));
    }

    #[test]
    fn message_fields_are_named() {
        let m = proto::Message {
            dir: proto::Direction::Mt as i32,
            sub_port: "1069012345601".into(),
            peer: "+8613800138000".into(),
            ts_ms: 5,
            usage: proto::Usage::Service as i32,
            text: "hi".into(),
        };
        let r = record_from_proto(m.clone()).unwrap();
        assert_eq!(record_to_proto(r).peer, "13800138000");
        let bad = proto::Message { peer: "123".into(), ..m.clone() };
        assert_eq!(record_from_proto(bad).unwrap_err().0, "peer");
        let bad = proto::Message { sub_port: "x".into(), ..m.clone() };
        assert_eq!(record_from_proto(bad).unwrap_err().0, "sub_port");
        let bad = proto::Message { dir: 0, ..m };
        assert_eq!(record_from_proto(bad).unwrap_err().0, "dir");
    }
}
