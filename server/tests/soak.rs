//! The daemon soak: the real `portlog-server` on loopback (with tokens, one per role) under
//! concurrent load — three ingest streams (MT and MO, reject keywords, back-filled old records,
//! bad records), two check streams and unary/batch checks, traces (one number is hot: its
//! traces pass `trace_chunk_records × 4` and take the re-read path), retention runs, memory
//! sampling — killed with SIGKILL at a random moment (once per minute of the run, at most ten
//! times), restarted and verified against a model; then load ended by SIGTERM under load
//! (exit 0 required), restarted and verified again.
//!
//! The model (`common/soak_model.rs`): a record is acknowledged when the reply of its ingest
//! call came (it must then be found, byte for byte, by every later trace); a record of a call
//! that failed or was cut is unknown, resolved at the next restart (found: must stay; not found:
//! must never appear); a refused (bad) record must never appear. A pair (sub-port, number) whose
//! MO "R" was acknowledged must be answered `rejected` by every later check; a pair to which no
//! reject keyword was ever sent must be allowed. Back-filled records seven months old are
//! expired by retention: after the run that follows a restart, none may be left. Any other
//! answer, any failed call outside the kill/stop window, and a peak RSS past the bound fail
//! the test, which prints its seed.
//!
//! Quick (CI): `cargo test --release --workspace --test soak -- --nocapture` (about 20 s of
//! load). Long: `PORTLOG_SOAK_SECS=600`. Also `PORTLOG_SOAK_SEED`, `PORTLOG_SOAK_RATE`
//! (records/s offered, default 1500), `PORTLOG_SOAK_RSS_BASE_MIB` (default 256; the bound on the
//! daemon's peak RSS is that plus 1 KiB per record stored).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/soak_model.rs"]
mod soak_model;

use portlog_client::{proto, Client};
use soak_model::{key_of, number, rss_kib, sub_port, Key, Kind, Lat, Model, Pair, Proc, Question, Rng, State, Variant};
use soak_model::{SIGNATURE, SUB_PORTS};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tonic::{Code, Status};

const ADMIN: &str = "soak-admin-0123456789abcdef";
const INVESTIGATOR: &str = "soak-inv-0123456789abcdef";
const GATEWAY: &str = "soak-gw-0123456789abcdef";
const INGEST: &str = "soak-ingest-0123456789abcdef";

/// A call taking longer than this is a hang (not a latency figure): the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Statuses a call may end with while the daemon is being killed or is shutting down.
const DISRUPTION_CODES: [Code; 4] = [Code::Unavailable, Code::Unknown, Code::Cancelled, Code::ResourceExhausted];

/// A call cut by the connection closing under it: hyper reports the peer's GOAWAY (or the
/// socket's end) as an HTTP/2 error, which tonic maps to INTERNAL when the GOAWAY's reason is
/// NO_ERROR (a graceful shutdown that raced a new stream). The call was not answered; it is a
/// disruption like UNAVAILABLE, allowed only while the daemon is being stopped or killed.
fn connection_closed(st: &Status) -> bool {
    st.code() == Code::Internal && st.message().starts_with("h2 protocol error")
}

/// The run's parameters.
#[derive(Debug, Clone)]
struct Cfg {
    secs: u64,
    seed: u64,
    rate: u64,
    numbers: u32,
    rss_base_mib: u64,
}

impl Cfg {
    fn from_env() -> Cfg {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
        let seed = var("PORTLOG_SOAK_SEED").unwrap_or_else(|| common::now_ms() as u64 % 1_000_000_007);
        Cfg {
            secs: var("PORTLOG_SOAK_SECS").unwrap_or(20).max(4),
            seed,
            rate: var("PORTLOG_SOAK_RATE").unwrap_or(1500).max(10),
            numbers: 1000,
            rss_base_mib: var("PORTLOG_SOAK_RSS_BASE_MIB").unwrap_or(256),
        }
    }
}

/// Peak and last memory figures of the daemon instances, in KiB.
#[derive(Debug, Default, Clone)]
struct Mem {
    hwm_kib: u64,
    rss_max_kib: u64,
    samples: u64,
    /// VmRSS at the end of each phase's load.
    phase_end_kib: Vec<u64>,
}

/// State shared by the workers of a phase and the verifier.
struct Shared {
    cfg: Cfg,
    model: Mutex<Model>,
    /// Assignment id of each sub-port.
    aid: Vec<u64>,
    problems: Mutex<Vec<String>>,
    /// Set just before the daemon is killed or told to stop: failures are then allowed.
    disrupted: AtomicBool,
    /// Workers finish their call and return.
    stop: AtomicBool,
    lat: Mutex<BTreeMap<&'static str, Lat>>,
    /// Allowed failures by status code.
    codes: Mutex<BTreeMap<String, u64>>,
    mem: Mutex<Mem>,
    retention_deleted: AtomicU64,
}

impl Shared {
    fn problem(&self, p: String) {
        let mut v = self.problems.lock().unwrap();
        if v.len() < 100 {
            eprintln!("soak problem: {p}");
            v.push(p);
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(SeqCst)
    }

    fn ok(&self, kind: &'static str, d: Duration, items: u64) {
        self.lat.lock().unwrap().entry(kind).or_default().ok(d, items);
    }

    /// A failed call: allowed (and counted) during a disruption, a problem otherwise.
    fn failed(&self, kind: &'static str, st: &Status) {
        let closed = connection_closed(st);
        if self.disrupted.load(SeqCst) && (DISRUPTION_CODES.contains(&st.code()) || closed) {
            self.lat.lock().unwrap().entry(kind).or_default().failed += 1;
            let label = if closed { "Internal (connection closed)".to_string() } else { format!("{:?}", st.code()) };
            *self.codes.lock().unwrap().entry(label).or_default() += 1;
        } else {
            self.problem(format!("{kind}: {:?}: {}", st.code(), st.message()));
        }
    }
}

/// Runs `fut` with the hang timeout; a timeout is a DEADLINE_EXCEEDED status.
async fn timed<T>(fut: impl std::future::Future<Output = Result<T, Status>>) -> Result<T, Status> {
    tokio::time::timeout(CALL_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded(format!("no answer within {CALL_TIMEOUT:?} (a hang)"))))
}

async fn connect(ep: &str, token: &str) -> Client {
    Client::connect(ep, Some(token.to_string()), None).await.unwrap()
}

#[test]
fn soak_kill_restart_verify() {
    let cfg = Cfg::from_env();
    println!(
        "soak: seed {} ({} s, {} records/s offered); rerun with PORTLOG_SOAK_SEED={}",
        cfg.seed, cfg.secs, cfg.rate, cfg.seed
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = dir.path().join("tokens.toml");
    let entry = |t: &str, n: &str, r: &str| format!("[[token]]\ntoken = \"{t}\"\nname = \"{n}\"\nrole = \"{r}\"\n\n");
    let text = [
        entry(ADMIN, "ops", "admin"),
        entry(INVESTIGATOR, "alice", "investigator"),
        entry(GATEWAY, "gateway-1", "gateway"),
        entry(INGEST, "loader", "ingest"),
    ]
    .concat();
    std::fs::write(&tokens, text).unwrap();
    let args = ["--tokens", tokens.to_str().unwrap()];
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let started = Instant::now();
    let (sh, report) = rt.block_on(run(cfg.clone(), &data, &args));
    drop(rt);
    let total = started.elapsed();
    print_summary(&sh, &report, total);
    let problems = sh.problems.lock().unwrap();
    assert!(problems.is_empty(), "seed {}: {} problem(s):\n{}", cfg.seed, problems.len(), problems.join("\n"));
    let mem = sh.mem.lock().unwrap();
    assert!(mem.samples > 0, "no memory sample was read");
    let bound_kib = rss_bound_kib(&cfg, report.records_final);
    assert!(
        mem.hwm_kib < bound_kib,
        "seed {}: the daemon's peak RSS {} MiB passed the bound of {} MiB",
        cfg.seed,
        mem.hwm_kib >> 10,
        bound_kib >> 10
    );
}

/// The bound on the daemon's peak RSS: a base (RocksDB's memtables and caches, the runtime)
/// and 1 KiB per record held (open segments keep an in-memory index of their rows, measured at
/// about 0.1 KiB per record). A leak per call (checks, traces) trips it.
fn rss_bound_kib(cfg: &Cfg, records: u64) -> u64 {
    (cfg.rss_base_mib << 10) + records
}

/// What the run did, besides the latencies.
#[derive(Debug, Default)]
struct Report {
    load: Duration,
    kill_after: Vec<Duration>,
    term_after: Duration,
    records_final: u64,
    rejects_final: u64,
    recovered: u64,
    lost: u64,
    /// Per verification: seconds, acknowledged records found.
    verify: Vec<(f64, u64)>,
}

async fn run(cfg: Cfg, data: &std::path::Path, args: &[&str]) -> (Arc<Shared>, Report) {
    let mut rep = Report::default();
    let mut rng = Rng::new(cfg.seed);
    let mut d = Proc::start(common::SERVER, data, args);
    let admin = connect(&d.http(), ADMIN).await;
    // The ledger: one provider, SUB_PORTS commercial assignments in force.
    let now = common::now_ms();
    let provider = proto::Provider {
        id: "p1".into(),
        name: "星河银行股份有限公司".into(),
        signatures: vec![SIGNATURE.into()],
        ..Default::default()
    };
    admin.ledger_client().add_provider(provider).await.unwrap();
    let mut aid = Vec::new();
    for i in 0..SUB_PORTS {
        let req = proto::AssignRequest {
            sub_port: sub_port(i),
            provider_id: "p1".into(),
            usage: proto::Usage::Commercial as i32,
            from_ms: now - 30 * soak_model::DAY_MS,
            to_ms: now + 365 * soak_model::DAY_MS,
            consent_required: false,
        };
        aid.push(admin.ledger_client().assign(req).await.unwrap().into_inner().id);
    }
    let sh = Arc::new(Shared {
        model: Mutex::new(Model::new(cfg.seed, cfg.numbers)),
        cfg: cfg.clone(),
        aid,
        problems: Mutex::new(Vec::new()),
        disrupted: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        lat: Mutex::new(BTreeMap::new()),
        codes: Mutex::new(BTreeMap::new()),
        mem: Mutex::new(Mem::default()),
        retention_deleted: AtomicU64::new(0),
    });
    // A first acknowledged batch: retention's clock guard compares with the newest record.
    let ing = connect(&d.http(), INGEST).await;
    let mut wrng = Rng::new(cfg.seed ^ 0xfeed);
    ingest_once(&sh, &ing, &mut wrng, 200).await;

    // Kill cycles (one per minute of the run, at most 10): load, SIGKILL at a random moment of
    // the cycle's second half, restart, verify. Then load for the rest of the time, ended by
    // SIGTERM under load.
    let secs = cfg.secs as f64;
    let cycles = (cfg.secs / 60).clamp(1, 10);
    for cycle in 1..=cycles {
        let nominal = secs * 2.0 / 3.0 / cycles as f64;
        let kill_after = Duration::from_secs_f64(nominal * (0.5 + 0.5 * rng.below(1001) as f64 / 1000.0));
        phase(&sh, &mut d, kill_after, false).await;
        rep.kill_after.push(kill_after);
        rep.load += kill_after;
        drop(d);
        d = Proc::start(common::SERVER, data, args);
        let v = verify(&sh, &d, &format!("after SIGKILL {cycle}/{cycles}")).await;
        rep.verify.push(v);
    }
    let term_after = Duration::from_secs_f64(secs).saturating_sub(rep.load).max(Duration::from_secs_f64(secs / 6.0));
    phase(&sh, &mut d, term_after, true).await;
    rep.term_after = term_after;
    rep.load += term_after;
    let d2 = Proc::start(common::SERVER, data, args);
    rep.verify.push(verify(&sh, &d2, "after SIGTERM").await);
    let stats = connect(&d2.http(), ADMIN).await.stats().await.unwrap();
    rep.records_final = stats.records;
    rep.rejects_final = stats.rejects;
    {
        let m = sh.model.lock().unwrap();
        rep.recovered = m.recs.iter().filter(|r| r.1 == State::Recovered).count() as u64;
        rep.lost = m.recs.iter().filter(|r| r.1 == State::Lost).count() as u64;
    }
    let mut d2 = d2;
    d2.sigterm();
    let st = d2.wait(Duration::from_secs(90));
    if st.and_then(|s| s.code()) != Some(0) {
        sh.problem(format!("the idle daemon's SIGTERM exit: {st:?}; its last lines:\n{}", d2.stderr()));
    }
    (sh, rep)
}

/// One phase: every worker on the running daemon for `load`, then SIGKILL (`term` false) or
/// SIGTERM under load (`term` true, exit 0 required); returns once the workers have stopped.
async fn phase(sh: &Arc<Shared>, d: &mut Proc, load: Duration, term: bool) {
    sh.disrupted.store(false, SeqCst);
    sh.stop.store(false, SeqCst);
    let ep = d.http();
    let mut set = JoinSet::new();
    for w in 0..3u64 {
        let (sh, c) = (sh.clone(), connect(&ep, INGEST).await);
        set.spawn(async move { ingest_worker(sh, c, w).await });
    }
    for w in 0..2u64 {
        let (sh, c) = (sh.clone(), connect(&ep, GATEWAY).await);
        set.spawn(async move { check_stream_worker(sh, c, w).await });
    }
    let (s, c) = (sh.clone(), connect(&ep, GATEWAY).await);
    set.spawn(async move { check_unary_worker(s, c).await });
    let (s, c) = (sh.clone(), connect(&ep, INVESTIGATOR).await);
    set.spawn(async move { trace_worker(s, c).await });
    let (s, c) = (sh.clone(), connect(&ep, ADMIN).await);
    set.spawn(async move { retention_worker(s, c).await });
    let (s, pid) = (sh.clone(), d.pid());
    set.spawn(async move { memory_worker(s, pid).await });

    tokio::time::sleep(load).await;
    if let Some((rss, _)) = rss_kib(d.pid()) {
        sh.mem.lock().unwrap().phase_end_kib.push(rss);
    }
    sh.disrupted.store(true, SeqCst);
    if term {
        d.sigterm();
        sh.stop.store(true, SeqCst);
        // Blocks this (the test's) thread only: the workers run on the runtime's threads.
        let st = d.wait(Duration::from_secs(90));
        if st.and_then(|s| s.code()) != Some(0) {
            sh.problem(format!("SIGTERM under load: exit {st:?}; the daemon's last lines:\n{}", d.stderr()));
        }
    } else {
        d.kill9();
        sh.stop.store(true, SeqCst);
    }
    let joined = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(r) = set.join_next().await {
            if let Err(e) = r {
                sh.problem(format!("a worker panicked: {e}"));
            }
        }
    })
    .await;
    if joined.is_err() {
        sh.problem("workers did not stop within 120 s of the end of the phase".into());
        set.abort_all();
    }
}

/// Generates `n` records, sends them in one call, and marks them acknowledged when the reply
/// comes. Returns the number of records sent.
async fn ingest_once(sh: &Shared, c: &Client, rng: &mut Rng, n: usize) -> usize {
    let now = common::now_ms();
    let chunks_n = 1 + rng.below(3) as usize;
    let mut gen = Vec::with_capacity(n);
    {
        let mut m = sh.model.lock().unwrap();
        for _ in 0..n {
            gen.push(m.generate(now, rng));
        }
    }
    let per = n.div_ceil(chunks_n);
    let chunks: Vec<proto::IngestRequest> = gen
        .chunks(per)
        .map(|c| proto::IngestRequest { messages: c.iter().map(|(_, s, ts)| s.to_wire(*ts)).collect() })
        .collect();
    let t = Instant::now();
    let r = timed(c.ingest(tokio_stream::iter(chunks))).await;
    match r {
        Ok(reply) => {
            sh.ok("ingest", t.elapsed(), n as u64);
            let bad: Vec<(u64, &'static str)> = gen
                .iter()
                .enumerate()
                .filter_map(|(i, (_, s, _))| s.kind.refused_field().map(|f| (i as u64, f)))
                .collect();
            let got: Vec<(u64, &str)> = reply.errors.iter().map(|e| (e.index, e.field.as_str())).collect();
            if reply.accepted != (n - bad.len()) as u64 || reply.rejected != bad.len() as u64 || got != bad {
                sh.problem(format!(
                    "ingest reply: accepted {} rejected {} errors {:?}; expected accepted {} and errors {bad:?}",
                    reply.accepted,
                    reply.rejected,
                    got,
                    n - bad.len()
                ));
            }
            let rejects = gen.iter().filter(|(_, s, _)| s.kind == Kind::Reject).count() as u64;
            if reply.rejects_registered > rejects {
                sh.problem(format!("ingest registered {} rejects from {rejects} reject MOs", reply.rejects_registered));
            }
            let ids: Vec<u32> = gen.iter().map(|(id, _, _)| *id).collect();
            sh.model.lock().unwrap().ack(&ids);
        }
        Err(st) => sh.failed("ingest", &st),
    }
    n
}

async fn ingest_worker(sh: Arc<Shared>, c: Client, w: u64) {
    let mut rng = Rng::new(sh.cfg.seed ^ (0x1000 + w));
    let per_worker = sh.cfg.rate as f64 / 3.0;
    while !sh.stopping() {
        // Sizes from 1 to 512, most of them small.
        let bits = rng.below(10);
        let n = 1 + rng.below(1 << bits) as usize;
        let t = Instant::now();
        let sent = ingest_once(&sh, &c, &mut rng, n).await;
        let budget = Duration::from_secs_f64(sent as f64 / per_worker);
        if let Some(rest) = budget.checked_sub(t.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

/// Draws a check question: half on pairs a reject keyword was sent to.
fn draw_question(m: &Model, rng: &mut Rng) -> Question {
    let pair: Pair = if !m.tainted_list.is_empty() && rng.permille(500) {
        m.tainted_list[rng.below(m.tainted_list.len() as u64) as usize]
    } else {
        (rng.below(SUB_PORTS as u64) as u8, rng.below(u64::from(m.numbers)) as u32)
    };
    let variant = match rng.below(100) {
        0..=59 => Variant::Plain,
        60..=74 => Variant::SkipSince,
        75..=86 => Variant::GoodText,
        87..=93 => Variant::BadText,
        94..=97 => Variant::Service,
        _ => Variant::Unknown,
    };
    Question { pair, variant, must_reject: m.rejected.contains(&pair) }
}

fn draw_questions(sh: &Shared, rng: &mut Rng, n: usize) -> Vec<Question> {
    let m = sh.model.lock().unwrap();
    (0..n).map(|_| draw_question(&m, rng)).collect()
}

/// Judges the replies to `qs`, reading the tainted pairs after the replies came.
fn judge_all(sh: &Shared, qs: &[Question], replies: &[proto::CheckReply]) {
    if qs.len() != replies.len() {
        sh.problem(format!("{} answers to {} checks", replies.len(), qs.len()));
        return;
    }
    let m = sh.model.lock().unwrap();
    for (q, r) in qs.iter().zip(replies) {
        let ts = m.reject_ts.get(&q.pair).map_or(&[][..], Vec::as_slice);
        if let Err(e) = q.judge(r, m.tainted.contains(&q.pair), ts, &sh.aid) {
            drop(m);
            sh.problem(e);
            return;
        }
    }
}

async fn check_stream_worker(sh: Arc<Shared>, c: Client, w: u64) {
    let mut rng = Rng::new(sh.cfg.seed ^ (0x2000 + w));
    let mut request_id = 0u64;
    while !sh.stopping() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut stub = c.check_client();
        let mut replies = match timed(stub.check_stream(tokio_stream::wrappers::ReceiverStream::new(rx))).await {
            Ok(r) => r.into_inner(),
            Err(st) => {
                sh.failed("check.stream", &st);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let messages = 100 + rng.below(2000);
        let mut broken = false;
        for _ in 0..messages {
            if sh.stopping() {
                break;
            }
            request_id += 1;
            let n = 1 + rng.below(64) as usize;
            let qs = draw_questions(&sh, &mut rng, n);
            let req = proto::CheckBatchRequest { request_id, checks: qs.iter().map(Question::request).collect() };
            let t = Instant::now();
            if tx.send(req).await.is_err() {
                sh.failed("check.stream", &Status::unavailable("the stream's request side closed"));
                broken = true;
                break;
            }
            match timed(replies.message()).await {
                Ok(Some(r)) => {
                    sh.ok("check.stream", t.elapsed(), qs.len() as u64);
                    if r.request_id != request_id {
                        sh.problem(format!("check stream answered request {} to request {request_id}", r.request_id));
                    }
                    judge_all(&sh, &qs, &r.results);
                }
                Ok(None) => {
                    sh.failed("check.stream", &Status::unavailable("the stream ended early"));
                    broken = true;
                    break;
                }
                Err(st) => {
                    sh.failed("check.stream", &st);
                    broken = true;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(tx);
        if !broken {
            match timed(replies.message()).await {
                Ok(None) => {}
                Ok(Some(r)) => sh.problem(format!("a check stream answered after its requests ended: {r:?}")),
                Err(st) => sh.failed("check.stream", &st),
            }
        }
    }
}

async fn check_unary_worker(sh: Arc<Shared>, c: Client) {
    let mut rng = Rng::new(sh.cfg.seed ^ 0x3000);
    let mut i = 0u64;
    while !sh.stopping() {
        i += 1;
        let batch = i.is_multiple_of(20);
        let n = if batch { 200 + rng.below(800) as usize } else { 1 };
        let qs = draw_questions(&sh, &mut rng, n);
        let t = Instant::now();
        if batch {
            match timed(c.check_batch(qs.iter().map(Question::request).collect())).await {
                Ok(r) => {
                    sh.ok("check.batch", t.elapsed(), qs.len() as u64);
                    judge_all(&sh, &qs, &r);
                }
                Err(st) => sh.failed("check.batch", &st),
            }
        } else {
            match timed(c.check(qs[0].request())).await {
                Ok(r) => {
                    sh.ok("check.unary", t.elapsed(), 1);
                    judge_all(&sh, &qs, &[r]);
                }
                Err(st) => sh.failed("check.unary", &st),
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A trace's filters, applied to the model too.
#[derive(Debug, Clone, Default)]
struct Filter {
    sp: Option<u8>,
    dir: Option<proto::Direction>,
    from: Option<i64>,
    to: Option<i64>,
}

impl Filter {
    fn request(&self, num: u32) -> proto::TraceRequest {
        proto::TraceRequest {
            number: number(num),
            from_ms: self.from,
            to_ms: self.to,
            sub_port: self.sp.map_or_else(String::new, |s| sub_port(s as usize)),
            direction: self.dir.map_or(0, |d| d as i32),
            limit: None,
        }
    }

    fn keeps(&self, s: &soak_model::Spec, ts: i64) -> bool {
        self.sp.is_none_or(|p| p == s.sp)
            && self.dir.is_none_or(|d| d == s.dir)
            && self.from.is_none_or(|f| ts >= f)
            && self.to.is_none_or(|t| ts < t)
    }
}

/// Traces `num` and compares with the model: every record that must be found (acknowledged
/// before the call; `old_gone`: back-filled ones are expired) is there, byte for byte, and
/// nothing else than records that may be. Returns the ids found and how many of them had to be.
async fn trace_and_compare(
    sh: &Shared,
    c: &Client,
    num: u32,
    f: &Filter,
    old_gone: bool,
) -> Result<(Vec<u32>, u64), Status> {
    let ids: Vec<u32> = sh.model.lock().unwrap().by_number[num as usize].clone();
    let must_before: HashSet<u32> = {
        let m = sh.model.lock().unwrap();
        ids.iter().copied().filter(|&id| m.must_may(id, old_gone).0).collect()
    };
    let t = Instant::now();
    let start_ms = common::now_ms();
    let got = timed(async {
        let mut s = c.trace(f.request(num)).await?;
        let mut all = Vec::new();
        while let Some(chunk) = s.message().await? {
            all.extend(chunk.messages);
        }
        Ok(all)
    })
    .await?;
    sh.ok("trace", t.elapsed(), got.len() as u64);
    // What may be found: read after the answer (a record sent meanwhile may be there).
    let (seed, numbers) = (sh.cfg.seed, sh.cfg.numbers);
    let all_ids: Vec<u32> = sh.model.lock().unwrap().by_number[num as usize].clone();
    let may: Vec<(u32, i64)> = {
        let m = sh.model.lock().unwrap();
        all_ids.iter().filter(|&&id| m.must_may(id, old_gone).1).map(|&id| (id, m.recs[id as usize].0)).collect()
    };
    let mut by_key: HashMap<Key, Vec<u32>> = HashMap::new();
    for (id, ts) in may {
        let s = soak_model::spec(seed, u64::from(id), numbers);
        if f.keeps(&s, ts) {
            by_key.entry(s.key(ts)).or_default().push(id);
        }
    }
    let mut found = Vec::with_capacity(got.len());
    let mut last_ts = i64::MIN;
    for m in &got {
        if m.ts_ms < last_ts {
            sh.problem(format!("trace of {} ({f:?}) out of time order at {m:?}", number(num)));
        }
        last_ts = m.ts_ms;
        match by_key.get_mut(&key_of(m)).and_then(Vec::pop) {
            Some(id) => found.push(id),
            None => sh.problem(format!(
                "trace of {} ({f:?}) returned a record that was never sent, was refused, lost, expired or \
                 is a duplicate: {m:?}",
                number(num)
            )),
        }
    }
    let found_set: HashSet<u32> = found.iter().copied().collect();
    let required: Vec<(u32, i64, soak_model::Spec)> = {
        let m = sh.model.lock().unwrap();
        must_before
            .iter()
            .map(|&id| (id, m.recs[id as usize].0, soak_model::spec(seed, u64::from(id), numbers)))
            .collect()
    };
    let required: Vec<_> = required.into_iter().filter(|(_, ts, s)| f.keeps(s, *ts)).collect();
    let mut must_found = 0u64;
    for (id, ts, s) in &required {
        if found_set.contains(id) {
            must_found += 1;
        } else {
            sh.problem(format!(
                "trace of {} ({f:?}) started at {start_ms}: {} records answered, {} required, the last \
                 at {last_ts}; {} records generated for the number meanwhile; acknowledged record {id} \
                 is missing: {:?}",
                number(num),
                got.len(),
                required.len(),
                all_ids.len() - ids.len(),
                s.key(*ts)
            ));
        }
    }
    Ok((found, must_found))
}

async fn trace_worker(sh: Arc<Shared>, c: Client) {
    let mut rng = Rng::new(sh.cfg.seed ^ 0x4000);
    while !sh.stopping() {
        let num = {
            let m = sh.model.lock().unwrap();
            match rng.below(10) {
                0..=1 => 0, // the hot number: a long trace
                2..=5 if !m.tainted_list.is_empty() => {
                    m.tainted_list[rng.below(m.tainted_list.len() as u64) as usize].1
                }
                _ => rng.below(u64::from(m.numbers)) as u32,
            }
        };
        let now = common::now_ms();
        let f = match rng.below(6) {
            0 => Filter { sp: Some(rng.below(SUB_PORTS as u64) as u8), ..Filter::default() },
            1 => Filter { dir: Some(proto::Direction::Mo), ..Filter::default() },
            2 => Filter { from: Some(now - 3_600_000), to: Some(now + 60_000), ..Filter::default() },
            _ => Filter::default(),
        };
        if let Err(st) = trace_and_compare(&sh, &c, num, &f, false).await {
            sh.failed("trace", &st);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn retention_worker(sh: Arc<Shared>, c: Client) {
    let mut rng = Rng::new(sh.cfg.seed ^ 0x5000);
    let every = Duration::from_secs_f64((sh.cfg.secs as f64 / 8.0).clamp(1.5, 10.0));
    let mut next = Instant::now() + every / 2;
    while !sh.stopping() {
        if Instant::now() < next {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        next = Instant::now() + every;
        let dry_run = rng.permille(250);
        let t = Instant::now();
        let req = proto::RetentionRequest { dry_run, confirm_clock_until_ms: None };
        match timed(async { Ok(c.retention_client().run(req).await?.into_inner()) }).await {
            Ok(r) => {
                sh.ok(if dry_run { "retention.dry_run" } else { "retention.run" }, t.elapsed(), r.records_deleted);
                if !dry_run {
                    let total = sh.retention_deleted.fetch_add(r.records_deleted, SeqCst) + r.records_deleted;
                    let old = sh.model.lock().unwrap().old_sent;
                    if total > old {
                        sh.problem(format!("retention deleted {total} records in all; only {old} old ones were sent"));
                    }
                }
                if !r.refused.is_empty() {
                    sh.problem(format!("retention refused: {}", r.refused));
                }
            }
            Err(st) => sh.failed("retention", &st),
        }
    }
}

async fn memory_worker(sh: Arc<Shared>, pid: u32) {
    while !sh.stopping() {
        if let Some((rss, hwm)) = rss_kib(pid) {
            let mut m = sh.mem.lock().unwrap();
            m.samples += 1;
            m.hwm_kib = m.hwm_kib.max(hwm);
            m.rss_max_kib = m.rss_max_kib.max(rss);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// After a restart, with no load: retention expires the back-filled records; every number is
/// traced (acknowledged records found byte for byte, nothing unexpected, unknown records
/// resolved); every pair is checked against the model (unknown rejects resolved); the stats
/// agree with the model. Returns the seconds it took and the acknowledged records found.
async fn verify(sh: &Arc<Shared>, d: &Proc, label: &str) -> (f64, u64) {
    let t0 = Instant::now();
    let ep = d.http();
    let admin = connect(&ep, ADMIN).await;
    let mut old_left = true;
    for _ in 0..5 {
        match admin.retention_client().run(proto::RetentionRequest::default()).await {
            Ok(r) => {
                let r = r.into_inner();
                sh.retention_deleted.fetch_add(r.records_deleted, SeqCst);
                if r.warnings.is_empty() && r.refused.is_empty() {
                    old_left = false;
                    break;
                }
                eprintln!("soak: retention {label}: {:?} {}", r.warnings, r.refused);
            }
            Err(st) => sh.problem(format!("retention {label}: {:?} {}", st.code(), st.message())),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if old_left {
        sh.problem(format!("retention {label} left open segments of expired days"));
    }
    if let Some((rss, hwm)) = rss_kib(d.pid()) {
        let mut m = sh.mem.lock().unwrap();
        m.hwm_kib = m.hwm_kib.max(hwm);
        m.rss_max_kib = m.rss_max_kib.max(rss);
        m.samples += 1;
    }

    // Traces of every number, four at a time.
    let numbers = sh.cfg.numbers;
    let found: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new()));
    let verified = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for lane in 0..4u32 {
        let (sh, found, verified, c) = (sh.clone(), found.clone(), verified.clone(), connect(&ep, INVESTIGATOR).await);
        set.spawn(async move {
            for num in (lane..numbers).step_by(4) {
                match trace_and_compare(&sh, &c, num, &Filter::default(), true).await {
                    Ok((ids, must)) => {
                        found.lock().unwrap().extend(ids);
                        verified.fetch_add(must, SeqCst);
                    }
                    Err(st) => {
                        sh.problem(format!("trace of {} after restart: {:?} {}", number(num), st.code(), st.message()))
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    // Resolve the unknown records: found ones must stay, the others never appear. A found MO
    // "R" means its reject was registered (before its append was queued).
    {
        let found: HashSet<u32> = found.lock().unwrap().iter().copied().collect();
        let mut m = sh.model.lock().unwrap();
        for id in 0..m.recs.len() as u32 {
            if m.recs[id as usize].1 == State::Unknown {
                let s = m.spec(id);
                if found.contains(&id) {
                    m.recs[id as usize].1 = State::Recovered;
                    if s.kind == Kind::Reject {
                        m.rejected.insert((s.sp, s.num));
                    }
                } else {
                    m.recs[id as usize].1 = State::Lost;
                }
            }
        }
    }

    // Every pair, plain and from memory, and the unknown sub-port; then unknown rejects resolved.
    let gw = connect(&ep, GATEWAY).await;
    let mut answered_rejected: HashSet<Pair> = HashSet::new();
    for variant in [Variant::Plain, Variant::SkipSince] {
        let qs: Vec<Question> = {
            let m = sh.model.lock().unwrap();
            (0..SUB_PORTS as u8)
                .flat_map(|sp| (0..numbers).map(move |n| (sp, n)))
                .map(|pair| Question { pair, variant, must_reject: m.rejected.contains(&pair) })
                .chain(std::iter::once(Question { pair: (0, 0), variant: Variant::Unknown, must_reject: false }))
                .collect()
        };
        for part in qs.chunks(5000) {
            match gw.check_batch(part.iter().map(Question::request).collect()).await {
                Ok(replies) => {
                    judge_all(sh, part, &replies);
                    for (q, r) in part.iter().zip(&replies) {
                        if r.reason == proto::DenyReason::Rejected as i32 {
                            answered_rejected.insert(q.pair);
                        }
                    }
                }
                Err(st) => sh.problem(format!("check batch {label}: {:?} {}", st.code(), st.message())),
            }
        }
    }
    let stats = admin.stats().await;
    let mut m = sh.model.lock().unwrap();
    m.rejected.extend(answered_rejected.iter().copied());
    m.tainted.retain(|p| answered_rejected.contains(p));
    m.tainted_list = m.tainted.iter().copied().collect();
    m.tainted_list.sort_unstable();
    let stored = m
        .recs
        .iter()
        .enumerate()
        .filter(|(id, r)| matches!(r.1, State::Acked | State::Recovered) && m.spec(*id as u32).kind != Kind::Old);
    let stored = stored.count() as u64;
    match stats {
        Ok(s) => {
            if s.records != stored || s.rejects != m.rejected.len() as u64 {
                sh.problem(format!(
                    "stats {label}: {} records and {} rejects; the model: {stored} and {}",
                    s.records,
                    s.rejects,
                    m.rejected.len()
                ));
            }
        }
        Err(st) => sh.problem(format!("stats {label}: {:?} {}", st.code(), st.message())),
    }
    let secs = t0.elapsed().as_secs_f64();
    let verified = verified.load(SeqCst);
    println!(
        "soak: verified {label} in {secs:.1} s: {verified} acknowledged records found by trace, {stored} records \
         stored, {} rejects in force",
        m.rejected.len()
    );
    (secs, verified)
}

fn print_summary(sh: &Shared, rep: &Report, total: Duration) {
    let lat = sh.lat.lock().unwrap();
    let mem = sh.mem.lock().unwrap();
    let m = sh.model.lock().unwrap();
    let acked = m.recs.iter().filter(|r| r.1 == State::Acked).count();
    let refused = m.recs.iter().filter(|r| r.1 == State::Refused).count();
    let secs = |d: &Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
    println!("soak summary (seed {}):", sh.cfg.seed);
    println!(
        "  load {:.1} s: SIGKILL after {:?} s of load, then SIGTERM under load after {:.1} s; whole test {:.1} s",
        rep.load.as_secs_f64(),
        rep.kill_after.iter().map(secs).collect::<Vec<_>>(),
        rep.term_after.as_secs_f64(),
        total.as_secs_f64()
    );
    println!("  {:<18} {:>8} {:>10} {:>7} {:>9} {:>9}", "calls", "ok", "items", "failed", "p50 ms", "p99 ms");
    for (k, l) in lat.iter() {
        println!(
            "  {:<18} {:>8} {:>10} {:>7} {:>9.2} {:>9.2}",
            k,
            l.us.len(),
            l.items,
            l.failed,
            l.pct_ms(50.0),
            l.pct_ms(99.0)
        );
    }
    println!("  failures allowed during SIGKILL/SIGTERM, by status: {:?}", sh.codes.lock().unwrap());
    println!(
        "  records generated {} (acknowledged {acked}, refused as bad {refused}, of failed calls: found {} and \
         absent {}); back-filled old {}, retention deleted {}",
        m.recs.len(),
        rep.recovered,
        rep.lost,
        m.old_sent,
        sh.retention_deleted.load(SeqCst)
    );
    println!(
        "  verifications (s, acknowledged records found by trace): {:?}; final: {} records, {} rejects in force \
         ({} pairs ever sent a reject keyword)",
        rep.verify.iter().map(|(s, n)| ((s * 10.0).round() / 10.0, *n)).collect::<Vec<_>>(),
        rep.records_final,
        rep.rejects_final,
        m.reject_ts.len()
    );
    println!(
        "  daemon memory: peak RSS (VmHWM) {:.1} MiB, highest VmRSS sampled {:.1} MiB, VmRSS at the end of each \
         phase's load {:?} MiB ({} samples; bound {} MiB)",
        mem.hwm_kib as f64 / 1024.0,
        mem.rss_max_kib as f64 / 1024.0,
        mem.phase_end_kib.iter().map(|k| k >> 10).collect::<Vec<_>>(),
        mem.samples,
        rss_bound_kib(&sh.cfg, rep.records_final) >> 10
    );
}
