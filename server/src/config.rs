//! The daemon's TOML configuration file: `[log]` is the engine's [`LogConfig`], `[registry]` its
//! [`RegistryConfig`] (reject keywords, sync, import and note limits), `[retention]` its
//! [`RetentionConfig`] (months, schedule, clock safety, what is purged), `[encryption]` its
//! [`EncryptionConfig`] (the key file), `[server]` the gRPC limits below. Every field has a default (the embedded default) and its unit in its name.

use anyhow::{bail, Context, Result};
use portlog_engine::{EncryptionConfig, EngineConfig, LogConfig, RegistryConfig, RetentionConfig};
use serde::Deserialize;
use std::path::Path;

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// The message log.
    pub log: LogConfig,
    /// The ledger and reject registry.
    pub registry: RegistryConfig,
    /// Retention of the log, rejects and consent.
    pub retention: RetentionConfig,
    /// Encryption at rest (`key_file`).
    pub encryption: EncryptionConfig,
    /// The gRPC server.
    pub server: ServerConfig,
}

impl FileConfig {
    /// The engine's part (`[log]`, `[registry]`, `[retention]` and `[encryption]`).
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            log: self.log.clone(),
            registry: self.registry.clone(),
            retention: self.retention.clone(),
            encryption: self.encryption.clone(),
        }
    }
}

/// Limits and settings of the gRPC server (`[server]` table).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest gRPC message received or sent, in bytes (default 16 MiB).
    pub message_bytes_max: usize,
    /// Most calls in progress at once (streams included); one more is answered
    /// RESOURCE_EXHAUSTED at once (default 256).
    pub concurrent_calls_max: usize,
    /// Most messages one client or bidirectional stream may send (ingest chunks, check stream
    /// requests) before the call is ended with RESOURCE_EXHAUSTED (default 1,000,000).
    pub stream_messages_max: u64,
    /// Most messages in one ingest chunk (default 10,000).
    pub ingest_chunk_messages_max: usize,
    /// Most refused messages listed in one ingest reply (all are counted; default 100,000).
    pub ingest_errors_max: usize,
    /// Ingest chunks queued for durability at once per call; more waits (default 8).
    pub ingest_chunks_in_flight_max: usize,
    /// Most records one trace call returns; past it the call ends RESOURCE_EXHAUSTED naming the
    /// limit (default 1,000,000).
    pub trace_records_max: u64,
    /// Records per streamed trace chunk (default 512).
    pub trace_chunk_records: usize,
    /// Most items in one check batch or check stream request (default 10,000).
    pub batch_items_max: usize,
    /// Most bytes of one reject import (`Rejects.Import`); past it the call ends
    /// RESOURCE_EXHAUSTED and nothing is imported (default 512 MiB).
    pub import_bytes_max: u64,
    /// Server-side cap on any call's duration, in ms; 0: only the client's deadline
    /// (`grpc-timeout`) applies (default 0).
    pub call_timeout_ms: u64,
    /// How long shutdown waits for calls in progress, in ms; past it the daemon closes the
    /// engine anyway (default 20,000).
    pub shutdown_grace_ms: u64,
    /// Address of the Prometheus metrics endpoint (plain HTTP, `GET /metrics`); empty: none.
    /// The `--metrics-listen` flag overrides it.
    pub metrics_listen: String,
    /// Steps of nice value (0..=19) between tokio's workers, which answer checks, and every
    /// background thread: the engine's writers and sealers, RocksDB's jobs, the blocking pool
    /// (ingest, traces, imports). 0: all at the daemon's own priority (default 10; see
    /// `priority.rs`).
    pub background_nice: i32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            message_bytes_max: 16 << 20,
            concurrent_calls_max: 256,
            stream_messages_max: 1_000_000,
            ingest_chunk_messages_max: 10_000,
            ingest_errors_max: 100_000,
            ingest_chunks_in_flight_max: 8,
            trace_records_max: 1_000_000,
            trace_chunk_records: 512,
            batch_items_max: 10_000,
            import_bytes_max: 512 << 20,
            call_timeout_ms: 0,
            shutdown_grace_ms: 20_000,
            metrics_listen: String::new(),
            background_nice: 10,
        }
    }
}

impl ServerConfig {
    /// Checks that every value is usable; names the first one that is not.
    pub fn validate(&self) -> Result<()> {
        if !(0..=19).contains(&self.background_nice) {
            bail!("[server] background_nice must be 0..=19 (steps of nice value for background threads)");
        }
        if self.message_bytes_max < 64 << 10 || self.message_bytes_max > 1 << 30 {
            bail!("[server] message_bytes_max must be 64 KiB..=1 GiB");
        }
        for (name, v) in [
            ("concurrent_calls_max", self.concurrent_calls_max),
            ("ingest_chunk_messages_max", self.ingest_chunk_messages_max),
            ("ingest_chunks_in_flight_max", self.ingest_chunks_in_flight_max),
            ("trace_chunk_records", self.trace_chunk_records),
            ("batch_items_max", self.batch_items_max),
        ] {
            if v == 0 {
                bail!("[server] {name} must be positive");
            }
        }
        if self.stream_messages_max == 0 || self.trace_records_max == 0 || self.import_bytes_max == 0 {
            bail!("[server] stream_messages_max, trace_records_max and import_bytes_max must be positive");
        }
        Ok(())
    }
}

/// Reads the configuration file; the embedded default when there is none.
pub fn load(path: Option<&Path>) -> Result<FileConfig> {
    let Some(p) = path else { return Ok(FileConfig::default()) };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
    let cfg: FileConfig = toml::from_str(&text).with_context(|| format!("config file {}", p.display()))?;
    cfg.server.validate().with_context(|| format!("config file {}", p.display()))?;
    cfg.log.validate().with_context(|| format!("config file {}: [log]", p.display()))?;
    cfg.registry.validate().with_context(|| format!("config file {}: [registry]", p.display()))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_encryption_table_names_the_key_file_and_refuses_unknown_keys() {
        let cfg: FileConfig = toml::from_str("[encryption]\nkey_file = \"/etc/portlog/keys\"\n").unwrap();
        assert_eq!(cfg.engine().encryption.key_file.as_deref(), Some(Path::new("/etc/portlog/keys")));
        assert!(FileConfig::default().engine().encryption.key_file.is_none());
        let e = toml::from_str::<FileConfig>("[encryption]\nkey = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
