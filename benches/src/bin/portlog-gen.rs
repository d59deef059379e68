//! `portlog-gen`: the benches' workload as JSON lines, the ingest format of `portlog ingest`.
//!
//! ```text
//! portlog-gen [--records N] [--out FILE] [--rate R] [workload flags]
//! ```
//!
//! Records come from [`portlog_benches::Generator`] one at a time and are written through a
//! buffer, so any number of them (100 million and more) takes constant memory. The same flags
//! and seed give the same bytes. A summary goes to stderr unless `--quiet`.

use anyhow::{anyhow, bail, Context, Result};
use portlog_benches::compare::workload::{apply_flag, WORKLOAD_FLAGS};
use portlog_benches::{to_json_line, Generator, Templates, WorkloadConfig};
use std::io::{BufWriter, ErrorKind, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const USAGE: &str = "usage: portlog-gen [--records N] [--out FILE] [--rate R] [--quiet] [workload flags]

  --records N   records to write (default 1000000)
  --out FILE    write to FILE instead of stdout
  --rate R      records per second of record time, Poisson arrivals (default 200)
  --quiet       no summary on stderr
workload flags:";

struct Args {
    cfg: WorkloadConfig,
    records: u64,
    out: Option<PathBuf>,
    quiet: bool,
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut a = Args { cfg: WorkloadConfig::default(), records: 1_000_000, out: None, quiet: false };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quiet" => a.quiet = true,
            "-h" | "--help" => {
                println!("{USAGE}\n{WORKLOAD_FLAGS}");
                std::process::exit(0);
            }
            _ => {
                let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
                match flag.as_str() {
                    "--records" => {
                        a.records =
                            v.replace('_', "").parse().map_err(|_| anyhow!("--records: {v:?} is not a number"))?
                    }
                    "--out" => a.out = Some(PathBuf::from(v)),
                    _ => {
                        if !apply_flag(&mut a.cfg, flag, v)? {
                            bail!("unknown flag {flag:?}\n{USAGE}\n{WORKLOAD_FLAGS}");
                        }
                    }
                }
            }
        }
    }
    Ok(a)
}

/// Writes the records; `Ok(false)` when the reader went away (a closed pipe: `| head`).
fn write_all(a: &Args, out: &mut dyn Write) -> Result<(bool, u64, i64)> {
    let mut g = Generator::new(Arc::new(Templates::load_default()?), a.cfg.clone())?;
    let mut bytes = 0u64;
    for r in g.by_ref().take(a.records as usize) {
        let line = to_json_line(&r);
        let res = out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n"));
        match res {
            Ok(()) => bytes += line.len() as u64 + 1,
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok((false, bytes, g.last_ts_ms())),
            Err(e) => return Err(e).context("writing"),
        }
    }
    match out.flush() {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok((false, bytes, g.last_ts_ms())),
        r => {
            r.context("writing")?;
            Ok((true, bytes, g.last_ts_ms()))
        }
    }
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = parse_args(&argv)?;
    let t = Instant::now();
    let (complete, bytes, last_ts) = match &a.out {
        Some(p) => {
            let f = std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            write_all(&a, &mut w)?
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
            write_all(&a, &mut w)?
        }
    };
    if !a.quiet && complete {
        eprintln!(
            "portlog-gen: {} records, {:.1} MB, record time {} .. {}, {:.1} s",
            a.records,
            bytes as f64 / 1e6,
            portlog_engine::time::rfc3339_utc8(a.cfg.start_ms),
            portlog_engine::time::rfc3339_utc8(last_ts),
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
