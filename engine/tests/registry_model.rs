//! Model-based test of the registry: random sequences of ledger changes, MOs, API rejects,
//! consents, clock moves, reopens and checks, run against the engine and against a plain
//! reference model written from the rules (design.md, cli.md); any disagreement fails.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::DAY0_MS;
use portlog_engine::registry::{AssignInput, ProviderInput, RejectInput, RejectSource};
use portlog_engine::{
    Clock, Direction, Engine, EngineConfig, ManualClock, PhoneNumber, Question, Reason, Record, SubPort, Usage, Verdict,
};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

const H: i64 = 3_600_000;
const START: i64 = DAY0_MS + 240 * H;

#[derive(Debug, Clone)]
enum Op {
    Provider { p: u8, black: bool, white: bool },
    Assign { sp: u8, p: u8, usage: u8, from_h: i64, len_h: i64, consent: bool },
    End { sp: u8, at_h: i64 },
    Mo { sp: u8, num: u8, back_h: i64, keyword: bool },
    ApiReject { sp: u8, num: u8 },
    Consent { sp: u8, num: u8, granted: bool },
    Advance { h: i64 },
    Check { sp: u8, num: u8, usage: u8, at_h: Option<i64>, text: u8 },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u8..3, any::<bool>(), any::<bool>()).prop_map(|(p, black, white)| Op::Provider { p, black, white }),
        3 => (0u8..3, 0u8..3, 0u8..3, 0i64..400, 1i64..300, any::<bool>())
            .prop_map(|(sp, p, usage, from_h, len_h, consent)| Op::Assign { sp, p, usage, from_h, len_h, consent }),
        1 => (0u8..3, 0i64..400).prop_map(|(sp, at_h)| Op::End { sp, at_h }),
        3 => (0u8..3, 0u8..5, prop_oneof![0i64..6, 0i64..200], prop::bool::weighted(0.8))
            .prop_map(|(sp, num, back_h, keyword)| Op::Mo { sp, num, back_h, keyword }),
        1 => (0u8..3, 0u8..5).prop_map(|(sp, num)| Op::ApiReject { sp, num }),
        1 => (0u8..3, 0u8..5, any::<bool>()).prop_map(|(sp, num, granted)| Op::Consent { sp, num, granted }),
        1 => (0i64..30).prop_map(|h| Op::Advance { h }),
        6 => (0u8..4, 0u8..5, 0u8..3, prop::option::of(prop_oneof![0i64..450, (-6i64..0)]), 0u8..4)
            .prop_map(|(sp, num, usage, at_h, text)| Op::Check { sp, num, usage, at_h, text }),
        1 => Just(Op::Reopen),
    ]
}

fn sp_name(sp: u8) -> String {
    format!("106900000000{sp}")
}
fn num(n: u8) -> PhoneNumber {
    PhoneNumber::from_u64(13_800_138_000 + u64::from(n)).unwrap()
}
fn usage(u: u8) -> Usage {
    [Usage::Commercial, Usage::Service, Usage::Public][u as usize % 3]
}
fn text(t: u8, p: u8) -> Option<String> {
    match t {
        0 => None,
        1 => Some(format!("【S{p}】会员日满100减20。拒收请回复R")),
        2 => Some("【别人】会员日。拒收请回复R".into()),
        _ => Some(format!("【S{p}】会员日满100减20")),
    }
}

#[derive(Debug, Clone)]
struct PVer {
    changed: i64,
    black: bool,
    white: bool,
}

#[derive(Debug, Clone)]
struct MAssign {
    id: u32,
    sp: u8,
    p: u8,
    usage: Usage,
    from: i64,
    to: i64,
    consent: bool,
}

/// The reference model: plain vectors and maps, the rules written out directly.
#[derive(Debug, Default)]
struct Model {
    providers: HashMap<u8, Vec<PVer>>,
    assigns: Vec<MAssign>,
    rejects: HashMap<(u32, u8), i64>,
    consents: HashMap<(u32, u8), Vec<(i64, bool)>>,
}

impl Model {
    fn in_force(&self, sp: u8, at: i64) -> Option<&MAssign> {
        self.assigns.iter().rev().find(|a| a.sp == sp && a.from <= at && at < a.to)
    }

    fn check(&self, sp: u8, n: u8, u: Usage, at: i64, t: Option<&str>) -> (Option<Reason>, Option<i64>) {
        if !self.assigns.iter().any(|a| a.sp == sp) {
            return (Some(Reason::UnknownSubPort), None);
        }
        let Some(a) = self.in_force(sp, at) else { return (Some(Reason::NoAssignment), None) };
        let vers = &self.providers[&a.p];
        let v = vers.iter().rev().find(|v| v.changed <= at).unwrap_or(&vers[0]);
        if v.black {
            return (Some(Reason::Blacklisted), None);
        }
        if u != a.usage {
            return (Some(Reason::UsageMismatch), None);
        }
        if u != Usage::Commercial {
            return (None, None);
        }
        if !v.white {
            if let Some(&since) = self.rejects.get(&(a.id, n)) {
                if since <= at {
                    return (Some(Reason::Rejected), Some(since));
                }
            }
            if a.consent {
                let ok = self
                    .consents
                    .get(&(a.id, n))
                    .and_then(|ev| ev.iter().rev().find(|(t, _)| *t <= at))
                    .is_some_and(|(_, g)| *g);
                if !ok {
                    return (Some(Reason::NoConsent), None);
                }
            }
        }
        match t {
            Some(t) if !t.starts_with(&format!("【S{}】", a.p)) => (Some(Reason::BadSignature), None),
            Some(t) if !t.ends_with("拒收请回复R") => (Some(Reason::MissingRejectInstruction), None),
            _ => (None, None),
        }
    }
}

struct Sut {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    engine: Option<Engine>,
}

impl Sut {
    fn e(&self) -> &Engine {
        self.engine.as_ref().unwrap()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let engine = Some(Engine::open(dir.path(), EngineConfig::default(), clock.clone()).unwrap());
    let mut sut = Sut { dir, clock, engine };
    let mut m = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        let now = sut.clock.now_ms();
        let reg = sut.e().registry();
        match op {
            Op::Provider { p, black, white } => {
                let res = reg.provider_put(ProviderInput {
                    id: format!("P{p}"),
                    name: format!("Name{p}"),
                    signatures: vec![format!("S{p}")],
                    blacklisted: black,
                    whitelisted: white,
                });
                prop_assert_eq!(res.is_ok(), !(black && white), "step {}: {:?}", step, res);
                if res.is_ok() {
                    let vers = m.providers.entry(p).or_default();
                    let same = vers.last().is_some_and(|v| v.black == black && v.white == white);
                    if !same {
                        if vers.last().is_some_and(|v| v.changed >= now) {
                            vers.pop();
                        }
                        vers.push(PVer { changed: now, black, white });
                    }
                }
            }
            Op::Assign { sp, p, usage: u, from_h, len_h, consent } => {
                let (from, to) = (DAY0_MS + from_h * H, DAY0_MS + (from_h + len_h) * H);
                let res = reg.assign(AssignInput {
                    sub_port: sp_name(sp),
                    provider: format!("P{p}"),
                    usage: usage(u),
                    from_ms: from,
                    to_ms: to,
                    consent_required: consent,
                });
                let ok =
                    m.providers.contains_key(&p) && !m.assigns.iter().any(|a| a.sp == sp && from < a.to && a.from < to);
                prop_assert_eq!(res.is_ok(), ok, "step {}: {:?}", step, res);
                if let Ok(a) = res {
                    prop_assert_eq!(a.id as usize, m.assigns.len() + 1);
                    m.assigns.push(MAssign { id: a.id, sp, p, usage: usage(u), from, to, consent });
                }
            }
            Op::End { sp, at_h } => {
                let at = DAY0_MS + at_h * H;
                let res = reg.end(&sp_name(sp), at);
                let target = m.in_force(sp, at).map(|a| a.id).filter(|&id| m.assigns[id as usize - 1].from < at);
                prop_assert_eq!(res.is_ok(), target.is_some(), "step {}: {:?}", step, res);
                if let Some(id) = target {
                    m.assigns[id as usize - 1].to = at;
                }
            }
            Op::Mo { sp, num: n, back_h, keyword } => {
                let ts = now - back_h * H;
                let rec = Record {
                    dir: Direction::Mo,
                    sub_port: SubPort::parse(&sp_name(sp)).unwrap(),
                    peer: num(n),
                    ts_ms: ts,
                    usage: None,
                    text: if keyword { " r".into() } else { "好的".into() },
                };
                let out = sut.e().ingest(vec![rec]).unwrap();
                let mut expect = 0;
                if keyword {
                    if let Some(a) = m.in_force(sp, ts) {
                        let id = a.id;
                        if let std::collections::hash_map::Entry::Vacant(e) = m.rejects.entry((id, n)) {
                            e.insert(ts.min(now));
                            expect = 1;
                        }
                    }
                }
                prop_assert_eq!(out.rejects_registered, expect, "step {}", step);
            }
            Op::ApiReject { sp, num: n } => {
                let res = reg.register_rejects(&[RejectInput {
                    sub_port: sp_name(sp),
                    number: num(n),
                    at_ms: None,
                    source: RejectSource::Api,
                    text: "complaint".into(),
                    assignment: None,
                }]);
                let target = m.in_force(sp, now).map(|a| a.id);
                prop_assert_eq!(res.is_ok(), target.is_some(), "step {}: {:?}", step, res);
                if let Some(id) = target {
                    let fresh = !m.rejects.contains_key(&(id, n));
                    m.rejects.entry((id, n)).or_insert(now);
                    prop_assert_eq!(res.unwrap()[0].registered, fresh);
                }
            }
            Op::Consent { sp, num: n, granted } => {
                let res = reg.consent(&sp_name(sp), num(n), granted, "evidence", None);
                let target = m.in_force(sp, now).filter(|a| a.consent).map(|a| a.id);
                prop_assert_eq!(res.is_ok(), target.is_some(), "step {}: {:?}", step, res);
                if let Some(id) = target {
                    let ev = m.consents.entry((id, n)).or_default();
                    let pos = ev.partition_point(|&(t, _)| t <= now);
                    ev.insert(pos, (now, granted));
                }
            }
            Op::Advance { h } => sut.clock.advance_ms(h * H + 1),
            Op::Check { sp, num: n, usage: u, at_h, text: t } => {
                // Negative hours: relative to now (near recent rejects and consents).
                let at = at_h.map(|h| if h < 0 { now + h * H } else { DAY0_MS + h * H });
                let p = m.in_force(sp, at.unwrap_or(now)).map_or(0, |a| a.p);
                let t = text(t, p);
                let v: Verdict = reg.check(&sp_name(sp), num(n), usage(u), at, t.as_deref()).unwrap();
                let (reason, since) = m.check(sp, n, usage(u), at.unwrap_or(now), t.as_deref());
                prop_assert_eq!((v.reason, v.since_ms, v.allow), (reason, since, reason.is_none()), "step {}", step);
                if at.is_none() {
                    // The gateway's paths, from memory alone: the same answer without the since.
                    let d = reg.decide(&sp_name(sp), num(n), usage(u), t.as_deref()).unwrap();
                    prop_assert_eq!((d.reason, d.since_ms, d.allow), (reason, None, reason.is_none()), "step {}", step);
                    let name = sp_name(sp);
                    let q = Question { sub_port: &name, number: num(n), usage: usage(u), text: t.as_deref() };
                    let mut out = Vec::new();
                    reg.decide_batch(&[q], &mut out);
                    let b = out.pop().unwrap().unwrap();
                    prop_assert_eq!((b.reason, b.allow), (reason, reason.is_none()), "step {}", step);
                }
            }
            Op::Reopen => {
                sut.engine.take().unwrap().close();
                sut.engine = Some(Engine::open(sut.dir.path(), EngineConfig::default(), sut.clock.clone()).unwrap());
            }
        }
    }
    // Finally every pair agrees, now.
    for sp in 0..3 {
        for n in 0..5 {
            let v = sut.e().registry().check(&sp_name(sp), num(n), Usage::Commercial, None, None).unwrap();
            let (reason, since) = m.check(sp, n, Usage::Commercial, sut.clock.now_ms(), None);
            prop_assert_eq!((v.reason, v.since_ms), (reason, since));
        }
    }
    // And one batch of every question (sub-ports, numbers, usages, with and without a text):
    // longer than the batch's look-ahead, so its prefetching pipeline runs in full.
    let now = sut.clock.now_ms();
    let names: Vec<String> = (0..4).map(sp_name).collect();
    let mut asked = Vec::new();
    for sp in 0..4u8 {
        let p = m.in_force(sp, now).map_or(0, |a| a.p);
        for n in 0..5u8 {
            for u in 0..3u8 {
                for t in 0..4u8 {
                    asked.push((sp, n, u, text(t, p)));
                }
            }
        }
    }
    let questions: Vec<Question<'_>> = asked
        .iter()
        .map(|(sp, n, u, t)| Question {
            sub_port: &names[*sp as usize],
            number: num(*n),
            usage: usage(*u),
            text: t.as_deref(),
        })
        .collect();
    let mut out = Vec::new();
    sut.e().registry().decide_batch(&questions, &mut out);
    prop_assert_eq!(out.len(), asked.len());
    for ((sp, n, u, t), v) in asked.iter().zip(out) {
        let v = v.unwrap();
        let (reason, _) = m.check(*sp, *n, usage(*u), now, t.as_deref());
        prop_assert_eq!(
            (v.reason, v.allow),
            (reason, reason.is_none()),
            "batch: sp {} n {} usage {} text {:?}",
            sp,
            n,
            u,
            t
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PORTLOG_PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]
    #[test]
    fn registry_agrees_with_the_reference_model(ops in prop::collection::vec(op(), 1..60)) {
        // A prelude that makes most random operations meaningful: three providers, a commercial
        // sub-port and a consent-required one in force over the whole window.
        let mut all: Vec<Op> = (0..3).map(|p| Op::Provider { p, black: false, white: false }).collect();
        all.push(Op::Assign { sp: 0, p: 0, usage: 0, from_h: 0, len_h: 400, consent: false });
        all.push(Op::Assign { sp: 1, p: 1, usage: 0, from_h: 0, len_h: 400, consent: true });
        all.extend(ops);
        run(all)?;
    }
}

#[test]
fn a_reject_does_not_bind_before_its_time() {
    let mut all: Vec<Op> = (0..3).map(|p| Op::Provider { p, black: false, white: false }).collect();
    all.push(Op::Assign { sp: 0, p: 0, usage: 0, from_h: 0, len_h: 400, consent: false });
    all.push(Op::Mo { sp: 0, num: 1, back_h: 0, keyword: true });
    all.push(Op::Check { sp: 0, num: 1, usage: 0, at_h: Some(-1), text: 0 });
    all.push(Op::Check { sp: 0, num: 1, usage: 0, at_h: None, text: 0 });
    run(all).unwrap();
}
