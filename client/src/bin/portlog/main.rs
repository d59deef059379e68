//! `portlog`: the command-line client of the portlog daemon (shared/cli.md).
//!
//! Exit status: 0 success (for `check`: allowed); 1 `check` denied or `ingest` with bad lines;
//! 2 any error, with a message on stderr naming what is wrong.

#![forbid(unsafe_code)]

mod args;
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
            return capacity(json, c, None);
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
                return capacity(json, c, None);
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
            };
            let r = client.check_client().check(dl.rq(req)).await?.into_inner();
            let since = if r.since_ms == 0 { Value::Null } else { Value::String(rfc3339_utc8(r.since_ms)) };
            out::object(json, &json!({"allow": r.allow, "reason": reason_json(r.reason), "since": since}));
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
            out::object(json, &json!({"sub_port": r.sub_port, "current": current, "history": history}));
        }
        Command::Reject(args::RejectCmd::Add(a)) => {
            let req = proto::AddRejectRequest {
                sub_port: a.sub_port,
                number: a.number,
                at_ms: opt_time("--at", a.at.as_ref())?.unwrap_or(0),
                text: a.text,
            };
            let r = client.rejects_client().add(dl.rq(req)).await?.into_inner();
            out::object(json, &reject_json(&r, true));
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
                out::line(
                    json,
                    &json!({"at": ts_json(e.at_ms), "who": e.who, "action": e.action, "number": number,
                            "records": e.records, "allowed": e.allowed, "detail": e.detail}),
                );
            }
        }
        Command::Retention(args::RetentionCmd::Run { dry_run }) => {
            let r = client.retention_client().run(dl.rq(proto::RetentionRequest { dry_run })).await?.into_inner();
            out::object(
                json,
                &json!({"segments_deleted": r.segments_deleted, "records_deleted": r.records_deleted,
                        "bytes_freed": r.bytes_freed, "rejects_purged": r.rejects_purged, "dry_run": r.dry_run}),
            );
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
                    &json!({"kind": f.kind, "sub_port": f.sub_port, "assignment": f.assignment_id,
                            "provider": f.provider_id, "messages": f.messages, "first": ts_json(f.first_ms),
                            "detail": f.detail}),
                );
            }
        }
        Command::Capacity(c) => {
            let measured = match client.stats_client().get(dl.rq(proto::StatsRequest {})).await {
                Ok(s) => Some(s.into_inner().bytes_per_message).filter(|b| *b > 0.0),
                Err(st) => {
                    eprintln!("portlog: stats: {}; using the default bytes per message", describe(&st));
                    None
                }
            };
            return capacity(json, &c, measured);
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
    })
}

/// Bytes per message of sealed segments measured by the side-by-side benchmark
/// (docs/benchmarks.md), used when neither the flag nor the server gives a figure.
const DEFAULT_BYTES_PER_MESSAGE: f64 = 22.7;

fn capacity(json: bool, c: &args::CapacityArgs, measured: Option<f64>) -> Result<i32, Fail> {
    let rate_ok = c.rate.is_finite() && c.rate >= 0.0;
    let months_ok = c.months.is_finite() && c.months > 0.0;
    if !rate_ok || !months_ok {
        return Err(Fail("--rate must be a non-negative number and --months a positive one".into()));
    }
    let (bpm, source) = match (c.bytes_per_message, measured) {
        (Some(b), _) => (b, "flag"),
        (None, Some(m)) => (m, "server"),
        (None, None) => (DEFAULT_BYTES_PER_MESSAGE, "default"),
    };
    let bpm_ok = bpm.is_finite() && bpm > 0.0;
    if !bpm_ok {
        return Err(Fail("--bytes-per-message must be positive".into()));
    }
    let per_s = match c.per {
        args::Per::S => c.rate,
        args::Per::Min => c.rate / 60.0,
        args::Per::H => c.rate / 3600.0,
        args::Per::Day => c.rate / 86_400.0,
    };
    // A month of retention is counted as 31 days: retention keeps whole calendar months.
    let seconds = c.months * 31.0 * 86_400.0;
    let messages = per_s * seconds;
    let bytes = messages * bpm;
    let per_day = per_s * 86_400.0 * bpm;
    let v = json!({
        "rate_per_s": per_s, "months": c.months, "bytes_per_message": bpm, "bytes_per_message_source": source,
        "messages": messages.round(), "bytes": bytes.round(), "bytes_per_day": per_day.round(),
    });
    if json {
        out::object(true, &v);
    } else {
        println!("rate              {per_s:.1} messages/s");
        println!("retention         {} months (31 days each)", c.months);
        println!("bytes/message     {bpm:.1} ({source})");
        println!("messages kept     {messages:.0}");
        println!("growth per day    {:.2} GiB", per_day / f64::from(1u32 << 30));
        println!("disk needed       {:.2} GiB", bytes / f64::from(1u32 << 30));
    }
    Ok(0)
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
