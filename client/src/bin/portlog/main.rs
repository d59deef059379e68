//! `portlog`: the command-line client of the portlog daemon (shared/cli.md).
//!
//! Exit status: 0 success (for `check`: allowed); 1 `check` denied or `ingest` with bad lines;
//! 2 any error, with a message on stderr naming what is wrong.

#![forbid(unsafe_code)]

mod args;
mod capacity;
mod ingest;
mod out;

use args::{Cli, Command};
use clap::Parser;
use portlog_client::{proto, Client, ClientError, TlsOptions};
use portlog_engine::time::{parse_time_ms, rfc3339_utc8};
use serde_json::{json, Value};
use std::time::Duration;
use tonic::{Code, Status};

/// A failure to report on stderr with exit status 2.
struct Fail(String);

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Status(st) => Fail(describe(&st)),
            other => Fail(other.to_string()),
        }
    }
}

impl From<Status> for Fail {
    fn from(st: Status) -> Self {
        Fail(describe(&st))
    }
}

/// A status as a message naming what is wrong.
fn describe(st: &Status) -> String {
    let msg = st.message();
    match st.code() {
        Code::Unauthenticated => format!("not authenticated: {msg} (pass --token or set PORTLOG_TOKEN)"),
        Code::PermissionDenied => format!("permission denied: {msg}"),
        Code::Unimplemented => format!("not available on this server yet: {msg}"),
        Code::Unavailable => format!("server unavailable: {msg}"),
        Code::DeadlineExceeded => format!("deadline exceeded: {msg}"),
        Code::ResourceExhausted => format!("server limit reached: {msg}"),
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition => msg.to_string(),
        c => format!("{c:?}: {msg}"),
    }
}

fn time_arg(flag: &str, v: &str) -> Result<i64, Fail> {
    parse_time_ms(v).map_err(|e| Fail(format!("invalid {flag}: {e}")))
}

fn opt_time(flag: &str, v: Option<&String>) -> Result<Option<i64>, Fail> {
    v.map(|s| time_arg(flag, s)).transpose()
}

fn ts_json(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::String(rfc3339_utc8(ms))
    }
}

/// A retention report: cli.md's four keys first, then the rest of the report.
fn retention_json(r: &proto::RetentionReply) -> Value {
    json!({"segments_deleted": r.segments_deleted, "records_deleted": r.records_deleted,
           "bytes_freed": r.bytes_freed, "rejects_purged": r.rejects_purged, "consents_purged": r.consents_purged,
           "dry_run": r.dry_run, "seq": r.seq, "trigger": r.trigger, "at": ts_json(r.now_ms),
           "cutoff": ts_json(r.cutoff_ms), "months": r.months, "oldest_record": r.oldest_record_ms.map(ts_json),
           "open_segments_sealed": r.open_segments_sealed, "duration_us": r.duration_us, "warnings": r.warnings,
           "refused": if r.refused.is_empty() { Value::Null } else { r.refused.clone().into() }})
}

fn usage_proto(u: args::UsageArg) -> i32 {
    (match u {
        args::UsageArg::Commercial => proto::Usage::Commercial,
        args::UsageArg::Service => proto::Usage::Service,
        args::UsageArg::Public => proto::Usage::Public,
    }) as i32
}

fn usage_json(u: i32) -> Value {
    match proto::Usage::try_from(u) {
        Ok(proto::Usage::Commercial) => "commercial".into(),
        Ok(proto::Usage::Service) => "service".into(),
        Ok(proto::Usage::Public) => "public".into(),
        _ => Value::Null,
    }
}

fn reason_json(r: i32) -> Value {
    let name = proto::DenyReason::try_from(r).map(|r| r.as_str_name()).unwrap_or("");
    match name.strip_prefix("DENY_REASON_") {
        Some("UNSPECIFIED") | None => Value::Null,
        Some(n) => n.to_ascii_lowercase().into(),
    }
}

fn provider_json(p: &proto::Provider) -> Value {
    json!({"id": p.id, "name": p.name, "signatures": p.signatures, "blacklisted": p.blacklisted,
           "whitelisted": p.whitelisted, "changed": ts_json(p.changed_ms)})
}

fn assignment_json(a: &proto::Assignment) -> Value {
    json!({"id": a.id, "sub_port": a.sub_port, "provider": a.provider_id, "usage": usage_json(a.usage),
           "from": ts_json(a.from_ms), "to": ts_json(a.to_ms), "consent_required": a.consent_required,
           "created": ts_json(a.created_ms)})
}

fn assignment_line(a: &proto::Assignment) -> String {
    format!(
        "{}: provider {}, {}, [{}, {}){}",
        a.id,
        a.provider_id,
        out::plain(&usage_json(a.usage)),
        rfc3339_utc8(a.from_ms),
        rfc3339_utc8(a.to_ms),
        if a.consent_required { ", consent required" } else { "" }
    )
}

fn event_json(e: &proto::LedgerEvent) -> Value {
    json!({"seq": e.seq, "at": ts_json(e.at_ms), "kind": e.kind,
           "provider": e.provider.as_ref().map_or(Value::Null, provider_json),
           "assignment": e.assignment.as_ref().map_or(Value::Null, assignment_json)})
}

fn file_format(f: args::FileFormat) -> proto::RejectFileFormat {
    match f {
        args::FileFormat::Csv => proto::RejectFileFormat::Csv,
        args::FileFormat::Jsonl => proto::RejectFileFormat::JsonLines,
    }
}

/// Bytes per streamed import chunk.
const IMPORT_CHUNK_BYTES: usize = 1 << 20;

async fn reject_import(
    json: bool,
    client: &Client,
    a: args::RejectImportArgs,
    timeout: Option<Duration>,
) -> Result<i32, Fail> {
    use std::io::Read;
    let format = a.format.unwrap_or(if a.file.to_ascii_lowercase().ends_with(".csv") {
        args::FileFormat::Csv
    } else {
        args::FileFormat::Jsonl
    });
    let mut input: Box<dyn Read + Send> = if a.file == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&a.file).map_err(|e| Fail(format!("cannot open {}: {e}", a.file)))?)
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<proto::ImportRequest>(4);
    let first = proto::ImportRequest {
        sub_port: a.sub_port,
        assignment_id: a.assignment.unwrap_or(0),
        format: file_format(format) as i32,
        data: Vec::new(),
    };
    let file = a.file.clone();
    // Reads the file in chunks. On a read error the reader keeps the stream open (it hands its
    // sender back) so that the call is cancelled rather than ended: a cancelled import imports
    // nothing, an ended one would import a truncated file.
    type Tx = tokio::sync::mpsc::Sender<proto::ImportRequest>;
    let mut reader = tokio::task::spawn_blocking(move || -> Result<(), (String, Tx)> {
        let mut first = Some(first);
        loop {
            let mut buf = vec![0u8; IMPORT_CHUNK_BYTES];
            let n = match input.read(&mut buf) {
                Ok(n) => n,
                Err(e) => return Err((format!("reading {file}: {e}; nothing was imported"), tx)),
            };
            buf.truncate(n);
            let msg = match first.take() {
                Some(f) => proto::ImportRequest { data: buf, ..f },
                None if n == 0 => return Ok(()),
                None => proto::ImportRequest { data: buf, ..Default::default() },
            };
            if tx.blocking_send(msg).is_err() || n == 0 {
                return Ok(());
            }
        }
    });
    let mut rc = client.rejects_client();
    let mut call = Box::pin(rc.import(request(tokio_stream::wrappers::ReceiverStream::new(rx), timeout)));
    let call = tokio::select! {
        c = &mut call => c,
        read = &mut reader => {
            match read.map_err(|e| Fail(format!("reading the input failed: {e}")))? {
                Ok(()) => call.await,
                Err((msg, tx)) => {
                    drop(call); // cancels the call while its stream is still open
                    drop(tx);
                    return Err(Fail(msg));
                }
            }
        }
    };
    let r = call?.into_inner();
    let v = json!({"assignment": r.assignment_id, "rows": r.rows, "registered": r.registered, "already": r.already});
    if json {
        out::object(true, &v);
    } else {
        println!(
            "imported {} rows into assignment {}: {} new rejects, {} already there",
            r.rows, r.assignment_id, r.registered, r.already
        );
    }
    Ok(0)
}

fn reject_json(r: &proto::Reject, full: bool) -> Value {
    if full {
        json!({"sub_port": r.sub_port, "assignment": r.assignment_id, "number": r.number, "at": ts_json(r.at_ms),
               "source": r.source, "text": r.text, "in_force": r.in_force})
    } else {
        json!({"number": r.number, "at": ts_json(r.at_ms), "source": r.source, "text": r.text})
    }
}

/// The deadline of every call (`--timeout-s`).
#[derive(Clone, Copy)]
struct Deadline(Option<Duration>);

impl Deadline {
    fn rq<T>(self, msg: T) -> tonic::Request<T> {
        request(msg, self.0)
    }
}

fn request<T>(msg: T, timeout: Option<Duration>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = timeout {
        r.set_timeout(t);
    }
    r
}

async fn run(cli: Cli) -> Result<i32, Fail> {
    let json = cli.json;
    // `capacity` works without a server when given the bytes per message.
    if let Command::Capacity(c) = &cli.command {
        if c.bytes_per_message.is_some() {
            return capacity::run(json, c, None);
        }
    }
    let tls = if cli.ca_cert.is_some() || cli.client_cert.is_some() || cli.endpoint.starts_with("https://") {
        Some(TlsOptions {
            ca_cert: cli.ca_cert.clone(),
            client_cert: cli.client_cert.clone(),
            client_key: cli.client_key.clone(),
            domain: None,
        })
    } else {
        None
    };
    let client = match Client::connect(&cli.endpoint, cli.token.clone(), tls).await {
        Ok(c) => c,
        Err(e) => {
            if let Command::Capacity(c) = &cli.command {
                eprintln!("portlog: {e}; using the default bytes per message");
                return capacity::run(json, c, None);
            }
            return Err(e.into());
        }
    };
    let timeout = (cli.timeout_s > 0).then(|| Duration::from_secs(cli.timeout_s));
    let dl = Deadline(timeout);
    match cli.command {
        Command::Ingest(a) => return run_ingest(json, &client, a, timeout).await,
        Command::Trace(a) => {
            let req = proto::TraceRequest {
                number: a.number,
                from_ms: opt_time("--from", a.from.as_ref())?,
                to_ms: opt_time("--to", a.to.as_ref())?,
                sub_port: a.sub_port.unwrap_or_default(),
                direction: match a.direction {
                    None => proto::Direction::Unspecified,
                    Some(args::DirArg::Mt) => proto::Direction::Mt,
                    Some(args::DirArg::Mo) => proto::Direction::Mo,
                } as i32,
                limit: a.limit,
            };
            let mut stream = client.trace_client().trace(dl.rq(req)).await?.into_inner();
            while let Some(chunk) = stream.message().await? {
                for m in chunk.messages {
                    let dir = if m.dir == proto::Direction::Mo as i32 { "mo" } else { "mt" };
                    out::line(
                        json,
                        &json!({"ts": rfc3339_utc8(m.ts_ms), "dir": dir, "sub_port": m.sub_port, "peer": m.peer,
                                "usage": usage_json(m.usage), "text": m.text}),
                    );
                }
            }
        }
        Command::Stats => {
            let s = client.stats_client().get(dl.rq(proto::StatsRequest {})).await?.into_inner();
            out::object(json, &stats_json(&s));
        }
        Command::Check(a) => {
            let req = proto::CheckRequest {
                sub_port: a.sub_port,
                number: a.number,
                usage: usage_proto(a.usage),
                at_ms: opt_time("--at", a.at.as_ref())?.unwrap_or(0),
                text: a.text.unwrap_or_default(),
                skip_since: false,
            };
            let r = client.check_client().check(dl.rq(req)).await?.into_inner();
            let v = json!({"allow": r.allow, "reason": reason_json(r.reason), "since": ts_json(r.since_ms)});
            if json {
                out::object(true, &v);
            } else if r.allow {
                println!("allowed (assignment {})", r.assignment_id);
            } else {
                let reason = out::plain(&v["reason"]);
                let since =
                    if r.since_ms == 0 { String::new() } else { format!(" since {}", rfc3339_utc8(r.since_ms)) };
                let under =
                    if r.assignment_id == 0 { String::new() } else { format!(" (assignment {})", r.assignment_id) };
                println!("denied: {reason}{since}{under}");
            }
            return Ok(if r.allow { 0 } else { 1 });
        }
        Command::Ledger(args::LedgerCmd::Provider(args::ProviderCmd::Add(p))) => {
            let req = proto::Provider {
                id: p.id,
                name: p.name,
                signatures: p.signatures,
                blacklisted: p.blacklisted,
                whitelisted: p.whitelisted,
                changed_ms: 0,
            };
            let p = client.ledger_client().add_provider(dl.rq(req)).await?.into_inner();
            out::object(json, &provider_json(&p));
        }
        Command::Ledger(args::LedgerCmd::Assign(a)) => {
            let req = proto::AssignRequest {
                sub_port: a.sub_port,
                provider_id: a.provider,
                usage: usage_proto(a.usage),
                from_ms: time_arg("--from", &a.from)?,
                to_ms: time_arg("--to", &a.to)?,
                consent_required: a.consent_required,
            };
            let a = client.ledger_client().assign(dl.rq(req)).await?.into_inner();
            out::object(json, &assignment_json(&a));
        }
        Command::Ledger(args::LedgerCmd::End(a)) => {
            let req = proto::EndRequest { sub_port: a.sub_port, at_ms: time_arg("--at", &a.at)? };
            let a = client.ledger_client().end(dl.rq(req)).await?.into_inner();
            out::object(json, &assignment_json(&a));
        }
        Command::Ledger(args::LedgerCmd::Show(a)) => {
            let r = client.ledger_client().show(dl.rq(proto::ShowRequest { sub_port: a.sub_port })).await?.into_inner();
            let history: Vec<Value> = r.history.iter().map(assignment_json).collect();
            let current = r.current.as_ref().map_or(Value::Null, assignment_json);
            let events: Vec<Value> = r.events.iter().map(event_json).collect();
            if json {
                out::object(
                    true,
                    &json!({"sub_port": r.sub_port, "current": current, "history": history, "events": events}),
                );
            } else {
                println!("sub-port {}", r.sub_port);
                match &r.current {
                    Some(a) => println!("in force: {}", assignment_line(a)),
                    None => println!("in force: none"),
                }
                println!("assignments:");
                for a in &r.history {
                    println!("  {}", assignment_line(a));
                }
                println!("changes:");
                for e in &r.events {
                    let what = e.assignment.as_ref().map_or_else(String::new, |a| format!("assignment {}", a.id));
                    println!("  #{} {} {} {what}", e.seq, rfc3339_utc8(e.at_ms), e.kind);
                }
            }
        }
        Command::Reject(args::RejectCmd::Add(a)) => {
            let req = proto::AddRejectRequest {
                sub_port: a.sub_port,
                number: a.number,
                at_ms: opt_time("--at", a.at.as_ref())?.unwrap_or(0),
                text: a.text,
            };
            let r = client.rejects_client().add(dl.rq(req)).await?.into_inner();
            let mut v = reject_json(&r, true);
            v["registered"] = r.registered.into();
            out::object(json, &v);
        }
        Command::Reject(args::RejectCmd::List(a)) => {
            let mut rc = client.rejects_client();
            let (mut stream, full) = match (a.sub_port, a.number) {
                (Some(sp), _) => {
                    let req = proto::ListBySubPortRequest { sub_port: sp, assignment_id: a.assignment.unwrap_or(0) };
                    (rc.list_by_sub_port(dl.rq(req)).await?.into_inner(), false)
                }
                (None, Some(n)) => {
                    (rc.list_by_number(dl.rq(proto::ListByNumberRequest { number: n })).await?.into_inner(), true)
                }
                (None, None) => return Err(Fail("reject list needs --sub-port or --number".into())),
            };
            while let Some(r) = stream.message().await? {
                out::line(json, &reject_json(&r, full));
            }
        }
        Command::Reject(args::RejectCmd::Import(a)) => return reject_import(json, &client, a, timeout).await,
        Command::Reject(args::RejectCmd::Export(a)) => {
            let req = proto::ExportRequest {
                sub_port: a.sub_port,
                assignment_id: a.assignment.unwrap_or(0),
                format: file_format(a.format) as i32,
            };
            let mut stream = client.rejects_client().export(dl.rq(req)).await?.into_inner();
            let mut sink: Box<dyn std::io::Write> = match &a.output {
                Some(p) => Box::new(
                    std::fs::File::create(p)
                        .map_err(|e| Fail(format!("cannot create --output {}: {e}", p.display())))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(c) = stream.message().await? {
                sink.write_all(&c.data).map_err(|e| Fail(format!("writing the export: {e}")))?;
            }
            sink.flush().map_err(|e| Fail(format!("writing the export: {e}")))?;
        }
        Command::Consent(c) => {
            let (a, granted) = match c {
                args::ConsentCmd::Add(a) => (a, true),
                args::ConsentCmd::Withdraw(a) => (a, false),
            };
            let req = proto::ConsentRequest {
                sub_port: a.sub_port,
                number: a.number,
                evidence: a.evidence,
                at_ms: opt_time("--at", a.at.as_ref())?.unwrap_or(0),
            };
            let mut cc = client.consent_client();
            let r = if granted { cc.add(dl.rq(req)).await? } else { cc.withdraw(dl.rq(req)).await? }.into_inner();
            out::object(
                json,
                &json!({"sub_port": r.sub_port, "assignment": r.assignment_id, "number": r.number,
                        "granted": r.granted, "at": ts_json(r.at_ms), "evidence": r.evidence}),
            );
        }
        Command::Audit(args::AuditCmd::List(w)) => {
            let req = proto::AuditListRequest {
                from_ms: opt_time("--from", w.from.as_ref())?,
                to_ms: opt_time("--to", w.to.as_ref())?,
            };
            let mut stream = client.audit_client().list(dl.rq(req)).await?.into_inner();
            while let Some(e) = stream.message().await? {
                let number = if e.number.is_empty() { Value::Null } else { e.number.clone().into() };
                let sub_port = if e.sub_port.is_empty() { Value::Null } else { e.sub_port.clone().into() };
                out::line(
                    json,
                    &json!({"at": ts_json(e.at_ms), "who": e.who, "action": e.action, "number": number,
                            "records": e.records, "sub_port": sub_port, "allowed": e.allowed, "detail": e.detail}),
                );
            }
        }
        Command::Retention(args::RetentionCmd::Run { dry_run, confirm_clock_until }) => {
            let confirm_clock_until_ms = opt_time("--confirm-clock-until", confirm_clock_until.as_ref())?;
            let req = proto::RetentionRequest { dry_run, confirm_clock_until_ms };
            let r = client.retention_client().run(dl.rq(req)).await?.into_inner();
            out::object(json, &retention_json(&r));
        }
        Command::Retention(args::RetentionCmd::History) => {
            let req = proto::RetentionHistoryRequest {};
            let mut stream = client.retention_client().history(dl.rq(req)).await?.into_inner();
            while let Some(r) = stream.message().await? {
                out::line(json, &retention_json(&r));
            }
        }
        Command::Inspect(a) => {
            let req = proto::InspectRequest {
                from_ms: opt_time("--from", a.window.from.as_ref())?,
                to_ms: opt_time("--to", a.window.to.as_ref())?,
            };
            let mut stream = client.inspect_client().run(dl.rq(req)).await?.into_inner();
            while let Some(f) = stream.message().await? {
                out::line(
                    json,
                    &json!({"kind": f.kind, "sub_port": f.sub_port,
                            "assignment": if f.assignment_id == 0 { Value::Null } else { f.assignment_id.into() },
                            "provider": if f.provider_id.is_empty() { Value::Null } else { f.provider_id.clone().into() },
                            "messages": f.messages, "first": ts_json(f.first_ms), "last": ts_json(f.last_ms),
                            "example": f.example, "detail": f.detail}),
                );
            }
        }
        Command::Capacity(c) => {
            let stats = match client.stats_client().get(dl.rq(proto::StatsRequest {})).await {
                Ok(s) => Some(s.into_inner()),
                Err(st) => {
                    eprintln!("portlog: stats: {}; using the default bytes per message", describe(&st));
                    None
                }
            };
            return capacity::run(json, &c, stats.as_ref());
        }
    }
    Ok(0)
}

fn stats_json(s: &proto::StatsReply) -> Value {
    json!({
        "records": s.records,
        "segments": s.sealed_segments + s.open_segments,
        "sealed_segments": s.sealed_segments,
        "open_segments": s.open_segments,
        "bytes_on_disk": s.bytes_on_disk,
        "bytes_per_message": if s.bytes_per_message > 0.0 { json!(s.bytes_per_message) } else { Value::Null },
        "rejects": s.rejects,
        "assignments": s.assignments,
        "oldest_record": s.oldest_ts_ms.map_or(Value::Null, |t| rfc3339_utc8(t).into()),
        "newest_record": s.newest_ts_ms.map_or(Value::Null, |t| rfc3339_utc8(t).into()),
        // The group commits since the daemon started (null without a journal): how many appends
        // one sync served, and what a sync costs on this disk.
        "journal_frames": s.journal.as_ref().map_or(Value::Null, |j| j.frames.into()),
        "journal_records": s.journal.as_ref().map_or(Value::Null, |j| j.records.into()),
        "journal_appends_per_frame": s.journal.as_ref().map_or(Value::Null, |j| per(j.appends as f64, j.frames, 100.0)),
        "journal_sync_us": s.journal.as_ref().map_or(Value::Null, |j| per(j.sync_seconds * 1e6, j.frames, 10.0)),
        "journal_checkpoints": s.journal.as_ref().map_or(Value::Null, |j| j.checkpoints.into()),
    })
}

/// `total / n` rounded to `1 / scale` (null when `n` is 0).
fn per(total: f64, n: u64, scale: f64) -> Value {
    if n == 0 {
        return Value::Null;
    }
    json!((total / n as f64 * scale).round() / scale)
}

async fn run_ingest(json: bool, client: &Client, a: args::IngestArgs, timeout: Option<Duration>) -> Result<i32, Fail> {
    if a.chunk == 0 {
        return Err(Fail("--chunk must be positive".into()));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (file, chunk) = (a.file.clone(), a.chunk);
    let reader = tokio::task::spawn_blocking(move || ingest::read_input(&file, chunk, tx));
    let call = client.ingest_client().append(request(tokio_stream::wrappers::ReceiverStream::new(rx), timeout)).await;
    let read = reader.await.map_err(|e| Fail(format!("reading the input failed: {e}")))?;
    if let Some(e) = &read.io_error {
        // Nothing past the read error was sent; what was sent is in the reply.
        eprintln!("portlog: {e}");
    }
    let reply = call?.into_inner();
    let rejected = reply.rejected + read.errors.len() as u64;
    let mut errors: Vec<(u64, String)> = read.errors;
    for e in &reply.errors {
        errors.push((ingest::line_of(e.index, &read.skipped), format!("invalid {}: {}", e.field, e.reason)));
    }
    errors.sort_by_key(|(l, _)| *l);
    let listed: Vec<Value> = errors.iter().map(|(l, e)| json!({"line": l, "error": e})).collect();
    let v = json!({"accepted": reply.accepted, "rejected": rejected, "rejects_registered": reply.rejects_registered,
                   "errors": listed});
    if json {
        out::object(true, &v);
    } else {
        println!("accepted {}, rejected {}, rejects registered {}", reply.accepted, rejected, reply.rejects_registered);
        for (l, e) in &errors {
            println!("line {l}: {e}");
        }
    }
    if (reply.errors.len() as u64) < reply.rejected {
        eprintln!("portlog: the server listed {} of {} refused lines", reply.errors.len(), reply.rejected);
    }
    if read.io_error.is_some() {
        return Ok(2);
    }
    Ok(if rejected > 0 { 1 } else { 0 })
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portlog: error: starting the runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(c) => c,
        Err(Fail(msg)) => {
            eprintln!("portlog: error: {msg}");
            2
        }
    };
    std::process::exit(code);
}
