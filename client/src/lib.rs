//! `portlog-client`: the gRPC types of `proto/portlog/v1/` (module [`proto`]) and an async,
//! typed Rust client ([`Client`]) for the `portlog-server` daemon. The `portlog` command-line
//! tool of this crate is built on it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), portlog_client::ClientError> {
//! use portlog_client::{proto, Client};
//! let client = Client::connect("http://127.0.0.1:50051", Some("a-long-random-secret".into()), None).await?;
//! let stats = client.stats().await?;
//! println!("{} records", stats.records);
//! let mut trace = client.trace(proto::TraceRequest { number: "13800138000".into(), ..Default::default() }).await?;
//! while let Some(chunk) = trace.message().await? {
//!     for m in chunk.messages { println!("{} {}", m.ts_ms, m.text); }
//! }
//! # Ok(()) }
//! ```
//!
//! A [`Client`] is cheap to clone and every clone shares one HTTP/2 connection (calls are
//! multiplexed on it). For the check path, prefer [`Client::check_batch`] or the
//! bidirectional [`proto::check_client::CheckClient::check_stream`] over many unary calls.

#![forbid(unsafe_code)]

pub mod capacity;
pub mod ingest_parse;

use std::path::PathBuf;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

/// The generated types and stubs of package `portlog.v1`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod proto {
    tonic::include_proto!("portlog.v1");

    /// The encoded file descriptor set of package `portlog.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("portlog_v1_descriptor");
}

/// What can go wrong when connecting.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint URL is malformed.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The URL given.
        endpoint: String,
        /// Why it is refused.
        reason: String,
    },
    /// The token cannot be sent in a header.
    #[error("invalid token: it must be printable ASCII")]
    Token,
    /// A TLS file could not be read.
    #[error("reading {what} {}: {source}", path.display())]
    TlsFile {
        /// Which option (`--ca-cert`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server could not be reached (or the TLS handshake failed).
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// The URL.
        endpoint: String,
        /// The transport's explanation.
        reason: String,
    },
    /// A call failed.
    #[error(transparent)]
    Status(#[from] Status),
}

/// TLS settings of a connection (an `https://` endpoint).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// A CA certificate (PEM) to trust besides none: required for a self-signed server.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM), for servers started with `--tls-client-ca`.
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub client_key: Option<PathBuf>,
    /// Server name to verify, when it differs from the endpoint's host.
    pub domain: Option<String>,
}

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Debug, Clone)]
pub struct Auth {
    header: Option<AsciiMetadataValue>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

/// The channel type of the generated stubs returned by [`Client`].
pub type AuthChannel = InterceptedService<Channel, Auth>;

/// A connection to a `portlog-server`, with its bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    auth: Auth,
    message_bytes_max: usize,
}

/// Default largest message sent or received by the client, in bytes (the server's default).
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

fn read(what: &'static str, p: &PathBuf) -> Result<Vec<u8>, ClientError> {
    std::fs::read(p).map_err(|source| ClientError::TlsFile { what, path: p.clone(), source })
}

impl Client {
    /// Connects to `endpoint` (`http://host:port`, or `https://…` with `tls`), sending `token`
    /// as a bearer token on every call.
    pub async fn connect(
        endpoint: &str,
        token: Option<String>,
        tls: Option<TlsOptions>,
    ) -> Result<Client, ClientError> {
        let bad = |reason: String| ClientError::Endpoint { endpoint: endpoint.to_string(), reason };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(bad("it must start with http:// or https://".into()));
        }
        let mut ep = Endpoint::from_shared(endpoint.to_string()).map_err(|e| bad(e.to_string()))?;
        if endpoint.starts_with("https://") || tls.is_some() {
            let t = tls.unwrap_or_default();
            let mut cfg = ClientTlsConfig::new();
            if let Some(ca) = &t.ca_cert {
                cfg = cfg.ca_certificate(Certificate::from_pem(read("--ca-cert", ca)?));
            }
            if let (Some(c), Some(k)) = (&t.client_cert, &t.client_key) {
                cfg = cfg.identity(Identity::from_pem(read("--client-cert", c)?, read("--client-key", k)?));
            }
            if let Some(d) = &t.domain {
                cfg = cfg.domain_name(d.clone());
            }
            ep = ep.tls_config(cfg).map_err(|e| bad(format!("TLS: {e}")))?;
        }
        let channel = ep
            .connect()
            .await
            .map_err(|e| ClientError::Connect { endpoint: endpoint.to_string(), reason: error_chain(&e) })?;
        let header = match token {
            Some(t) => Some(format!("Bearer {t}").parse::<AsciiMetadataValue>().map_err(|_| ClientError::Token)?),
            None => None,
        };
        Ok(Client { channel, auth: Auth { header }, message_bytes_max: MESSAGE_BYTES_MAX })
    }

    fn ch(&self) -> AuthChannel {
        InterceptedService::new(self.channel.clone(), self.auth.clone())
    }

    /// The Check service's stub.
    pub fn check_client(&self) -> proto::check_client::CheckClient<AuthChannel> {
        let n = self.message_bytes_max;
        proto::check_client::CheckClient::new(self.ch()).max_decoding_message_size(n).max_encoding_message_size(n)
    }

    /// The Ingest service's stub.
    pub fn ingest_client(&self) -> proto::ingest_client::IngestClient<AuthChannel> {
        let n = self.message_bytes_max;
        proto::ingest_client::IngestClient::new(self.ch()).max_decoding_message_size(n).max_encoding_message_size(n)
    }

    /// The Trace service's stub.
    pub fn trace_client(&self) -> proto::trace_client::TraceClient<AuthChannel> {
        let n = self.message_bytes_max;
        proto::trace_client::TraceClient::new(self.ch()).max_decoding_message_size(n).max_encoding_message_size(n)
    }

    /// The Ledger service's stub.
    pub fn ledger_client(&self) -> proto::ledger_client::LedgerClient<AuthChannel> {
        proto::ledger_client::LedgerClient::new(self.ch())
    }

    /// The Rejects service's stub.
    pub fn rejects_client(&self) -> proto::rejects_client::RejectsClient<AuthChannel> {
        proto::rejects_client::RejectsClient::new(self.ch())
    }

    /// The Consent service's stub.
    pub fn consent_client(&self) -> proto::consent_client::ConsentClient<AuthChannel> {
        proto::consent_client::ConsentClient::new(self.ch())
    }

    /// The Audit service's stub.
    pub fn audit_client(&self) -> proto::audit_client::AuditClient<AuthChannel> {
        proto::audit_client::AuditClient::new(self.ch())
    }

    /// The Stats service's stub.
    pub fn stats_client(&self) -> proto::stats_client::StatsClient<AuthChannel> {
        proto::stats_client::StatsClient::new(self.ch())
    }

    /// The Retention service's stub.
    pub fn retention_client(&self) -> proto::retention_client::RetentionClient<AuthChannel> {
        proto::retention_client::RetentionClient::new(self.ch())
    }

    /// The Inspect service's stub.
    pub fn inspect_client(&self) -> proto::inspect_client::InspectClient<AuthChannel> {
        proto::inspect_client::InspectClient::new(self.ch())
    }

    /// One check.
    pub async fn check(&self, req: proto::CheckRequest) -> Result<proto::CheckReply, Status> {
        Ok(self.check_client().check(req).await?.into_inner())
    }

    /// Many checks in one call; the answers in request order.
    pub async fn check_batch(&self, checks: Vec<proto::CheckRequest>) -> Result<Vec<proto::CheckReply>, Status> {
        let req = proto::CheckBatchRequest { request_id: 0, checks };
        Ok(self.check_client().check_batch(req).await?.into_inner().results)
    }

    /// Appends chunks of messages; the reply comes once all accepted ones are durable.
    pub async fn ingest(
        &self,
        chunks: impl tokio_stream::Stream<Item = proto::IngestRequest> + Send + 'static,
    ) -> Result<proto::IngestReply, Status> {
        Ok(self.ingest_client().append(chunks).await?.into_inner())
    }

    /// A number's messages, as a stream of chunks in time order.
    pub async fn trace(&self, req: proto::TraceRequest) -> Result<tonic::Streaming<proto::TraceChunk>, Status> {
        Ok(self.trace_client().trace(req).await?.into_inner())
    }

    /// The server's figures.
    pub async fn stats(&self) -> Result<proto::StatsReply, Status> {
        Ok(self.stats_client().get(proto::StatsRequest {}).await?.into_inner())
    }
}

/// An error and its sources on one line (`a: b: c`).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
