//! `portlog-server`: the portlog daemon (see `shared/cli.md`, "Daemon").
//!
//! This build opens and recovers the data directory, enforces the listening rules of the
//! contract, and runs until SIGINT/SIGTERM, closing the engine cleanly. The gRPC services are
//! not served yet (they arrive with the server issue); `verify` checks a data directory offline.

#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use portlog_engine::{Log, LogConfig, SystemClock};
use serde::Deserialize;
use std::net::SocketAddr;
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
    /// TOML configuration file (section `[log]`: see docs/operations.md).
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read every record of the data directory, verifying every checksum; exit 1 on damage.
    Verify,
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    /// The message log.
    log: LogConfig,
}

fn load_config(path: Option<&PathBuf>) -> Result<FileConfig> {
    let Some(p) = path else { return Ok(FileConfig::default()) };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", p.display()))
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
    println!(
        "verified {records} records in {} sealed and {} open segments; {} torn-tail bytes cut at open",
        st.sealed_segments,
        st.open_segments,
        log.recovery().bytes_cut
    );
    Ok(ok)
}

fn run() -> Result<i32> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = load_config(cli.config.as_ref())?;
    if let Some(Command::Verify) = cli.command {
        let log = Log::open(&cli.data_dir, cfg.log, Arc::new(SystemClock))
            .with_context(|| format!("opening {}", cli.data_dir.display()))?;
        let ok = verify(&log)?;
        log.close();
        return Ok(if ok { 0 } else { 1 });
    }
    let addr = check_listen(&cli)?;
    if cli.tls_cert.is_some() || cli.tokens.is_some() {
        bail!("TLS and tokens are accepted by the command line but not implemented in this build");
    }
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .context("installing signal handlers")?;
    let log = Log::open(&cli.data_dir, cfg.log, Arc::new(SystemClock))
        .with_context(|| format!("opening {}", cli.data_dir.display()))?;
    let st = log.stats();
    tracing::info!(
        data_dir = %cli.data_dir.display(),
        %addr,
        records = st.records,
        sealed_segments = st.sealed_segments,
        open_segments = st.open_segments,
        "portlog-server ready (engine only: the gRPC services are not part of this build yet)"
    );
    let sig = signals.forever().next();
    tracing::info!(signal = ?sig, "shutting down: finishing queued appends and seals");
    log.close();
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
