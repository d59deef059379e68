//! `portlog-server`: the portlog daemon (see `shared/cli.md`, "Daemon").
//!
//! Opens and recovers the data directory, enforces the listening rules of the contract, serves
//! the `portlog.v1` gRPC services (docs/grpc.md) until SIGINT/SIGTERM, then finishes the calls
//! in progress and closes the engine. `verify` checks a data directory offline.

#![forbid(unsafe_code)]

mod api;
mod audit;
mod auth;
mod config;
mod error;
mod gate;
mod metrics;
mod priority;
mod serve;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use portlog_engine::{Engine, Log, Registry, SharedClock, SystemClock};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(name = "portlog-server", version, about = "The portlog daemon")]
struct Cli {
    /// Data directory.
    #[arg(long, default_value = "./portlog-data", global = true)]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50051")]
    listen: String,
    /// TOML configuration file (tables `[log]`, `[registry]` and `[server]`: see docs/grpc.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// TLS certificate (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA whose client certificates are accepted (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Bearer tokens and roles (TOML).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Allow a non-loopback address without tokens.
    #[arg(long)]
    insecure: bool,
    /// Serve Prometheus metrics (plain HTTP, `GET /metrics`) on this address; overrides
    /// `[server] metrics_listen`.
    #[arg(long)]
    metrics_listen: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read every record of the data directory, verifying every checksum and the audit trail's
    /// hash chain; exit 1 on damage or on an edited, deleted or inserted audit entry.
    Verify,
}

fn check_listen(cli: &Cli) -> Result<SocketAddr> {
    let addr: SocketAddr = cli
        .listen
        .parse()
        .with_context(|| format!("--listen {:?} is not an address like 127.0.0.1:50051", cli.listen))?;
    if !addr.ip().is_loopback() && cli.tokens.is_none() && !cli.insecure {
        bail!(
            "refusing to listen on {addr} without --tokens: open access is allowed only on a loopback address (pass --insecure to override)"
        );
    }
    Ok(addr)
}

/// Opens the engine in `dir`: the message log at its top (`MANIFEST`, `log/`, as before the
/// registry existed, so older data directories open unchanged) and the registry in `registry/`.
fn open_engine(dir: &Path, cfg: &config::FileConfig, clock: SharedClock) -> Result<Engine> {
    Engine::open(dir, cfg.engine(), clock).with_context(|| format!("opening {}", dir.display()))
}

fn verify(log: &Log) -> Result<bool> {
    let mut ok = true;
    for (path, err) in &log.recovery().damaged {
        println!("damaged segment {}: {err}", path.display());
        ok = false;
    }
    let mut records = 0u64;
    for s in 0..log.shard_count() {
        for r in log.scan_shard(s, i64::MIN, i64::MAX)? {
            match r {
                Ok(_) => records += 1,
                Err(e) => {
                    println!("shard {s}: {e}");
                    ok = false;
                    break;
                }
            }
        }
    }
    let st = log.stats();
    let r = log.recovery();
    println!(
        "verified {records} records in {} sealed and {} open segments; {} torn-tail bytes cut at open; {} journal frames ({} records) replayed after its checkpoint",
        st.sealed_segments,
        st.open_segments,
        r.bytes_cut,
        r.journal_frames,
        r.journal_records
    );
    Ok(ok)
}

/// Verifies the audit trail's hash chain (`Registry::audit_verify`); prints what was verified,
/// or the seq of the first bad entry and what is wrong with it. False on a failure.
fn verify_audit(registry: &Registry) -> Result<bool> {
    let r = registry.audit_verify()?;
    if let Some(f) = &r.failure {
        println!("{f}");
        println!("audit: {} entries verified before seq {}", r.entries, f.seq);
        return Ok(false);
    }
    let mut line = format!("audit: verified {} audit entries", r.entries);
    if let (Some(first), Some(last)) = (r.first_seq, r.last_seq) {
        line.push_str(&format!(" (seq {first}..={last})"));
    }
    if let Some(a) = r.anchor_seq {
        line.push_str(&format!(", chained from retention's anchor at seq {a}"));
    }
    if r.legacy > 0 {
        line.push_str(&format!(
            "; unchained legacy entries: {} (written before the hash chain, not verifiable)",
            r.legacy
        ));
    }
    if let Some(h) = &r.head {
        line.push_str(&format!("; head {h}"));
    }
    println!("{line}");
    Ok(true)
}

fn run() -> Result<i32> {
    // Before any thread starts: writers free what request workers allocated (engine/src/alloc.rs).
    let fast_bins_off = portlog_engine::alloc::disable_malloc_fast_bins();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    tracing::debug!(fast_bins_off, "malloc fast bins");
    let cfg = config::load(cli.config.as_deref())?;
    let clock: SharedClock = Arc::new(SystemClock);
    if let Some(Command::Verify) = cli.command {
        let engine = open_engine(&cli.data_dir, &cfg, clock)?;
        let ok = verify(engine.log())?;
        let audit_ok = verify_audit(engine.registry())?;
        let rs = engine.registry().stats();
        println!(
            "registry: {} providers, {} assignments, {} rejects (RocksDB verifies its own checksums when read)",
            rs.providers, rs.assignments, rs.rejects
        );
        engine.close();
        return Ok(if ok && audit_ok { 0 } else { 1 });
    }
    let addr = check_listen(&cli)?;
    let tokens = cli.tokens.as_deref().map(auth::Tokens::load).transpose()?;
    let tls = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => {
            Some(serve::TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: cli.tls_client_ca.clone() })
        }
        _ => None,
    };
    let metrics_addr = cli.metrics_listen.clone().unwrap_or_else(|| cfg.server.metrics_listen.clone());
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} (--listen)"))?;
    let metrics_listener = if metrics_addr.is_empty() {
        None
    } else {
        let a: SocketAddr = metrics_addr
            .parse()
            .with_context(|| format!("--metrics-listen {metrics_addr:?} is not an address like 127.0.0.1:9464"))?;
        Some(std::net::TcpListener::bind(a).with_context(|| format!("cannot listen on {a} (--metrics-listen)"))?)
    };
    let engine = open_engine(&cli.data_dir, &cfg, clock.clone())?;
    tracing::info!(data_dir = %cli.data_dir.display(), tokens = tokens.as_ref().map_or(0, |t| t.len()), "data directory open");
    // Background threads (the engine's, RocksDB's) step aside for tokio's workers, which this
    // thread starts next and which inherit its priority; the coarse clock keeps its own.
    priority::set_background_nice(cfg.server.background_nice);
    let moved = priority::lower_existing_threads(&["portlog-clock"]);
    tracing::debug!(threads = moved, nice_steps = cfg.server.background_nice, "background threads lowered");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let opts = serve::Options { listener, metrics_listener, tls, tokens, cfg: cfg.server };
    rt.block_on(serve::run(engine, clock, opts))?;
    Ok(0)
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("portlog-server: error: {e:#}");
            std::process::exit(2);
        }
    }
}
