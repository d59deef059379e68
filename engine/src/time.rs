//! Civil time in the regulator's zone (UTC+8, no daylight saving) without a calendar crate:
//! the conversions are Howard Hinnant's `days_from_civil` / `civil_from_days` algorithms.

/// Offset of China Standard Time from UTC, in ms.
pub const UTC8_OFFSET_MS: i64 = 8 * 3_600_000;
/// One day in ms.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of the civil date `y-m-d` (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Start (UTC ms) of the bucket of `bucket_ms` length containing `ts_ms`, buckets being aligned
/// on local midnight of a zone `tz_offset_ms` east of UTC.
pub fn bucket_start_ms(ts_ms: i64, bucket_ms: i64, tz_offset_ms: i64) -> i64 {
    (ts_ms + tz_offset_ms).div_euclid(bucket_ms) * bucket_ms - tz_offset_ms
}

/// `YYYYMMDDTHHMM` of a UTC instant shown in the zone `tz_offset_ms` east of UTC; used in file
/// names so that an operator can tell a segment's day at a glance.
pub fn compact_local(ts_ms: i64, tz_offset_ms: i64) -> String {
    let local = ts_ms + tz_offset_ms;
    let days = local.div_euclid(DAY_MS);
    let ms_of_day = local.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let hh = ms_of_day / 3_600_000;
    let mm = (ms_of_day / 60_000) % 60;
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}")
}

/// RFC 3339 rendering of `ts_ms` in UTC+8, millisecond precision.
pub fn rfc3339_utc8(ts_ms: i64) -> String {
    let local = ts_ms + UTC8_OFFSET_MS;
    let days = local.div_euclid(DAY_MS);
    let ms = local.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+08:00",
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000
    )
}

/// Parses a time given as RFC 3339 (`2026-05-01T09:30:00+08:00`, `...Z`, optional fraction) or
/// as integer milliseconds since the epoch. Returns a message naming what is wrong.
pub fn parse_time_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|_| format!("{s:?} is too large for milliseconds since the epoch"));
    }
    let b = s.as_bytes();
    let bad = || format!("{s:?} is neither RFC 3339 (2026-05-01T09:30:00+08:00) nor milliseconds since the epoch");
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = s.get(r).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo as u32) as i64 || h > 23 || mi > 59 || se > 60 {
        return Err(format!("{s:?} is not a valid date and time"));
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let digits = &s[start..i.min(start + 3)];
        frac_ms = digits.parse::<i64>().map_err(|_| bad())? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_ms = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return Err(bad());
            }
            let off = (oh * 60 + om) * 60_000;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Ok(days * DAY_MS + h * 3_600_000 + mi * 60_000 + se.min(59) * 1000 + frac_ms - offset_ms)
}

/// Number of days in month `m` of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Local civil fields of `ts_ms` in the zone `tz_offset_ms` east of UTC: year, month, day and
/// milliseconds since local midnight.
pub fn local_fields(ts_ms: i64, tz_offset_ms: i64) -> (i64, u32, u32, i64) {
    let local = ts_ms + tz_offset_ms;
    let (y, m, d) = civil_from_days(local.div_euclid(DAY_MS));
    (y, m, d, local.rem_euclid(DAY_MS))
}

/// The instant of a local civil date and time of day in the zone `tz_offset_ms` east of UTC.
pub fn from_local(y: i64, m: u32, d: u32, ms_of_day: i64, tz_offset_ms: i64) -> i64 {
    days_from_civil(y, m, d) * DAY_MS + ms_of_day - tz_offset_ms
}

/// `(y, m)` moved by `months` (may be negative).
fn shift_month(y: i64, m: u32, months: i64) -> (i64, u32) {
    let idx = y * 12 + i64::from(m) - 1 + months;
    (idx.div_euclid(12), (idx.rem_euclid(12) + 1) as u32)
}

/// The instant `months` calendar months after `ts_ms`, in the zone `tz_offset_ms` east of UTC:
/// the same day of the month and time of day, `months` months later. A day the later month
/// lacks is clamped **up** to the first instant of the month after it: 31 March + 5 months is
/// 31 August, but 31 January + 5 months ("31 June") is 1 July 00:00, and 30 September 2027 +
/// 5 months ("30 February 2028") is 1 March 2028 00:00.
///
/// Clamping up keeps the function monotonic (never decreasing in `ts_ms`), which is what lets
/// retention judge a whole segment by its bucket's last instant; clamping down to the last
/// day at the same time of day would not be (30 January 23:00 would go after 31 January 01:00).
/// Retention uses it as "the instant a record of time `ts_ms` becomes eligible for deletion".
pub fn add_months_ms(ts_ms: i64, months: u32, tz_offset_ms: i64) -> i64 {
    let (y, m, d, tod) = local_fields(ts_ms, tz_offset_ms);
    let (ty, tm) = shift_month(y, m, i64::from(months));
    if d <= days_in_month(ty, tm) {
        from_local(ty, tm, d, tod, tz_offset_ms)
    } else {
        let (ny, nm) = shift_month(ty, tm, 1);
        from_local(ny, nm, 1, 0, tz_offset_ms)
    }
}

/// The oldest record time still inside a retention of `months` calendar months at `now_ms`:
/// a record of time `t` is eligible for deletion exactly when `t < cutoff`, that is when
/// `now_ms >= add_months_ms(t, months, tz)` (see [`add_months_ms`] for month ends).
pub fn retention_cutoff_ms(now_ms: i64, months: u32, tz_offset_ms: i64) -> i64 {
    let (y, m, d, tod) = local_fields(now_ms, tz_offset_ms);
    let (sy, sm) = shift_month(y, m, -i64::from(months));
    if d <= days_in_month(sy, sm) {
        // The record of the same day and time `months` earlier became eligible exactly now.
        from_local(sy, sm, d, tod, tz_offset_ms) + 1
    } else {
        // Now is a day the source month lacks (31 July, 5 months after "31 February"): the
        // whole source month is eligible, nothing of the month after it.
        let (ny, nm) = shift_month(sy, sm, 1);
        from_local(ny, nm, 1, 0, tz_offset_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for z in (-800_000..800_000).step_by(13) {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "day {z}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 29) + 1, days_from_civil(2024, 3, 1));
    }

    #[test]
    fn buckets_align_on_beijing_midnight() {
        // 2026-05-01T23:59:59.999+08:00 and 2026-05-02T00:00:00+08:00 fall in different days.
        let a = parse_time_ms("2026-05-01T23:59:59.999+08:00").unwrap();
        let b = parse_time_ms("2026-05-02T00:00:00+08:00").unwrap();
        assert_eq!(b - a, 1);
        let ba = bucket_start_ms(a, DAY_MS, UTC8_OFFSET_MS);
        let bb = bucket_start_ms(b, DAY_MS, UTC8_OFFSET_MS);
        assert_eq!(bb, b);
        assert_eq!(bb - ba, DAY_MS);
        assert_eq!(compact_local(bb, UTC8_OFFSET_MS), "20260502T0000");
        // Negative times floor, not truncate.
        assert_eq!(bucket_start_ms(-1, DAY_MS, 0), -DAY_MS);
    }

    #[test]
    fn parses_rfc3339_and_millis() {
        assert_eq!(parse_time_ms("1777599000000").unwrap(), 1_777_599_000_000);
        let t = parse_time_ms("2026-05-01T09:30:00+08:00").unwrap();
        assert_eq!(t, parse_time_ms("2026-05-01T01:30:00Z").unwrap());
        assert_eq!(parse_time_ms("2026-05-01T01:30:00.5Z").unwrap(), t + 500);
        assert_eq!(rfc3339_utc8(t), "2026-05-01T09:30:00.000+08:00");
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-05-01T09:30:00",
            "yesterday",
            "2026-05-01T09:30:00+8",
        ] {
            assert!(parse_time_ms(bad).is_err(), "{bad:?} must be refused");
        }
    }

    fn at(s: &str) -> i64 {
        parse_time_ms(s).unwrap()
    }

    #[test]
    fn months_later_clamps_missing_days_up_to_the_next_month() {
        let z = UTC8_OFFSET_MS;
        let cases = [
            ("2026-03-31T10:00:00+08:00", "2026-08-31T10:00:00+08:00"),
            ("2026-01-31T10:00:00+08:00", "2026-07-01T00:00:00+08:00"),
            ("2026-01-30T23:59:59.999+08:00", "2026-06-30T23:59:59.999+08:00"),
            ("2027-09-29T12:00:00+08:00", "2028-02-29T12:00:00+08:00"),
            ("2027-09-30T12:00:00+08:00", "2028-03-01T00:00:00+08:00"),
            ("2026-09-29T12:00:00+08:00", "2027-03-01T00:00:00+08:00"),
            ("2027-10-31T00:00:00+08:00", "2028-03-31T00:00:00+08:00"),
            ("2025-12-31T23:59:59.999+08:00", "2026-05-31T23:59:59.999+08:00"),
            ("2026-08-15T00:00:00+08:00", "2027-01-15T00:00:00+08:00"),
            // Midnight UTC+8 is 16:00 UTC the day before: the zone decides the month.
            ("2026-01-31T15:30:00Z", "2026-07-01T00:00:00+08:00"),
            ("2026-01-31T16:30:00Z", "2026-07-01T00:30:00+08:00"),
        ];
        for (from, want) in cases {
            assert_eq!(rfc3339_utc8(add_months_ms(at(from), 5, z)), rfc3339_utc8(at(want)), "{from} + 5 months");
        }
    }

    #[test]
    fn months_later_is_monotonic_and_the_cutoff_is_its_inverse() {
        let z = UTC8_OFFSET_MS;
        let start = at("2027-06-01T00:00:00+08:00");
        let mut prev = i64::MIN;
        let mut t = start;
        // Every 7 minutes and 13 ms over two years: every day of every month, leap February.
        while t < start + 730 * DAY_MS {
            let e = add_months_ms(t, 5, z);
            assert!(e >= prev, "not monotonic at {}", rfc3339_utc8(t));
            assert!(e > t);
            prev = e;
            t += 7 * 60_000 + 13;
        }
        // Every local midnight of 2028 and 2029, just before and after it, and noon.
        let first = at("2028-01-01T00:00:00+08:00");
        for day in 0..731 {
            for off in [-1, 0, 1, DAY_MS / 2] {
                let now = first + day * DAY_MS + off;
                for months in [1, 5, 6, 12] {
                    let c = retention_cutoff_ms(now, months, z);
                    assert!(add_months_ms(c - 1, months, z) <= now, "cutoff - 1 eligible at {}", rfc3339_utc8(now));
                    assert!(add_months_ms(c, months, z) > now, "cutoff not eligible at {}", rfc3339_utc8(now));
                }
            }
        }
    }
}
