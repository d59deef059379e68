//! `portlog-bench-docs`: regenerates docs/benchmarks.md from the benchmark harnesses.
//!
//! ```text
//! portlog-bench-docs [--doc PATH] [--out PATH] [--only LIST] [--skip LIST] [--quick]
//!                    [--trace-records N] [--trace-data DIR] [--dry-run]
//! ```
//!
//! Each section (`portlog_benches::docs::SECTIONS`) is one harness run as a child process: the
//! sibling binary of this executable (`portlog-bench`, `portlog-check-bench`, ...), its standard
//! output captured, its standard error passed through with the section's name in front. The
//! output goes between the section's markers (`<!-- generated:NAME:begin -->` ...
//! `<!-- generated:NAME:end -->`) under a line with the command, the date (UTC) and the
//! machine; the `machine` block at the top of the document gets the machine and the date of
//! the run. The prose around the markers is not touched.
//!
//! All or nothing: a missing marker stops the run before anything runs; a harness that fails
//! stops it with the harness's standard error, and the document stays as it was. The document
//! is read again once every harness has run (it may have been edited meanwhile), then written
//! to a temporary file beside it and renamed over it.

use anyhow::{anyhow, bail, Context, Result};
use portlog_benches::docs::{self, Machine, Section, Sizes, MACHINE, SECTIONS};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const USAGE: &str = "usage: portlog-bench-docs [--doc PATH] [--out PATH] [--only LIST] [--skip LIST] [--quick]
                          [--trace-records N] [--trace-data DIR] [--dry-run]

  --doc PATH          the document (default: docs/benchmarks.md of the repository, found from
                      $CARGO_MANIFEST_DIR or the current directory)
  --out PATH          write the result there instead of over --doc
  --only LIST         comma-separated sections to regenerate (default: all); the machine block,
                      which dates the last full run, only when named here too
  --skip LIST         comma-separated sections to leave as they are
  --quick             smoke sizes (about a minute in all): checks the driver, not figures for the doc
  --trace-records N   records of the trace section (default 10000000; the figures the doc
                      discusses are at 100000000: about 11 minutes of load, 3 GB of disk)
  --trace-data DIR    keep the trace section's data directory in DIR, reused by the next run
                      with the same size (portlog-trace-bench --data)
  --dry-run           check the markers and print the commands; run nothing, write nothing

sections: machine, append-group100, append-group1000, index, check, retention, trace, load, compare, capacity
Each harness is the binary of that name beside this one (cargo build --release --workspace --bins).";

/// Lines of a failed harness's standard error (and output) kept for the error message.
const TAIL_LINES: usize = 40;

#[derive(Debug)]
struct Args {
    doc: Option<PathBuf>,
    out: Option<PathBuf>,
    only: Option<Vec<String>>,
    skip: Vec<String>,
    sizes: Sizes,
    dry_run: bool,
}

impl Args {
    fn selects(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.iter().any(|n| n == name)) && !self.skip.iter().any(|n| n == name)
    }
}

fn names(flag: &str, v: &str) -> Result<Vec<String>> {
    let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if let Some(bad) = list.iter().find(|n| *n != MACHINE && !SECTIONS.contains(&n.as_str())) {
        bail!("{flag}: unknown section {bad:?} (sections: {MACHINE}, {})", SECTIONS.join(", "));
    }
    if list.is_empty() {
        bail!("{flag}: name at least one section");
    }
    Ok(list)
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut a = Args { doc: None, out: None, only: None, skip: Vec::new(), sizes: Sizes::default(), dry_run: false };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quick" => a.sizes.quick = true,
            "--dry-run" => a.dry_run = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => {
                let v = it.next().ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
                match flag.as_str() {
                    "--doc" => a.doc = Some(PathBuf::from(v)),
                    "--out" => a.out = Some(PathBuf::from(v)),
                    "--only" => a.only = Some(names(flag, v)?),
                    "--skip" => a.skip = names(flag, v)?,
                    "--trace-records" => {
                        let n: u64 = v
                            .replace('_', "")
                            .parse()
                            .map_err(|_| anyhow!("--trace-records: {v:?} is not a number"))?;
                        if n == 0 {
                            bail!("--trace-records must be positive");
                        }
                        a.sizes.trace_records = Some(n);
                    }
                    "--trace-data" => a.sizes.trace_data = Some(v.clone()),
                    _ => bail!("unknown flag {flag:?}\n{USAGE}"),
                }
            }
        }
    }
    // The machine block alone would date a run that measured nothing.
    if !SECTIONS.iter().any(|s| a.selects(s)) {
        bail!("--only and --skip leave no harness section to run");
    }
    Ok(a)
}

/// docs/benchmarks.md of the repository: the first directory holding `Cargo.toml` and that
/// file, going up from `$CARGO_MANIFEST_DIR` (under `cargo run`), the current directory, then
/// the directory this binary was built from.
fn default_doc() -> Result<PathBuf> {
    let rel = Path::new("docs").join("benchmarks.md");
    let starts: Vec<PathBuf> = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::env::current_dir().ok())
        .chain([PathBuf::from(env!("CARGO_MANIFEST_DIR"))])
        .collect();
    for start in &starts {
        if let Some(root) = start.ancestors().find(|d| d.join(&rel).is_file() && d.join("Cargo.toml").is_file()) {
            return Ok(root.join(&rel));
        }
    }
    bail!("docs/benchmarks.md not found above {}: pass --doc PATH", starts[0].display())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What one harness run gave.
#[derive(Debug)]
struct Output {
    stdout: String,
    started_ms: i64,
    secs: f64,
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `section`'s harness from `bin_dir`: stdout captured, stderr passed through (each line
/// after `[NAME] `) and its last lines kept for the error when the harness fails.
fn run(section: &Section, bin_dir: &Path) -> Result<Output> {
    let exe = bin_dir.join(section.bin);
    if !exe.is_file() {
        bail!(
            "{} is not beside this binary in {}: build every harness first (cargo build --release --workspace --bins)",
            section.bin,
            bin_dir.display()
        );
    }
    let started_ms = now_ms();
    let t = Instant::now();
    let mut child = Command::new(&exe)
        .args(&section.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let (Some(mut out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        bail!("{}: no pipes to the child", section.bin)
    };
    let name = section.name;
    let stderr_thread = std::thread::spawn(move || {
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        for line in BufReader::new(err).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            eprintln!("[{name}] {line}");
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail
    });
    let mut bytes = Vec::new();
    let read = out.read_to_end(&mut bytes);
    let status = child.wait().with_context(|| format!("waiting for {}", section.bin))?;
    let tail = stderr_thread.join().map_err(|_| anyhow!("the stderr reader of {} panicked", section.bin))?;
    read.with_context(|| format!("reading the output of {}", section.bin))?;
    let stdout = String::from_utf8_lossy(&bytes).into_owned();
    if !status.success() {
        let or_empty = |s: String| if s.trim().is_empty() { "(nothing)".to_string() } else { s };
        bail!(
            "`{}` failed ({status}).\nIts stderr, last lines:\n{}\nIts stdout, last lines:\n{}",
            section.command_line(),
            or_empty(Vec::from(tail).join("\n")),
            or_empty(last_lines(&stdout, 10))
        );
    }
    if stdout.trim().is_empty() {
        bail!("`{}` printed nothing on its standard output", section.command_line());
    }
    Ok(Output { stdout, started_ms, secs: t.elapsed().as_secs_f64() })
}

/// One line of a command's standard output, if it runs and succeeds.
fn probe(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).lines().next()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let file = path.file_name().ok_or_else(|| anyhow!("{}: not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp-{}", file.to_string_lossy(), std::process::id()));
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = parse_args(&argv)?;
    let doc_path = match &a.doc {
        Some(p) => p.clone(),
        None => default_doc()?,
    };
    let out_path = a.out.clone().unwrap_or_else(|| doc_path.clone());
    let read_doc = || std::fs::read_to_string(&doc_path).with_context(|| format!("reading {}", doc_path.display()));
    let selected: Vec<Section> = docs::sections(&a.sizes).into_iter().filter(|s| a.selects(s.name)).collect();
    let mut wanted: Vec<&str> = selected.iter().map(|s| s.name).collect();
    if a.selects(MACHINE) {
        wanted.insert(0, MACHINE);
    }
    docs::check_markers(&read_doc()?, wanted.iter().copied()).with_context(|| format!("{}", doc_path.display()))?;
    let exe = std::env::current_exe().context("locating this binary")?;
    let bin_dir = exe.parent().ok_or_else(|| anyhow!("{} has no directory", exe.display()))?;

    if a.dry_run {
        println!("# markers checked in {}: {}", doc_path.display(), wanted.join(", "));
        println!("# harnesses from {}", bin_dir.display());
        for s in &selected {
            println!("{:<17} {}", s.name, s.command_line());
        }
        println!("# would write {}", out_path.display());
        return Ok(());
    }

    let machine = Machine::probe();
    let (started_ms, t0) = (now_ms(), Instant::now());
    let mut blocks = BTreeMap::new();
    for (i, s) in selected.iter().enumerate() {
        eprintln!("portlog-bench-docs: [{}/{}] {}: {}", i + 1, selected.len(), s.name, s.command_line());
        let o =
            run(s, bin_dir).with_context(|| format!("section {}; {} is left unchanged", s.name, out_path.display()))?;
        eprintln!("portlog-bench-docs: {} done in {}", s.name, docs::human_secs(o.secs));
        blocks.insert(
            s.name.to_string(),
            docs::harness_block(s, &o.stdout, o.started_ms, o.secs, &machine, a.sizes.quick),
        );
    }
    if a.selects(MACHINE) {
        let mut extra: Vec<String> = probe("rustc", &["-V"])
            .map(|v| v.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .into_iter()
            .collect();
        let repo = doc_path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let repo = if repo.as_os_str().is_empty() { PathBuf::from(".") } else { repo };
        if let Some(c) = probe("git", &["-C", &repo.to_string_lossy(), "rev-parse", "--short", "HEAD"]) {
            extra.push(format!("commit {c}"));
        }
        let command = std::iter::once("portlog-bench-docs".to_string())
            .chain(argv.iter().map(|a| docs::shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ");
        let ran: Vec<&str> = selected.iter().map(|s| s.name).collect();
        let secs = t0.elapsed().as_secs_f64();
        blocks.insert(
            MACHINE.to_string(),
            docs::machine_block(&machine, &extra, &command, started_ms, secs, &ran, a.sizes.quick),
        );
    }
    // Read again: the prose may have been edited while the harnesses ran.
    let text = docs::replace_blocks(&read_doc()?, &blocks).with_context(|| format!("{}", doc_path.display()))?;
    write_atomically(&out_path, &text)?;
    eprintln!(
        "portlog-bench-docs: wrote {} ({} blocks) in {}",
        out_path.display(),
        blocks.len(),
        docs::human_secs(t0.elapsed().as_secs_f64())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args> {
        parse_args(&a.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_flags() {
        let a = args(&["--only", "check, trace", "--quick", "--trace-records", "1_000", "--out", "/tmp/x.md"]).unwrap();
        assert!(a.selects("check") && a.selects("trace") && !a.selects(MACHINE) && !a.selects("compare"));
        assert!(a.sizes.quick && a.sizes.trace_records == Some(1_000) && !a.dry_run);
        assert_eq!(a.out, Some(PathBuf::from("/tmp/x.md")));
        let a = args(&["--skip", "load,compare", "--dry-run"]).unwrap();
        assert!(a.selects(MACHINE) && a.selects("append-group100") && !a.selects("load") && a.dry_run);
        let e = args(&["--only", "chek"]).unwrap_err().to_string();
        assert!(e.contains("unknown section \"chek\""), "{e}");
        assert!(args(&["--only", "check", "--skip", "check"]).is_err());
        assert!(args(&["--only", "machine"]).is_err());
        assert!(args(&["--only", "machine,load"]).unwrap().selects(MACHINE));
        assert!(args(&["--trace-records", "0"]).is_err());
        assert!(args(&["--doc"]).is_err());
        assert!(args(&["--bogus", "1"]).is_err());
    }

    #[test]
    fn writes_through_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.md");
        std::fs::write(&p, "old").unwrap();
        write_atomically(&p, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        assert!(write_atomically(&dir.path().join("missing/b.md"), "x").is_err());
    }

    #[test]
    fn a_failing_harness_is_an_error_with_its_stderr() {
        // `sh` stands in for a harness: the section's binary is looked up in bin_dir.
        let sh = Path::new("/bin/sh");
        let section = |script: &str| Section {
            name: "t",
            bin: "sh",
            args: vec!["-c".into(), script.into()],
            format: docs::Format::Text,
        };
        let o = run(&section("echo table; echo progress >&2"), sh.parent().unwrap()).unwrap();
        assert_eq!(o.stdout, "table\n");
        let e = run(&section("echo partial; echo 'no redis' >&2; exit 3"), sh.parent().unwrap()).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("no redis") && e.contains("partial") && e.contains("exit status: 3"), "{e}");
        assert!(run(&section("true"), sh.parent().unwrap()).is_err(), "an empty output is an error");
        let missing = Section { bin: "portlog-no-such-harness", ..section("true") };
        assert!(format!("{:#}", run(&missing, sh.parent().unwrap()).unwrap_err()).contains("cargo build"));
    }
}
