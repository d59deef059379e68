//! The command line of `portlog` (shared/cli.md).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "portlog", version, about = "Command-line client of the portlog daemon")]
pub struct Cli {
    /// The daemon's URL (https:// for TLS).
    #[arg(long, env = "PORTLOG_ENDPOINT", default_value = "http://127.0.0.1:50051", global = true)]
    pub endpoint: String,
    /// Bearer token (see the daemon's --tokens file).
    #[arg(long, env = "PORTLOG_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Machine-readable output: one JSON object, or JSON lines.
    #[arg(long, global = true)]
    pub json: bool,
    /// CA certificate (PEM) to trust for an https:// endpoint (e.g. a self-signed server).
    #[arg(long, env = "PORTLOG_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM), for a daemon started with --tls-client-ca.
    #[arg(long, global = true, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, global = true, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Give up on a call after this many seconds (0: no deadline).
    #[arg(long, global = true, default_value_t = 0)]
    pub timeout_s: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The port ledger: providers and assignments.
    #[command(subcommand)]
    Ledger(LedgerCmd),
    /// Append JSON-lines messages from FILE (or - for standard input).
    Ingest(IngestArgs),
    /// May this sub-port send to this number now? Exit 0 allowed, 1 denied.
    Check(CheckArgs),
    /// A number's messages in time order, both directions, all sub-ports.
    Trace(TraceArgs),
    /// The reject registry.
    #[command(subcommand)]
    Reject(RejectCmd),
    /// Consent records.
    #[command(subcommand)]
    Consent(ConsentCmd),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Records, segments, bytes on disk, bytes per message, rejects, assignments, oldest record.
    Stats,
    /// Retention.
    #[command(subcommand)]
    Retention(RetentionCmd),
    /// Ledger inspection findings.
    Inspect(InspectArgs),
    /// Disk needed for M months of retention at a message rate.
    Capacity(CapacityArgs),
}

#[derive(Subcommand, Debug)]
pub enum LedgerCmd {
    /// Content providers.
    #[command(subcommand)]
    Provider(ProviderCmd),
    /// Put a sub-port under a provider's contract.
    Assign(AssignArgs),
    /// End the assignment in force at T.
    End(EndArgs),
    /// The assignment in force and the history of a sub-port.
    Show(SubPortArg),
}

#[derive(Subcommand, Debug)]
pub enum ProviderCmd {
    /// Register or update a content provider.
    Add(ProviderArgs),
}

#[derive(Args, Debug)]
pub struct ProviderArgs {
    /// Provider id.
    #[arg(long)]
    pub id: String,
    /// Registered name.
    #[arg(long)]
    pub name: String,
    /// A registered signature (repeat for full name, short name, trademark).
    #[arg(long = "signature")]
    pub signatures: Vec<String>,
    /// Fraud-linked provider: its sub-ports are denied.
    #[arg(long)]
    pub blacklisted: bool,
    /// Life-safety, emergency or government sender.
    #[arg(long)]
    pub whitelisted: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum UsageArg {
    /// 商业性.
    Commercial,
    /// 业务管理和服务类.
    Service,
    /// 公益性.
    Public,
}

#[derive(Args, Debug)]
pub struct AssignArgs {
    /// Sub-port (digits).
    #[arg(long)]
    pub sub_port: String,
    /// Provider id.
    #[arg(long)]
    pub provider: String,
    /// Usage under this contract.
    #[arg(long, value_enum)]
    pub usage: UsageArg,
    /// Contract start (RFC 3339 or ms since the epoch).
    #[arg(long)]
    pub from: String,
    /// Contract end, exclusive (RFC 3339 or ms since the epoch).
    #[arg(long)]
    pub to: String,
    /// Commercial SMS need a consent record per number.
    #[arg(long)]
    pub consent_required: bool,
}

#[derive(Args, Debug)]
pub struct EndArgs {
    /// Sub-port (digits).
    #[arg(long)]
    pub sub_port: String,
    /// When the assignment stops (RFC 3339 or ms since the epoch).
    #[arg(long)]
    pub at: String,
}

#[derive(Args, Debug)]
pub struct SubPortArg {
    /// Sub-port (digits).
    #[arg(long)]
    pub sub_port: String,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// JSON-lines file, or - for standard input.
    pub file: String,
    /// Messages per streamed chunk.
    #[arg(long, default_value_t = 1000)]
    pub chunk: usize,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Sub-port (digits).
    #[arg(long)]
    pub sub_port: String,
    /// Recipient's number.
    #[arg(long)]
    pub number: String,
    /// Usage of the message.
    #[arg(long, value_enum, default_value = "commercial")]
    pub usage: UsageArg,
    /// Message text: the content rules are checked too.
    #[arg(long)]
    pub text: Option<String>,
    /// When it would be sent (default now).
    #[arg(long)]
    pub at: Option<String>,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// The user's number.
    #[arg(long)]
    pub number: String,
    /// Window start, inclusive (RFC 3339 or ms since the epoch).
    #[arg(long)]
    pub from: Option<String>,
    /// Window end, exclusive (RFC 3339 or ms since the epoch).
    #[arg(long)]
    pub to: Option<String>,
    /// Only this sub-port.
    #[arg(long)]
    pub sub_port: Option<String>,
    /// Only MT (sent to the user) or only MO (sent by the user) messages.
    #[arg(long, value_enum)]
    pub direction: Option<DirArg>,
    /// At most this many messages (the first ones in time order).
    #[arg(long)]
    pub limit: Option<u64>,
}

/// A message direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirArg {
    /// Mobile-terminated: the sub-port sent it.
    Mt,
    /// Mobile-originated: the user sent it.
    Mo,
}

#[derive(Subcommand, Debug)]
pub enum RejectCmd {
    /// Register a reject from another channel (complaint, web form).
    Add(RejectAddArgs),
    /// Rejects of a sub-port's assignment, or every reject of a number.
    List(RejectListArgs),
    /// Bulk import of a sub-port's rejects from a file (all or nothing; bad rows named by line).
    Import(RejectImportArgs),
    /// Write a sub-port's rejects as a file that `reject import` reads back.
    Export(RejectExportArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// `number,at,source,text` with a header line.
    Csv,
    /// One JSON object per line: `{"number","at","source","text"}`.
    Jsonl,
}

#[derive(Args, Debug)]
pub struct RejectImportArgs {
    /// Sub-port (digits): the rejects go to its assignment in force (or --assignment).
    #[arg(long)]
    pub sub_port: String,
    /// An assignment id of the sub-port.
    #[arg(long)]
    pub assignment: Option<u64>,
    /// The file's format (default: csv for a .csv file, else jsonl).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// The file, or - for standard input.
    pub file: String,
}

#[derive(Args, Debug)]
pub struct RejectExportArgs {
    /// Sub-port (digits): the rejects of its assignment in force (or --assignment).
    #[arg(long)]
    pub sub_port: String,
    /// An assignment id of the sub-port.
    #[arg(long)]
    pub assignment: Option<u64>,
    /// The file's format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: FileFormat,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RejectAddArgs {
    /// Sub-port (digits).
    #[arg(long)]
    pub sub_port: String,
    /// The user's number.
    #[arg(long)]
    pub number: String,
    /// Since when (default now).
    #[arg(long)]
    pub at: Option<String>,
    /// A note kept as evidence (complaint reference).
    #[arg(long, default_value = "")]
    pub text: String,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["sub_port", "number"])))]
pub struct RejectListArgs {
    /// Sub-port (digits): the rejects of its assignment in force (or --assignment).
    #[arg(long, conflicts_with = "number")]
    pub sub_port: Option<String>,
    /// An assignment id of the sub-port.
    #[arg(long, requires = "sub_port")]
    pub assignment: Option<u64>,
    /// A number: every reject it made that is still kept.
    #[arg(long)]
    pub number: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConsentCmd {
    /// Record a consent.
    Add(ConsentArgs),
    /// Record a withdrawal.
    Withdraw(ConsentArgs),
}

#[derive(Args, Debug)]
pub struct ConsentArgs {
    /// Sub-port (digits).
    #[arg(long)]
    pub sub_port: String,
    /// The user's number.
    #[arg(long)]
    pub number: String,
    /// Evidence (form reference, recording, web log line).
    #[arg(long)]
    pub evidence: String,
    /// When it takes effect (default now).
    #[arg(long)]
    pub at: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Who traced what, when.
    List(WindowArgs),
}

#[derive(Args, Debug)]
pub struct WindowArgs {
    /// Window start, inclusive (RFC 3339 or ms since the epoch).
    #[arg(long)]
    pub from: Option<String>,
    /// Window end, exclusive (RFC 3339 or ms since the epoch).
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RetentionCmd {
    /// Expire now what is past retention.
    Run {
        /// Report what would go; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// The server's clock has been checked: act even if it is far ahead of the last run,
        /// as long as it reads at most this instant (RFC 3339 or ms since the epoch).
        #[arg(long)]
        confirm_clock_until: Option<String>,
    },
    /// Every recorded run, oldest first.
    History,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Per {
    /// Per second.
    S,
    /// Per minute.
    Min,
    /// Per hour.
    H,
    /// Per day.
    Day,
}

#[derive(Args, Debug)]
pub struct CapacityArgs {
    /// Messages per --per.
    #[arg(long)]
    pub rate: f64,
    /// Unit of --rate.
    #[arg(long, value_enum, default_value = "s")]
    pub per: Per,
    /// Retention in calendar months (UTC+8), as the server's `[retention] months`.
    #[arg(long, default_value_t = 5)]
    pub months: u32,
    /// Bytes per message of sealed segments, indexes included (default: the server's measured
    /// figure, else the documented default, docs/capacity.md). Given, the server is not asked.
    #[arg(long)]
    pub bytes_per_message: Option<f64>,
    /// Bytes per message of open (not yet sealed) segments: the current day's uncompressed
    /// rows (default: the server's measured figure, else the documented default).
    #[arg(long)]
    pub open_bytes_per_message: Option<f64>,
    /// First day of traffic: a date (YYYY-MM-DD, UTC+8), RFC 3339 or ms since the epoch (default:
    /// today, UTC+8).
    #[arg(long)]
    pub start: Option<String>,
    /// Also write the disk-use chart, an SVG, to this file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}
