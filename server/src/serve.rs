//! Assembling and running the gRPC server: services, health, reflection, the gate layer (auth,
//! limits, metrics), TLS, and graceful shutdown.

use crate::api::{self, AppState, State};
use crate::auth::Tokens;
use crate::config::ServerConfig;
use crate::gate::{Gate, GateLayer};
use crate::metrics::Metrics;
use anyhow::{Context, Result};
use portlog_client::proto;
use portlog_engine::{Engine, SharedClock};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// TLS files given on the command line.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA of accepted client certificates (PEM); when given, clients must present one.
    pub client_ca: Option<PathBuf>,
}

/// Everything `run` needs.
pub struct Options {
    /// The bound gRPC listener.
    pub listener: std::net::TcpListener,
    /// The bound metrics listener, if any.
    pub metrics_listener: Option<std::net::TcpListener>,
    /// TLS, if any.
    pub tls: Option<TlsFiles>,
    /// Tokens; `None`: open access.
    pub tokens: Option<Tokens>,
    /// The `[server]` table.
    pub cfg: ServerConfig,
}

fn read(p: &PathBuf, what: &str) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {what} {}", p.display()))
}

fn tls_config(t: &TlsFiles) -> Result<ServerTlsConfig> {
    let identity = Identity::from_pem(read(&t.cert, "--tls-cert")?, read(&t.key, "--tls-key")?);
    let mut cfg = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &t.client_ca {
        cfg = cfg.client_ca_root(Certificate::from_pem(read(ca, "--tls-client-ca")?));
    }
    Ok(cfg)
}

/// Installs the SIGINT and SIGTERM handlers now (so that a signal sent as soon as the daemon
/// says it is ready is caught) and returns what waits for one and says which.
fn signal() -> Result<impl std::future::Future<Output = Result<&'static str>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        Ok(tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        })
    })
}

/// Serves until SIGINT/SIGTERM, then stops accepting, lets calls in progress finish (up to
/// `shutdown_grace_ms`) and closes the engine.
pub async fn run(engine: Engine, clock: SharedClock, opts: Options) -> Result<()> {
    run_until(engine, clock, opts, signal()?).await
}

/// How often the health service looks at the engine (a poisoned shard turns it NOT_SERVING).
const HEALTH_POLL: Duration = Duration::from_millis(250);

/// Keeps the overall health status (service `""`) in step with the engine: NOT_SERVING once a
/// shard writer is poisoned (a failed fsync: appends are refused until a restart, which
/// recovers everything acknowledged), SERVING otherwise. Checks and traces keep being answered
/// either way; a load balancer takes the daemon out of the ingest rotation.
async fn watch_health(engine: Arc<Engine>, reporter: tonic_health::server::HealthReporter) {
    let mut serving = true;
    loop {
        tokio::time::sleep(HEALTH_POLL).await;
        let poisoned = engine.log().poisoned();
        match (&poisoned, serving) {
            (Some((shard, cause)), true) => {
                tracing::error!(shard, %cause, "health: NOT_SERVING (a shard writer is poisoned; restart the daemon once the disk is fixed)");
                reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
                serving = false;
            }
            (None, false) => {
                reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
                serving = true;
            }
            _ => {}
        }
    }
}

/// [`run`], stopping when `stop` resolves (with the name of what stopped it) instead of on a
/// signal.
pub async fn run_until(
    engine: Engine,
    clock: SharedClock,
    opts: Options,
    stop: impl std::future::Future<Output = Result<&'static str>>,
) -> Result<()> {
    let Options { listener, metrics_listener, tls, tokens, cfg } = opts;
    let metrics = Arc::new(Metrics::default());
    let engine = Arc::new(engine);
    let state: State = Arc::new(AppState { engine: engine.clone(), clock, cfg: cfg.clone(), metrics: metrics.clone() });

    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;

    let mut builder = Server::builder();
    if let Some(t) = &tls {
        builder = builder.tls_config(tls_config(t)?).context("TLS configuration")?;
    }
    if cfg.call_timeout_ms > 0 {
        builder = builder.timeout(Duration::from_millis(cfg.call_timeout_ms));
    }
    let n = cfg.message_bytes_max;
    macro_rules! svc {
        ($server:ty, $api:expr) => {{
            <$server>::new($api).max_decoding_message_size(n).max_encoding_message_size(n)
        }};
    }
    let gate = GateLayer(Arc::new(Gate::new(tokens, cfg.concurrent_calls_max, metrics.clone())));
    let router = builder
        .layer(gate)
        .add_service(health)
        .add_service(reflection)
        .add_service(svc!(proto::check_server::CheckServer<_>, api::check::CheckApi::new(state.clone())))
        .add_service(svc!(proto::ingest_server::IngestServer<_>, api::ingest::IngestApi::new(state.clone())))
        .add_service(svc!(proto::trace_server::TraceServer<_>, api::trace::TraceApi::new(state.clone())))
        .add_service(svc!(proto::ledger_server::LedgerServer<_>, api::ledger::LedgerApi::new(state.clone())))
        .add_service(svc!(proto::rejects_server::RejectsServer<_>, api::rejects::RejectsApi::new(state.clone())))
        .add_service(svc!(proto::consent_server::ConsentServer<_>, api::consent::ConsentApi::new(state.clone())))
        .add_service(svc!(proto::audit_server::AuditServer<_>, api::audit::AuditApi::new(state.clone())))
        .add_service(svc!(proto::stats_server::StatsServer<_>, api::stats::StatsApi::new(state.clone())))
        .add_service(svc!(
            proto::retention_server::RetentionServer<_>,
            api::retention::RetentionApi::new(state.clone())
        ))
        .add_service(svc!(proto::inspect_server::InspectServer<_>, api::inspect::InspectApi::new(state.clone())));
    drop(state);

    listener.set_nonblocking(true).context("listener")?;
    let listener = TcpListener::from_std(listener).context("listener")?;
    let addr = listener.local_addr().context("listener address")?;
    let metrics_task = match metrics_listener {
        Some(l) => {
            l.set_nonblocking(true).context("metrics listener")?;
            let l = TcpListener::from_std(l).context("metrics listener")?;
            tracing::info!(addr = %l.local_addr().context("metrics address")?, "metrics endpoint: GET /metrics");
            Some(tokio::spawn(crate::metrics::serve(l, metrics.clone(), engine.clone())))
        }
        None => None,
    };

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // TCP_NODELAY on every accepted connection: `serve_with_incoming` ignores the builder's
    // setting, and with Nagle's algorithm a response that follows another on the same
    // connection waits for the peer's delayed ACK (40 ms): measured as 44 ms per CheckBatch.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = stop_rx.await;
    }));
    let st = engine.log().stats();
    let rs = engine.registry().stats();
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        records = st.records,
        sealed_segments = st.sealed_segments,
        open_segments = st.open_segments,
        assignments = rs.assignments,
        rejects = rs.rejects,
        "portlog-server ready"
    );

    let health_task = tokio::spawn(watch_health(engine.clone(), health_reporter.clone()));
    let sig = tokio::select! {
        s = stop => s?,
        r = &mut server => {
            // The server stopped by itself: an accept-loop failure.
            r.context("server task")?.context("gRPC server")?;
            "server exit"
        }
    };
    tracing::info!(signal = sig, "shutting down: no new calls; finishing calls in progress");
    health_task.abort();
    health_reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    let _ = stop_tx.send(());
    let grace = Duration::from_millis(cfg.shutdown_grace_ms);
    match tokio::time::timeout(grace, &mut server).await {
        Ok(r) => r.context("server task")?.context("gRPC server")?,
        Err(_) => {
            tracing::warn!(grace_ms = cfg.shutdown_grace_ms, "calls still in progress after the grace period; closing");
            server.abort();
        }
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    close_engine(engine, grace).await;
    Ok(())
}

/// Closes the engine once the last handler task has let go of it (blocking readers notice a
/// closed channel at their next chunk); past `grace` it is dropped, which also closes it.
async fn close_engine(mut engine: Arc<Engine>, grace: Duration) {
    let until = Instant::now() + grace;
    loop {
        match Arc::try_unwrap(engine) {
            Ok(e) => {
                let _ = crate::api::spawn_background(move || e.close()).await;
                tracing::info!("engine closed: queued appends and seals finished");
                return;
            }
            Err(shared) if Instant::now() < until => {
                engine = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {
                tracing::warn!("engine still in use after the grace period; exiting (acknowledged data is durable)");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The daemon's serving loop in process, on a message log whose disk fails on demand.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use portlog_engine::io::{FaultyIo, SharedIo};
    use portlog_engine::{Clock, EngineConfig, SystemClock};
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    async fn status(ch: &tonic::transport::Channel) -> ServingStatus {
        let r = HealthClient::new(ch.clone()).check(HealthCheckRequest { service: String::new() }).await.unwrap();
        r.into_inner().status()
    }

    async fn append(ch: &tonic::transport::Channel, text: &str, ts_ms: i64) -> Result<u64, tonic::Status> {
        let msg = proto::Message {
            dir: proto::Direction::Mt as i32,
            sub_port: "1069012345601".into(),
            peer: "13800138000".into(),
            ts_ms,
            usage: proto::Usage::Service as i32,
            text: text.into(),
        };
        let req = proto::IngestRequest { messages: vec![msg] };
        let mut c = proto::ingest_client::IngestClient::new(ch.clone());
        c.append(tokio_stream::iter(vec![req])).await.map(|r| r.into_inner().accepted)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_fsync_turns_health_not_serving_and_checks_are_still_answered() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let io = Arc::new(FaultyIo::new(tmp.path().join("trash"), 3).unwrap());
        let clock: SharedClock = Arc::new(SystemClock);
        let mut ecfg = EngineConfig::default();
        ecfg.retention.enabled = false;
        let engine = Engine::open_with_io(&data, ecfg, clock.clone(), io.clone() as SharedIo).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let opts = Options { listener, metrics_listener: None, tls: None, tokens: None, cfg: ServerConfig::default() };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(run_until(engine, clock, opts, async move {
            let _ = stop_rx.await;
            Ok("test stop")
        }));
        let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        assert_eq!(status(&ch).await, ServingStatus::Serving);
        let now = SystemClock.now_ms();
        assert_eq!(append(&ch, "acknowledged", now).await.unwrap(), 1);

        io.set_fail_fsyncs(true);
        let refused = append(&ch, "refused", now).await;
        assert!(!matches!(refused, Ok(1)), "an append whose fsync failed must not be acknowledged: {refused:?}");
        let until = Instant::now() + Duration::from_secs(10);
        while status(&ch).await != ServingStatus::NotServing {
            assert!(Instant::now() < until, "health still SERVING 10 s after the writer was poisoned");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The disk is back, but the poisoned writer still refuses: only a restart recovers.
        io.heal();
        assert!(!matches!(append(&ch, "after heal", now).await, Ok(1)));
        // Checks are still answered (this sub-port has no ledger entry: a verdict, not an error).
        let mut check = proto::check_client::CheckClient::new(ch.clone());
        let v = check
            .check(proto::CheckRequest {
                sub_port: "1069012345601".into(),
                number: "13800138000".into(),
                usage: proto::Usage::Commercial as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!v.allow);

        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
        let engine = Engine::open(&data, EngineConfig::default(), Arc::new(SystemClock)).unwrap();
        let texts: Vec<String> = engine
            .log()
            .scan_shard(engine.log().shard_of(&portlog_engine::SubPort::parse("1069012345601").unwrap()), 0, i64::MAX)
            .unwrap()
            .map(|r| r.unwrap().text)
            .collect();
        assert_eq!(texts.first().map(String::as_str), Some("acknowledged"), "{texts:?}");
        assert!(!texts.iter().any(|t| t == "after heal"), "{texts:?}");
    }
}
