//! End to end: the real daemon on a loopback port, driven by the real `portlog` CLI: ingest with
//! good and bad lines, trace and its filters, stats, retention, restart persistence, SIGTERM.
#![allow(clippy::unwrap_used)]

mod common;

use common::{now_ms, portlog, Daemon};
use portlog_client::capacity::{Inputs, Model, PerMessage, DEFAULT_INDEX_SHARE, DEFAULT_OPEN_BYTES_PER_MESSAGE};
use portlog_engine::time::{parse_time_ms, rfc3339_utc8};

const A: &str = "13800138000";
const B: &str = "13900139000";
const SP1: &str = "1069012345601";
const SP2: &str = "1069012345602";

/// Nine lines: 3 good, 5 bad (3 caught by the CLI, 2 by the server), 1 blank.
fn input(t0: i64) -> String {
    let ts1 = rfc3339_utc8(t0);
    let future = t0 + 3 * 86_400_000;
    [
        format!(r#"{{"dir":"mt","sub_port":"{SP1}","peer":"{A}","ts":"{ts1}","usage":"commercial","text":"【星河银行】会员日满100减20。拒收请回复R"}}"#),
        format!(r#"{{"dir":"mo","sub_port":"{SP2}","peer":"+86{A}","ts":{},"text":"R"}}"#, t0 + 1000),
        r#"{"dir":"mt","sub_port":"#.to_string(),
        format!(r#"{{"dir":"mt","sub_port":"{SP1}","peer":"1380013800","ts":{t0},"usage":"service","text":"x"}}"#),
        String::new(),
        format!(r#"{{"dir":"mt","sub_port":"{SP1}","peer":"{A}","ts":"yesterday","usage":"service","text":"x"}}"#),
        format!(r#"{{"dir":"mt","sub_port":"{SP1}","peer":"{A}","ts":{t0},"text":"no usage"}}"#),
        format!(r#"{{"dir":"mt","sub_port":"{SP2}","peer":"{B}","ts":{},"usage":"service","text":"验证码 123456"}}"#, t0 + 2000),
        format!(r#"{{"dir":"mt","sub_port":"{SP1}","peer":"{A}","ts":{future},"usage":"service","text":"from the future"}}"#),
    ]
    .join("\n")
}

#[test]
fn ingest_trace_stats_restart_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let t0 = now_ms() - 3_600_000;
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, input(t0)).unwrap();

    let d = Daemon::start(&data, &[]);
    let ep = d.http();
    let r = portlog(&["--endpoint", &ep, "--json", "ingest", file.to_str().unwrap()], None);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["accepted"], 3, "{v}");
    assert_eq!(v["rejected"], 5, "{v}");
    assert_eq!(v["rejects_registered"], 0);
    let errors = v["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![3, 4, 6, 7, 9], "{v}");
    let msg = |i: usize| errors[i]["error"].as_str().unwrap().to_string();
    assert!(msg(0).starts_with("malformed JSON"), "{}", msg(0));
    assert!(msg(1).starts_with("invalid peer:") && msg(1).contains("1380013800"), "{}", msg(1));
    assert!(msg(2).starts_with("invalid ts:") && msg(2).contains("yesterday"), "{}", msg(2));
    assert!(msg(3).starts_with("invalid usage:"), "{}", msg(3));
    assert!(msg(4).starts_with("invalid ts:") && msg(4).contains("ahead"), "{}", msg(4));

    // Human output names the lines too.
    let r = portlog(&["--endpoint", &ep, "ingest", "-"], Some("{\"dir\":\"xx\"}\n"));
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("accepted 0, rejected 1") && r.stdout.contains("line 1: malformed JSON"), "{}", r.stdout);

    // Trace A: both directions, both sub-ports, time order, the number normalised.
    let r = portlog(&["--endpoint", &ep, "--json", "trace", "--number", &format!("+86{A}")], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = r.json_lines();
    assert_eq!(got.len(), 2, "{}", r.stdout);
    assert_eq!(got[0]["dir"], "mt");
    assert_eq!(got[0]["sub_port"], SP1);
    assert_eq!(got[0]["peer"], A);
    assert_eq!(got[0]["usage"], "commercial");
    assert_eq!(got[0]["ts"], rfc3339_utc8(t0));
    assert_eq!(got[0]["text"], "【星河银行】会员日满100减20。拒收请回复R");
    assert_eq!(got[1]["dir"], "mo");
    assert_eq!(got[1]["usage"], serde_json::Value::Null);
    assert_eq!(got[1]["sub_port"], SP2);
    // Filters: sub-port, and a window [from, to).
    let r = portlog(&["--endpoint", &ep, "--json", "trace", "--number", A, "--sub-port", SP2], None);
    assert_eq!(r.json_lines().len(), 1);
    let (from, to) = ((t0 + 1).to_string(), rfc3339_utc8(t0 + 1000));
    let r = portlog(&["--endpoint", &ep, "--json", "trace", "--number", A, "--from", &from, "--to", &to], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    // Bad input: named.
    let r = portlog(&["--endpoint", &ep, "trace", "--number", "12345"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid number"), "{}", r.stderr);
    let r = portlog(&["--endpoint", &ep, "trace", "--number", A, "--from", "last week"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid --from"), "{}", r.stderr);

    let r = portlog(&["--endpoint", &ep, "--json", "stats"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = r.json();
    assert_eq!(s["records"], 3, "{s}");
    assert_eq!(s["oldest_record"], rfc3339_utc8(t0));
    // The daemon syncs, so its journal carried the three records, each frame one sync.
    assert_eq!(s["journal_records"], 3, "{s}");
    let frames = s["journal_frames"].as_u64().unwrap();
    assert!((1..=3).contains(&frames), "{s}");
    assert!(s["journal_appends_per_frame"].as_f64().unwrap() >= 1.0, "{s}");
    assert!(s["journal_sync_us"].as_f64().unwrap() > 0.0 && s["journal_checkpoints"].as_u64().unwrap() >= 1, "{s}");

    // Direction and limit filters; a sub-port nobody knows is an error, not an empty answer.
    let r = portlog(&["--endpoint", &ep, "--json", "trace", "--number", A, "--direction", "mo"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = r.json_lines();
    assert_eq!((got.len(), got[0]["dir"].as_str()), (1, Some("mo")), "{}", r.stdout);
    let r = portlog(&["--endpoint", &ep, "--json", "trace", "--number", A, "--limit", "1"], None);
    assert_eq!(r.json_lines().len(), 1, "{}", r.stdout);
    assert_eq!(r.json_lines()[0]["dir"], "mt", "the first in time order");
    let r = portlog(&["--endpoint", &ep, "trace", "--number", A, "--sub-port", "10699999"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("sub_port") && r.stderr.contains("10699999"), "{}", r.stderr);
    let r = portlog(
        &["--endpoint", &ep, "trace", "--number", A, "--from", &(t0 + 5).to_string(), "--to", &t0.to_string()],
        None,
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("from"), "{}", r.stderr);

    // Retention: seven-month-old back-filled records go, nothing younger does.
    let old = t0 - 214 * 86_400_000;
    let backfill =
        format!(r#"{{"dir":"mt","sub_port":"{SP1}","peer":"{B}","ts":{old},"usage":"service","text":"old"}}"#);
    let r = portlog(&["--endpoint", &ep, "--json", "ingest", "-"], Some(&backfill));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = portlog(&["--endpoint", &ep, "--json", "retention", "run", "--dry-run"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!((v["dry_run"].as_bool(), v["records_deleted"].as_u64()), (Some(true), Some(1)), "{v}");
    assert_eq!(v["segments_deleted"], 1, "{v}");
    let r = portlog(&["--endpoint", &ep, "--json", "retention", "run"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!((v["records_deleted"].as_u64(), v["dry_run"].as_bool()), (Some(1), Some(false)), "{v}");
    assert!(v["bytes_freed"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["oldest_record"], rfc3339_utc8(t0), "{v}");
    let r = portlog(&["--endpoint", &ep, "--json", "trace", "--number", B], None);
    assert_eq!(r.json_lines().len(), 1, "only the recent record of B is left: {}", r.stdout);
    let r = portlog(&["--endpoint", &ep, "--json", "retention", "history"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let h = r.json_lines();
    assert_eq!(h.len(), 1, "the dry run is not kept: {}", r.stdout);
    assert_eq!((h[0]["seq"].as_u64(), h[0]["records_deleted"].as_u64()), (Some(1), Some(1)), "{}", r.stdout);
    let r = portlog(&["--endpoint", &ep, "--json", "audit", "list"], None);
    assert!(r.stdout.contains("retention.run") && r.stdout.contains("retention.dry_run"), "{}", r.stdout);
    let r = portlog(&["--endpoint", &ep, "--json", "stats"], None);
    assert_eq!(r.json()["records"], 3);

    assert_eq!(d.sigterm().code(), Some(0));

    // Restart on the same directory: everything acknowledged is there.
    let d = Daemon::start(&data, &[]);
    let r = portlog(&["--endpoint", &d.http(), "--json", "trace", "--number", B], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let got = r.json_lines();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["text"], "验证码 123456");
    let r = portlog(&["--endpoint", &d.http(), "--json", "stats"], None);
    assert_eq!(r.json()["records"], 3);
    let stderr = d.stderr();
    assert_eq!(d.sigterm().code(), Some(0), "{stderr}");
}

#[test]
fn unreachable_server_is_exit_2_naming_the_endpoint() {
    let r = portlog(&["--endpoint", "http://127.0.0.1:1", "stats"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("cannot connect to http://127.0.0.1:1"), "{}", r.stderr);
    let r = portlog(&["--endpoint", "127.0.0.1:1", "stats"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("must start with http:// or https://"), "{}", r.stderr);
    // capacity needs no server when given the bytes per message. The disk needed: the longest
    // five calendar months (153 or 154 days as month ends fall) and the day about to expire,
    // sealed at 20 B/message but for the open day's uncompressed rows (at this rate, capped by
    // the shards' open segment size); from today, the default start.
    let r = portlog(&["--json", "capacity", "--rate", "1000", "--bytes-per-message", "20"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    let day = 1000.0 * 20.0 * 86_400.0;
    let bytes = v["bytes"].as_f64().unwrap();
    assert!(bytes > 153.0 * day && bytes < 156.0 * day, "{v}");
    assert_eq!(v["bytes_per_message_source"], "flag");
    let per = PerMessage { sealed: 20.0, index_share: DEFAULT_INDEX_SHARE, open: DEFAULT_OPEN_BYTES_PER_MESSAGE };
    let start = parse_time_ms(v["start"].as_str().unwrap()).unwrap();
    assert_eq!(bytes, Model::new(Inputs::new(1000.0, 5, start, per)).unwrap().peak().disk_bytes.round());
}

/// `capacity`: the per-month table, `--json` with its rows, the SVG, bad input, and the
/// server's figures (too few messages here: the defaults, saying why).
#[test]
fn capacity_table_json_svg_and_server_figures() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("disk.svg");
    let start = "2026-01-01T00:00:00+08:00";
    let args = ["capacity", "--rate", "6000", "--per", "min", "--months", "2", "--start", start];
    let flag = ["--bytes-per-message", "25"];
    let r = portlog(&[&args[..], &flag, &["--svg", svg.to_str().unwrap()]].concat(), None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<&str> =
        r.stdout.lines().skip_while(|l| !l.trim_start().starts_with("month")).skip(1).take(4).collect();
    assert_eq!(rows.len(), 4, "months + 2 rows: {}", r.stdout);
    assert!(rows[0].trim_start().starts_with("1  2026-01-31"), "{}", r.stdout);
    assert!(rows[3].trim_start().starts_with("4  2026-04-30"), "{}", r.stdout);
    assert!(r.stdout.contains("expiry starts     2026-03-02 00:09"), "{}", r.stdout);
    assert!(r.stdout.contains("disk needed") && r.stdout.contains("(flag)"), "{}", r.stdout);
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.contains("<polyline") && chart.contains("expiry starts"), "{chart}");

    let r = portlog(&[&["--json"][..], &args, &flag].concat(), None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!((v["rate_per_s"].as_f64(), v["months"].as_u64()), (Some(100.0), Some(2)), "{v}");
    assert_eq!(v["svg"], serde_json::Value::Null);
    let per_month = v["per_month"].as_array().unwrap();
    assert_eq!(per_month.len(), 4, "{v}");
    let disk: Vec<f64> = per_month.iter().map(|m| m["disk_bytes"].as_f64().unwrap()).collect();
    assert!(disk[1] > 1.5 * disk[0], "growing until expiry: {disk:?}");
    let peak = v["bytes"].as_f64().unwrap();
    assert!(disk.iter().all(|d| *d <= peak) && disk[3] > 0.95 * peak, "then flat: {disk:?} {peak}");
    assert_eq!(per_month[0]["month"], 1);
    assert!(per_month[0]["index_bytes"].as_f64().unwrap() > 0.0 && per_month[0]["raw_bytes"].as_f64() > Some(disk[0]));
    // The same model as the library's, to the byte.
    let per = PerMessage { sealed: 25.0, index_share: DEFAULT_INDEX_SHARE, open: DEFAULT_OPEN_BYTES_PER_MESSAGE };
    let model = Model::new(Inputs::new(100.0, 2, parse_time_ms(start).unwrap(), per)).unwrap();
    assert_eq!(peak, model.peak().disk_bytes.round());

    // Bad input: named, exit 2.
    for (bad, named) in [
        (&["--rate", "10", "--months", "0", "--bytes-per-message", "20"][..], "invalid --months"),
        (&["--rate=-5", "--bytes-per-message", "20"][..], "invalid --rate"),
        (&["--rate", "10", "--bytes-per-message", "0"][..], "invalid --bytes-per-message"),
        (&["--rate", "10", "--start", "soon", "--bytes-per-message", "20"][..], "invalid --start"),
    ] {
        let r = portlog(&[&["capacity"][..], bad].concat(), None);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stdout);
        assert!(r.stderr.contains(named), "{bad:?}: {}", r.stderr);
    }

    // With a server: its Stats reply is asked; three messages are too few to measure on.
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let ep = d.http();
    let t0 = now_ms() - 60_000;
    let line = format!(r#"{{"dir":"mt","sub_port":"{SP1}","peer":"{A}","ts":{t0},"usage":"service","text":"x"}}"#);
    assert_eq!(portlog(&["--endpoint", &ep, "ingest", "-"], Some(&line)).code, 0);
    let r = portlog(&["--endpoint", &ep, "--json", "capacity", "--rate", "10"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["bytes_per_message_source"], "default", "{v}");
    assert_eq!(v["sources"]["open_bytes_per_message"]["measured_messages"], 1, "{v}");
    assert!(v["registry_bytes"].as_u64().unwrap() > 0, "{v}");
    let r = portlog(&["--endpoint", &ep, "capacity", "--rate", "10"], None);
    assert!(r.stdout.contains("fewer than 10000") && r.stdout.contains("registry now"), "{}", r.stdout);
    assert_eq!(d.sigterm().code(), Some(0));
}

#[test]
fn overload_is_resource_exhausted_and_metrics_are_served() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portlog.toml");
    std::fs::write(&cfg, "[server]\nconcurrent_calls_max = 1\n").unwrap();
    let d = Daemon::start(
        &dir.path().join("data"),
        &["--config", cfg.to_str().unwrap(), "--metrics-listen", "127.0.0.1:0"],
    );
    let ep = d.http();
    // An ingest whose input stays open holds the only call slot. A stats call made while the
    // ingest is still connecting can take the slot first, and the ingest is then refused and
    // exits: so after each start of the ingest no stats call is made for a settling time (which
    // grows when the ingest was refused again: a loaded machine starts processes slowly), and
    // the ingest is started again until it holds the slot and a stats call is refused.
    let spawn_held = || {
        std::process::Command::new(common::cli_bin())
            .args(["--endpoint", &ep, "--json", "ingest", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut settle = std::time::Duration::from_millis(200);
    let mut held = spawn_held();
    std::thread::sleep(settle);
    let mut refused = None;
    for _ in 0..60 {
        if let Some(status) = held.try_wait().unwrap() {
            let out = held.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(status.code(), Some(2), "the held ingest ended unexpectedly: {err}");
            assert!(err.contains("server limit reached"), "the held ingest failed otherwise: {err}");
            settle = (settle * 2).min(std::time::Duration::from_secs(3));
            held = spawn_held();
            std::thread::sleep(settle);
            continue;
        }
        let r = portlog(&["--endpoint", &ep, "stats"], None);
        if r.code == 2 {
            refused = Some(r.stderr);
            break;
        }
        // The ingest has not taken the slot yet: give it time without racing it.
        std::thread::sleep(settle);
    }
    let refused = refused.expect("stats was never refused while the only call slot was taken");
    assert!(refused.contains("server limit reached") && refused.contains("concurrent_calls_max"), "{refused}");
    let line = format!(
        "{{\"dir\":\"mo\",\"sub_port\":\"106901\",\"peer\":\"13800138000\",\"ts\":{},\"text\":\"R\"}}\n",
        now_ms() - 1000
    );
    let mut stdin = held.stdin.take().unwrap();
    stdin.write_all(line.as_bytes()).unwrap();
    drop(stdin);
    let out = held.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The slot is free again.
    let r = portlog(&["--endpoint", &ep, "--json", "stats"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["records"], 1);

    let log = d.stderr();
    let metrics_line = log.lines().find(|l| l.contains("metrics endpoint")).unwrap();
    let addr = metrics_line.split_whitespace().find_map(|w| w.strip_prefix("addr=")).unwrap();
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    sock.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("portlog_ingest_accepted_total 1"), "{body}");
    assert!(body.contains("portlog_grpc_calls_total{method=\"Ingest.Append\",code=\"Ok\"} 1"), "{body}");
    assert!(body.contains("portlog_grpc_calls_total{method=\"Stats.Get\",code=\"ResourceExhausted\"}"), "{body}");
    assert!(body.contains("portlog_grpc_overloaded_total"), "{body}");
    assert!(body.contains("portlog_log_records 1"), "{body}");
    // The one ingested message went through the journal: one frame, one append, one record.
    for m in ["portlog_journal_frames_total 1", "portlog_journal_appends_total 1", "portlog_journal_records_total 1"] {
        assert!(body.contains(&format!("\n{m}\n")), "{m}: {body}");
    }
    assert!(body.contains("# TYPE portlog_journal_sync_seconds_total counter"), "{body}");
    assert_eq!(d.sigterm().code(), Some(0));
}
