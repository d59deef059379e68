//! `portlog capacity`: the disk a message rate needs under calendar-month retention, month by
//! month into the steady state, from the model of `portlog_client::capacity` with the server's
//! measured figures (docs/capacity.md).

use crate::args::{CapacityArgs, Per};
use crate::{out, Fail};
use portlog_client::capacity::{self, svg::human_bytes, Inputs, Measured, Model, Point, Source};
use portlog_client::proto::StatsReply;
use portlog_engine::time::{bucket_start_ms, parse_time_ms, rfc3339_utc8, DAY_MS, UTC8_OFFSET_MS};
use serde_json::{json, Value};

/// `1234567.8` as `1,234,568`.
fn grouped(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 {
        format!("-{out}")
    } else {
        out
    }
}

fn date(ms: i64) -> String {
    rfc3339_utc8(ms).chars().take(10).collect()
}

fn minute(ms: i64) -> String {
    let s = rfc3339_utc8(ms);
    format!("{} {}", &s[..10], &s[11..16])
}

/// The old one-word source of the sealed figure (`flag`, `server`, `default`).
fn word(s: Source) -> &'static str {
    match s {
        Source::Flag => "flag",
        Source::Measured { .. } => "server",
        Source::Default { .. } => "default",
    }
}

fn point_json(p: &Point) -> Value {
    json!({"at": rfc3339_utc8(p.at_ms), "days": p.days, "records": p.records.round(),
           "raw_bytes": p.raw_bytes.round(), "disk_bytes": p.disk_bytes.round(),
           "sealed_bytes": p.sealed_bytes.round(), "open_bytes": p.open_bytes.round(),
           "index_bytes": p.index_bytes.round()})
}

/// Runs the command with the server's Stats reply, if there was one.
pub fn run(json: bool, c: &CapacityArgs, stats: Option<&StatsReply>) -> Result<i32, Fail> {
    let per_s = match c.per {
        Per::S => c.rate,
        Per::Min => c.rate / 60.0,
        Per::H => c.rate / 3600.0,
        Per::Day => c.rate / 86_400.0,
    };
    let start_ms = match &c.start {
        // A bare date is that day's local midnight.
        Some(s) if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') => parse_time_ms(&format!("{s}T00:00:00+08:00"))
            .map_err(|e| Fail(format!("invalid --start: {s:?} is not a date (YYYY-MM-DD) ({e})")))?,
        Some(s) => parse_time_ms(s).map_err(|e| Fail(format!("invalid --start: {e}")))?,
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| Fail(format!("the system clock is before 1970: {e}")))?;
            bucket_start_ms(now.as_millis() as i64, DAY_MS, UTC8_OFFSET_MS)
        }
    };
    let measured = stats.map(Measured::from_reply);
    let figures = capacity::per_message(measured.as_ref(), c.bytes_per_message, c.open_bytes_per_message);
    let model = Model::new(Inputs::new(per_s, c.months, start_ms, figures.per_message)).map_err(|e| {
        let capacity::CapacityError::Invalid { field, reason } = e;
        let flag = match field {
            "bytes_per_message" => "--bytes-per-message",
            "open_bytes_per_message" => "--open-bytes-per-message",
            "rate" => "--rate",
            "months" => "--months",
            "start" => "--start",
            other => other,
        };
        Fail(format!("invalid {flag}: {reason}"))
    })?;
    let shown = c.months + 2;
    let rows = model.months(shown);
    let peak = model.peak();
    let per_day_sealed = model.records_per_day() * figures.per_message.sealed;
    let registry_bytes = stats.map(|s| s.registry_bytes);
    if let Some(path) = &c.svg {
        let pm = figures.per_message;
        let title = format!(
            "portlog capacity: {} messages/s, {} months of retention, {:.1} B/message sealed, {:.1} open",
            trim_rate(per_s),
            c.months,
            pm.sealed,
            pm.open
        );
        std::fs::write(path, capacity::svg::render(&model, shown, &title))
            .map_err(|e| Fail(format!("writing --svg {}: {e}", path.display())))?;
    }
    let pm = figures.per_message;
    if json {
        let v = json!({
            "rate_per_s": per_s, "months": c.months, "start": rfc3339_utc8(model.start_ms()),
            "bytes_per_message": pm.sealed, "bytes_per_message_source": word(figures.sealed),
            "index_share": pm.index_share, "open_bytes_per_message": pm.open,
            "sources": {"bytes_per_message": figures.sealed, "index_share": figures.index_share,
                        "open_bytes_per_message": figures.open},
            "messages": peak.records.round(), "bytes": peak.disk_bytes.round(), "bytes_per_day": per_day_sealed.round(),
            "expiry_starts": rfc3339_utc8(model.first_expiry_ms()), "peak": point_json(&peak),
            "per_month": rows.iter().map(|r| {
                let mut v = point_json(&r.point);
                if let Value::Object(m) = &mut v {
                    m.insert("month".into(), r.month.into());
                    m.insert("from".into(), rfc3339_utc8(r.from_ms).into());
                    m.insert("to".into(), rfc3339_utc8(r.to_ms).into());
                }
                v
            }).collect::<Vec<_>>(),
            "registry_bytes": registry_bytes,
            "svg": c.svg.as_ref().map(|p| p.display().to_string()),
        });
        out::object(true, &v);
        return Ok(0);
    }
    println!("rate              {} messages/s ({} a day)", trim_rate(per_s), grouped(model.records_per_day()));
    println!("retention         {} calendar months (UTC+8); traffic from {}", c.months, date(model.start_ms()));
    println!("sealed            {:.1} B/message, indexes included ({})", pm.sealed, figures.sealed);
    println!("  of which index  {:.1} % ({})", 100.0 * pm.index_share, figures.index_share);
    println!("open (unsealed)   {:.1} B/message, the current day's uncompressed rows ({})", pm.open, figures.open);
    println!();
    println!(
        "{:>5}  {:<10}  {:>5}  {:>18}  {:>12}  {:>12}  {:>12}",
        "month", "to", "days", "records kept", "raw", "on disk", "index"
    );
    for r in &rows {
        let p = r.point;
        println!(
            "{:>5}  {:<10}  {:>5}  {:>18}  {:>12}  {:>12}  {:>12}",
            r.month,
            date(r.to_ms - 1),
            p.days,
            grouped(p.records),
            human_bytes(p.raw_bytes),
            human_bytes(p.disk_bytes),
            human_bytes(p.index_bytes)
        );
    }
    println!("(each row: the most held during the month, at the top of a day just before its expiry run)");
    println!();
    println!("growth per day    {} sealed", human_bytes(per_day_sealed));
    println!(
        "expiry starts     {} (the first day goes; from then on the disk stays flat, a saw-tooth by day)",
        minute(model.first_expiry_ms())
    );
    println!(
        "disk needed       {} at the peak ({}, {} days held, {} messages)",
        human_bytes(peak.disk_bytes),
        date(peak.at_ms),
        peak.days,
        grouped(peak.records)
    );
    if let Some(b) = registry_bytes {
        println!(
            "registry now      {} (rejects, ledger, audit: not projected, see docs/capacity.md)",
            human_bytes(b as f64)
        );
    }
    if let Some(p) = &c.svg {
        println!("chart             {}", p.display());
    }
    Ok(0)
}

/// A rate without useless decimals: `1000`, `0.35`.
fn trim_rate(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(grouped(1_234_567.8), "1,234,568");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(0.0), "0");
        assert_eq!(trim_rate(1000.0), "1000");
        assert_eq!(trim_rate(0.35), "0.35");
    }
}
