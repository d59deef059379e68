//! `portlog-compare`: one workload, in one run, against portlog and its peers (RocksDB in
//! process, PostgreSQL as a throw-away server on loopback), one table (issue 7).
//!
//! ```text
//! portlog-compare [--records N] [--months M] [--peers portlog,rocksdb,postgres] [--group N]
//!                 [--checks N] [--check-hit-percent P] [--traces N] [WORKLOAD FLAGS]
//!                 [--dir DIR] [--pg-bin DIR] [--keep] [--json | --markdown] [--json-out FILE]
//! ```
//!
//! Each peer runs in a child process (this binary re-executed with the hidden subcommand
//! `__peer NAME SPEC`), so that its peak memory (`VmHWM`) is its own; the child prints its
//! report as one JSON line. What each phase measures and how: `portlog_benches::compare`. A
//! peer that is not installed (PostgreSQL) is skipped with a message; a peer that fails is
//! reported and makes the exit status 1, after the others have run.

use anyhow::{anyhow, bail, Context, Result};
use portlog_benches::compare::report::{self, Machine, Outcome, Run};
use portlog_benches::compare::workload::{apply_flag, expiry_month, month_suffix, WORKLOAD_FLAGS};
use portlog_benches::compare::{open_peer, run_peer, PeerReport, Spec, PEERS};
use portlog_benches::disk::{fs_type, scratch_base};
use portlog_benches::{host, pg, Generator, Templates, WorkloadConfig};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const USAGE: &str = "usage: portlog-compare [--records N] [--months M] [--peers LIST] [--group N] [--checks N]
                       [--check-hit-percent P] [--traces N] [workload flags] [--dir DIR] [--pg-bin DIR]
                       [--keep] [--json | --markdown] [--json-out FILE]

  --records N            records to generate (default 2000000)
  --months M             months of record time they span (default 2.5; more than 1: the first
                         month is expired)
  --peers LIST           comma-separated, in the order run (default portlog,rocksdb,postgres)
  --group N              records per durable ingest call (default 1000)
  --checks N             check queries (default 20000)
  --check-hit-percent P  of them, pairs an MO \"R\" rejected (default 10)
  --traces N             numbers traced over the whole workload (default 200)
  --dir DIR              where the data directories go (default: the temp dir, or the current
                         directory when that is a tmpfs); removed afterwards unless --keep
  --pg-bin DIR           PostgreSQL's binaries (default: $PORTLOG_PG_BIN, the newest
                         /usr/lib/postgresql/*/bin, or the PATH); not found: the peer is skipped
  --keep                 keep the data directories
  --json                 one JSON object instead of the table
  --json-out FILE        also write that JSON object to FILE
  --markdown             the table as markdown, with the machine, date and command line
workload flags (as portlog-gen):";

struct Args {
    spec: Spec,
    peers: Vec<String>,
    dir: Option<PathBuf>,
    keep: bool,
    json: bool,
    markdown: bool,
    json_out: Option<PathBuf>,
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut w = WorkloadConfig::default();
    // Everything but the workload; the workload's fields are set from `w` at the end.
    let mut spec = Spec::new(&w, 2_000_000, 2.5, PathBuf::new());
    let mut a = Args {
        spec: spec.clone(),
        peers: PEERS.map(String::from).to_vec(),
        dir: None,
        keep: false,
        json: false,
        markdown: false,
        json_out: None,
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--json" => a.json = true,
            "--markdown" => a.markdown = true,
            "--keep" => a.keep = true,
            "-h" | "--help" => {
                println!("{USAGE}\n{WORKLOAD_FLAGS}");
                std::process::exit(0);
            }
            _ => {
                let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
                let num = |v: &str| -> Result<f64> {
                    v.replace('_', "").parse().map_err(|_| anyhow!("{flag}: {v:?} is not a number"))
                };
                match flag.as_str() {
                    "--records" => spec.records = num(v)? as u64,
                    "--months" => spec.months = num(v)?,
                    "--group" => spec.group = num(v)? as usize,
                    "--checks" => spec.checks = num(v)? as usize,
                    "--check-hit-percent" => spec.check_hit_percent = num(v)?,
                    "--traces" => spec.traces = num(v)? as usize,
                    "--peers" => {
                        a.peers = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                    }
                    "--dir" => a.dir = Some(PathBuf::from(v)),
                    "--json-out" => a.json_out = Some(PathBuf::from(v)),
                    "--pg-bin" => spec.pg_bin = Some(PathBuf::from(v)),
                    "--rate" => bail!("--rate: the rate follows from --records and --months"),
                    _ => {
                        if !apply_flag(&mut w, flag, v)? {
                            bail!("unknown flag {flag:?}\n{USAGE}\n{WORKLOAD_FLAGS}");
                        }
                    }
                }
            }
        }
    }
    if spec.records == 0 || spec.group == 0 || spec.group > 100_000 {
        bail!("--records must be positive and --group 1..=100000");
    }
    if !(spec.months > 0.0 && spec.months <= 60.0) {
        bail!("--months must be in (0, 60]");
    }
    if !(0.0..=100.0).contains(&spec.check_hit_percent) {
        bail!("--check-hit-percent must be 0..=100");
    }
    if a.json && a.markdown {
        bail!("--json and --markdown exclude each other");
    }
    if let Some(p) = a.peers.iter().find(|p| !PEERS.contains(&p.as_str())) {
        bail!("--peers: unknown peer {p:?} (known: {})", PEERS.join(", "));
    }
    if a.peers.is_empty() {
        bail!("--peers: name at least one peer");
    }
    a.spec = Spec {
        dir: PathBuf::new(),
        pg_bin: spec.pg_bin.clone(),
        ..Spec::new(&w, spec.records, spec.months, PathBuf::new())
    };
    a.spec.group = spec.group;
    a.spec.checks = spec.checks;
    a.spec.check_hit_percent = spec.check_hit_percent;
    a.spec.traces = spec.traces;
    // Let the generator judge the workload here rather than in every child.
    Generator::new(Arc::new(Templates::load_default()?), a.spec.workload())?;
    Ok(a)
}

/// The child's side: run one peer, print its report as one JSON line.
fn child(name: &str, spec_json: &str) -> Result<()> {
    let spec: Spec = serde_json::from_str(spec_json).context("the peer's spec")?;
    let peer = open_peer(name, &spec)?;
    let report = run_peer(name, peer, &spec)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn run_child(name: &str, spec: &Spec) -> Result<PeerReport> {
    // The running image itself: a rebuild that replaces the file during a long run must not
    // change (or remove) what the next peer runs.
    let exe = match PathBuf::from("/proc/self/exe") {
        p if p.exists() => p,
        _ => std::env::current_exe().context("locating this binary")?,
    };
    let out = Command::new(exe)
        .arg("__peer")
        .arg(name)
        .arg(serde_json::to_string(spec)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("running the peer's process")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    if !out.status.success() {
        let why = serde_json::from_str::<serde_json::Value>(last)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| format!("its process ended with {}", out.status));
        bail!("{why}");
    }
    serde_json::from_str(last).with_context(|| format!("its report: {last:?}"))
}

fn quoted(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("__peer") {
        let (Some(name), Some(spec)) = (argv.get(1), argv.get(2)) else { bail!("__peer NAME SPEC") };
        if let Err(e) = child(name, spec) {
            // The parent reads the reason from the last line.
            eprintln!("[{name}] failed: {e:#}");
            println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
            std::process::exit(1);
        }
        return Ok(());
    }
    let a = parse_args(&argv)?;
    let started = Instant::now();
    let base = match &a.dir {
        Some(d) => d.clone(),
        None => scratch_base()?,
    };
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let scratch = tempfile::Builder::new().prefix("portlog-compare-").tempdir_in(&base)?;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let machine = Machine {
        cpu: host::cpu_model().unwrap_or_else(|| "?".into()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        mem_bytes: portlog_benches::compare::procfs::mem_total_bytes().unwrap_or(0),
        kernel: host::kernel_release().unwrap_or_else(|| "?".into()),
        fs: fs_type(scratch.path()).unwrap_or_else(|| "?".into()),
        dir: scratch.path().display().to_string(),
    };
    let month = expiry_month(&a.spec.workload());
    let mut run = Run {
        command: format!("portlog-compare {}", quoted(&argv)).trim_end().to_string(),
        date: portlog_engine::time::rfc3339_utc8(now_ms),
        secs: 0.0,
        machine,
        spec: a.spec.clone(),
        rate_per_s: a.spec.workload().rate_per_s,
        expiry_month: month_suffix(month.0),
        peers: Vec::new(),
    };
    let mut failed = false;
    for name in &a.peers {
        let mut spec = a.spec.clone();
        spec.dir = scratch.path().join(name);
        let install = if name == "postgres" {
            match pg::find_install(spec.pg_bin.as_deref()) {
                Ok(i) => Some(i),
                Err(why) => {
                    eprintln!("portlog-compare: skipping postgres: {why}");
                    run.peers.push(Outcome {
                        peer: name.clone(),
                        status: "skipped".into(),
                        reason: Some(why),
                        report: None,
                    });
                    continue;
                }
            }
        } else {
            None
        };
        eprintln!("portlog-compare: {name} in {}", spec.dir.display());
        let result = run_child(name, &spec);
        if let Some(i) = &install {
            pg::stop_leftover(i, &spec.dir);
        }
        match result {
            Ok(r) => run.peers.push(Outcome { peer: name.clone(), status: "ok".into(), reason: None, report: Some(r) }),
            Err(e) => {
                failed = true;
                eprintln!("portlog-compare: {name} failed: {e:#}");
                run.peers.push(Outcome {
                    peer: name.clone(),
                    status: "failed".into(),
                    reason: Some(format!("{e:#}")),
                    report: None,
                });
            }
        }
        if !a.keep {
            let _ = std::fs::remove_dir_all(&spec.dir);
        }
    }
    run.secs = started.elapsed().as_secs_f64();
    if a.keep {
        let kept = scratch.keep();
        eprintln!("portlog-compare: data kept in {}", kept.display());
    } else {
        // Now, not at the end of main: a failed run leaves through process::exit.
        drop(scratch);
    }
    if let Some(p) = &a.json_out {
        std::fs::write(p, serde_json::to_string_pretty(&run)?).with_context(|| format!("writing {}", p.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string(&run)?);
    } else if a.markdown {
        print!("{}", report::markdown(&run));
    } else {
        print!("{}", report::text(&run));
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}
