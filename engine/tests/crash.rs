//! Runs the kill -9 crash test (src/bin/portlog-crashtest.rs): 20 rounds here; more with
//! `PORTLOG_CRASH_ROUNDS`, or run the binary with `--rounds N` for a soak.

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_record() {
    let rounds = std::env::var("PORTLOG_CRASH_ROUNDS").unwrap_or_else(|_| "20".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portlog-crashtest"))
        .args(["--rounds", &rounds, "--dir"])
        .arg(dir.path())
        .output()
        .expect("run portlog-crashtest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "crash test failed:\n{stdout}\n{stderr}");
    let rounds: usize = rounds.parse().expect("rounds");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("round ")).count(), rounds);
    // The test is only meaningful if the child acknowledged work before being killed.
    let verified: usize =
        stdout.lines().filter_map(|l| l.split(", ").nth(2)?.split(' ').next()?.parse().ok()).max().unwrap_or(0);
    assert!(verified > 0, "no acknowledged record was ever verified:\n{stdout}");
}
