//! Kill-based crash test of the message log.
//!
//! `portlog-crashtest --rounds N [--seed S] [--dir D]` runs N rounds. In each, a child process
//! appends deterministic batches from two threads (several shards, back-filled days, long texts,
//! segments small enough to be sealed while it runs, and `seal_all` from a third thread) and
//! prints `ack ROUND BATCH` after each acknowledged append. The parent kills it with SIGKILL at
//! a random moment, reopens the data directory and checks that every acknowledged record is
//! there byte-identical and exactly once, and that every other record present is a whole,
//! correct record of a batch the child submitted. Exits non-zero with the seed on failure.

use portlog_engine::io::SplitMix64;
use portlog_engine::{Direction, Log, LogConfig, ManualClock, PhoneNumber, Record, SubPort, Usage};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 2026-05-10T00:00:00+08:00: the child's clock; records span the ten days before.
const NOW_MS: i64 = 1_778_342_400_000;
const DAY_MS: i64 = 86_400_000;

fn config() -> LogConfig {
    LogConfig {
        shards: 3,
        segment_bytes_max: 512 << 10,
        batch_bytes_max: 128 << 10,
        block_bytes_max: 16 << 10,
        zstd_level: 3,
        ..LogConfig::default()
    }
}

/// The records of batch `b` of round `round`, a pure function of its arguments.
fn batch(seed: u64, round: u64, b: u64) -> Vec<Record> {
    let mut rng = SplitMix64::new(seed ^ (round << 32) ^ b.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let n = 1 + rng.below(40);
    (0..n)
        .map(|i| {
            let mo = rng.below(4) == 0;
            let filler = "【云上书院】暑期编程训练营火热报名中。".repeat(rng.below(60) as usize);
            Record {
                dir: if mo { Direction::Mo } else { Direction::Mt },
                sub_port: SubPort::parse(&format!("1069012{:04}", rng.below(50))).expect("valid sub-port"),
                peer: PhoneNumber::from_u64(13_000_000_000 + rng.below(1_000_000)).expect("valid number"),
                ts_ms: NOW_MS - rng.below(10 * DAY_MS as u64) as i64,
                usage: if mo { None } else { Some(Usage::Commercial) },
                text: format!("id r{round}b{b}i{i} {filler}"),
            }
        })
        .collect()
}

fn id_of(r: &Record) -> Option<(u64, u64, u64)> {
    let s = r.text.strip_prefix("id r")?;
    let s = &s[..s.find(' ')?];
    let (round, rest) = s.split_once('b')?;
    let (b, i) = rest.split_once('i')?;
    Some((round.parse().ok()?, b.parse().ok()?, i.parse().ok()?))
}

fn child(dir: &Path, seed: u64, round: u64) -> Result<(), String> {
    let log = Arc::new(Log::open(dir, config(), Arc::new(ManualClock::new(NOW_MS))).map_err(|e| e.to_string())?);
    let sealer = {
        let log = log.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(30));
            if log.seal_all().is_err() {
                return;
            }
        })
    };
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut b = t;
                loop {
                    log.append(batch(seed, round, b)).map_err(|e| e.to_string())?;
                    println!("ack {round} {b}");
                    b += 2;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "append thread panicked".to_string())??;
    }
    drop(sealer);
    Ok(())
}

fn verify(dir: &Path, seed: u64, acked: &HashMap<u64, HashSet<u64>>) -> Result<usize, String> {
    let log = Log::open(dir, config(), Arc::new(ManualClock::new(NOW_MS))).map_err(|e| format!("reopen: {e}"))?;
    let mut seen: HashMap<(u64, u64, u64), Record> = HashMap::new();
    for s in 0..log.shard_count() {
        for r in log.scan_shard(s, 0, i64::MAX).map_err(|e| e.to_string())? {
            let r = r.map_err(|e| format!("read: {e}"))?;
            let id = id_of(&r).ok_or_else(|| format!("record with a foreign or damaged text: {r:?}"))?;
            if seen.insert(id, r).is_some() {
                return Err(format!("record {id:?} appears twice"));
            }
        }
    }
    // Every present record is exactly what was submitted.
    let mut cache: HashMap<(u64, u64), Vec<Record>> = HashMap::new();
    for (&(round, b, i), r) in &seen {
        let want = cache.entry((round, b)).or_insert_with(|| batch(seed, round, b));
        if want.get(i as usize) != Some(r) {
            return Err(format!("record r{round}b{b}i{i} differs from what was appended"));
        }
    }
    // Every acknowledged record is present.
    let mut checked = 0;
    for (&round, batches) in acked {
        for &b in batches {
            for (i, _) in batch(seed, round, b).iter().enumerate() {
                if !seen.contains_key(&(round, b, i as u64)) {
                    let present: Vec<u64> = seen.keys().filter(|k| k.0 == round && k.1 == b).map(|k| k.2).collect();
                    let n = batch(seed, round, b).len();
                    return Err(format!(
                        "acknowledged record r{round}b{b}i{i} is missing ({} of the batch's {n} records present: {present:?})",
                        present.len()
                    ));
                }
                checked += 1;
            }
        }
    }
    log.close();
    Ok(checked)
}

fn parent(dir: &Path, seed: u64, rounds: u64) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut rng = SplitMix64::new(seed);
    let mut acked: HashMap<u64, HashSet<u64>> = HashMap::new();
    for round in 0..rounds {
        let mut c = Command::new(&exe)
            .args(["--child", "--dir"])
            .arg(dir)
            .args(["--seed", &seed.to_string(), "--round", &round.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let out = c.stdout.take().ok_or("no child stdout")?;
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut p = line.split(' ');
                if let (Some("ack"), Some(r), Some(b)) = (p.next(), p.next(), p.next()) {
                    if let (Ok(r), Ok(b)) = (r.parse::<u64>(), b.parse::<u64>()) {
                        got.push((r, b));
                    }
                }
            }
            got
        });
        let wait = Duration::from_millis(30 + rng.below(400));
        let start = Instant::now();
        while start.elapsed() < wait {
            if let Ok(Some(st)) = c.try_wait() {
                return Err(format!("round {round}: child exited early with {st}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        c.kill().map_err(|e| e.to_string())?; // SIGKILL
        c.wait().map_err(|e| e.to_string())?;
        let got = reader.join().map_err(|_| "reader panicked")?;
        let n_acked = got.len();
        for (r, b) in got {
            acked.entry(r).or_default().insert(b);
        }
        let checked = verify(dir, seed, &acked).map_err(|e| format!("round {round} (seed {seed}): {e}"))?;
        println!("round {round}: killed after {wait:?}, {n_acked} batches acknowledged this round, {checked} acknowledged records verified");
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let seed = get("--seed").and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let result = if args.iter().any(|a| a == "--child") {
        let dir = PathBuf::from(get("--dir").unwrap_or_default());
        let round = get("--round").and_then(|s| s.parse().ok()).unwrap_or(0);
        child(&dir, seed, round)
    } else {
        let rounds = get("--rounds").and_then(|s| s.parse().ok()).unwrap_or(20);
        let tmp;
        let dir = match get("--dir") {
            Some(d) => PathBuf::from(d),
            None => {
                tmp = std::env::temp_dir().join(format!("portlog-crashtest-{seed}"));
                let _ = std::fs::remove_dir_all(&tmp);
                tmp.clone()
            }
        };
        println!("portlog-crashtest: seed {seed}, {rounds} rounds, data in {}", dir.display());
        let r = parent(&dir, seed, rounds);
        if r.is_ok() && get("--dir").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        r
    };
    if let Err(e) = result {
        eprintln!("portlog-crashtest: FAILED: {e} (rerun with --seed {seed})");
        std::process::exit(1);
    }
}
