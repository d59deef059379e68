//! Helpers of the end-to-end tests: the real daemon on a free loopback port, the real CLI.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SERVER: &str = env!("CARGO_BIN_EXE_portlog-server");

/// The `portlog` binary of the client package: next to this package's binaries in the target
/// directory (`cargo test --workspace` builds it; `cargo build --release -p portlog-client`
/// otherwise).
pub fn cli_bin() -> PathBuf {
    let p = Path::new(SERVER).with_file_name("portlog");
    assert!(p.exists(), "{} is missing: build it with `cargo build --release -p portlog-client`", p.display());
    p
}

/// A running daemon; killed when dropped.
pub struct Daemon {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Everything the daemon wrote on stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `portlog-server --data-dir DIR --listen 127.0.0.1:0 EXTRA…` and waits until ready.
    pub fn start(dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_env(dir, extra, &[])
    }

    /// [`Daemon::start`] with extra environment variables (e.g. `RUST_LOG`).
    pub fn start_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(SERVER)
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("portlog-server ready") {
                    let addr = line.split_whitespace().find_map(|w| w.strip_prefix("addr=")).map(str::to_string);
                    if let Some(t) = tx.take() {
                        let _ = t.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(a)) => a,
            _ => {
                let _ = child.kill();
                panic!("the daemon never said it was ready: {:?}", log.lock().unwrap());
            }
        };
        Daemon { child: Some(child), addr, log }
    }

    /// `http://ADDR`.
    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM and waits (at most 30 s) for the exit status.
    pub fn sigterm(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let st = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(st.success());
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("the daemon did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's stderr so far, joined.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a CLI run returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout's lines parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    /// stdout as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs `portlog ARGS…` (with `stdin` fed if given), with no PORTLOG_* environment.
pub fn portlog(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(cli_bin());
    cmd.args(args)
        .env_remove("PORTLOG_ENDPOINT")
        .env_remove("PORTLOG_TOKEN")
        .env_remove("PORTLOG_CA_CERT")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}
