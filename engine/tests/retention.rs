//! Retention: month boundaries under a simulated clock, whole-segment expiry, the pinning of
//! rejects and consent to their assignment's end, clock protections, dry runs and the history,
//! back-filled open segments, readers across an expiry, the schedule, and recovery of an
//! interrupted expiry. (The kill -9 test is tests/retention_crash.rs.)
#![allow(clippy::unwrap_used, missing_docs)]

use portlog_engine::registry::{AssignInput, AuditEntry, ProviderInput, RejectInput, RejectSource};
use portlog_engine::time::{add_months_ms, bucket_start_ms, parse_time_ms, rfc3339_utc8, DAY_MS, UTC8_OFFSET_MS};
use portlog_engine::{
    Direction, Engine, EngineConfig, Error, LogConfig, ManualClock, PhoneNumber, Reason, Record, RegistryConfig,
    RetentionConfig, RetentionRun, SubPort, Trigger, Usage,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const SPS: [&str; 3] = ["1069012345601", "1069012345602", "1069099887766"];

fn t(s: &str) -> i64 {
    parse_time_ms(s).unwrap()
}

/// Local midnight (UTC+8) of a `YYYY-MM-DD` day.
fn day(s: &str) -> i64 {
    t(&format!("{s}T00:00:00+08:00"))
}

fn cfg() -> EngineConfig {
    EngineConfig {
        log: LogConfig { shards: 2, ..LogConfig::default() },
        registry: RegistryConfig { sync: false, ..RegistryConfig::default() },
        retention: RetentionConfig { enabled: false, ..RetentionConfig::default() },
        ..EngineConfig::default()
    }
}

fn open(dir: &Path, clock: &Arc<ManualClock>, cfg: EngineConfig) -> Engine {
    Engine::open(dir, cfg, clock.clone()).unwrap()
}

fn mt(sp: &str, peer: u64, ts_ms: i64, text: &str) -> Record {
    Record {
        dir: Direction::Mt,
        sub_port: SubPort::parse(sp).unwrap(),
        peer: PhoneNumber::from_u64(peer).unwrap(),
        ts_ms,
        usage: Some(Usage::Commercial),
        text: text.into(),
    }
}

/// Three records per sub-port on each day: at midnight, noon and the day's last millisecond.
fn days_of_records(from: i64, days: i64) -> Vec<Record> {
    let mut v = Vec::new();
    for d in 0..days {
        let start = from + d * DAY_MS;
        for (i, sp) in SPS.iter().enumerate() {
            for (j, off) in [0, DAY_MS / 2, DAY_MS - 1].into_iter().enumerate() {
                let text = format!("【星河银行】{} 第{j}条。拒收请回复R", rfc3339_utc8(start + off));
                v.push(mt(sp, 13_800_000_000 + (d * 9 + i as i64 * 3 + j as i64) as u64, start + off, &text));
            }
        }
    }
    v
}

/// Records held, by local day start.
fn per_day(e: &Engine) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for s in 0..e.log().shard_count() {
        for r in e.log().scan_shard(s, i64::MIN, i64::MAX).unwrap() {
            let r = r.unwrap();
            *m.entry(bucket_start_ms(r.ts_ms, DAY_MS, UTC8_OFFSET_MS)).or_default() += 1;
        }
    }
    m
}

/// Shards that hold the test's sub-ports (one segment per day on each).
fn shards_used(e: &Engine) -> u64 {
    let mut v: Vec<u32> = SPS.iter().map(|sp| e.log().shard_of(&SubPort::parse(sp).unwrap())).collect();
    v.sort_unstable();
    v.dedup();
    v.len() as u64
}

/// When a day's segment becomes eligible: its last millisecond plus 5 months.
fn day_eligible(day_start: i64) -> i64 {
    add_months_ms(day_start + DAY_MS - 1, 5, UTC8_OFFSET_MS)
}

#[test]
fn month_boundaries_end_of_january_leap_february_and_31_day_months() {
    let dir = tempfile::tempdir().unwrap();
    let first = day("2027-08-25");
    let days = 225; // to 2028-04-06: end of January, leap February 2028, every 31-day month
    let clock = Arc::new(ManualClock::new(first + days * DAY_MS));
    let e = open(dir.path(), &clock, cfg());
    let all = days_of_records(first, days);
    e.ingest(all.clone()).unwrap();
    e.log().seal_all().unwrap();
    let per = 3 * SPS.len();
    assert_eq!(per_day(&e).len(), days as usize);

    // Every instant at which some day becomes eligible, and the millisecond before it; plus a
    // clock that jumps back ten days in the middle.
    let mut instants: Vec<i64> = (0..days).map(|d| day_eligible(first + d * DAY_MS)).collect();
    instants.dedup();
    let mut checkpoints: Vec<i64> = instants.iter().flat_map(|&x| [x - 1, x]).collect();
    checkpoints.insert(checkpoints.len() / 2, checkpoints[checkpoints.len() / 2] - 10 * DAY_MS);
    let mut high = i64::MIN;
    let mut held_before = all.len();
    for now in checkpoints {
        clock.set_ms(now);
        let report = e.retention_run(false).unwrap();
        high = high.max(now);
        let held = per_day(&e);
        for d in 0..days {
            let ds = first + d * DAY_MS;
            let gone = day_eligible(ds) <= high;
            let n = held.get(&ds).copied().unwrap_or(0);
            assert_eq!(
                n,
                if gone { 0 } else { per },
                "day {} at {} (eligible at {})",
                rfc3339_utc8(ds),
                rfc3339_utc8(now),
                rfc3339_utc8(day_eligible(ds))
            );
        }
        // The oldest surviving record is inside retention: its day is not eligible yet, so
        // nothing younger than 5 months was deleted, and it is at most a day past it.
        if let Some(&oldest_day) = held.keys().next() {
            let oldest = e.log().stats().oldest_ts_ms.unwrap();
            assert_eq!(bucket_start_ms(oldest, DAY_MS, UTC8_OFFSET_MS), oldest_day);
            assert!(day_eligible(oldest_day) > high);
            assert!(add_months_ms(oldest, 5, UTC8_OFFSET_MS) + DAY_MS > now);
            assert_eq!(report.oldest_record_ms, Some(oldest));
        }
        let held_now: usize = held.values().sum();
        assert_eq!(report.records_deleted as usize, held_before - held_now, "at {}", rfc3339_utc8(now));
        held_before = held_now;
    }
    assert!(per_day(&e).is_empty());
    e.close();
}

/// The month ends named in docs/architecture.md, one millisecond either side.
#[test]
fn named_month_ends() {
    let dir = tempfile::tempdir().unwrap();
    let days = [
        "2027-08-30",
        "2027-08-31",
        "2027-09-29",
        "2027-09-30",
        "2027-10-31",
        "2028-01-30",
        "2028-01-31",
        "2028-03-31",
    ];
    let clock = Arc::new(ManualClock::new(day("2028-04-01")));
    let e = open(dir.path(), &clock, cfg());
    for d in days {
        e.ingest(days_of_records(day(d), 1)).unwrap();
    }
    e.log().seal_all().unwrap();
    let held = |e: &Engine| -> Vec<String> {
        per_day(e).keys().map(|&d| rfc3339_utc8(d)[..10].to_string()).collect::<Vec<_>>()
    };
    // (clock, the days still held after a run at that instant)
    let steps: [(&str, &[&str]); 10] = [
        ("2028-01-30T23:59:59.999+08:00", &days[1..]), // 30 Aug + 5 months: the day's end
        ("2028-01-31T23:59:59.998+08:00", &days[1..]),
        ("2028-01-31T23:59:59.999+08:00", &days[2..]), // end of January
        ("2028-02-29T23:59:59.998+08:00", &days[2..]),
        ("2028-02-29T23:59:59.999+08:00", &days[3..]), // 29 Sep + 5 = 29 Feb 2028 (leap)
        ("2028-03-01T00:00:00+08:00", &days[4..]),     // 30 Sep + 5 = "30 Feb": 1 March 00:00
        ("2028-03-31T23:59:59.999+08:00", &days[5..]), // 31 Oct + 5 = 31 March
        ("2028-06-30T23:59:59.999+08:00", &days[6..]), // 30 Jan + 5 = 30 June
        ("2028-07-01T00:00:00+08:00", &days[7..]),     // 31 Jan + 5 = "31 June": 1 July 00:00
        ("2028-08-31T23:59:59.999+08:00", &[]),        // 31 Mar + 5 = 31 August
    ];
    for (now, want) in steps {
        clock.set_ms(t(now));
        e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(t(now)) }).unwrap();
        assert_eq!(held(&e), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "at {now}");
    }
    e.close();
}

fn provider(e: &Engine, id: &str) {
    e.registry()
        .provider_put(ProviderInput {
            id: id.into(),
            name: format!("{id}公司"),
            signatures: vec![id.into()],
            blacklisted: false,
            whitelisted: false,
        })
        .unwrap();
}

fn assign(e: &Engine, sp: &str, from_ms: i64, to_ms: i64, consent: bool) -> u32 {
    e.registry()
        .assign(AssignInput {
            sub_port: sp.into(),
            provider: "P1".into(),
            usage: Usage::Commercial,
            from_ms,
            to_ms,
            consent_required: consent,
        })
        .unwrap()
        .id
}

fn reject(e: &Engine, assignment: u32, sp: &str, number: &str, at_ms: i64) {
    let out = e
        .registry()
        .register_rejects(&[RejectInput {
            sub_port: sp.into(),
            number: PhoneNumber::parse(number).unwrap(),
            at_ms: Some(at_ms),
            source: RejectSource::Api,
            text: "R".into(),
            assignment: Some(assignment),
        }])
        .unwrap();
    assert!(out[0].registered);
}

fn months_before(now: i64, m: u32) -> i64 {
    // The instant m months before `now` (same day and time; these tests use mid-month days).
    let mut x = now - i64::from(m) * 31 * DAY_MS;
    while add_months_ms(x, m, UTC8_OFFSET_MS) < now {
        x += 3_600_000;
    }
    x
}

#[test]
fn rejects_are_pinned_to_their_assignment_until_five_months_after_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let now = t("2027-06-15T12:00:00+08:00");
    let clock = Arc::new(ManualClock::new(now));
    let mut e = open(dir.path(), &clock, cfg());
    provider(&e, "P1");
    let year_ago = months_before(now, 12);
    let ten_months_ago = months_before(now, 10);
    // A: ended 2 months ago; B: ended 6 months ago; C: in force (until 2099).
    let a = assign(&e, SPS[0], year_ago, months_before(now, 2), false);
    let b = assign(&e, SPS[1], year_ago, months_before(now, 6), false);
    let c = assign(&e, SPS[2], year_ago, t("2099-01-01T00:00:00+08:00"), false);
    for (id, sp) in [(a, SPS[0]), (b, SPS[1]), (c, SPS[2])] {
        reject(&e, id, sp, "13800138000", ten_months_ago);
        reject(&e, id, sp, "13900139000", ten_months_ago + DAY_MS);
    }
    let n = |s: &str| PhoneNumber::parse(s).unwrap();
    let was_rejected = |e: &Engine, sp: &str, at: i64| {
        e.registry().check(sp, n("13800138000"), Usage::Commercial, Some(at), None).unwrap().reason
            == Some(Reason::Rejected)
    };
    assert!(was_rejected(&e, SPS[1], ten_months_ago + 1));

    let dry = e.retention_run(true).unwrap();
    assert_eq!((dry.rejects_purged, dry.reject_assignments.clone()), (2, vec![b]));
    assert_eq!(e.registry().rejects_of_assignment(b).unwrap().len(), 2, "a dry run deletes nothing");
    let r = e.retention_run(false).unwrap();
    assert_eq!((r.rejects_purged, r.reject_assignments), (2, vec![b]));

    // A reject 10 months old on an assignment that ended 2 months ago is kept; B's are gone,
    // from the store and from memory; C's (in force) stay.
    let kept = |e: &Engine, id: u32| e.registry().rejects_of_assignment(id).unwrap().len();
    assert_eq!((kept(&e, a), kept(&e, b), kept(&e, c)), (2, 0, 2));
    assert_eq!(e.registry().reject_count(b), 0);
    assert_eq!(e.registry().reject_count(a), 2);
    assert!(!was_rejected(&e, SPS[1], ten_months_ago + 1), "B's reject is no longer kept");
    assert!(was_rejected(&e, SPS[0], ten_months_ago + 1));
    let listed: Vec<u32> =
        e.registry().rejects_of_number(n("13800138000")).unwrap().iter().map(|(r, _)| r.assignment).collect();
    assert_eq!(listed.len(), 2);
    assert!(!listed.contains(&b));
    // The ledger keeps B itself (history is never purged by default).
    assert_eq!(e.registry().assignment(b).unwrap().id, b);

    // After a restart, memory is rebuilt from the store: the same.
    e.close();
    e = open(dir.path(), &clock, cfg());
    assert_eq!((kept(&e, a), kept(&e, b), kept(&e, c)), (2, 0, 2));
    assert_eq!(e.registry().reject_count(b), 0);

    // A's end + 5 months: kept one millisecond before, purged at it.
    let a_end = e.registry().assignment(a).unwrap().to_ms;
    let a_due = add_months_ms(a_end, 5, UTC8_OFFSET_MS);
    let mut at = now;
    while at < a_due - 1 {
        at = (at + 2 * DAY_MS).min(a_due - 1);
        clock.set_ms(at);
        e.retention_run(false).unwrap();
    }
    assert_eq!(kept(&e, a), 2);
    clock.set_ms(a_due);
    assert_eq!(e.retention_run(false).unwrap().reject_assignments, vec![a]);
    assert_eq!(kept(&e, a), 0);

    // An assignment in force is never purged, however old its rejects: three years on.
    for _ in 0..(3 * 365 / 2) {
        clock.advance_ms(2 * DAY_MS);
        let r = e.retention_run(false).unwrap();
        assert_eq!(r.rejects_purged, 0);
    }
    assert_eq!(kept(&e, c), 2);
    assert_eq!(e.registry().reject_count(c), 2);
    let v = e.registry().check(SPS[2], n("13800138000"), Usage::Commercial, None, None).unwrap();
    assert_eq!(v.reason, Some(Reason::Rejected));
    e.close();
}

#[test]
fn consent_goes_five_months_after_the_later_of_withdrawal_and_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let start = t("2027-01-10T09:00:00+08:00");
    let clock = Arc::new(ManualClock::new(start));
    let e = open(dir.path(), &clock, cfg());
    provider(&e, "P1");
    assign(&e, SPS[0], start, t("2099-01-01T00:00:00+08:00"), true);
    let n = |s: &str| PhoneNumber::parse(s).unwrap();
    let sp = SPS[0];
    clock.set_ms(t("2027-02-01T09:00:00+08:00"));
    e.registry().consent(sp, n("13800000001"), true, "form 1", None).unwrap(); // never withdrawn
    e.registry().consent(sp, n("13800000002"), true, "form 2", None).unwrap();
    clock.set_ms(t("2027-03-01T09:00:00+08:00"));
    e.registry().consent(sp, n("13800000002"), false, "call 2", None).unwrap(); // withdrawn before the end
    clock.set_ms(t("2027-05-20T09:00:00+08:00"));
    e.registry().consent(sp, n("13800000003"), true, "form 3", None).unwrap();
    clock.set_ms(t("2027-06-10T09:00:00+08:00"));
    e.registry().consent(sp, n("13800000003"), false, "call 3", None).unwrap(); // withdrawn after the end below
                                                                                // The contract is ended retroactively on 1 May: number 3's withdrawal (10 June) is later.
    e.registry().end(sp, t("2027-05-01T00:00:00+08:00")).unwrap();
    let run_at = |s: &str| {
        clock.set_ms(t(s));
        e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(t(s)) }).unwrap()
    };
    let number_1_then = |e: &Engine| {
        let at = Some(t("2027-04-01T00:00:00+08:00"));
        e.registry().check(sp, n("13800000001"), Usage::Commercial, at, None).unwrap().reason
    };
    assert_eq!(number_1_then(&e), None, "number 1 had consent on 1 April");
    // However old the withdrawal, nothing goes before the assignment's end + 5 months.
    assert_eq!(run_at("2027-09-30T23:59:59.999+08:00").consents_purged, 0);
    // End + 5 months = 1 October 00:00: numbers 1 and 2 (3 records) go; number 3 stays.
    assert_eq!(run_at("2027-10-01T00:00:00+08:00").consents_purged, 3);
    assert_eq!(number_1_then(&e), Some(Reason::NoConsent), "number 1's consent record is gone");
    assert_eq!(run_at("2027-11-10T08:59:59.999+08:00").consents_purged, 0);
    // Number 3's withdrawal (10 June 09:00) + 5 months.
    assert_eq!(run_at("2027-11-10T09:00:00+08:00").consents_purged, 2);
    assert_eq!(run_at("2028-11-10T09:00:00+08:00").consents_purged, 0);
    e.close();
}

#[test]
fn a_clock_far_ahead_is_refused_until_confirmed_and_a_clock_going_back_deletes_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let first = day("2027-01-01");
    // The clock is right: 5 months and 10 days after the first day of data, and today's
    // traffic is coming in.
    let right = add_months_ms(first, 5, UTC8_OFFSET_MS) + 10 * DAY_MS;
    let clock = Arc::new(ManualClock::new(right));
    let e = open(dir.path(), &clock, cfg());
    let shards = shards_used(&e);
    e.ingest(days_of_records(first, 40)).unwrap();
    e.ingest(vec![mt(SPS[0], 13_800_138_000, right - 3_600_000, "【星河银行】今天。拒收请回复R")]).unwrap();
    e.log().seal_all().unwrap();
    let total: usize = per_day(&e).values().sum();

    // A year ahead: refused, nothing deleted, visible in the status and recorded.
    clock.set_ms(right + 365 * DAY_MS);
    let err = e.retention_run(false).unwrap_err();
    assert!(matches!(err, Error::ClockAhead { .. }), "{err}");
    assert!(err.to_string().contains("nothing was deleted"), "{err}");
    assert_eq!(per_day(&e).values().sum::<usize>(), total);
    assert!(e.retention_status().unwrap().clock_warning.is_some());
    let h = e.retention_history().unwrap();
    assert_eq!(h.len(), 1);
    assert!(h[0].refused.is_some() && !h[0].changed_anything());
    // A dry run still says what would go: everything.
    let dry = e.retention_run(true).unwrap();
    assert!(dry.refused.is_some());
    assert_eq!(dry.records_deleted as usize, total);
    assert_eq!(per_day(&e).values().sum::<usize>(), total);
    // A confirmation that has expired (the clock reads later) does not count.
    let stale = RetentionRun { dry_run: false, confirm_clock_until_ms: Some(right + 364 * DAY_MS) };
    assert!(matches!(e.retention_run_with(stale), Err(Error::ClockAhead { .. })));

    // Back to the right clock: the first ten days go.
    clock.set_ms(right);
    let r = e.retention_run(false).unwrap();
    assert_eq!((r.segments_deleted, r.records_deleted), (10 * shards, 10 * 9));
    let after = per_day(&e);
    assert_eq!(*after.keys().next().unwrap(), first + 10 * DAY_MS);
    // The clock jumps back a month: nothing more is deleted, and a warning says so.
    clock.set_ms(right - 30 * DAY_MS);
    let r = e.retention_run(false).unwrap();
    assert_eq!(r.segments_deleted, 0);
    assert!(r.warnings.iter().any(|w| w.contains("behind")), "{:?}", r.warnings);
    assert_eq!(per_day(&e), after);
    // 20 days ahead of the last run: refused; confirmed explicitly, acted on. (One millisecond
    // less: 31 January + 5 months is 1 July 00:00, and right + 20 days is exactly that.)
    let far = right + 20 * DAY_MS - 1;
    clock.set_ms(far);
    assert!(matches!(e.retention_run(false), Err(Error::ClockAhead { .. })));
    assert_eq!(per_day(&e), after);
    let r = e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(far + 1) }).unwrap();
    assert_eq!(r.records_deleted, 20 * 9);
    assert!(r.warnings.iter().any(|w| w.contains("confirmed")), "{:?}", r.warnings);
    assert_eq!(e.retention_status().unwrap().high_water_ms, Some(far));
    e.close();

    // The configuration's confirmation works the same way.
    let mut c = cfg();
    c.retention.future_clock_confirm_until = Some(rfc3339_utc8(far + 30 * DAY_MS));
    let e = open(dir.path(), &clock, c);
    clock.set_ms(far + 15 * DAY_MS);
    assert_eq!(e.retention_run(false).unwrap().records_deleted, 10 * 9);
    assert_eq!(per_day(&e).values().sum::<usize>(), 1, "today's record stays");
    e.close();
}

#[test]
fn a_dry_run_reports_what_a_real_run_then_deletes_and_real_runs_are_kept_as_history() {
    let dir = tempfile::tempdir().unwrap();
    let first = day("2027-03-01");
    let clock = Arc::new(ManualClock::new(first + 31 * DAY_MS));
    let mut e = open(dir.path(), &clock, cfg());
    e.ingest(days_of_records(first, 31)).unwrap();
    e.log().seal_all().unwrap();
    let bytes_before = e.log().stats().sealed_bytes;
    clock.set_ms(day_eligible(first + 9 * DAY_MS)); // the first ten days are eligible
    let s = e.retention_status().unwrap();
    assert_eq!(s.oldest_record_ms, Some(first));
    assert_eq!(s.oldest_segment_eligible_ms, Some(day_eligible(first)));
    assert_eq!(s.runs_recorded, 0);
    let mut dry = e.retention_run_with(RetentionRun { dry_run: true, confirm_clock_until_ms: Some(i64::MAX) }).unwrap();
    assert!(dry.dry_run && dry.seq == 0);
    assert_eq!(dry.segments_deleted, 10 * shards_used(&e));
    assert_eq!(dry.records_deleted, 10 * 9);
    assert!(dry.bytes_freed > 0 && dry.segments.iter().all(|s| s.bytes > 0 && s.records > 0 && !s.open));
    assert_eq!(dry.oldest_record_ms, Some(first + 10 * DAY_MS));
    assert_eq!(e.log().stats().sealed_bytes, bytes_before, "a dry run deletes nothing");
    assert!(e.retention_history().unwrap().is_empty(), "a dry run is not recorded");

    let mut real =
        e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(i64::MAX) }).unwrap();
    let recorded = real.clone();
    assert_eq!(real.seq, 1);
    assert_eq!(e.log().stats().sealed_bytes, bytes_before - real.bytes_freed);
    for r in [&mut dry, &mut real] {
        r.seq = 0;
        r.dry_run = false;
        r.duration_us = 0;
        r.warnings.clear();
        r.refused = None;
    }
    assert_eq!(dry, real);
    // Nothing left to do: an on-demand run is still recorded; a scheduled one would not be.
    let again = e.retention_run(false).unwrap();
    assert_eq!((again.seq, again.segments_deleted), (2, 0));
    e.close();
    e = open(dir.path(), &clock, cfg());
    let h = e.retention_history().unwrap();
    assert_eq!(h.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(h[0], recorded);
    assert_eq!(h[0].trigger, Trigger::OnDemand);
    let s = e.retention_status().unwrap();
    assert_eq!((s.runs_recorded, s.last_run.map(|r| r.seq)), (2, Some(2)));
    assert_eq!(s.oldest_record_ms, Some(first + 10 * DAY_MS));
    e.close();
}

#[test]
fn an_open_segment_of_an_eligible_day_is_sealed_then_deleted_and_younger_days_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let now = day("2027-09-20") + 3_600_000;
    let clock = Arc::new(ManualClock::new(now));
    let e = open(dir.path(), &clock, cfg());
    // A back-fill of a day 6 months old, and today's traffic: both in open segments.
    e.ingest(days_of_records(day("2027-03-10"), 1)).unwrap();
    e.ingest(days_of_records(day("2027-09-20"), 1).into_iter().filter(|r| r.ts_ms <= now).collect()).unwrap();
    assert_eq!(e.log().stats().sealed_segments, 0);
    let shards = shards_used(&e);
    let dry = e.retention_run(true).unwrap();
    assert_eq!(dry.open_segments_sealed, shards);
    assert!(dry.segments.iter().all(|s| s.open && s.bucket_start_ms == day("2027-03-10")));
    let r = e.retention_run(false).unwrap();
    assert_eq!((r.open_segments_sealed, r.segments_deleted, r.records_deleted), (shards, shards, 9));
    let st = e.log().stats();
    assert_eq!((st.sealed_segments, st.open_segments), (0, shards), "today's segments are untouched");
    assert_eq!(per_day(&e).keys().copied().collect::<Vec<_>>(), vec![day("2027-09-20")]);
    e.close();
}

#[test]
fn a_reader_holding_segments_across_an_expiry_reads_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let first = day("2027-01-01");
    let clock = Arc::new(ManualClock::new(first + 20 * DAY_MS));
    let e = open(dir.path(), &clock, cfg());
    let recs = days_of_records(first, 20);
    e.ingest(recs.clone()).unwrap();
    e.log().seal_all().unwrap();
    let sp = SubPort::parse(SPS[0]).unwrap();
    let mut reader = e.log().read_sub_port(&sp, i64::MIN, i64::MAX).unwrap();
    let first_rec = reader.next().unwrap().unwrap();
    clock.set_ms(day_eligible(first + 19 * DAY_MS));
    let r = e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(i64::MAX) }).unwrap();
    assert_eq!(r.records_deleted as usize, recs.len());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("log/shard-000"))
        .unwrap()
        .chain(std::fs::read_dir(dir.path().join("log/shard-001")).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The reader's segments were unlinked under it: their maps stay valid, every record comes.
    let mut got = vec![first_rec];
    got.extend(reader.map(|r| r.unwrap()));
    let mut want: Vec<Record> = recs.into_iter().filter(|r| r.sub_port == sp).collect();
    want.sort_by_key(|r| r.ts_ms);
    assert_eq!(got, want);
    // A new read sees nothing.
    assert_eq!(e.log().read_sub_port(&sp, i64::MIN, i64::MAX).unwrap().count(), 0);
    e.close();
}

#[test]
fn the_schedule_expires_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let first = day("2027-01-01");
    let start = day_eligible(first) - 1; // nothing eligible yet
    let clock = Arc::new(ManualClock::new(start));
    let mut c = cfg();
    c.retention.enabled = true;
    c.retention.interval_ms = 20;
    let e = open(dir.path(), &clock, c);
    // Today's traffic first: a scheduled run that saw only old records would (rightly) take
    // the clock for one far ahead of them.
    e.ingest(vec![mt(SPS[0], 13_800_138_000, start - 3_600_000, "【星河银行】今天。拒收请回复R")]).unwrap();
    e.ingest(days_of_records(first, 5)).unwrap();
    e.log().seal_all().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(per_day(&e).len(), 6, "nothing is eligible yet");
    clock.set_ms(day_eligible(first + 2 * DAY_MS)); // three days eligible; a two-day step
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while per_day(&e).len() != 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(per_day(&e).len(), 3);
    // Scheduled runs are recorded only when they did something.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let h = e.retention_history().unwrap();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!((h[0].trigger, h[0].records_deleted), (Trigger::Schedule, 3 * 9));
    // A clock far ahead: scheduled runs refuse, and the refusal is recorded once.
    clock.set_ms(first + 900 * DAY_MS);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let h = e.retention_history().unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    assert!(h[1].refused.is_some());
    assert_eq!(per_day(&e).len(), 3);
    e.close();
}

#[test]
fn an_interrupted_expiry_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = day("2027-01-01");
    let clock = Arc::new(ManualClock::new(first + 3 * DAY_MS));
    let e = open(dir.path(), &clock, cfg());
    e.ingest(days_of_records(first, 3)).unwrap();
    e.log().seal_all().unwrap();
    e.close();
    // As if a run had renamed the first day's segments and been killed before unlinking them.
    let mut renamed = 0;
    for shard in ["log/shard-000", "log/shard-001"] {
        for f in std::fs::read_dir(dir.path().join(shard)).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if name.starts_with("20270101T0000-") && name.ends_with(".seg") {
                std::fs::rename(&p, p.with_file_name(format!("{name}.expired"))).unwrap();
                renamed += 1;
            }
        }
    }
    assert_eq!(renamed, 2);
    let e = open(dir.path(), &clock, cfg());
    assert_eq!(e.log().recovery().expired_removed, 2);
    assert_eq!(per_day(&e).keys().copied().collect::<Vec<_>>(), vec![first + DAY_MS, first + 2 * DAY_MS]);
    for shard in ["log/shard-000", "log/shard-001"] {
        for f in std::fs::read_dir(dir.path().join(shard)).unwrap() {
            assert!(f.unwrap().path().extension().unwrap() == "seg");
        }
    }
    e.close();
}

#[test]
fn ledger_history_and_audit_are_kept_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    let start = t("2027-01-10T09:00:00+08:00");
    let clock = Arc::new(ManualClock::new(start));
    let e = open(dir.path(), &clock, cfg());
    provider(&e, "P1");
    assign(&e, SPS[0], start, start + 30 * DAY_MS, false);
    let audit = |e: &Engine| {
        e.registry()
            .audit(AuditEntry {
                seq: 0,
                at_ms: 0,
                who: "inspector".into(),
                action: "trace".into(),
                number: Some("13800138000".into()),
                sub_port: None,
                records: 3,
            })
            .unwrap();
    };
    audit(&e);
    clock.set_ms(start + 100 * DAY_MS);
    audit(&e);
    let run = |e: &Engine, at: i64| {
        clock.set_ms(at);
        e.retention_run_with(RetentionRun { dry_run: false, confirm_clock_until_ms: Some(at) }).unwrap()
    };
    let r = run(&e, start + 3 * 365 * DAY_MS);
    assert_eq!((r.ledger_events_purged, r.audit_purged), (0, 0));
    assert_eq!(e.registry().history().unwrap().len(), 2);
    assert_eq!(e.registry().audit_list(i64::MIN, i64::MAX).unwrap().len(), 2);
    e.close();

    let mut c = cfg();
    c.retention.purge_audit = true;
    c.retention.purge_ledger_history = true;
    c.retention.purge_batch_rows = 1; // one row per batch: the cursor is exercised
    let e = open(dir.path(), &clock, c);
    // The first audit entry is older than 5 months at this instant, the second is not.
    let r = run(&e, add_months_ms(start, 5, UTC8_OFFSET_MS) + DAY_MS);
    assert_eq!((r.ledger_events_purged, r.audit_purged), (2, 1));
    assert_eq!(e.registry().audit_list(i64::MIN, i64::MAX).unwrap().len(), 1);
    assert!(e.registry().history().unwrap().is_empty());
    e.close();
}
