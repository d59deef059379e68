//! `portlog-load-bench`: the gRPC load benchmark of issue 6 (must-show 2), client and server on
//! this machine, with Redis as the peer measured in the same run.
//!
//! ```text
//! portlog-load-bench [--assignments N] [--rejects N] [--zipf S] [--hit-percent P] [--queries N]
//!                    [--duration S] [--warmup S] [--rounds N] [--unary-callers N] [--unary-rate N]
//!                    [--batch N] [--batch-callers N] [--streams N] [--stream-window N]
//!                    [--connections N] [--bg-ingest-rate N] [--ingest-chunk N] [--ingest-streams N]
//!                    [--ingest-duration S] [--since] [--server-bin PATH] [--redis-server PATH]
//!                    [--no-redis] [--dir DIR] [--seed N] [--phases LIST] [--json]
//! ```
//!
//! It starts the real `portlog-server` (next to this executable in the target directory, or
//! `--server-bin` / `$PORTLOG_SERVER_BIN`) on a free loopback port with a scratch data directory
//! and its default configuration (log fdatasync per group commit, registry writes synced), and
//! `redis-server` (Debian's) on another free loopback port with no persistence (`--save ""
//! --appendonly no`).
//!
//! Setup, over gRPC: one provider, `--assignments` commercial sub-ports (`Ledger.Assign`), and
//! `--rejects` distinct (sub-port, number) rejects spread over them Zipf-like (`--zipf`), one
//! `Rejects.Import` call per sub-port. The same rejects go into Redis as one set per sub-port
//! (`SADD rj:SUBPORT NUMBER`, pipelined).
//!
//! Queries: `--queries` (sub-port, number) pairs, sub-ports Zipf-popular like the rejects,
//! `--hit-percent` of them rejected pairs; every answer is verified (a rejected pair answered
//! "allow" is counted as wrong and fails the run). portlog's checks are commercial, at now, with
//! `skip_since` (allow/deny from memory, like `SISMEMBER`) unless `--since`.
//!
//! Each round runs these phases (`--warmup` then `--duration` seconds each), the check phases
//! while a background ingest stream sends `--bg-ingest-rate` messages/s (a chunk every 10 ms,
//! one client-stream call per second):
//!
//! * portlog unary: `--unary-callers` tasks, each a closed loop of `Check` calls;
//! * Redis unary: as many tasks, each with its own connection, a closed loop of `SISMEMBER`;
//! * portlog paced / Redis paced: `--unary-rate` single checks per second launched open-loop
//!   (due requests started every 1 ms tick, each in its own task; latency from launch), over the
//!   shared HTTP/2 connection and one multiplexed Redis connection;
//! * portlog batch: `--batch-callers` closed loops of `CheckBatch` with `--batch` checks;
//! * Redis pipelined: as many connections, each a closed loop of `--batch` `SISMEMBER` pipelines;
//! * portlog stream: `--streams` `CheckStream` calls, each with `--stream-window` request
//!   messages of `--batch` checks in flight;
//! * then, with the background ingest stopped: ingest alone, `--ingest-streams` client streams
//!   sending chunks of `--ingest-chunk` messages as fast as the server takes them for
//!   `--ingest-duration` seconds; messages/s = accepted / (first send to the durable reply).
//!
//! Ingest messages come from the workload generator (`shared/data/templates.tsv`, 10 % MO of
//! which 30 % "R", registering rejects), on the ledger's sub-ports, times in the last hour,
//! from a pool cycled as needed. Latency: p50/p99 of a call (unary: one check; batch: one call;
//! stream: one request message from send to reply; Redis pipelined: one pipeline). CPU: cores
//! used by the server, the benchmark client and Redis during the measured window
//! (`/proc/PID/stat`). With `--rounds N`, the table shows the median of each figure, and each
//! "vs Redis" ratio is the median of the per-round ratios.

use anyhow::{anyhow, bail, Context, Result};
use portlog_benches::stats::median;
use portlog_benches::{Generator, Templates, WorkloadConfig};
use portlog_client::{proto, Client};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const USAGE: &str = "usage: portlog-load-bench [flags]
  workload: --assignments 10000 --rejects 1000000 --zipf 1.0 --hit-percent 10 --queries 200000 --seed 42
  phases:   --duration 4 --warmup 1 --rounds 3 --ingest-duration 4
  checks:   --unary-callers 8 --unary-rate 10000 --batch 1000 --batch-callers 2 --streams 2
            --stream-window 2 --connections 1 --since (full check with since read; default skip_since)
  ingest:   --bg-ingest-rate 20000 --ingest-chunk 1000 --ingest-streams 1
  processes: --server-bin PATH (default: portlog-server next to this binary, or $PORTLOG_SERVER_BIN)
            --redis-server PATH (default: redis-server) --no-redis --dir DIR (scratch base)
  selection: --phases unary,paced,batch,stream,ingest (each portlog phase with its Redis peer)
  output:   --json (one JSON object on stdout)";

#[derive(Debug, Clone, Serialize)]
struct Args {
    assignments: usize,
    rejects: usize,
    zipf: f64,
    hit_percent: f64,
    queries: usize,
    seed: u64,
    duration_s: f64,
    warmup_s: f64,
    rounds: usize,
    ingest_duration_s: f64,
    unary_callers: usize,
    unary_rate: f64,
    batch: usize,
    batch_callers: usize,
    streams: usize,
    stream_window: usize,
    connections: usize,
    since: bool,
    bg_ingest_rate: u64,
    ingest_chunk: usize,
    ingest_streams: usize,
    server_bin: Option<PathBuf>,
    redis_server: String,
    no_redis: bool,
    dir: Option<PathBuf>,
    phases: Vec<String>,
    #[serde(skip)]
    json: bool,
}

/// The phases of a round, in order (`--phases` picks some).
const PHASES: &[&str] = &["unary", "paced", "batch", "stream", "ingest"];

fn parse_args() -> Result<Args> {
    let mut a = Args {
        assignments: 10_000,
        rejects: 1_000_000,
        zipf: 1.0,
        hit_percent: 10.0,
        queries: 200_000,
        seed: 42,
        duration_s: 4.0,
        warmup_s: 1.0,
        rounds: 3,
        ingest_duration_s: 4.0,
        unary_callers: 8,
        unary_rate: 10_000.0,
        batch: 1000,
        batch_callers: 2,
        streams: 2,
        stream_window: 2,
        connections: 1,
        since: false,
        bg_ingest_rate: 20_000,
        ingest_chunk: 1000,
        ingest_streams: 1,
        server_bin: None,
        redis_server: "redis-server".into(),
        no_redis: false,
        dir: None,
        phases: PHASES.iter().map(|p| p.to_string()).collect(),
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(f) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{f} needs a value\n{USAGE}"));
        let num =
            |v: String| -> Result<f64> { v.replace('_', "").parse().map_err(|_| anyhow!("{v:?} is not a number")) };
        match f.as_str() {
            "--assignments" => a.assignments = num(val()?)? as usize,
            "--rejects" => a.rejects = num(val()?)? as usize,
            "--zipf" => a.zipf = num(val()?)?,
            "--hit-percent" => a.hit_percent = num(val()?)?,
            "--queries" => a.queries = num(val()?)? as usize,
            "--seed" => a.seed = num(val()?)? as u64,
            "--duration" => a.duration_s = num(val()?)?,
            "--warmup" => a.warmup_s = num(val()?)?,
            "--rounds" => a.rounds = num(val()?)? as usize,
            "--ingest-duration" => a.ingest_duration_s = num(val()?)?,
            "--unary-callers" => a.unary_callers = num(val()?)? as usize,
            "--unary-rate" => a.unary_rate = num(val()?)?,
            "--batch" => a.batch = num(val()?)? as usize,
            "--batch-callers" => a.batch_callers = num(val()?)? as usize,
            "--streams" => a.streams = num(val()?)? as usize,
            "--stream-window" => a.stream_window = num(val()?)? as usize,
            "--connections" => a.connections = num(val()?)? as usize,
            "--since" => a.since = true,
            "--bg-ingest-rate" => a.bg_ingest_rate = num(val()?)? as u64,
            "--ingest-chunk" => a.ingest_chunk = num(val()?)? as usize,
            "--ingest-streams" => a.ingest_streams = num(val()?)? as usize,
            "--server-bin" => a.server_bin = Some(val()?.into()),
            "--redis-server" => a.redis_server = val()?,
            "--no-redis" => a.no_redis = true,
            "--dir" => a.dir = Some(val()?.into()),
            "--phases" => {
                a.phases = val()?.split(',').map(|p| p.trim().to_string()).collect();
                if let Some(bad) = a.phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
                    bail!("--phases: unknown phase {bad:?} (phases: {})", PHASES.join(","));
                }
            }
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other:?}\n{USAGE}"),
        }
    }
    if a.assignments == 0 || a.rejects == 0 || a.queries == 0 || a.rounds == 0 {
        bail!("--assignments, --rejects, --queries and --rounds must be positive");
    }
    if a.batch == 0 || a.batch > 10_000 || a.ingest_chunk == 0 || a.ingest_chunk > 10_000 {
        bail!("--batch and --ingest-chunk must be 1..=10000 (the server's default limits)");
    }
    if a.unary_callers == 0 || a.batch_callers == 0 || a.streams == 0 || a.stream_window == 0 {
        bail!("--unary-callers, --batch-callers, --streams and --stream-window must be positive");
    }
    if a.connections == 0 || a.ingest_streams == 0 || a.duration_s <= 0.0 || a.ingest_duration_s <= 0.0 {
        bail!("--connections, --ingest-streams and the durations must be positive");
    }
    if !(0.0..=100.0).contains(&a.hit_percent) {
        bail!("--hit-percent must be in 0..=100");
    }
    // Whole batches of queries.
    a.queries = a.queries.div_ceil(a.batch) * a.batch;
    Ok(a)
}

/// Progress, on stderr (stdout carries only the results).
fn note(msg: impl AsRef<str>) {
    eprintln!("load-bench: {}", msg.as_ref());
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------- child processes

/// A child process killed (SIGTERM, then SIGKILL after 15 s) when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => {
                Some(format!("{} exited ({st}); its log {}:\n{}", self.name, self.log.display(), tail(&self.log)))
            }
            _ => None,
        }
    }

    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn server_bin(a: &Args) -> Result<PathBuf> {
    if let Some(p) = &a.server_bin {
        return Ok(p.clone());
    }
    if let Some(p) = std::env::var_os("PORTLOG_SERVER_BIN") {
        return Ok(p.into());
    }
    let p = std::env::current_exe().context("locating this executable")?.with_file_name("portlog-server");
    if !p.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release -p portlog-server) or pass --server-bin PATH",
            p.display()
        );
    }
    Ok(p)
}

async fn start_server(a: &Args, base: &Path) -> Result<(Proc, Client, String)> {
    let bin = server_bin(a)?;
    let data = base.join("data");
    let port = free_port()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let log = base.join("server.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(&bin)
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut p = Proc { name: "portlog-server", child, log };
    let t = Instant::now();
    loop {
        if let Some(e) = p.exited() {
            bail!(e);
        }
        if let Ok(c) = Client::connect(&endpoint, None, None).await {
            if c.stats().await.is_ok() {
                return Ok((p, c, endpoint));
            }
        }
        if t.elapsed() > Duration::from_secs(120) {
            bail!("portlog-server did not answer on {endpoint} within 120 s; log:\n{}", tail(&p.log));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_redis(a: &Args, base: &Path) -> Result<Option<(Proc, redis::Client)>> {
    if a.no_redis {
        return Ok(None);
    }
    let port = free_port()?;
    let dir = base.join("redis");
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("redis.log");
    let out = std::fs::File::create(&log)?;
    let child = match Command::new(&a.redis_server)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .args(["--daemonize", "no", "--protected-mode", "yes"])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            note(format!(
                "cannot start {:?} ({e}): the Redis peer is skipped (apt-get install -y redis-server)",
                a.redis_server
            ));
            return Ok(None);
        }
    };
    let mut p = Proc { name: "redis-server", child, log };
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let t = Instant::now();
    loop {
        if let Some(e) = p.exited() {
            bail!(e);
        }
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            if redis::cmd("PING").query_async::<String>(&mut c).await.is_ok() {
                return Ok(Some((p, client)));
            }
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("redis-server did not answer within 30 s; log:\n{}", tail(&p.log));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn redis_conn(c: &redis::Client) -> Result<redis::aio::MultiplexedConnection> {
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    Ok(c.get_multiplexed_async_connection_with_config(&cfg).await?)
}

// ---------------------------------------------------------------- CPU and memory

struct Cpu {
    tck: f64,
    server: u32,
    redis: Option<u32>,
}

#[derive(Clone, Copy, Default)]
struct Cores {
    server: f64,
    client: f64,
    redis: f64,
    other: f64,
}

#[derive(Clone, Copy)]
struct CpuSnap {
    at: Instant,
    server: u64,
    client: u64,
    redis: u64,
    /// Busy ticks of the whole machine (`/proc/stat`).
    all: u64,
}

fn proc_ticks(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name "(...)": state is the 1st; utime, stime the 12th and 13th.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|x| x.parse().ok()).collect();
    f.iter().sum()
}

fn loadavg() -> f64 {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().next().and_then(|x| x.parse().ok()).unwrap_or(f64::NAN)
}

fn machine_busy_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> =
        s.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    f.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum()
}

fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

impl Cpu {
    fn snap(&self) -> CpuSnap {
        CpuSnap {
            at: Instant::now(),
            server: proc_ticks(&self.server.to_string()),
            client: proc_ticks("self"),
            redis: self.redis.map_or(0, |p| proc_ticks(&p.to_string())),
            all: machine_busy_ticks(),
        }
    }

    /// Cores used by the server, the client, Redis and every other process between two
    /// snapshots.
    fn cores(&self, a: CpuSnap, b: CpuSnap) -> Cores {
        let secs = (b.at - a.at).as_secs_f64().max(1e-9) * self.tck;
        let d = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        let (server, client, redis) = (d(a.server, b.server), d(a.client, b.client), d(a.redis, b.redis));
        Cores { server, client, redis, other: (d(a.all, b.all) - server - client - redis).max(0.0) }
    }
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------- workload

fn sub_port(i: usize) -> String {
    format!("10690{i:08}")
}

fn random_number(rng: &mut impl Rng) -> u64 {
    13_000_000_000 + rng.gen_range(0..7_000_000_000u64)
}

struct Workload {
    sub_ports: Vec<String>,
    /// Per assignment index, its rejected numbers.
    rejects: Vec<Vec<u64>>,
    /// (assignment index, number, rejected).
    queries: Vec<(u32, u64, bool)>,
}

fn workload(a: &Args) -> Result<Workload> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let zipf = Zipf::new(a.assignments as u64, a.zipf).map_err(|e| anyhow!("zipf: {e}"))?;
    let mut set: HashSet<(u32, u64)> = HashSet::with_capacity(a.rejects);
    while set.len() < a.rejects {
        let asg = zipf.sample(&mut rng) as u32 - 1;
        set.insert((asg, random_number(&mut rng)));
    }
    let mut keys: Vec<(u32, u64)> = set.iter().copied().collect();
    keys.sort_unstable();
    let mut rejects = vec![Vec::new(); a.assignments];
    for &(asg, n) in &keys {
        rejects[asg as usize].push(n);
    }
    let queries = (0..a.queries)
        .map(|_| {
            if rng.gen_bool((a.hit_percent / 100.0).clamp(0.0, 1.0)) {
                let (asg, n) = keys[rng.gen_range(0..keys.len())];
                (asg, n, true)
            } else {
                loop {
                    let asg = zipf.sample(&mut rng) as u32 - 1;
                    let n = random_number(&mut rng);
                    if !set.contains(&(asg, n)) {
                        break (asg, n, false);
                    }
                }
            }
        })
        .collect();
    Ok(Workload { sub_ports: (0..a.assignments).map(sub_port).collect(), rejects, queries })
}

/// Ingest messages from the generator, moved onto the ledger's sub-ports (the generator's
/// sub-port of popularity rank k becomes ledger sub-port k), times in the last hour.
fn message_pool(n: usize, sub_ports: &[String], seed: u64) -> Result<Vec<proto::Message>> {
    let templates = Arc::new(Templates::load_default()?);
    let cfg = WorkloadConfig {
        seed,
        sub_ports: sub_ports.len() as u32,
        start_ms: now_ms() - 2 * 3_600_000,
        rate_per_s: n as f64 / 3600.0,
        ..WorkloadConfig::default()
    };
    let mut map: HashMap<String, usize> = HashMap::new();
    let out = Generator::new(templates, cfg)?
        .take(n)
        .map(|r| {
            let next = map.len();
            let idx = *map.entry(r.sub_port.to_string()).or_insert(next) % sub_ports.len();
            proto::Message {
                dir: match r.dir {
                    portlog_engine::Direction::Mt => proto::Direction::Mt,
                    portlog_engine::Direction::Mo => proto::Direction::Mo,
                } as i32,
                sub_port: sub_ports[idx].clone(),
                peer: r.peer.to_string(),
                ts_ms: r.ts_ms,
                usage: match r.usage {
                    None => proto::Usage::Unspecified,
                    Some(portlog_engine::Usage::Commercial) => proto::Usage::Commercial,
                    Some(portlog_engine::Usage::Service) => proto::Usage::Service,
                    Some(portlog_engine::Usage::Public) => proto::Usage::Public,
                } as i32,
                text: r.text,
            }
        })
        .collect();
    Ok(out)
}

/// Everything the measuring loops read, built once.
struct Prepared {
    unary: Vec<proto::CheckRequest>,
    batches: Vec<proto::CheckBatchRequest>,
    /// Per query: rejected (the answer must be deny).
    hit: Vec<bool>,
    redis_keys: Vec<String>,
    /// Per query: (assignment index, number as text).
    redis_q: Vec<(u32, String)>,
    batch: usize,
    chunks: Vec<proto::IngestRequest>,
    pool: Vec<proto::Message>,
}

fn prepare(a: &Args, w: &Workload, pool: Vec<proto::Message>) -> Prepared {
    let unary: Vec<proto::CheckRequest> = w
        .queries
        .iter()
        .map(|&(asg, n, _)| proto::CheckRequest {
            sub_port: w.sub_ports[asg as usize].clone(),
            number: n.to_string(),
            usage: proto::Usage::Commercial as i32,
            skip_since: !a.since,
            ..Default::default()
        })
        .collect();
    let batches = unary
        .chunks(a.batch)
        .enumerate()
        .map(|(i, c)| proto::CheckBatchRequest { request_id: i as u64, checks: c.to_vec() })
        .collect();
    let chunks = pool.chunks(a.ingest_chunk).map(|c| proto::IngestRequest { messages: c.to_vec() }).collect();
    Prepared {
        unary,
        batches,
        hit: w.queries.iter().map(|q| q.2).collect(),
        redis_keys: w.sub_ports.iter().map(|s| format!("rj:{s}")).collect(),
        redis_q: w.queries.iter().map(|&(asg, n, _)| (asg, n.to_string())).collect(),
        batch: a.batch,
        chunks,
        pool,
    }
}

// ---------------------------------------------------------------- setup

async fn setup_ledger(client: &Client, w: &Workload) -> Result<()> {
    client
        .ledger_client()
        .add_provider(proto::Provider {
            id: "P".into(),
            name: "星河银行股份有限公司".into(),
            signatures: vec!["星河银行".into()],
            ..Default::default()
        })
        .await?;
    let now = now_ms();
    let year = 365 * 86_400_000;
    let sps = Arc::new(w.sub_ports.clone());
    let conc = 16;
    let mut set = tokio::task::JoinSet::new();
    for k in 0..conc {
        let (c, sps) = (client.clone(), sps.clone());
        set.spawn(async move {
            let mut lc = c.ledger_client();
            for sp in sps.iter().skip(k).step_by(conc) {
                lc.assign(proto::AssignRequest {
                    sub_port: sp.clone(),
                    provider_id: "P".into(),
                    usage: proto::Usage::Commercial as i32,
                    from_ms: now - year,
                    to_ms: now + year,
                    consent_required: false,
                })
                .await
                .with_context(|| format!("assigning {sp}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

async fn setup_rejects(client: &Client, w: &Workload) -> Result<u64> {
    let conc = 8;
    let jobs: Vec<(String, Vec<u64>)> = w
        .sub_ports
        .iter()
        .zip(&w.rejects)
        .filter(|(_, r)| !r.is_empty())
        .map(|(s, r)| (s.clone(), r.clone()))
        .collect();
    let jobs = Arc::new(jobs);
    let mut set = tokio::task::JoinSet::new();
    for k in 0..conc {
        let (c, jobs) = (client.clone(), jobs.clone());
        set.spawn(async move {
            let mut rc = c.rejects_client();
            let mut registered = 0u64;
            for (sp, numbers) in jobs.iter().skip(k).step_by(conc) {
                let mut file = Vec::with_capacity(numbers.len() * 26);
                for n in numbers {
                    file.extend_from_slice(format!("{{\"number\":\"{n}\"}}\n").as_bytes());
                }
                // 1 MiB per message; the first names the sub-port and format.
                let msgs: Vec<proto::ImportRequest> = file
                    .chunks(1 << 20)
                    .enumerate()
                    .map(|(i, d)| proto::ImportRequest {
                        sub_port: if i == 0 { sp.clone() } else { String::new() },
                        format: proto::RejectFileFormat::JsonLines as i32,
                        data: d.to_vec(),
                        ..Default::default()
                    })
                    .collect();
                let r =
                    rc.import(tokio_stream::iter(msgs)).await.with_context(|| format!("importing {sp}"))?.into_inner();
                registered += r.registered;
            }
            anyhow::Ok(registered)
        });
    }
    let mut registered = 0;
    while let Some(r) = set.join_next().await {
        registered += r??;
    }
    Ok(registered)
}

async fn setup_redis(c: &redis::Client, w: &Workload) -> Result<()> {
    let mut con = redis_conn(c).await?;
    redis::cmd("FLUSHALL").query_async::<()>(&mut con).await?;
    let mut pipe = redis::pipe();
    let mut n = 0;
    for (sp, numbers) in w.sub_ports.iter().zip(&w.rejects) {
        for num in numbers {
            pipe.cmd("SADD").arg(format!("rj:{sp}")).arg(num.to_string()).ignore();
            n += 1;
            if n % 10_000 == 0 {
                pipe.query_async::<()>(&mut con).await?;
                pipe = redis::pipe();
            }
        }
    }
    if n % 10_000 != 0 {
        pipe.query_async::<()>(&mut con).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- measuring

/// Samples of one worker: latencies (ns) of calls started in the measured window, checks
/// answered there, and answers that disagree with the workload.
#[derive(Default)]
struct Rec {
    lat_ns: Vec<u64>,
    items: u64,
    /// A rejected pair answered "allow": a bug.
    wrong: u64,
    /// A pair not in the workload's rejects answered "deny" (an ingested MO "R" could do that).
    unexpected: u64,
}

impl Rec {
    fn answer(&mut self, allow: bool, hit: bool) {
        self.items += 1;
        if hit && allow {
            self.wrong += 1;
        } else if !hit && !allow {
            self.unexpected += 1;
        }
    }

    fn merge(&mut self, o: Rec) {
        self.lat_ns.extend(o.lat_ns);
        self.items += o.items;
        self.wrong += o.wrong;
        self.unexpected += o.unexpected;
    }
}

#[derive(Clone, Copy)]
struct Window {
    measure: Instant,
    end: Instant,
}

impl Window {
    fn new(a: &Args, secs: f64, warmup: bool) -> Window {
        let now = Instant::now();
        let measure = now + Duration::from_secs_f64(if warmup { a.warmup_s } else { 0.0 });
        Window { measure, end: measure + Duration::from_secs_f64(secs) }
    }

    fn open(&self, t: Instant) -> bool {
        t < self.end
    }

    fn counts(&self, t: Instant) -> bool {
        t >= self.measure
    }
}

type Task = tokio::task::JoinHandle<Result<Rec>>;

/// One measured phase: starts the workers, snapshots CPU and the background ingest counter at
/// the window's edges, joins the workers.
async fn measure(env: &Env, w: Window, tasks: Vec<Task>) -> Result<(Rec, Cores, f64)> {
    tokio::time::sleep_until(w.measure.into()).await;
    let (c0, s0) = (env.cpu.snap(), env.bg_sent.load(Ordering::Relaxed));
    tokio::time::sleep_until(w.end.into()).await;
    let (c1, s1) = (env.cpu.snap(), env.bg_sent.load(Ordering::Relaxed));
    let mut rec = Rec::default();
    for t in tasks {
        rec.merge(t.await??);
    }
    let secs = (c1.at - c0.at).as_secs_f64();
    Ok((rec, env.cpu.cores(c0, c1), (s1 - s0) as f64 / secs))
}

struct Env {
    a: Args,
    clients: Vec<Client>,
    /// The ingest streams' own connection (a separate client, as an SMS gateway's logger is).
    ingest_client: Client,
    redis: Option<redis::Client>,
    p: Arc<Prepared>,
    cpu: Cpu,
    bg_sent: Arc<AtomicU64>,
}

fn grpc_unary(env: &Env, w: Window) -> Vec<Task> {
    let n = env.p.unary.len();
    (0..env.a.unary_callers)
        .map(|k| {
            let mut cc = env.clients[k % env.clients.len()].check_client();
            let p = env.p.clone();
            tokio::spawn(async move {
                let mut rec = Rec::default();
                let mut i = k * 7919;
                loop {
                    let t = Instant::now();
                    if !w.open(t) {
                        break;
                    }
                    let q = i % n;
                    let r = cc.check(p.unary[q].clone()).await?.into_inner();
                    if w.counts(t) {
                        rec.lat_ns.push(t.elapsed().as_nanos() as u64);
                        rec.answer(r.allow, p.hit[q]);
                    }
                    i += 1;
                }
                Ok(rec)
            })
        })
        .collect()
}

async fn redis_unary(env: &Env, w: Window, rc: &redis::Client) -> Result<Vec<Task>> {
    let n = env.p.redis_q.len();
    let mut tasks = Vec::new();
    for k in 0..env.a.unary_callers {
        let mut con = redis_conn(rc).await?;
        let p = env.p.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Rec::default();
            let mut i = k * 7919;
            loop {
                let t = Instant::now();
                if !w.open(t) {
                    break;
                }
                let q = i % n;
                let (asg, num) = &p.redis_q[q];
                let member: bool =
                    redis::cmd("SISMEMBER").arg(&p.redis_keys[*asg as usize]).arg(num).query_async(&mut con).await?;
                if w.counts(t) {
                    rec.lat_ns.push(t.elapsed().as_nanos() as u64);
                    rec.answer(!member, p.hit[q]);
                }
                i += 1;
            }
            Ok(rec)
        }));
    }
    Ok(tasks)
}

/// Open-loop single checks at `rate`/s: a launcher thread starts each request at its
/// scheduled instant (k / rate after the start; `std::thread::sleep`, not the 1 ms tokio timer,
/// so requests are spread evenly rather than released in bursts), each in its own task, at most
/// 200 in flight; latency from launch to answer.
fn paced<F, Fut>(env: &Env, w: Window, call: F) -> Vec<Task>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<bool>> + Send + 'static,
{
    let (rate, n, p) = (env.a.unary_rate, env.p.unary.len(), env.p.clone());
    let handle = tokio::runtime::Handle::current();
    vec![tokio::task::spawn_blocking(move || {
        const INFLIGHT_MAX: usize = 200;
        let inflight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, mut rx) = mpsc::unbounded_channel::<Result<(Instant, u64, usize)>>();
        let call = Arc::new(call);
        let start = Instant::now();
        let mut k = 0u64;
        loop {
            let due = start + Duration::from_secs_f64(k as f64 / rate);
            if !w.open(due) {
                break;
            }
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            while inflight.load(Ordering::Acquire) >= INFLIGHT_MAX {
                std::thread::sleep(Duration::from_micros(50));
            }
            let q = (k as usize * 7919) % n;
            let (tx, call, inflight) = (tx.clone(), call.clone(), inflight.clone());
            inflight.fetch_add(1, Ordering::AcqRel);
            let t = Instant::now();
            handle.spawn(async move {
                let r = call(q).await.map(|allow| (t, t.elapsed().as_nanos() as u64, q + if allow { n } else { 0 }));
                let _ = tx.send(r);
                inflight.fetch_sub(1, Ordering::AcqRel);
            });
            k += 1;
        }
        drop(tx);
        let mut rec = Rec::default();
        while let Some(r) = rx.blocking_recv() {
            let (t, lat, qa) = r?;
            if w.counts(t) && w.open(t) {
                rec.lat_ns.push(lat);
                rec.answer(qa >= n, p.hit[qa % n]);
            }
        }
        Ok(rec)
    })]
}

fn grpc_batch(env: &Env, w: Window) -> Vec<Task> {
    let nb = env.p.batches.len();
    (0..env.a.batch_callers)
        .map(|k| {
            let mut cc = env.clients[k % env.clients.len()].check_client();
            let p = env.p.clone();
            tokio::spawn(async move {
                let mut rec = Rec::default();
                let mut i = k * 31;
                loop {
                    let t = Instant::now();
                    if !w.open(t) {
                        break;
                    }
                    let b = i % nb;
                    let r = cc.check_batch(p.batches[b].clone()).await?.into_inner();
                    if w.counts(t) {
                        rec.lat_ns.push(t.elapsed().as_nanos() as u64);
                        if r.results.len() != p.batch {
                            bail!("batch {b}: {} answers for {} checks", r.results.len(), p.batch);
                        }
                        for (j, x) in r.results.iter().enumerate() {
                            rec.answer(x.allow, p.hit[b * p.batch + j]);
                        }
                    }
                    i += 1;
                }
                Ok(rec)
            })
        })
        .collect()
}

fn grpc_stream(env: &Env, w: Window) -> Vec<Task> {
    let (nb, window) = (env.p.batches.len(), env.a.stream_window);
    (0..env.a.streams)
        .map(|k| {
            let mut cc = env.clients[k % env.clients.len()].check_client();
            let p = env.p.clone();
            tokio::spawn(async move {
                let mut rec = Rec::default();
                let (tx, rx) = mpsc::channel::<proto::CheckBatchRequest>(window);
                let mut sent: VecDeque<(Instant, usize)> = VecDeque::new();
                let mut i = k * 31;
                for _ in 0..window {
                    let b = i % nb;
                    sent.push_back((Instant::now(), b));
                    tx.send(p.batches[b].clone()).await?;
                    i += 1;
                }
                let mut replies = cc.check_stream(ReceiverStream::new(rx)).await?.into_inner();
                let mut tx = Some(tx);
                while let Some(r) = replies.message().await? {
                    let (t, b) = sent.pop_front().ok_or_else(|| anyhow!("a reply to no request"))?;
                    if r.request_id != b as u64 {
                        bail!("stream reply {} for request {b}", r.request_id);
                    }
                    if w.counts(t) {
                        rec.lat_ns.push(t.elapsed().as_nanos() as u64);
                        for (j, x) in r.results.iter().enumerate() {
                            rec.answer(x.allow, p.hit[b * p.batch + j]);
                        }
                    }
                    if let Some(s) = &tx {
                        if w.open(Instant::now()) {
                            let b = i % nb;
                            sent.push_back((Instant::now(), b));
                            s.send(p.batches[b].clone()).await?;
                            i += 1;
                        } else {
                            tx = None; // end our side; the server ends its own after the last reply
                        }
                    }
                }
                Ok(rec)
            })
        })
        .collect()
}

async fn redis_pipelined(env: &Env, w: Window, rc: &redis::Client) -> Result<Vec<Task>> {
    let nb = env.p.batches.len();
    let mut tasks = Vec::new();
    for k in 0..env.a.batch_callers {
        let mut con = redis_conn(rc).await?;
        let p = env.p.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Rec::default();
            let mut i = k * 31;
            loop {
                let t = Instant::now();
                if !w.open(t) {
                    break;
                }
                let b = i % nb;
                let mut pipe = redis::pipe();
                for (asg, num) in &p.redis_q[b * p.batch..(b + 1) * p.batch] {
                    pipe.cmd("SISMEMBER").arg(&p.redis_keys[*asg as usize]).arg(num);
                }
                let members: Vec<bool> = pipe.query_async(&mut con).await?;
                if w.counts(t) {
                    rec.lat_ns.push(t.elapsed().as_nanos() as u64);
                    for (j, m) in members.iter().enumerate() {
                        rec.answer(!m, p.hit[b * p.batch + j]);
                    }
                }
                i += 1;
            }
            Ok(rec)
        }));
    }
    Ok(tasks)
}

/// Ingest alone: each stream sends chunks as fast as the server takes them until the window
/// ends, then waits for the durable reply. Items = accepted messages; no latency samples.
fn ingest_alone(env: &Env, w: Window) -> Vec<Task> {
    let nc = env.p.chunks.len();
    (0..env.a.ingest_streams)
        .map(|k| {
            let c = env.ingest_client.clone();
            let p = env.p.clone();
            tokio::spawn(async move {
                let (tx, rx) = mpsc::channel::<proto::IngestRequest>(2);
                let call = tokio::spawn(async move { c.ingest(ReceiverStream::new(rx)).await });
                let mut i = k * 17;
                while w.open(Instant::now()) {
                    if tx.send(p.chunks[i % nc].clone()).await.is_err() {
                        break;
                    }
                    i += 1;
                }
                drop(tx);
                let reply = call.await??;
                if reply.rejected > 0 {
                    bail!("ingest refused {} messages: {:?}", reply.rejected, reply.errors.first());
                }
                Ok(Rec { items: reply.accepted, ..Rec::default() })
            })
        })
        .collect()
}

/// The background ingest: `rate` messages/s, a chunk every 10 ms, one call per second.
async fn bg_ingest(
    client: Client,
    p: Arc<Prepared>,
    rate: u64,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> Result<(u64, u64)> {
    if rate == 0 {
        return Ok((0, 0));
    }
    let per_tick = (rate / 100).max(1) as usize;
    let pool = &p.pool;
    let start = Instant::now();
    let mut k = 0u32;
    let mut pos = 0usize;
    let mut calls = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let (tx, rx) = mpsc::channel::<proto::IngestRequest>(16);
        let c = client.clone();
        calls.push(tokio::spawn(async move { c.ingest(ReceiverStream::new(rx)).await }));
        for _ in 0..100 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            k += 1;
            tokio::time::sleep_until((start + Duration::from_millis(10) * k).into()).await;
            let mut messages = Vec::with_capacity(per_tick);
            for _ in 0..per_tick {
                messages.push(pool[pos % pool.len()].clone());
                pos += 1;
            }
            tx.send(proto::IngestRequest { messages }).await?;
            sent.fetch_add(per_tick as u64, Ordering::Relaxed);
        }
    }
    let (mut accepted, mut rejected) = (0, 0);
    for c in calls {
        let r = c.await??;
        accepted += r.accepted;
        rejected += r.rejected;
    }
    Ok((accepted, rejected))
}

/// Waits (at most 60 s) until the server uses under 0.1 core over a second, so that RocksDB's
/// compactions after the import are done before measuring; returns the seconds waited.
async fn settle(cpu: &Cpu) -> f64 {
    let t = Instant::now();
    loop {
        let a = cpu.snap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if cpu.cores(a, cpu.snap()).server < 0.1 || t.elapsed() > Duration::from_secs(60) {
            return t.elapsed().as_secs_f64();
        }
    }
}

// ---------------------------------------------------------------- results

#[derive(Debug, Clone, Serialize)]
struct Row {
    id: &'static str,
    system: &'static str,
    mode: String,
    /// Checks (or, for ingest, messages) per second.
    per_s: f64,
    /// Latency of one call (see `latency_of`), µs.
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    latency_of: &'static str,
    calls: usize,
    cpu_server: f64,
    cpu_client: f64,
    cpu_redis: f64,
    /// Cores used by other processes on the machine (it is shared).
    cpu_other: f64,
    /// The machine's 1-minute load average at the end of the window.
    loadavg: f64,
    /// Background ingest messages/s sent during the window (0 for ingest alone).
    bg_ingest_per_s: f64,
    wrong: u64,
    unexpected_denials: u64,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

struct Phase {
    id: &'static str,
    system: &'static str,
    mode: String,
    latency_of: &'static str,
}

fn row(ph: Phase, mut rec: Rec, secs: f64, cpu: Cores, bg: f64) -> Row {
    rec.lat_ns.sort_unstable();
    Row {
        id: ph.id,
        system: ph.system,
        mode: ph.mode,
        per_s: rec.items as f64 / secs,
        p50_us: pct(&rec.lat_ns, 0.5),
        p99_us: pct(&rec.lat_ns, 0.99),
        p999_us: pct(&rec.lat_ns, 0.999),
        latency_of: ph.latency_of,
        calls: rec.lat_ns.len(),
        cpu_server: cpu.server,
        cpu_client: cpu.client,
        cpu_redis: cpu.redis,
        cpu_other: cpu.other,
        loadavg: loadavg(),
        bg_ingest_per_s: bg,
        wrong: rec.wrong,
        unexpected_denials: rec.unexpected,
    }
}

/// The median row of each phase over the rounds.
fn medians(rounds: &[Vec<Row>]) -> Vec<Row> {
    let Some(first) = rounds.first() else { return Vec::new() };
    first
        .iter()
        .map(|r0| {
            let all: Vec<&Row> = rounds.iter().filter_map(|rs| rs.iter().find(|r| r.id == r0.id)).collect();
            let m = |f: fn(&Row) -> f64| median(all.iter().map(|r| f(r)).collect());
            Row {
                per_s: m(|r| r.per_s),
                p50_us: m(|r| r.p50_us),
                p99_us: m(|r| r.p99_us),
                p999_us: m(|r| r.p999_us),
                cpu_server: m(|r| r.cpu_server),
                cpu_client: m(|r| r.cpu_client),
                cpu_redis: m(|r| r.cpu_redis),
                cpu_other: m(|r| r.cpu_other),
                loadavg: m(|r| r.loadavg),
                bg_ingest_per_s: m(|r| r.bg_ingest_per_s),
                calls: all.iter().map(|r| r.calls).sum::<usize>() / all.len().max(1),
                wrong: all.iter().map(|r| r.wrong).sum(),
                unexpected_denials: all.iter().map(|r| r.unexpected_denials).sum(),
                ..r0.clone()
            }
        })
        .collect()
}

/// Per phase id, the Redis phase it is compared with and on what (`true`: checks/s, `false`:
/// p99 latency).
const PAIRS: &[(&str, &str, bool)] = &[
    ("grpc_unary", "redis_unary", true),
    ("grpc_paced", "redis_paced", false),
    ("grpc_batch", "redis_pipelined", true),
    ("grpc_stream", "redis_pipelined", true),
];

/// Median over the rounds of portlog / Redis (checks/s) or portlog p99 / Redis p99.
fn ratios(rounds: &[Vec<Row>]) -> HashMap<&'static str, f64> {
    let mut out = HashMap::new();
    for &(ours, theirs, throughput) in PAIRS {
        let v: Vec<f64> = rounds
            .iter()
            .filter_map(|rs| {
                let a = rs.iter().find(|r| r.id == ours)?;
                let b = rs.iter().find(|r| r.id == theirs)?;
                Some(if throughput { a.per_s / b.per_s } else { a.p99_us / b.p99_us })
            })
            .collect();
        if !v.is_empty() {
            out.insert(ours, median(v));
        }
    }
    out
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x.round());
    let (neg, digits) = s.strip_prefix('-').map_or((false, s.as_str()), |d| (true, d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

fn us(x: f64) -> String {
    if !x.is_finite() {
        "—".into()
    } else if x >= 10_000.0 {
        format!("{:.1} ms", x / 1000.0)
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// `us` with its unit: "812 µs", "20.4 ms".
fn with_unit(x: f64) -> String {
    let v = us(x);
    if v.ends_with("ms") || v == "—" {
        v
    } else {
        format!("{v} µs")
    }
}

#[derive(Serialize)]
struct Setup {
    server_start_s: f64,
    ledger_s: f64,
    import_s: f64,
    rejects_registered: u64,
    redis_load_s: Option<f64>,
    settle_s: f64,
    server_rss_mib: f64,
    redis_rss_mib: Option<f64>,
    message_pool: usize,
}

#[derive(Serialize)]
struct Targets {
    batch_checks_per_s: f64,
    batch_target_met: bool,
    unary_paced_p99_us: f64,
    unary_closed_loop_p99_us: f64,
    unary_target_met: bool,
    ingest_per_s: f64,
    ingest_target_met: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    args: &'a Args,
    machine: String,
    setup: &'a Setup,
    /// Messages sent by the background ingest over all rounds.
    bg_ingest_sent: u64,
    /// Messages in the server's log at the end.
    log_records: u64,
    medians: &'a [Row],
    ratios_vs_redis: &'a HashMap<&'static str, f64>,
    targets: &'a Targets,
    rounds: &'a [Vec<Row>],
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = portlog_benches::host::cpu_model().unwrap_or_default();
    let kernel = portlog_benches::host::kernel_release().unwrap_or_default();
    format!("{cpus} CPUs ({model}), kernel {kernel}")
}

// ---------------------------------------------------------------- main

async fn run_round(env: &Env, round: usize) -> Result<Vec<Row>> {
    let a = &env.a;
    let mut rows = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let bg = tokio::spawn(bg_ingest(
        env.ingest_client.clone(),
        env.p.clone(),
        a.bg_ingest_rate,
        stop.clone(),
        env.bg_sent.clone(),
    ));
    let d = a.duration_s;
    let say = |s: &str| note(format!("round {}: {s}", round + 1));
    tokio::time::sleep(Duration::from_millis(500)).await;

    macro_rules! phase {
        ($id:expr, $sys:expr, $mode:expr, $lat:expr, $w:expr, $tasks:expr) => {{
            say($id);
            let w = $w;
            let (rec, cpu, bgr) = measure(env, w, $tasks).await.with_context(|| format!("phase {}", $id))?;
            let r = row(Phase { id: $id, system: $sys, mode: $mode, latency_of: $lat }, rec, d, cpu, bgr);
            if r.wrong > 0 {
                bail!("{}: {} rejected pairs answered allow", $id, r.wrong);
            }
            rows.push(r);
        }};
    }

    let want = |p: &str| a.phases.iter().any(|x| x == p);
    let uc = a.unary_callers;
    if want("unary") {
        let w = Window::new(a, d, true);
        phase!(
            "grpc_unary",
            "portlog",
            format!("unary `Check`, {uc} callers, closed loop"),
            "call",
            w,
            grpc_unary(env, w)
        );
        if let Some(rc) = &env.redis {
            let w = Window::new(a, d, true);
            let t = redis_unary(env, w, rc).await?;
            phase!("redis_unary", "Redis", format!("`SISMEMBER`, {uc} connections, closed loop"), "call", w, t);
        }
    }
    let rate = thousands(a.unary_rate);
    if want("paced") {
        let w = Window::new(a, d, true);
        let t = {
            let (cc, p) = (env.clients[0].check_client(), env.p.clone());
            paced(env, w, move |q| {
                let (mut cc, req) = (cc.clone(), p.unary[q].clone());
                async move { Ok(cc.check(req).await?.into_inner().allow) }
            })
        };
        phase!("grpc_paced", "portlog", format!("unary `Check`, paced {rate}/s"), "call", w, t);
        if let Some(rc) = &env.redis {
            let w = Window::new(a, d, true);
            let con = redis_conn(rc).await?;
            let p = env.p.clone();
            let t = paced(env, w, move |q| {
                let (mut con, p) = (con.clone(), p.clone());
                async move {
                    let (asg, num) = &p.redis_q[q];
                    let m: bool = redis::cmd("SISMEMBER")
                        .arg(&p.redis_keys[*asg as usize])
                        .arg(num)
                        .query_async(&mut con)
                        .await?;
                    Ok(!m)
                }
            });
            let mode = format!("`SISMEMBER`, paced {rate}/s, one multiplexed connection");
            phase!("redis_paced", "Redis", mode, "call", w, t);
        }
    }
    let (b, bc) = (a.batch, a.batch_callers);
    if want("batch") {
        let w = Window::new(a, d, true);
        phase!("grpc_batch", "portlog", format!("`CheckBatch` of {b}, {bc} callers"), "call", w, grpc_batch(env, w));
        if let Some(rc) = &env.redis {
            let w = Window::new(a, d, true);
            let t = redis_pipelined(env, w, rc).await?;
            let mode = format!("`SISMEMBER` pipelines of {b}, {bc} connections");
            phase!("redis_pipelined", "Redis", mode, "pipeline", w, t);
        }
    }
    if want("stream") {
        let w = Window::new(a, d, true);
        let mode = format!("`CheckStream`, {} streams × {} in flight × {b}", a.streams, a.stream_window);
        phase!("grpc_stream", "portlog", mode, "message", w, grpc_stream(env, w));
    }

    stop.store(true, Ordering::Relaxed);
    let (acc, rej) = bg.await??;
    if rej > 0 {
        bail!("the background ingest had {rej} messages refused");
    }
    note(format!("round {}: background ingest acknowledged {acc} messages", round + 1));
    if !want("ingest") {
        return Ok(rows);
    }
    let w = Window::new(a, a.ingest_duration_s, false);
    say("ingest alone");
    let t0 = Instant::now();
    let c0 = env.cpu.snap();
    let tasks = ingest_alone(env, w);
    let mut rec = Rec::default();
    for t in tasks {
        rec.merge(t.await??);
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = env.cpu.cores(c0, env.cpu.snap());
    let mode = format!("ingest alone, {} client stream(s), chunks of {}", a.ingest_streams, a.ingest_chunk);
    let ph = Phase { id: "ingest", system: "portlog", mode, latency_of: "call" };
    rows.push(row(ph, rec, secs, cpu, 0.0));
    Ok(rows)
}

async fn run(a: Args) -> Result<()> {
    let base = match &a.dir {
        Some(d) => d.clone(),
        None => portlog_benches::disk::scratch_base()?,
    };
    let tmp = tempfile::Builder::new().prefix("portlog-load-bench").tempdir_in(&base)?;
    note(format!(
        "scratch {} ({})",
        tmp.path().display(),
        portlog_benches::disk::fs_type(tmp.path()).unwrap_or_default()
    ));

    let w = workload(&a)?;
    let pool_n = (a.bg_ingest_rate as usize * 2).clamp(50_000, 200_000);
    let pool = message_pool(pool_n, &w.sub_ports, a.seed)?;

    let t = Instant::now();
    let (mut server, client, endpoint) = start_server(&a, tmp.path()).await?;
    let server_start_s = t.elapsed().as_secs_f64();
    let redis = start_redis(&a, tmp.path()).await?;
    note(format!("portlog-server pid {} on {endpoint}; redis {:?}", server.pid(), redis.as_ref().map(|r| r.0.pid())));

    let t = Instant::now();
    setup_ledger(&client, &w).await?;
    let ledger_s = t.elapsed().as_secs_f64();
    note(format!("ledger: {} assignments in {ledger_s:.1} s", a.assignments));
    let t = Instant::now();
    let registered = setup_rejects(&client, &w).await?;
    let import_s = t.elapsed().as_secs_f64();
    note(format!("rejects: {registered} imported in {import_s:.1} s"));
    if registered != a.rejects as u64 {
        bail!("{registered} rejects registered, expected {}", a.rejects);
    }
    let redis_load_s = match &redis {
        Some((_, rc)) => {
            let t = Instant::now();
            setup_redis(rc, &w).await?;
            let s = t.elapsed().as_secs_f64();
            note(format!("redis: {} SADD in {s:.1} s", a.rejects));
            Some(s)
        }
        None => None,
    };
    let mut setup = Setup {
        server_start_s,
        ledger_s,
        import_s,
        rejects_registered: registered,
        redis_load_s,
        settle_s: 0.0,
        server_rss_mib: rss_mib(server.pid()),
        redis_rss_mib: redis.as_ref().map(|r| rss_mib(r.0.pid())),
        message_pool: pool_n,
    };

    let mut clients = vec![client.clone()];
    for _ in 1..a.connections {
        clients.push(Client::connect(&endpoint, None, None).await?);
    }
    let p = Arc::new(prepare(&a, &w, pool));
    drop(w);
    let env = Env {
        cpu: Cpu { tck: clk_tck(), server: server.pid(), redis: redis.as_ref().map(|r| r.0.pid()) },
        a: a.clone(),
        clients,
        ingest_client: Client::connect(&endpoint, None, None).await?,
        redis: redis.as_ref().map(|r| r.1.clone()),
        p,
        bg_sent: Arc::new(AtomicU64::new(0)),
    };
    setup.settle_s = settle(&env.cpu).await;
    note(format!("server idle after {:.0} s", setup.settle_s));
    let mut rounds = Vec::new();
    let mut bg_total = (0, 0);
    for r in 0..a.rounds {
        let before = env.bg_sent.load(Ordering::Relaxed);
        rounds.push(run_round(&env, r).await?);
        bg_total.0 += env.bg_sent.load(Ordering::Relaxed) - before;
    }
    let stats = client.stats().await?;
    bg_total.1 = stats.records;
    drop(env);
    server.stop();
    if let Some((mut p, _)) = redis {
        p.stop();
    }

    let med = medians(&rounds);
    let rat = ratios(&rounds);
    let get = |id: &str| med.iter().find(|r| r.id == id);
    let batch_best = ["grpc_batch", "grpc_stream"].iter().filter_map(|id| get(id)).map(|r| r.per_s).fold(0.0, f64::max);
    let paced_p99 = get("grpc_paced").map_or(f64::NAN, |r| r.p99_us);
    let ingest = get("ingest").map_or(f64::NAN, |r| r.per_s);
    let targets = Targets {
        batch_checks_per_s: batch_best,
        batch_target_met: batch_best >= 1e6,
        unary_paced_p99_us: paced_p99,
        unary_closed_loop_p99_us: get("grpc_unary").map_or(f64::NAN, |r| r.p99_us),
        unary_target_met: paced_p99 <= 1000.0,
        ingest_per_s: ingest,
        ingest_target_met: ingest >= 200_000.0,
    };
    if a.json {
        let out = Output {
            args: &a,
            machine: machine(),
            setup: &setup,
            bg_ingest_sent: bg_total.0,
            log_records: bg_total.1,
            medians: &med,
            ratios_vs_redis: &rat,
            targets: &targets,
            rounds: &rounds,
        };
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    println!("machine: {}", machine());
    println!(
        "workload: {} assignments, {} rejects (Zipf {}), {} queries ({}% rejected pairs, {}), background ingest {} msgs/s; {} round(s) of {} s (+{} s warm-up) per phase{}",
        thousands(a.assignments as f64),
        thousands(a.rejects as f64),
        a.zipf,
        thousands(a.queries as f64),
        a.hit_percent,
        if a.since { "full check with since read" } else { "skip_since" },
        thousands(a.bg_ingest_rate as f64),
        a.rounds,
        a.duration_s,
        a.warmup_s,
        if a.rounds > 1 { "; medians over the rounds" } else { "" }
    );
    println!(
        "setup: server up in {:.1} s, {} assignments in {:.1} s, {} rejects imported in {:.1} s, Redis SADD in {}; RSS after setup: server {:.0} MiB, Redis {}",
        setup.server_start_s,
        thousands(a.assignments as f64),
        setup.ledger_s,
        thousands(setup.rejects_registered as f64),
        setup.import_s,
        setup.redis_load_s.map_or("n/a".into(), |s| format!("{s:.1} s")),
        setup.server_rss_mib,
        setup.redis_rss_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB")),
    );
    println!();
    println!("| system | mode | checks/s | p50 µs | p99 µs | p99.9 µs | latency of | vs Redis | bg ingest msgs/s | CPU cores server / client / Redis / other |");
    println!("|---|---|---:|---:|---:|---:|---|---:|---:|---|");
    for r in &med {
        let vs = match (rat.get(r.id), PAIRS.iter().find(|p| p.0 == r.id)) {
            (Some(x), Some(&(_, _, true))) => format!("{x:.2}×"),
            (Some(x), Some(&(_, _, false))) => format!("p99 {x:.2}×"),
            _ if r.system == "Redis" => "1".into(),
            _ => "—".into(),
        };
        let per_s = if r.id == "ingest" { format!("**{} msgs/s**", thousands(r.per_s)) } else { thousands(r.per_s) };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} / {:.2} / {:.2} / {:.2} |",
            r.system,
            r.mode,
            per_s,
            us(r.p50_us),
            us(r.p99_us),
            us(r.p999_us),
            r.latency_of,
            vs,
            if r.id == "ingest" { "—".into() } else { thousands(r.bg_ingest_per_s) },
            r.cpu_server,
            r.cpu_client,
            r.cpu_redis,
            r.cpu_other
        );
    }
    let unexpected: u64 = med.iter().map(|r| r.unexpected_denials).sum();
    let loads: Vec<f64> = rounds.iter().flatten().map(|r| r.loadavg).collect();
    println!();
    println!(
        "machine load average (1 min) at the end of the phases: {:.1}–{:.1}; \"other\" = CPU of every other process on the machine",
        loads.iter().copied().fold(f64::INFINITY, f64::min),
        loads.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "answers verified: 0 rejected pairs allowed; {unexpected} other pairs denied (MO \"R\" replies ingested during the run)"
    );
    let yn = |b: bool| if b { "met" } else { "NOT met" };
    println!(
        "targets (2 cores): ≥ 1,000,000 checks/s with batching: {} ({}); p99 ≤ 1 ms unary under load: {} (paced p99 {}; closed-loop p99 {}); ingest ≥ 200,000 msgs/s: {} ({})",
        yn(targets.batch_target_met),
        thousands(targets.batch_checks_per_s),
        yn(targets.unary_target_met),
        with_unit(targets.unary_paced_p99_us),
        with_unit(targets.unary_closed_loop_p99_us),
        yn(targets.ingest_target_met),
        thousands(targets.ingest_per_s),
    );
    Ok(())
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(a))
}
