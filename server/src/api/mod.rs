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
use portlog_engine::registry::Assignment;
use portlog_engine::{Direction, Engine, Log, PhoneNumber, Record, Registry, SharedClock, SubPort, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::Status;

/// What every handler works on.
pub struct AppState {
    /// The message log and the registry. Their writes and scans block (fsync, RocksDB): call them
    /// from `spawn_blocking` or a dedicated thread. The check reads memory and is called inline.
    pub engine: Arc<Engine>,
    /// The engine's clock (defaults of time windows).
    pub clock: SharedClock,
    /// The `[server]` limits.
    pub cfg: ServerConfig,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// The message log.
    pub fn log(&self) -> &Log {
        self.engine.log()
    }

    /// The ledger and reject registry.
    pub fn registry(&self) -> &Registry {
        self.engine.registry()
    }

    /// Now, by the engine's clock, in ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}

/// Shared handle to the state.
pub type State = Arc<AppState>;

/// Runs blocking engine work off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Status> + Send + 'static) -> Result<T, Status> {
    spawn_background(f).await.map_err(|e| Status::internal(format!("engine task failed: {e}")))?
}

/// `spawn_blocking` for background work: the pool thread runs at background priority
/// (`priority.rs`), below the workers that answer checks. Every use of the blocking pool goes
/// through here.
pub fn spawn_background<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> tokio::task::JoinHandle<T> {
    tokio::task::spawn_blocking(move || {
        crate::priority::enter_background();
        f()
    })
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

/// The engine direction of a wire direction (`None` for unspecified); the error is the reason.
pub fn direction_from_proto(d: i32) -> Result<Option<Direction>, String> {
    match proto::Direction::try_from(d) {
        Ok(proto::Direction::Unspecified) => Ok(None),
        Ok(proto::Direction::Mt) => Ok(Some(Direction::Mt)),
        Ok(proto::Direction::Mo) => Ok(Some(Direction::Mo)),
        Err(_) => Err(format!("{d} is not a direction (1 mt, 2 mo)")),
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
    let dir = direction_from_proto(m.dir)
        .and_then(|d| d.ok_or_else(|| format!("{} is not a direction (1 mt, 2 mo)", m.dir)))
        .map_err(|why| ("dir", why))?;
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

/// An engine assignment as a wire assignment.
pub fn assignment_to_proto(a: &Assignment) -> proto::Assignment {
    proto::Assignment {
        id: u64::from(a.id),
        sub_port: a.sub_port.clone(),
        provider_id: a.provider.clone(),
        usage: usage_to_proto(Some(a.usage)) as i32,
        from_ms: a.from_ms,
        to_ms: a.to_ms,
        consent_required: a.consent_required,
        created_ms: a.created_ms,
    }
}

/// An optional assignment id of a request (0: none) as the engine's id; INVALID_ARGUMENT naming
/// the field if it is out of range.
pub fn assignment_id(field: &str, id: u64) -> Result<Option<u32>, Status> {
    match id {
        0 => Ok(None),
        n => {
            u32::try_from(n).map(Some).map_err(|_| crate::error::invalid(field, format!("{n} is not an assignment id")))
        }
    }
}

/// An optional time of a request (0: now) as the engine's `Option`.
pub fn at_or_now(at_ms: i64) -> Option<i64> {
    (at_ms != 0).then_some(at_ms)
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

/// An engine and state in a temporary directory, for the handlers' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use portlog_engine::{EngineConfig, LogConfig, ManualClock, RegistryConfig, SyncPolicy};

    /// 2026-05-01T00:00:00+08:00.
    pub const NOW: i64 = 1_777_564_800_000;

    /// A state over a fresh engine in `dir`, its clock at [`NOW`].
    pub fn state(dir: &std::path::Path) -> (State, Arc<ManualClock>) {
        state_with(dir, ServerConfig::default())
    }

    /// [`state`] with these `[server]` settings.
    pub fn state_with(dir: &std::path::Path, server: ServerConfig) -> (State, Arc<ManualClock>) {
        state_with_log(dir, server, LogConfig { shards: 1, sync: SyncPolicy::None, ..LogConfig::default() })
    }

    /// [`state_with`] with these log settings ([`state`] and [`state_with`] sync nothing, so
    /// their logs have no journal).
    pub fn state_with_log(dir: &std::path::Path, server: ServerConfig, log: LogConfig) -> (State, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(NOW));
        let cfg = EngineConfig {
            log,
            registry: RegistryConfig { sync: false, ..RegistryConfig::default() },
            ..EngineConfig::default()
        };
        let engine = Engine::open(dir, cfg, clock.clone()).unwrap();
        let state = Arc::new(AppState {
            engine: Arc::new(engine),
            clock: clock.clone(),
            cfg: server,
            metrics: Arc::new(Metrics::default()),
        });
        (state, clock)
    }
}

#[cfg(test)]
mod audited_tests {
    use super::testing::{state, NOW};
    use super::*;
    use crate::audit::Refusal;
    use crate::auth::{Caller, Role};
    use portlog_client::proto::{
        consent_server::Consent, ledger_server::Ledger, rejects_server::Rejects, retention_server::Retention,
        trace_server::Trace,
    };
    use portlog_engine::registry::{AssignInput, ProviderInput};
    use tonic::{Code, Request};

    fn refused<T>(msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        r.extensions_mut().insert(Caller { name: "gw-1".into(), role: Some(Role::Gateway) });
        r.extensions_mut()
            .insert(Refusal { code: Code::PermissionDenied, message: "token \"gw-1\" has role gateway".into() });
        r
    }

    /// Every audited method but Import (a client stream; the end-to-end tests cover it): a call
    /// the gate refused is audited as `denied:ACTION` with its arguments, answers the refusal,
    /// and changes nothing.
    #[tokio::test]
    async fn refused_calls_are_audited_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (st, _clock) = state(dir.path());
        let reg = st.registry();
        reg.provider_put(ProviderInput { id: "p1".into(), name: "星河银行".into(), ..Default::default() }).unwrap();
        reg.assign(AssignInput {
            sub_port: "106901".into(),
            provider: "p1".into(),
            usage: Usage::Commercial,
            from_ms: NOW - 1000,
            to_ms: NOW + 1000,
            consent_required: true,
        })
        .unwrap();
        let (n, sp) = ("13800138000", "106901");
        let denied = |r: Result<(), tonic::Status>| assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);

        let trace = trace::TraceApi::new(st.clone());
        let req = proto::TraceRequest { number: format!("+86{n}"), sub_port: sp.into(), ..Default::default() };
        denied(trace.trace(refused(req)).await.map(drop));
        let ledger = ledger::LedgerApi::new(st.clone());
        let p = proto::Provider { id: "p2".into(), name: "x".into(), ..Default::default() };
        denied(ledger.add_provider(refused(p)).await.map(drop));
        let a = proto::AssignRequest {
            sub_port: "106902".into(),
            provider_id: "p1".into(),
            usage: proto::Usage::Service as i32,
            from_ms: NOW,
            to_ms: NOW + 10,
            consent_required: false,
        };
        denied(ledger.assign(refused(a)).await.map(drop));
        denied(ledger.end(refused(proto::EndRequest { sub_port: sp.into(), at_ms: NOW })).await.map(drop));
        let rejects = rejects::RejectsApi::new(st.clone());
        let add = proto::AddRejectRequest { sub_port: sp.into(), number: n.into(), ..Default::default() };
        denied(rejects.add(refused(add)).await.map(drop));
        let l = proto::ListBySubPortRequest { sub_port: sp.into(), assignment_id: 0 };
        denied(rejects.list_by_sub_port(refused(l)).await.map(drop));
        denied(rejects.list_by_number(refused(proto::ListByNumberRequest { number: n.into() })).await.map(drop));
        let e = proto::ExportRequest { sub_port: sp.into(), ..Default::default() };
        denied(rejects.export(refused(e)).await.map(drop));
        let consent = consent::ConsentApi::new(st.clone());
        let c = proto::ConsentRequest { sub_port: sp.into(), number: n.into(), evidence: "form 7".into(), at_ms: 0 };
        denied(consent.add(refused(c.clone())).await.map(drop));
        denied(consent.withdraw(refused(c)).await.map(drop));
        let retention = retention::RetentionApi::new(st.clone());
        let run = proto::RetentionRequest { dry_run: false, confirm_clock_until_ms: None };
        denied(retention.run(refused(run)).await.map(drop));

        let got: Vec<_> = reg.audit_list(i64::MIN, i64::MAX).unwrap();
        let actions: Vec<&str> = got.iter().map(|e| crate::audit::split_action(&e.action).0).collect();
        assert_eq!(
            actions,
            [
                "denied:trace",
                "denied:ledger.provider",
                "denied:ledger.assign",
                "denied:ledger.end",
                "denied:reject.add",
                "denied:reject.list",
                "denied:reject.list",
                "denied:reject.export",
                "denied:consent.add",
                "denied:consent.withdraw",
                "denied:retention.run"
            ]
        );
        // Import is the one audited method not called here.
        assert_eq!(crate::auth::AUDITED.len(), actions.len() + 1);
        assert!(got.iter().all(|e| e.who == "gw-1"));
        assert_eq!(got[0].number.as_deref(), Some(n), "the number is normalised");
        assert_eq!(got[0].sub_port.as_deref(), Some(sp));
        assert_eq!(got[1].action, "denied:ledger.provider provider=p2");
        // Nothing changed.
        assert!(reg.provider("p2").is_err());
        assert!(reg.show("106902").is_err());
        assert_eq!(reg.in_force(sp, NOW).unwrap().to_ms, NOW + 1000);
        assert!(reg.rejects_of_number(PhoneNumber::parse(n).unwrap()).unwrap().is_empty());
    }

    #[tokio::test]
    async fn allowed_calls_are_audited_with_what_they_returned() {
        let dir = tempfile::tempdir().unwrap();
        let (st, _clock) = state(dir.path());
        let ledger = ledger::LedgerApi::new(st.clone());
        let mut req =
            Request::new(proto::Provider { id: "p1".into(), name: "星河银行".into(), ..Default::default() });
        req.extensions_mut().insert(Caller { name: "ops".into(), role: Some(Role::Admin) });
        ledger.add_provider(req).await.unwrap();
        let a = proto::AssignRequest {
            sub_port: "106901".into(),
            provider_id: "p1".into(),
            usage: proto::Usage::Commercial as i32,
            from_ms: NOW - 1000,
            to_ms: NOW + 1000,
            consent_required: false,
        };
        let got = ledger.assign(Request::new(a.clone())).await.unwrap().into_inner();
        assert_eq!(got.id, 1);
        // The overlap is refused naming the assignment, and not audited as a change.
        let st2 = ledger.assign(Request::new(a)).await.unwrap_err();
        assert_eq!(st2.code(), Code::FailedPrecondition);
        assert!(st2.message().contains("assignment 1"), "{}", st2.message());
        let rejects = rejects::RejectsApi::new(st.clone());
        let add =
            proto::AddRejectRequest { sub_port: "106901".into(), number: "13800138000".into(), ..Default::default() };
        let r = rejects.add(Request::new(add.clone())).await.unwrap().into_inner();
        assert!(r.registered && r.in_force && r.source == "api");
        let again = rejects.add(Request::new(add)).await.unwrap().into_inner();
        assert!(!again.registered);
        let l = proto::ListBySubPortRequest { sub_port: "106901".into(), assignment_id: 0 };
        let _ = rejects.list_by_sub_port(Request::new(l)).await.unwrap();
        let got = st.registry().audit_list(i64::MIN, i64::MAX).unwrap();
        let entries: Vec<(&str, &str, u64)> =
            got.iter().map(|e| (e.who.as_str(), e.action.as_str(), e.records)).collect();
        assert_eq!(
            entries,
            [
                ("ops", "ledger.provider provider=p1", 0),
                ("anonymous", "ledger.assign assignment=1 provider=p1 usage=commercial", 0),
                ("anonymous", "reject.add assignment=1", 0),
                ("anonymous", "reject.add assignment=1 already_rejected", 0),
                ("anonymous", "reject.list assignment=1", 1),
            ]
        );
    }

    #[tokio::test]
    async fn checks_answer_inline_and_batches_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (st, _clock) = state(dir.path());
        let q = |sp: &str, n: &str| proto::CheckRequest { sub_port: sp.into(), number: n.into(), ..Default::default() };
        let r = check::check_one(&st, &q("106901", "13800138000")).unwrap();
        assert!(!r.allow);
        assert_eq!(r.reason, proto::DenyReason::UnknownSubPort as i32);
        let e = check::check_one(&st, &q("10690x", "13800138000")).unwrap_err();
        assert!(e.message().starts_with("invalid sub_port"), "{}", e.message());
        let e = check::check_one(&st, &q("106901", "123")).unwrap_err();
        assert!(e.message().starts_with("invalid number"), "{}", e.message());
        let batch = proto::CheckBatchRequest { request_id: 7, checks: vec![q("106901", "13800138000"), q("1", "2")] };
        let got = check::check_many(&st, batch).unwrap();
        assert_eq!(got.request_id, 7);
        assert!(got.results[0].error.is_empty() && got.results[1].error.starts_with("invalid number"));
        let big = proto::CheckBatchRequest { request_id: 8, checks: vec![q("1", "13800138000"); 10_001] };
        let e = check::check_many(&st, big).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("batch_items_max"), "{}", e.message());
    }
}

#[cfg(test)]
mod trace_tests {
    use super::testing::{state_with, NOW};
    use super::*;
    use portlog_client::proto::trace_server::Trace;
    use tokio_stream::StreamExt;
    use tonic::{Code, Request};

    const N: &str = "13800138000";

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                dir: if i % 2 == 0 { Direction::Mt } else { Direction::Mo },
                sub_port: SubPort::parse(if i % 3 == 0 { "106901" } else { "106902" }).unwrap(),
                peer: PhoneNumber::parse(N).unwrap(),
                ts_ms: NOW - 100_000 + i as i64,
                usage: (i % 2 == 0).then_some(Usage::Service),
                text: format!("message {i}"),
            })
            .collect()
    }

    async fn trace(st: &State, req: proto::TraceRequest) -> (Vec<usize>, Option<tonic::Status>) {
        let mut stream = trace::TraceApi::new(st.clone()).trace(Request::new(req)).await.unwrap().into_inner();
        let (mut chunks, mut end) = (Vec::new(), None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(c) => chunks.push(c.messages.len()),
                Err(e) => end = Some(e),
            }
        }
        (chunks, end)
    }

    /// A trace longer than what the reader keeps while counting is read twice: the same
    /// records, in time order, and one audit entry with the count, written before the first chunk.
    #[tokio::test]
    async fn long_traces_are_counted_audited_then_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ServerConfig { trace_chunk_records: 3, trace_records_max: 40, ..ServerConfig::default() };
        let (st, _clock) = state_with(dir.path(), cfg);
        st.engine.ingest(records(30)).unwrap();
        // 30 records > 3 × 4 kept: two passes.
        let (chunks, end) = trace(&st, proto::TraceRequest { number: N.into(), ..Default::default() }).await;
        assert!(end.is_none(), "{end:?}");
        assert_eq!(chunks, vec![3; 10]);
        // One sub-port: 10 records ≤ 12 kept: one pass.
        let one = proto::TraceRequest { number: N.into(), sub_port: "106901".into(), ..Default::default() };
        let (chunks, _) = trace(&st, one).await;
        assert_eq!(chunks, vec![3, 3, 3, 1]);
        let audit = st.registry().audit_list(i64::MIN, i64::MAX).unwrap();
        let got: Vec<(&str, u64, Option<&str>)> =
            audit.iter().map(|e| (e.action.as_str(), e.records, e.sub_port.as_deref())).collect();
        assert_eq!(got, [("trace", 30, None), ("trace", 10, Some("106901"))]);
        // Past trace_records_max: RESOURCE_EXHAUSTED before anything is sent, nothing audited.
        st.engine.ingest(records(11)).unwrap();
        let (chunks, end) = trace(&st, proto::TraceRequest { number: N.into(), ..Default::default() }).await;
        assert!(chunks.is_empty());
        let end = end.unwrap();
        assert_eq!(end.code(), Code::ResourceExhausted);
        assert!(end.message().contains("trace_records_max"), "{}", end.message());
        assert_eq!(st.registry().audit_list(i64::MIN, i64::MAX).unwrap().len(), 2);
    }
}
