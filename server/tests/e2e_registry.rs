//! End to end, the registry rows of cli.md: the real daemon (with tokens, so that the audit trail
//! names callers) driven by the real `portlog` CLI. Ledger → overlapping assignment refused →
//! ingest with an MO "R" → check denied → end and reassign → check allowed → reject lists (old
//! assignment, by number) → consent → content rules → inspect → import/export → audit (allowed
//! and denied) → restart persistence; check batch and stream through the Rust client.
#![allow(clippy::unwrap_used)]

mod common;

use common::{now_ms, portlog, Daemon, Run};
use portlog_engine::time::rfc3339_utc8;
use serde_json::Value;
use std::collections::BTreeSet;

const ADMIN: &str = "admin-secret-0123456789abcdef";
const INVESTIGATOR: &str = "inv-secret-0123456789abcdef";
const GATEWAY: &str = "gw-secret-0123456789abcdef";
const INGEST: &str = "ingest-secret-0123456789ab";

const A: &str = "13800138000";
const B: &str = "13900139000";
const C: &str = "13700137000";
const SP1: &str = "1069012345601";
const SP3: &str = "1069012345603";
const UNKNOWN_SP: &str = "1069099";
const GOOD_TEXT: &str = "【星河银行】会员日满100减20。拒收请回复R";

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn tokens_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("tokens.toml");
    let entry = |t: &str, n: &str, r: &str| format!("[[token]]\ntoken = \"{t}\"\nname = \"{n}\"\nrole = \"{r}\"\n\n");
    let text = [
        entry(ADMIN, "ops", "admin"),
        entry(INVESTIGATOR, "alice", "investigator"),
        entry(GATEWAY, "gateway-1", "gateway"),
        entry(INGEST, "loader", "ingest"),
    ]
    .concat();
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs the CLI against `ep` with `token`, `--json`.
fn cli(ep: &str, token: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut all = vec!["--endpoint", ep, "--token", token, "--json"];
    all.extend_from_slice(args);
    portlog(&all, stdin)
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    r
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `portlog check` as the gateway: (exit code, JSON answer).
fn check(ep: &str, sp: &str, number: &str, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["check", "--sub-port", sp, "--number", number];
    args.extend_from_slice(extra);
    let r = cli(ep, GATEWAY, &args, None);
    assert!(r.code == 0 || r.code == 1, "check {args:?}: exit {}: {}", r.code, r.stderr);
    let v = r.json();
    assert_eq!(keys(&v), set(&["allow", "reason", "since"]), "{v}");
    assert_eq!(v["allow"].as_bool().unwrap(), r.code == 0, "{v}");
    (r.code, v)
}

fn mt(sp: &str, peer: &str, ts: i64, text: &str) -> String {
    format!(r#"{{"dir":"mt","sub_port":"{sp}","peer":"{peer}","ts":{ts},"usage":"commercial","text":"{text}"}}"#)
}

#[test]
fn ledger_rejects_check_consent_inspect_audit_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = tokens_file(dir.path());
    let targs = ["--tokens", tokens.to_str().unwrap()];
    let d = Daemon::start(&data, &targs);
    let ep = d.http();
    let now = now_ms();
    let (from, to) = ((now - 10 * DAY).to_string(), rfc3339_utc8(now + 365 * DAY));

    // --- Ledger: providers, an assignment, an overlapping one refused.
    let r = ok(cli(
        &ep,
        ADMIN,
        &[
            "ledger",
            "provider",
            "add",
            "--id",
            "p1",
            "--name",
            "星河银行股份有限公司",
            "--signature",
            "星河银行",
            "--signature",
            "星河",
        ],
        None,
    ));
    let p = r.json();
    assert_eq!(p["id"], "p1");
    assert_eq!(p["signatures"], serde_json::json!(["星河银行", "星河"]));
    ok(cli(
        &ep,
        ADMIN,
        &["ledger", "provider", "add", "--id", "p2", "--name", "月亮科技", "--signature", "月亮"],
        None,
    ));
    let assign = |sp: &str, provider: &str, usage: &str, from: &str, to: &str, extra: &[&str]| {
        let mut args = vec!["ledger", "assign", "--sub-port", sp, "--provider", provider, "--usage", usage];
        args.extend_from_slice(&["--from", from, "--to", to]);
        args.extend_from_slice(extra);
        cli(&ep, ADMIN, &args, None)
    };
    let a1 = ok(assign(SP1, "p1", "commercial", &from, &to, &[])).json();
    assert_eq!(a1["id"], 1, "{a1}");
    assert_eq!(a1["sub_port"], SP1);
    assert_eq!(a1["usage"], "commercial");
    assert_eq!(a1["to"], to);
    let r = assign(SP1, "p2", "service", &(now - DAY).to_string(), &(now + DAY).to_string(), &[]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(r.stderr.contains("overlaps assignment 1") && r.stderr.contains(SP1), "{}", r.stderr);
    let r = assign(SP1, "nobody", "service", &from, &to, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("provider nobody not found"), "{}", r.stderr);
    let r = assign(SP1, "p1", "marketing", &from, &to, &[]);
    assert_eq!(r.code, 2);
    let r = assign(SP1, "p1", "commercial", "next tuesday", &to, &[]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid --from"), "{}", r.stderr);
    let a2 = ok(assign(SP3, "p2", "commercial", &from, &to, &["--consent-required"])).json();
    assert_eq!(a2["id"], 2);
    assert_eq!(a2["consent_required"], true);
    // Ledger changes need admin.
    let r = cli(&ep, INVESTIGATOR, &["ledger", "provider", "add", "--id", "p3", "--name", "x"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);

    // --- Ingest with an MO "R": the reject is registered for assignment 1.
    let t_r = now - 2 * HOUR;
    let input = [
        mt(SP1, A, now - 3 * HOUR, GOOD_TEXT),
        format!(r#"{{"dir":"mo","sub_port":"{SP1}","peer":"+86{A}","ts":{t_r},"text":" r "}}"#),
        mt(SP1, B, now - HOUR, "会员日满100减20"),
        mt(UNKNOWN_SP, C, now - HOUR, GOOD_TEXT),
    ]
    .join("\n");
    let r = ok(cli(&ep, INGEST, &["ingest", "-"], Some(&input)));
    let v = r.json();
    assert_eq!((v["accepted"].as_u64(), v["rejects_registered"].as_u64()), (Some(4), Some(1)), "{v}");
    // The same MO again registers nothing new.
    let again = format!(r#"{{"dir":"mo","sub_port":"{SP1}","peer":"{A}","ts":{},"text":"R"}}"#, t_r + 1000);
    assert_eq!(ok(cli(&ep, INGEST, &["ingest", "-"], Some(&again))).json()["rejects_registered"], 0);

    // --- The check: denied with since, allowed, content rules, usage, unknown sub-port.
    let (code, v) = check(&ep, SP1, A, &[]);
    assert_eq!(code, 1);
    assert_eq!(v["reason"], "rejected");
    assert_eq!(v["since"], rfc3339_utc8(t_r));
    let (code, v) = check(&ep, SP1, B, &[]);
    assert_eq!((code, &v["reason"], &v["since"]), (0, &Value::Null, &Value::Null));
    let (code, v) = check(&ep, SP1, B, &["--text", "【月亮】会员日。拒收请回复R"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("bad_signature")));
    let (code, v) = check(&ep, SP1, B, &["--text", "【星河银行】会员日满100减20"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("missing_reject_instruction")));
    assert_eq!(check(&ep, SP1, B, &["--text", GOOD_TEXT]).0, 0);
    let (code, v) = check(&ep, SP1, B, &["--usage", "service"]);
    assert_eq!((code, v["reason"].as_str()), (1, Some("usage_mismatch")));
    let (_, v) = check(&ep, UNKNOWN_SP, B, &[]);
    assert_eq!(v["reason"], "unknown_sub_port");
    let (_, v) = check(&ep, SP1, B, &["--at", &rfc3339_utc8(now - 20 * DAY)]);
    assert_eq!(v["reason"], "no_assignment");
    let r = cli(&ep, GATEWAY, &["check", "--sub-port", SP1, "--number", "1380013800"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid number"), "{}", r.stderr);
    let r = cli(&ep, GATEWAY, &["check", "--sub-port", "10x", "--number", A], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid sub_port"), "{}", r.stderr);
    // Human output.
    let r = portlog(&["--endpoint", &ep, "--token", GATEWAY, "check", "--sub-port", SP1, "--number", A], None);
    assert_eq!(r.code, 1);
    assert!(r.stdout.starts_with("denied: rejected since ") && r.stdout.contains("(assignment 1)"), "{}", r.stdout);

    // --- End the term, assign again: the new assignment starts without rejects.
    let t_end = now - 30 * 60_000;
    let ended = ok(cli(&ep, ADMIN, &["ledger", "end", "--sub-port", SP1, "--at", &t_end.to_string()], None)).json();
    assert_eq!((ended["id"].as_u64(), ended["to"].as_str()), (Some(1), Some(rfc3339_utc8(t_end).as_str())));
    let a3 = ok(assign(SP1, "p1", "commercial", &t_end.to_string(), &to, &[])).json();
    assert_eq!(a3["id"], 3);
    let (code, v) = check(&ep, SP1, A, &[]);
    assert_eq!((code, &v["reason"], &v["since"]), (0, &Value::Null, &Value::Null));
    // As of an instant under the old assignment: still rejected.
    let (code, v) = check(&ep, SP1, A, &["--at", &rfc3339_utc8(now - HOUR)]);
    assert_eq!(
        (code, v["reason"].as_str(), v["since"].as_str()),
        (1, Some("rejected"), Some(rfc3339_utc8(t_r).as_str()))
    );
    let show = ok(cli(&ep, INVESTIGATOR, &["ledger", "show", "--sub-port", SP1], None)).json();
    assert!(set(&["sub_port", "current", "history"]).is_subset(&keys(&show)), "{show}");
    assert_eq!(show["current"]["id"], 3);
    let history = show["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0]["id"].as_u64(), history[0]["to"].as_str()), (Some(1), Some(rfc3339_utc8(t_end).as_str())));
    let kinds: Vec<&str> = show["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["assign", "end", "assign"]);

    // --- Reject lists: the current assignment (empty), the old one, by number.
    let r = ok(cli(&ep, INVESTIGATOR, &["reject", "list", "--sub-port", SP1], None));
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let r = ok(cli(&ep, INVESTIGATOR, &["reject", "list", "--sub-port", SP1, "--assignment", "1"], None));
    let lines = r.json_lines();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!(keys(&lines[0]), set(&["number", "at", "source", "text"]));
    assert_eq!(lines[0]["number"], A);
    assert_eq!(lines[0]["at"], rfc3339_utc8(t_r));
    assert_eq!((lines[0]["source"].as_str(), lines[0]["text"].as_str()), (Some("mo"), Some(" r ")));
    let r = ok(cli(&ep, INVESTIGATOR, &["reject", "list", "--number", &format!("0086{A}")], None));
    let lines = r.json_lines();
    assert_eq!(lines.len(), 1, "{}", r.stdout);
    assert_eq!(keys(&lines[0]), set(&["sub_port", "assignment", "number", "at", "source", "text", "in_force"]));
    assert_eq!((lines[0]["sub_port"].as_str(), lines[0]["assignment"].as_u64()), (Some(SP1), Some(1)));
    assert_eq!(lines[0]["in_force"], false);
    let r = cli(&ep, INVESTIGATOR, &["reject", "list", "--sub-port", SP1, "--assignment", "2"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("assignment 2 belongs to sub-port"), "{}", r.stderr);
    // The gateway may not list rejects (audited as denied below).
    let r = cli(&ep, GATEWAY, &["reject", "list", "--number", A], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);

    // --- A reject from another channel binds the assignment in force.
    let rj =
        ok(cli(&ep, ADMIN, &["reject", "add", "--sub-port", SP1, "--number", B, "--text", "complaint 12345"], None));
    let rj = rj.json();
    assert_eq!(
        (rj["assignment"].as_u64(), rj["source"].as_str(), rj["registered"].as_bool()),
        (Some(3), Some("api"), Some(true))
    );
    assert_eq!(check(&ep, SP1, B, &[]).1["reason"], "rejected");
    let r = cli(&ep, ADMIN, &["reject", "add", "--sub-port", UNKNOWN_SP, "--number", B], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not found"), "{}", r.stderr);

    // --- Consent on an assignment that requires it.
    assert_eq!(check(&ep, SP3, A, &[]).1["reason"], "no_consent");
    let consent = |verb: &str| {
        cli(&ep, ADMIN, &["consent", verb, "--sub-port", SP3, "--number", A, "--evidence", "signed form 7"], None)
    };
    let rec = ok(consent("add")).json();
    assert_eq!((rec["granted"].as_bool(), rec["assignment"].as_u64()), (Some(true), Some(2)), "{rec}");
    assert_eq!(rec["evidence"], "signed form 7");
    assert_eq!(check(&ep, SP3, A, &[]).0, 0);
    let rec = ok(consent("withdraw")).json();
    assert_eq!(rec["granted"], false);
    assert_eq!(check(&ep, SP3, A, &[]).1["reason"], "no_consent");
    let r = cli(&ep, ADMIN, &["consent", "add", "--sub-port", SP1, "--number", A, "--evidence", "x"], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("does not require consent"), "{}", r.stderr);

    // --- Trace (allowed and denied), inspect.
    let r = ok(cli(&ep, INVESTIGATOR, &["trace", "--number", A], None));
    let traced = r.json_lines();
    assert_eq!(traced.len(), 3, "{}", r.stdout);
    assert_eq!(traced[1]["dir"], "mo");
    let r = cli(&ep, GATEWAY, &["trace", "--number", A], None);
    assert_eq!(r.code, 2);
    // Without a token: refused, and audited too (as `anonymous`).
    let r = portlog(&["--endpoint", &ep, "trace", "--number", B], None);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not authenticated"), "{}", r.stderr);
    let r = ok(cli(&ep, INVESTIGATOR, &["inspect"], None));
    let findings = r.json_lines();
    let found: BTreeSet<(String, String)> = findings
        .iter()
        .map(|f| (f["kind"].as_str().unwrap().to_string(), f["sub_port"].as_str().unwrap().to_string()))
        .collect();
    assert!(found.contains(&("unknown_sub_port".into(), UNKNOWN_SP.into())), "{}", r.stdout);
    assert!(found.contains(&("bad_signature".into(), SP1.into())), "{}", r.stdout);
    let bad = findings.iter().find(|f| f["kind"] == "bad_signature").unwrap();
    assert_eq!((bad["messages"].as_u64(), bad["assignment"].as_u64()), (Some(1), Some(1)), "{bad}");
    assert_eq!((bad["provider"].as_str(), bad["example"].as_str()), (Some("p1"), Some("会员日满100减20")));
    assert_eq!(bad["first"], rfc3339_utc8(now - HOUR));
    let r = ok(cli(&ep, INVESTIGATOR, &["inspect", "--from", &rfc3339_utc8(now - 10 * 60_000)], None));
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    // --- Import (all or nothing) and export.
    let good_csv = dir.path().join("optouts.csv");
    std::fs::write(
        &good_csv,
        format!("number,at,source,text\n{C},{},legacy,old system\n+8613600136000,,,\n", now - DAY),
    )
    .unwrap();
    let bad_csv = dir.path().join("bad.csv");
    std::fs::write(&bad_csv, format!("number,at\n13500135000,\n12345,\n{C},tomorrow\n")).unwrap();
    let r = cli(&ep, ADMIN, &["reject", "import", "--sub-port", SP1, bad_csv.to_str().unwrap()], None);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("2 bad row(s), nothing imported: line 3:") && r.stderr.contains("line 4:"),
        "{}",
        r.stderr
    );
    assert_eq!(check(&ep, SP1, "13500135000", &[]).0, 0, "nothing of the bad file was imported");
    let rep = ok(cli(&ep, ADMIN, &["reject", "import", "--sub-port", SP1, good_csv.to_str().unwrap()], None)).json();
    assert_eq!(rep, serde_json::json!({"assignment": 3, "rows": 2, "registered": 2, "already": 0}));
    assert_eq!(check(&ep, SP1, C, &[]).1["since"], rfc3339_utc8(now - DAY));
    let jsonl = format!("{{\"number\":\"{C}\"}}\n{{\"number\":\"13300133000\",\"text\":\"web form\"}}\n");
    let rep =
        ok(cli(&ep, ADMIN, &["reject", "import", "--sub-port", SP1, "--format", "jsonl", "-"], Some(&jsonl))).json();
    assert_eq!((rep["registered"].as_u64(), rep["already"].as_u64()), (Some(1), Some(1)));
    let r = cli(&ep, INVESTIGATOR, &["reject", "import", "--sub-port", SP1, good_csv.to_str().unwrap()], None);
    assert_eq!(r.code, 2);
    let r = ok(cli(&ep, INVESTIGATOR, &["reject", "export", "--sub-port", SP1, "--format", "csv"], None));
    let rows: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(rows[0], "number,at,source,text");
    assert_eq!(rows.len(), 1 + 4, "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{B},")) && r.stdout.contains("13600136000,"), "{}", r.stdout);
    let out = dir.path().join("export.jsonl");
    ok(cli(
        &ep,
        INVESTIGATOR,
        &["reject", "export", "--sub-port", SP1, "--assignment", "1", "--output", out.to_str().unwrap()],
        None,
    ));
    let exported = std::fs::read_to_string(&out).unwrap();
    assert_eq!(exported.lines().count(), 1);
    assert!(exported.contains(A) && exported.contains("\"source\":\"mo\""), "{exported}");

    // --- Stats.
    let s = ok(cli(&ep, GATEWAY, &["stats"], None)).json();
    assert_eq!(
        (s["rejects"].as_u64(), s["assignments"].as_u64(), s["records"].as_u64()),
        (Some(5), Some(3), Some(5)),
        "{s}"
    );

    // --- The audit trail: allowed and denied, with the callers' names.
    let r = ok(cli(&ep, INVESTIGATOR, &["audit", "list"], None));
    let entries = r.json_lines();
    for e in &entries {
        assert!(set(&["at", "who", "action", "number", "records"]).is_subset(&keys(e)), "{e}");
    }
    let has = |who: &str, action: &str, number: Option<&str>, records: Option<u64>| {
        entries.iter().any(|e| {
            e["who"] == who
                && e["action"] == action
                && number.is_none_or(|n| e["number"] == n)
                && records.is_none_or(|n| e["records"] == n)
        })
    };
    assert!(has("ops", "ledger.provider", None, None), "{}", r.stdout);
    assert!(has("ops", "ledger.assign", None, None), "{}", r.stdout);
    assert!(has("ops", "ledger.end", None, None), "{}", r.stdout);
    assert!(has("alice", "denied:ledger.provider", None, None), "{}", r.stdout);
    assert!(has("alice", "trace", Some(A), Some(3)), "{}", r.stdout);
    assert!(has("gateway-1", "denied:trace", Some(A), Some(0)), "{}", r.stdout);
    assert!(has("anonymous", "denied:trace", Some(B), Some(0)), "{}", r.stdout);
    assert!(has("alice", "reject.list", None, Some(1)), "{}", r.stdout);
    assert!(has("alice", "reject.list", Some(A), Some(1)), "{}", r.stdout);
    assert!(has("gateway-1", "denied:reject.list", Some(A), None), "{}", r.stdout);
    assert!(has("ops", "reject.add", Some(B), None), "{}", r.stdout);
    assert!(has("ops", "consent.add", Some(A), None), "{}", r.stdout);
    assert!(has("ops", "consent.withdraw", Some(A), None), "{}", r.stdout);
    assert!(has("ops", "reject.import", None, None), "{}", r.stdout);
    assert!(has("alice", "denied:reject.import", None, None), "{}", r.stdout);
    assert!(has("alice", "reject.export", None, Some(4)), "{}", r.stdout);
    let denied = entries.iter().find(|e| e["action"] == "denied:trace").unwrap();
    assert_eq!(denied["allowed"], false);
    let listed = entries.iter().find(|e| e["action"] == "reject.list" && e["records"] == 1).unwrap();
    assert_eq!((listed["sub_port"].as_str(), listed["detail"].as_str()), (Some(SP1), Some("assignment=1")));
    // The gateway may not read the audit trail.
    assert_eq!(cli(&ep, GATEWAY, &["audit", "list"], None).code, 2);
    // A window.
    let r = ok(cli(&ep, INVESTIGATOR, &["audit", "list", "--to", &rfc3339_utc8(now - DAY)], None));
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let audited = entries.len();

    assert_eq!(d.sigterm().code(), Some(0));

    // --- Restart: the ledger, the rejects, consent and the audit trail are all there.
    let d = Daemon::start(&data, &targs);
    let ep = d.http();
    let show2 = ok(cli(&ep, INVESTIGATOR, &["ledger", "show", "--sub-port", SP1], None)).json();
    assert_eq!(show2, show);
    let (code, v) = check(&ep, SP1, A, &["--at", &rfc3339_utc8(now - HOUR)]);
    assert_eq!((code, v["since"].as_str()), (1, Some(rfc3339_utc8(t_r).as_str())));
    assert_eq!(check(&ep, SP1, A, &[]).0, 0);
    assert_eq!(check(&ep, SP1, B, &[]).1["reason"], "rejected");
    assert_eq!(check(&ep, SP3, A, &[]).1["reason"], "no_consent");
    let r = ok(cli(&ep, INVESTIGATOR, &["reject", "list", "--number", A], None));
    assert_eq!(r.json_lines()[0]["assignment"], 1);
    let r = ok(cli(&ep, INVESTIGATOR, &["audit", "list"], None));
    let after = r.json_lines();
    // Everything before, plus this session's reject listing.
    assert_eq!(after.len(), audited + 1, "{}", r.stdout);
    assert_eq!(after[..audited], entries[..]);
    let s = ok(cli(&ep, GATEWAY, &["stats"], None)).json();
    assert_eq!((s["rejects"].as_u64(), s["assignments"].as_u64()), (Some(5), Some(3)), "{s}");
    assert_eq!(d.sigterm().code(), Some(0));
}

#[test]
fn check_batch_and_stream_through_the_rust_client() {
    use portlog_client::{proto, Client};
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portlog.toml");
    std::fs::write(
        &cfg,
        "[server]\nbatch_items_max = 3\nstream_messages_max = 2\n[registry]\nreject_keywords = [\"R\", \"TD\"]\n",
    )
    .unwrap();
    let d = Daemon::start(&dir.path().join("data"), &["--config", cfg.to_str().unwrap()]);
    let ep = d.http();
    let now = now_ms();
    ok(portlog(&["--endpoint", &ep, "ledger", "provider", "add", "--id", "p1", "--name", "星河银行"], None));
    let (from, to) = ((now - DAY).to_string(), (now + DAY).to_string());
    let args = ["--endpoint", &ep, "ledger", "assign", "--sub-port", SP1, "--provider", "p1", "--usage", "commercial"];
    ok(portlog(&[&args[..], &["--from", from.as_str(), "--to", to.as_str()][..]].concat(), None));
    // A configured keyword ("TD") registers too.
    let mo = format!(r#"{{"dir":"mo","sub_port":"{SP1}","peer":"{A}","ts":{},"text":"td"}}"#, now - HOUR);
    let r = ok(portlog(&["--endpoint", &ep, "--json", "ingest", "-"], Some(&mo)));
    assert_eq!(r.json()["rejects_registered"], 1);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = Client::connect(&ep, None, None).await.unwrap();
        let q = |n: &str| proto::CheckRequest { sub_port: SP1.into(), number: n.into(), ..Default::default() };
        let got = client.check_batch(vec![q(A), q(B), q("123")]).await.unwrap();
        assert_eq!(got.len(), 3);
        assert!(!got[0].allow && got[0].reason == proto::DenyReason::Rejected as i32 && got[0].since_ms == now - HOUR);
        assert!(got[1].allow && got[1].assignment_id == 1 && got[1].error.is_empty());
        assert!(!got[2].allow && got[2].error.starts_with("invalid number"), "{:?}", got[2]);
        // From memory alone: the same verdicts, no since-time.
        let fast: Vec<_> = [A, B].iter().map(|n| proto::CheckRequest { skip_since: true, ..q(n) }).collect();
        let got = client.check_batch(fast).await.unwrap();
        assert!(!got[0].allow && got[0].reason == proto::DenyReason::Rejected as i32 && got[0].since_ms == 0);
        assert!(got[1].allow);
        let st = client.check_batch(vec![q(A); 4]).await.unwrap_err();
        assert_eq!(st.code(), tonic::Code::InvalidArgument);
        assert!(st.message().contains("batch_items_max"), "{}", st.message());

        // The stream: one reply per request, same request_id, in order; past
        // stream_messages_max, RESOURCE_EXHAUSTED.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut replies = client
            .check_client()
            .check_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        for (id, n) in [(10u64, A), (11, B)] {
            tx.send(proto::CheckBatchRequest { request_id: id, checks: vec![q(n)] }).await.unwrap();
            let r = replies.message().await.unwrap().unwrap();
            assert_eq!(r.request_id, id);
            assert_eq!(r.results[0].allow, n == B);
        }
        tx.send(proto::CheckBatchRequest { request_id: 12, checks: vec![q(A)] }).await.unwrap();
        let st = replies.message().await.unwrap_err();
        assert_eq!(st.code(), tonic::Code::ResourceExhausted);
        assert!(st.message().contains("stream_messages_max"), "{}", st.message());
    });
    drop(rt);
    assert_eq!(d.sigterm().code(), Some(0));
}
