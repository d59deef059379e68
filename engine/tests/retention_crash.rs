//! Kill -9 during expiry. A child process re-executes this test binary
//! (`child_expires_until_killed`): day after simulated day it ingests the day's records in
//! three generations, back-fills an old day now and then, and runs retention, with a pause
//! between segment deletions so that kills land inside expiry; a reader thread scans the log
//! all along and exits the child on any read error. The parent kills it at a random moment,
//! looks at the directory (tombstones of an interrupted expiry), reopens and checks:
//!
//! * catalogue and files agree: every `.seg`/`.open` file is served, no `.seg.expired` or
//!   `.seg.tmp` is left, recovery finished exactly the expiries it found interrupted;
//! * reads never fail, and every record present is whole, correct and present once;
//! * nothing inside retention is gone: every acknowledged record whose day was not yet
//!   eligible at the latest clock any run started at is present;
//! * a run that returned is durable: what it deleted stays deleted.
//!
//! `PORTLOG_RETENTION_CRASH_ROUNDS` sets the rounds (default 12); a failure prints the seed.
#![allow(clippy::unwrap_used, missing_docs)]

use portlog_engine::io::SplitMix64;
use portlog_engine::time::{add_months_ms, bucket_start_ms, parse_time_ms, DAY_MS, UTC8_OFFSET_MS};
use portlog_engine::{
    Direction, Engine, EngineConfig, LogConfig, ManualClock, PhoneNumber, Record, RetentionConfig, RetentionRun,
    SubPort, Usage,
};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Days of history before the first round: the oldest ten are past retention at `t0`.
const SETUP_DAYS: i64 = 162;

fn t0() -> i64 {
    parse_time_ms("2028-03-01T01:00:00+08:00").unwrap()
}

fn config() -> EngineConfig {
    EngineConfig {
        log: LogConfig { shards: 3, zstd_level: 1, ..LogConfig::default() },
        retention: RetentionConfig { enabled: false, delete_pause_ms: 2, ..RetentionConfig::default() },
        ..EngineConfig::default()
    }
}

/// Batch `b` of the local day starting at `day`: a pure function of its arguments.
fn batch(seed: u64, b: u64, day: i64) -> Vec<Record> {
    let mut rng = SplitMix64::new(seed ^ b.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let n = 4 + rng.below(9);
    (0..n)
        .map(|i| Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse(&format!("10690123{:02}", rng.below(12))).unwrap(),
            peer: PhoneNumber::from_u64(13_000_000_000 + rng.below(1_000_000)).unwrap(),
            ts_ms: day + rng.below(DAY_MS as u64) as i64,
            usage: Some(Usage::Commercial),
            text: format!("id b{b}i{i} 【云上书院】暑期训练营报名中。拒收请回复R"),
        })
        .collect()
}

fn id_of(r: &Record) -> Option<(u64, u64)> {
    let s = r.text.strip_prefix("id b")?;
    let s = &s[..s.find(' ')?];
    let (b, i) = s.split_once('i')?;
    Some((b.parse().ok()?, i.parse().ok()?))
}

fn day_of(ts: i64) -> i64 {
    bucket_start_ms(ts, DAY_MS, UTC8_OFFSET_MS)
}

/// The day is entirely past retention at `now`.
fn day_eligible_at(day: i64, now: i64) -> bool {
    add_months_ms(day + DAY_MS - 1, 5, UTC8_OFFSET_MS) <= now
}

/// Run by the parent in a child process.
#[test]
#[ignore = "child process of sigkill_during_expiry_leaves_catalogue_and_files_in_agreement"]
fn child_expires_until_killed() {
    let Ok(dir) = std::env::var("PORTLOG_RETENTION_CRASH_DIR") else { return };
    let arg = |k: &str| -> u64 { std::env::var(k).unwrap().parse().unwrap() };
    let (seed, mut next_b, start) = (arg("PORTLOG_SEED"), arg("PORTLOG_NEXT_BATCH"), arg("PORTLOG_START") as i64);
    let clock = Arc::new(ManualClock::new(start));
    let e = Arc::new(Engine::open(&dir, config(), clock.clone()).unwrap());
    let out = std::sync::Mutex::new(std::io::stdout());
    let say = |line: String| {
        let mut o = out.lock().unwrap();
        writeln!(o, "{line}").unwrap();
        o.flush().unwrap();
    };
    {
        let e = e.clone();
        std::thread::spawn(move || loop {
            for s in 0..e.log().shard_count() {
                let read: portlog_engine::Result<()> =
                    e.log().scan_shard(s, i64::MIN, i64::MAX).and_then(|mut it| it.try_for_each(|r| r.map(|_| ())));
                if let Err(err) = read {
                    eprintln!("READ ERROR during expiry: {err}");
                    std::process::exit(3);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }
    say("ready".into());
    // A safety net: the parent kills the child within a second; if the parent is gone (killed
    // by a test runner's timeout), the child must not run forever.
    let born = Instant::now();
    let mut now = start;
    for step in 0u64.. {
        if born.elapsed() > Duration::from_secs(120) {
            eprintln!("child_expires_until_killed: no kill came within 120 s; exiting");
            std::process::exit(4);
        }
        let yesterday = day_of(now - DAY_MS);
        for _ in 0..3 {
            e.ingest(batch(seed, next_b, yesterday)).unwrap();
            say(format!("ack {next_b} {yesterday}"));
            next_b += 1;
            e.log().seal_all().unwrap();
        }
        if step % 4 == 3 {
            // A back-fill into a day already past retention: an open segment to seal, then delete.
            let old = day_of(now - 170 * DAY_MS);
            e.ingest(batch(seed, next_b, old)).unwrap();
            say(format!("ack {next_b} {old}"));
            next_b += 1;
        }
        say(format!("run {now}"));
        e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: None }).unwrap();
        say(format!("ran {now}"));
        now += DAY_MS;
        clock.set_ms(now);
    }
}

#[derive(Default)]
struct History {
    /// Acknowledged batch → its day.
    acked: HashMap<u64, i64>,
    /// Latest clock a run started at.
    run_max: i64,
    /// Completed runs: (clock, batches acknowledged before the run started).
    completed: Vec<(i64, HashSet<u64>)>,
}

fn files(dir: &Path) -> (Vec<String>, usize, usize, usize) {
    let mut names = Vec::new();
    for shard in std::fs::read_dir(dir.join("log")).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            names.push(f.unwrap().file_name().into_string().unwrap());
        }
    }
    let count = |suffix: &str| names.iter().filter(|n| n.ends_with(suffix)).count();
    let (seg, open, tomb) = (count(".seg"), count(".open"), count(".seg.expired"));
    (names, seg, open, tomb)
}

fn verify(dir: &Path, seed: u64, h: &History, tombstones: usize) -> Result<usize, String> {
    let clock = Arc::new(ManualClock::new(h.run_max));
    let e = Engine::open(dir, config(), clock).map_err(|e| format!("reopen: {e}"))?;
    let rec = e.log().recovery().clone();
    if rec.expired_removed != tombstones {
        return Err(format!("recovery removed {} expired files, {tombstones} were on disk", rec.expired_removed));
    }
    let (names, seg, open, tomb) = files(dir);
    let st = e.log().stats();
    if tomb != 0 || names.iter().any(|n| n.ends_with(".tmp")) {
        return Err(format!("leftovers after recovery: {names:?}"));
    }
    if st.sealed_segments as usize != seg || st.open_segments as usize != open || !rec.damaged.is_empty() {
        return Err(format!(
            "catalogue {}+{} segments, files {seg}+{open}, damaged {:?}",
            st.sealed_segments, st.open_segments, rec.damaged
        ));
    }
    let mut seen: HashMap<(u64, u64), Record> = HashMap::new();
    for s in 0..e.log().shard_count() {
        for r in e.log().scan_shard(s, i64::MIN, i64::MAX).map_err(|e| e.to_string())? {
            let r = r.map_err(|e| format!("read failed: {e}"))?;
            let (b, i) = id_of(&r).ok_or_else(|| format!("foreign record {r:?}"))?;
            if batch(seed, b, day_of(r.ts_ms)).get(i as usize) != Some(&r) {
                return Err(format!("record b{b}i{i} differs from what was ingested"));
            }
            if seen.insert((b, i), r).is_some() {
                return Err(format!("record b{b}i{i} present twice"));
            }
        }
    }
    let mut checked = 0;
    for (&b, &day) in &h.acked {
        let must_stay = !day_eligible_at(day, h.run_max);
        let must_be_gone = h.completed.iter().any(|(at, before)| before.contains(&b) && day_eligible_at(day, *at));
        for i in 0..batch(seed, b, day).len() as u64 {
            let present = seen.contains_key(&(b, i));
            if must_stay && !present {
                return Err(format!("b{b}i{i} of a day inside retention is gone"));
            }
            if must_be_gone && present {
                return Err(format!("b{b}i{i} is back after a completed run deleted its day"));
            }
            checked += 1;
        }
    }
    e.close();
    Ok(checked)
}

#[test]
fn sigkill_during_expiry_leaves_catalogue_and_files_in_agreement() {
    let rounds: u64 = std::env::var("PORTLOG_RETENTION_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::default();
    let mut next_b = 0u64;
    // Five months and more of history, three generations a day.
    {
        let clock = Arc::new(ManualClock::new(t0()));
        let e = Engine::open(dir.path(), config(), clock).unwrap();
        for _gen in 0..3 {
            let mut all = Vec::new();
            for d in 1..=SETUP_DAYS {
                let day = day_of(t0() - d * DAY_MS);
                all.extend(batch(seed, next_b, day));
                h.acked.insert(next_b, day);
                next_b += 1;
            }
            e.ingest(all).unwrap();
            e.log().seal_all().unwrap();
        }
        e.close();
    }
    let mut rng = SplitMix64::new(seed);
    let mut start = t0();
    let mut interrupted = 0;
    for round in 0..rounds {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_expires_until_killed", "--ignored", "--nocapture", "--test-threads=1"])
            .env("PORTLOG_RETENTION_CRASH_DIR", dir.path())
            .env("PORTLOG_SEED", seed.to_string())
            .env("PORTLOG_NEXT_BATCH", next_b.to_string())
            .env("PORTLOG_START", start.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child has opened the engine, then let it work a random while.
        // (libtest prints its own words first, `test child_expires_until_killed ... `.)
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut ready = false;
        while !ready && Instant::now() < deadline {
            ready = rx.recv_timeout(Duration::from_millis(100)).is_ok_and(|l| l.ends_with("ready"));
        }
        if !ready {
            let _ = child.kill();
            panic!("round {round} (seed {seed}): the child did not start");
        }
        let wait = Duration::from_millis(50 + rng.below(500));
        let t = Instant::now();
        while t.elapsed() < wait {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("round {round} (seed {seed}): the child exited with {st} (a read failed during expiry?)");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let (mut runs, mut acks) = (0, 0);
        let mut pending_run: Option<(i64, HashSet<u64>)> = None;
        for line in rx.try_iter() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["ack", b, day] => {
                    let b: u64 = b.parse().unwrap();
                    h.acked.insert(b, day.parse().unwrap());
                    next_b = next_b.max(b + 1);
                    acks += 1;
                }
                ["run", at] => {
                    let at: i64 = at.parse().unwrap();
                    h.run_max = h.run_max.max(at);
                    pending_run = Some((at, h.acked.keys().copied().collect()));
                }
                ["ran", _] => {
                    if let Some(p) = pending_run.take() {
                        h.completed.push(p);
                        runs += 1;
                    }
                }
                _ => {}
            }
        }
        // Batches the child may have written without acknowledging get fresh ids next round;
        // the clock goes on from the last run that returned (whose high-water mark is durable),
        // so that it stays within `clock_jump_max_ms` of the mark.
        next_b += 10;
        if let Some((at, _)) = h.completed.last() {
            start = start.max(at + DAY_MS);
        }
        let (_, _, _, tombstones) = files(dir.path());
        interrupted += usize::from(tombstones > 0);
        let checked =
            verify(dir.path(), seed, &h, tombstones).unwrap_or_else(|e| panic!("round {round} (seed {seed}): {e}"));
        println!(
            "round {round}: killed after {wait:?}; {acks} batches, {runs} runs completed; {tombstones} expired file(s) \
             left by the kill; {checked} acknowledged records checked"
        );
    }
    assert!(h.completed.len() as u64 >= rounds, "the children completed too few runs to mean anything");
    assert!(interrupted > 0, "no kill landed inside an expiry in {rounds} rounds (seed {seed})");
}
