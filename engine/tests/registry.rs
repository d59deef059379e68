//! The ledger, the reject registry and the check: every deny reason, assignment changes, `at` in
//! the past, MO detection at ingest, import/export, inspection, restart and kill -9.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{DAY0_MS, DAY_MS};
use portlog_engine::registry::{AssignInput, FindingKind, ProviderInput, RejectFormat, RejectInput, RejectSource};
use portlog_engine::{
    Clock, Direction, Engine, EngineConfig, Error, ManualClock, PhoneNumber, Reason, Record, SubPort, Usage, Verdict,
};
use std::sync::Arc;

const SP: &str = "1069012345601";
const YEAR_MS: i64 = 365 * DAY_MS;

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

fn provider(id: &str, blacklisted: bool) -> ProviderInput {
    ProviderInput {
        id: id.into(),
        name: format!("{id}股份有限公司"),
        signatures: vec![format!("{id}银行"), id.into()],
        blacklisted,
        whitelisted: false,
    }
}

fn assign(sp: &str, p: &str, usage: Usage, from_ms: i64, to_ms: i64, consent: bool) -> AssignInput {
    AssignInput { sub_port: sp.into(), provider: p.into(), usage, from_ms, to_ms, consent_required: consent }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    clock: Arc<ManualClock>,
    engine: Option<Engine>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let clock = Arc::new(ManualClock::new(DAY0_MS + 10 * DAY_MS));
        let engine = Some(Engine::open(&path, EngineConfig::default(), clock.clone()).unwrap());
        Fixture { _dir: dir, path, clock, engine }
    }

    fn e(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        self.engine.take().unwrap().close();
        self.engine = Some(Engine::open(&self.path, EngineConfig::default(), self.clock.clone()).unwrap());
    }

    fn check(&self, sp: &str, num: &str, usage: Usage, at: Option<i64>, text: Option<&str>) -> Verdict {
        self.e().registry().check(sp, n(num), usage, at, text).unwrap()
    }

    fn reason(&self, sp: &str, num: &str, usage: Usage, at: Option<i64>, text: Option<&str>) -> Option<Reason> {
        self.check(sp, num, usage, at, text).reason
    }

    fn mo(&self, sp: &str, num: &str, ts_ms: i64, text: &str) -> u64 {
        let r = Record {
            dir: Direction::Mo,
            sub_port: SubPort::parse(sp).unwrap(),
            peer: n(num),
            ts_ms,
            usage: None,
            text: text.into(),
        };
        self.e().ingest(vec![r]).unwrap().rejects_registered
    }

    /// Provider `P1` holding SP for commercial use from DAY0 for a year.
    fn standard() -> Self {
        let f = Fixture::new();
        let reg = f.e().registry();
        reg.provider_put(provider("P1", false)).unwrap();
        reg.assign(assign(SP, "P1", Usage::Commercial, DAY0_MS, DAY0_MS + YEAR_MS, false)).unwrap();
        f
    }
}

const GOOD: &str = "【P1银行】会员日满100减20。拒收请回复R";

#[test]
fn every_deny_reason_and_allow() {
    let f = Fixture::standard();
    let reg = f.e().registry();
    reg.provider_put(provider("P2", false)).unwrap();
    reg.provider_put(provider("BAD", true)).unwrap();
    reg.assign(assign("1069000000002", "P2", Usage::Service, DAY0_MS, DAY0_MS + YEAR_MS, false)).unwrap();
    reg.assign(assign("1069000000003", "BAD", Usage::Commercial, DAY0_MS, DAY0_MS + YEAR_MS, false)).unwrap();
    reg.assign(assign("1069000000004", "P2", Usage::Commercial, DAY0_MS, DAY0_MS + YEAR_MS, true)).unwrap();
    reg.assign(assign("1069000000005", "P2", Usage::Commercial, DAY0_MS + 20 * DAY_MS, DAY0_MS + YEAR_MS, false))
        .unwrap();

    let v = f.check(SP, "13800138000", Usage::Commercial, None, Some(GOOD));
    assert!(v.allow, "{v:?}");
    assert_eq!(v.reason, None);
    assert_eq!(v.assignment, Some(1));

    assert_eq!(f.reason("1069099999999", "13800138000", Usage::Commercial, None, None), Some(Reason::UnknownSubPort));
    assert_eq!(f.reason("1069000000005", "13800138000", Usage::Commercial, None, None), Some(Reason::NoAssignment));
    assert_eq!(f.reason(SP, "13800138000", Usage::Commercial, Some(DAY0_MS - 1), None), Some(Reason::NoAssignment));
    assert_eq!(f.reason("1069000000002", "13800138000", Usage::Commercial, None, None), Some(Reason::UsageMismatch));
    assert_eq!(f.reason(SP, "13800138000", Usage::Service, None, None), Some(Reason::UsageMismatch));
    assert_eq!(f.reason("1069000000003", "13800138000", Usage::Commercial, None, None), Some(Reason::Blacklisted));
    assert_eq!(f.reason("1069000000004", "13800138000", Usage::Commercial, None, None), Some(Reason::NoConsent));
    assert_eq!(
        f.reason(SP, "13800138000", Usage::Commercial, None, Some("会员日满100减20。拒收请回复R")),
        Some(Reason::BadSignature)
    );
    assert_eq!(
        f.reason(SP, "13800138000", Usage::Commercial, None, Some("【某某】会员日。拒收请回复R")),
        Some(Reason::BadSignature)
    );
    assert_eq!(
        f.reason(SP, "13800138000", Usage::Commercial, None, Some("【P1】会员日满100减20")),
        Some(Reason::MissingRejectInstruction)
    );

    assert_eq!(f.mo(SP, "13800138000", f.clock.now_ms(), "R"), 1);
    let v = f.check(SP, "13800138000", Usage::Commercial, None, Some(GOOD));
    assert_eq!(v.reason, Some(Reason::Rejected));
    assert_eq!(v.since_ms, Some(f.clock.now_ms()));
    assert!(!v.allow);
    // Another number and another sub-port are untouched.
    assert!(f.check(SP, "13800138001", Usage::Commercial, None, None).allow);
    assert!(f.check("1069000000005", "13800138000", Usage::Commercial, Some(DAY0_MS + 30 * DAY_MS), None).allow);
}

#[test]
fn rejects_bind_only_commercial_messages() {
    let f = Fixture::standard();
    let reg = f.e().registry();
    reg.provider_put(provider("P2", false)).unwrap();
    reg.assign(assign("1069000000002", "P2", Usage::Service, DAY0_MS, DAY0_MS + YEAR_MS, false)).unwrap();
    reg.register_rejects(&[RejectInput {
        sub_port: "1069000000002".into(),
        number: n("13900139000"),
        at_ms: None,
        source: RejectSource::Api,
        text: "complaint #7".into(),
        assignment: None,
    }])
    .unwrap();
    assert!(f.check("1069000000002", "13900139000", Usage::Service, None, Some("您的验证码是1234")).allow);
}

#[test]
fn consent_grant_withdraw_and_its_past() {
    let f = Fixture::standard();
    let reg = f.e().registry();
    reg.provider_put(provider("P2", false)).unwrap();
    let sp = "1069000000004";
    reg.assign(assign(sp, "P2", Usage::Commercial, DAY0_MS, DAY0_MS + YEAR_MS, true)).unwrap();
    let t0 = f.clock.now_ms();
    let err = reg.consent(SP, n("13800138000"), true, "form 1", None).unwrap_err();
    assert!(err.to_string().contains("does not require consent"), "{err}");
    reg.consent(sp, n("13800138000"), true, "signed form #1", Some(t0 - DAY_MS)).unwrap();
    assert!(f.check(sp, "13800138000", Usage::Commercial, None, None).allow);
    assert_eq!(f.reason(sp, "13800138000", Usage::Commercial, Some(t0 - 2 * DAY_MS), None), Some(Reason::NoConsent));
    f.clock.advance_ms(1000);
    reg.consent(sp, n("13800138000"), false, "call centre ticket 9", None).unwrap();
    assert_eq!(f.reason(sp, "13800138000", Usage::Commercial, None, None), Some(Reason::NoConsent));
    assert!(f.check(sp, "13800138000", Usage::Commercial, Some(t0), None).allow);
    let err = reg.consent(sp, n("13800138000"), true, " ", None).unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "evidence", .. }), "{err}");
}

#[test]
fn blacklisting_applies_from_its_time_and_past_checks_see_the_old_ledger() {
    let f = Fixture::standard();
    let reg = f.e().registry();
    let before = f.clock.now_ms();
    f.clock.advance_ms(DAY_MS);
    reg.provider_put(provider("P1", true)).unwrap();
    assert_eq!(f.reason(SP, "13800138000", Usage::Commercial, None, None), Some(Reason::Blacklisted));
    // The hot path's copy of the provider's flags follows the change.
    assert_eq!(reg.decide(SP, n("13800138000"), Usage::Commercial, None).unwrap().reason, Some(Reason::Blacklisted));
    assert!(f.check(SP, "13800138000", Usage::Commercial, Some(before), None).allow);
    assert_eq!(reg.provider("P1").unwrap().len(), 2);
    let kinds: Vec<String> = reg.history().unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["provider", "assign", "provider"]);
    f.clock.advance_ms(DAY_MS);
    reg.provider_put(provider("P1", false)).unwrap();
    assert!(reg.decide(SP, n("13800138000"), Usage::Commercial, None).unwrap().allow);
}

#[test]
fn sub_ports_of_every_length_are_told_apart_on_the_hot_path() {
    // `0123` and `123` differ; 20-digit sub-ports above 2^64 are not in the hot index and must
    // still be answered (from the map), and one just below it is.
    let f = Fixture::new();
    let reg = f.e().registry();
    reg.provider_put(provider("P1", false)).unwrap();
    let (from, to) = (DAY0_MS, DAY0_MS + YEAR_MS);
    let cases = [
        ("123", Usage::Commercial),
        ("0123", Usage::Service),
        ("99999999999999999999", Usage::Commercial),
        ("99999999999999999998", Usage::Service),
        ("18446744073709551615", Usage::Service),
        ("1", Usage::Commercial),
    ];
    for (sp, u) in cases {
        reg.assign(assign(sp, "P1", u, from, to, false)).unwrap();
    }
    reg.register_rejects(&[RejectInput {
        sub_port: "99999999999999999999".into(),
        number: n("13900139000"),
        at_ms: None,
        source: RejectSource::Api,
        text: "R".into(),
        assignment: None,
    }])
    .unwrap();
    for (sp, u) in cases {
        let other = if u == Usage::Commercial { Usage::Service } else { Usage::Commercial };
        for v in [reg.decide(sp, n("13800138000"), u, None).unwrap(), f.check(sp, "13800138000", u, None, None)] {
            assert!(v.allow, "{sp} {u:?}: {v:?}");
        }
        let v = reg.decide(sp, n("13800138000"), other, None).unwrap();
        assert_eq!(v.reason, Some(Reason::UsageMismatch), "{sp}");
    }
    let v = reg.decide("99999999999999999999", n("13900139000"), Usage::Commercial, None).unwrap();
    assert_eq!(v.reason, Some(Reason::Rejected));
    for sp in ["00123", "12", "99999999999999999997", "0"] {
        let v = reg.decide(sp, n("13800138000"), Usage::Commercial, None).unwrap();
        assert_eq!(v.reason, Some(Reason::UnknownSubPort), "{sp}");
    }
}

#[test]
fn overlapping_assignment_is_refused_naming_the_conflict() {
    let f = Fixture::standard();
    let reg = f.e().registry();
    reg.provider_put(provider("P2", false)).unwrap();
    let err = reg.assign(assign(SP, "P2", Usage::Service, DAY0_MS + 100 * DAY_MS, DAY0_MS + 2 * YEAR_MS, false));
    let err = err.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("assignment 1") && msg.contains("P1") && msg.contains(SP), "{msg}");
    // Half-open terms: a term starting where the other ends is fine.
    let a = reg.assign(assign(SP, "P2", Usage::Service, DAY0_MS + YEAR_MS, DAY0_MS + 2 * YEAR_MS, false)).unwrap();
    assert_eq!(a.id, 2);
    let err = reg.assign(assign(SP, "NOPE", Usage::Service, 0, 1, false)).unwrap_err();
    assert!(matches!(err, Error::NotFound { what: "provider", .. }), "{err}");
    let err = reg.assign(assign("12ab", "P2", Usage::Service, 0, 1, false)).unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "sub_port", .. }), "{err}");
    let err = reg.assign(assign("1069000000009", "P2", Usage::Service, 5, 5, false)).unwrap_err();
    assert!(matches!(err, Error::Invalid { field: "to", .. }), "{err}");
}

#[test]
fn a_new_assignment_lifts_rejects_and_the_old_set_stays_listable() {
    let f = Fixture::standard();
    let reg = f.e().registry();
    f.mo(SP, "13800138000", f.clock.now_ms() - 1000, "R");
    f.mo(SP, "13800138001", f.clock.now_ms() - 500, " r ");
    assert_eq!(f.reason(SP, "13800138000", Usage::Commercial, None, None), Some(Reason::Rejected));
    let end = f.clock.now_ms() + 1000;
    let ended = reg.end(SP, end).unwrap();
    assert_eq!(ended.to_ms, end);
    reg.provider_put(provider("P2", false)).unwrap();
    let a2 = reg.assign(assign(SP, "P2", Usage::Commercial, end, DAY0_MS + YEAR_MS, false)).unwrap();
    f.clock.advance_ms(2000);
    let v = f.check(SP, "13800138000", Usage::Commercial, None, None);
    assert!(v.allow, "{v:?}");
    assert_eq!(v.assignment, Some(a2.id));
    // The old set is kept and listable, and still answers for its own time.
    let old = reg.rejects_of_sub_port(SP, Some(1)).unwrap();
    assert_eq!(old.iter().map(|r| r.number.as_str()).collect::<Vec<_>>(), ["13800138000", "13800138001"]);
    assert_eq!(old[0].source, RejectSource::Mo);
    assert_eq!(old[1].text, " r ");
    assert!(reg.rejects_of_sub_port(SP, None).unwrap().is_empty());
    assert_eq!(f.reason(SP, "13800138000", Usage::Commercial, Some(end - 1), None), Some(Reason::Rejected));
    let mine = reg.rejects_of_number(n("13800138000")).unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].0.assignment, mine[0].1), (1, false));
    let shown = reg.show(SP).unwrap();
    assert_eq!(shown.current.unwrap().id, a2.id);
    assert_eq!(shown.assignments.len(), 2);
    assert_eq!(shown.history.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["assign", "end", "assign"]);
}

#[test]
fn at_in_the_past_answers_as_of_that_instant() {
    let f = Fixture::standard();
    let t = f.clock.now_ms() - 5 * DAY_MS;
    f.mo(SP, "13800138000", t, "R");
    assert_eq!(f.reason(SP, "13800138000", Usage::Commercial, Some(t - 1), None), None);
    let v = f.check(SP, "13800138000", Usage::Commercial, Some(t), None);
    assert_eq!((v.reason, v.since_ms), (Some(Reason::Rejected), Some(t)));
    // A repeated "R" later keeps the first time; an MO dated ahead of the clock binds from now.
    assert_eq!(f.mo(SP, "13800138000", f.clock.now_ms(), "R"), 0);
    assert_eq!(f.check(SP, "13800138000", Usage::Commercial, None, None).since_ms, Some(t));
    let ahead = f.clock.now_ms() + 30 * 60 * 1000;
    assert_eq!(f.mo(SP, "13800138009", ahead, "R"), 1);
    assert_eq!(f.check(SP, "13800138009", Usage::Commercial, None, None).since_ms, Some(f.clock.now_ms()));
}

#[test]
fn mo_detection_registers_only_keywords_under_an_assignment_and_logs_everything() {
    let f = Fixture::standard();
    let now = f.clock.now_ms();
    assert_eq!(f.mo(SP, "13800138000", now, "好的"), 0);
    assert_eq!(f.mo(SP, "13800138000", now, "Ｒ"), 1);
    assert_eq!(f.mo("1069077777777", "13800138002", now, "R"), 0); // no assignment: logged only
    assert_eq!(f.mo(SP, "13800138003", DAY0_MS - DAY_MS, "R"), 0); // before the term
    let logged = f.e().log().read_number(n("13800138002"), 0, i64::MAX).unwrap().count();
    assert_eq!(logged, 1);
    assert_eq!(f.e().registry().stats().rejects, 1);
    // A bad record in the batch: nothing registered, nothing logged.
    let good = Record {
        dir: Direction::Mo,
        sub_port: SubPort::parse(SP).unwrap(),
        peer: n("13800138004"),
        ts_ms: now,
        usage: None,
        text: "R".into(),
    };
    let bad = Record { usage: Some(Usage::Commercial), ..good.clone() };
    assert!(f.e().ingest(vec![good, bad]).is_err());
    assert!(f.check(SP, "13800138004", Usage::Commercial, None, None).allow);
}

#[test]
fn ledger_and_rejects_survive_a_reopen() {
    let mut f = Fixture::standard();
    f.e().registry().provider_put(provider("P2", false)).unwrap();
    f.e()
        .registry()
        .assign(assign("1069000000004", "P2", Usage::Commercial, DAY0_MS, DAY0_MS + YEAR_MS, true))
        .unwrap();
    f.e().registry().consent("1069000000004", n("13800138000"), true, "form", None).unwrap();
    for i in 0..300 {
        f.mo(SP, &format!("138{:08}", i * 37), f.clock.now_ms(), "R");
    }
    let before = f.e().registry().stats();
    let listed = f.e().registry().rejects_of_sub_port(SP, None).unwrap();
    f.reopen();
    let reg = f.e().registry();
    assert_eq!(reg.stats().rejects, before.rejects);
    assert_eq!(reg.stats().assignments, 2);
    assert_eq!(reg.rejects_of_sub_port(SP, None).unwrap(), listed);
    for i in 0..300 {
        assert_eq!(f.reason(SP, &format!("138{:08}", i * 37), Usage::Commercial, None, None), Some(Reason::Rejected));
    }
    assert!(f.check(SP, "13800000001", Usage::Commercial, None, None).allow);
    assert!(f.check("1069000000004", "13800138000", Usage::Commercial, None, None).allow);
    assert_eq!(f.reason("1069000000004", "13800138001", Usage::Commercial, None, None), Some(Reason::NoConsent));
    // Ids continue after a reopen.
    f.e().registry().provider_put(provider("P3", false)).unwrap();
    let a = f.e().registry().assign(assign("1069000000006", "P3", Usage::Public, 0, 1, false)).unwrap();
    assert_eq!(a.id, 3);
}

#[test]
fn import_is_all_or_nothing_and_export_round_trips() {
    let f = Fixture::standard();
    let reg = f.e().registry();
    let bad =
        "number,at,source,text\n13800138000,2026-05-02T10:00:00+08:00,web,opt-out\n12345,,,\n13800138002,yesterday,,\n";
    let err = reg.import_rejects(SP, None, bad.as_bytes(), RejectFormat::Csv).unwrap_err();
    match &err {
        Error::BadRows { rows } => {
            assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [3, 4], "{rows:?}");
            assert!(rows[0].reason.contains("peer") || rows[0].reason.contains("number"), "{rows:?}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(reg.stats().rejects, 0);
    let good = "{\"number\":\"+8613800138000\",\"at\":\"2026-05-02T10:00:00+08:00\",\"text\":\"opt-out\"}\n\n{\"number\":13800138001}\n";
    let rep = reg.import_rejects(SP, None, good.as_bytes(), RejectFormat::JsonLines).unwrap();
    assert_eq!((rep.rows, rep.registered, rep.already), (2, 2, 0));
    let rep = reg.import_rejects(SP, None, good.as_bytes(), RejectFormat::JsonLines).unwrap();
    assert_eq!((rep.registered, rep.already), (0, 2));
    let bad_json = "{\"number\":\"13800138000\"}\n{\"numbr\":1}\n";
    let err = reg.import_rejects(SP, None, bad_json.as_bytes(), RejectFormat::JsonLines).unwrap_err();
    assert!(matches!(&err, Error::BadRows { rows } if rows[0].line == 2), "{err}");

    let mut csv = Vec::new();
    assert_eq!(reg.export_rejects(SP, None, RejectFormat::Csv, &mut csv).unwrap(), 2);
    reg.provider_put(provider("P2", false)).unwrap();
    reg.assign(assign("1069000000002", "P2", Usage::Commercial, DAY0_MS, DAY0_MS + YEAR_MS, false)).unwrap();
    let rep = reg.import_rejects("1069000000002", None, &csv[..], RejectFormat::Csv).unwrap();
    assert_eq!(rep.registered, 2);
    let a: Vec<_> =
        reg.rejects_of_sub_port(SP, None).unwrap().into_iter().map(|r| (r.number, r.at_ms, r.text)).collect();
    let b: Vec<_> = reg
        .rejects_of_sub_port("1069000000002", None)
        .unwrap()
        .into_iter()
        .map(|r| (r.number, r.at_ms, r.text))
        .collect();
    assert_eq!(a, b);
    assert_eq!(a[0].1, common::DAY0_MS + DAY_MS + 10 * 3_600_000);
}

#[test]
fn inspection_reports_unassigned_traffic_ended_terms_and_bad_content() {
    let f = Fixture::standard();
    let reg = f.e().registry();
    reg.provider_put(provider("P2", false)).unwrap();
    let sp2 = "1069000000002";
    reg.assign(assign(sp2, "P2", Usage::Commercial, DAY0_MS, DAY0_MS + 2 * DAY_MS, false)).unwrap();
    let mt = |sp: &str, ts_ms: i64, text: &str| Record {
        dir: Direction::Mt,
        sub_port: SubPort::parse(sp).unwrap(),
        peer: n("13800138000"),
        ts_ms,
        usage: Some(Usage::Commercial),
        text: text.into(),
    };
    let t = DAY0_MS + 5 * DAY_MS;
    f.e()
        .ingest(vec![
            mt(SP, t, GOOD),
            mt(SP, t + 1, "【P1】满100减20"),
            mt(SP, t + 2, "满100减20。拒收请回复R"),
            mt(sp2, t, "【P2】x。拒收请回复R"),
            mt("1069055555555", t, "【Z】x。拒收请回复R"),
        ])
        .unwrap();
    let found = f.e().inspect(DAY0_MS, f.clock.now_ms() + 1).unwrap();
    let kinds: Vec<(&str, FindingKind, u64)> = found.iter().map(|x| (x.sub_port.as_str(), x.kind, x.count)).collect();
    assert_eq!(
        kinds,
        [
            ("1069000000002", FindingKind::TermEnded, 1),
            ("1069012345601", FindingKind::BadSignature, 1),
            ("1069012345601", FindingKind::MissingRejectInstruction, 1),
            ("1069055555555", FindingKind::UnknownSubPort, 1),
        ]
    );
    assert_eq!(found[1].example, "满100减20。拒收请回复R");
}

/// Run by `kill9_after_an_acknowledged_mo_r_still_denies` in a child process.
#[test]
#[ignore = "child process of kill9_after_an_acknowledged_mo_r_still_denies"]
fn child_ingests_mo_r_then_waits() {
    let Ok(dir) = std::env::var("PORTLOG_TEST_CHILD_DIR") else { return };
    let clock = Arc::new(ManualClock::new(DAY0_MS + 10 * DAY_MS));
    let e = Engine::open(&dir, EngineConfig::default(), clock.clone()).unwrap();
    e.registry().provider_put(provider("P1", false)).unwrap();
    e.registry().assign(assign(SP, "P1", Usage::Commercial, DAY0_MS, DAY0_MS + YEAR_MS, false)).unwrap();
    let r = Record {
        dir: Direction::Mo,
        sub_port: SubPort::parse(SP).unwrap(),
        peer: n("13800138000"),
        ts_ms: clock.now_ms(),
        usage: None,
        text: "R".into(),
    };
    let out = e.ingest(vec![r]).unwrap();
    assert_eq!(out.rejects_registered, 1);
    println!("ACKED");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(600));
}

#[test]
fn kill9_after_an_acknowledged_mo_r_still_denies() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_ingests_mo_r_then_waits", "--ignored", "--nocapture", "--test-threads=1"])
        .env("PORTLOG_TEST_CHILD_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let acked = BufReader::new(out).lines().map_while(Result::ok).any(|l| l.contains("ACKED"));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(acked, "the child never acknowledged its MO");
    let clock = Arc::new(ManualClock::new(DAY0_MS + 10 * DAY_MS + 1));
    let e = Engine::open(dir.path(), EngineConfig::default(), clock).unwrap();
    let v = e.registry().check(SP, n("13800138000"), Usage::Commercial, None, None).unwrap();
    assert_eq!(v.reason, Some(Reason::Rejected), "{v:?}");
    let logged = e.log().read_number(n("13800138000"), 0, i64::MAX).unwrap().count();
    assert_eq!(logged, 1);
}
