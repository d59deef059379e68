//! The disk-use chart of `portlog capacity --svg FILE`: a hand-written SVG (axes, month ticks,
//! the day-by-day saw-tooth as one polyline, the peak and the start of expiry marked); no
//! plotting crate, no script, no external font or stylesheet.

use super::{Model, Point};
use portlog_engine::time::{add_months_ms, civil_from_days, DAY_MS, UTC8_OFFSET_MS};
use std::fmt::Write as _;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 64.0;

/// A byte count with a binary unit: `12.3 GiB`.
pub fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut u = 0;
    while v.abs() >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// A step of 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn date(ms: i64) -> String {
    let (y, m, d) = civil_from_days((ms + UTC8_OFFSET_MS).div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The chart of `model` over its first `months` months, titled `title`.
pub fn render(model: &Model, months: u32, title: &str) -> String {
    let start = model.start_ms();
    let end = add_months_ms(start, months, UTC8_OFFSET_MS);
    let days = (end - start).div_euclid(DAY_MS).max(1);
    let pts: Vec<Point> = model.series(days);
    let peak = model.peak();
    let ymax_data = pts.iter().map(|p| p.disk_bytes).fold(peak.disk_bytes, f64::max);
    // Axis unit: the binary unit of the largest value.
    let (unit, div) = [("TiB", 2f64.powi(40)), ("GiB", 2f64.powi(30)), ("MiB", 2f64.powi(20)), ("KiB", 1024.0)]
        .into_iter()
        .find(|(_, d)| ymax_data >= *d)
        .unwrap_or(("B", 1.0));
    let step = nice_step(ymax_data / div / 5.0);
    let ticks = ((ymax_data / div / step).ceil() as i64).max(1);
    let ymax = ticks as f64 * step * div;
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |ms: i64| LEFT + w * (ms - start) as f64 / (end - start) as f64;
    let y = |b: f64| TOP + h * (1.0 - b / ymax);

    let mut s = String::new();
    // `write!` to a String cannot fail.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#, esc(title));
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="40" fill="#555">disk used by the message log, day by day (top of each day before its expiry run); {}</text>"##,
        esc(&format!("peak {} on {}", human_bytes(peak.disk_bytes), date(peak.at_ms)))
    );
    // Horizontal grid and y labels.
    for i in 0..=ticks {
        let v = i as f64 * step * div;
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} {unit}</text>"##,
            LEFT + w,
            LEFT - 6.0,
            yy + 4.0,
            trim(i as f64 * step)
        );
    }
    // Month ticks and labels.
    for k in 0..=months {
        let t = add_months_ms(start, k, UTC8_OFFSET_MS);
        let xx = x(t);
        // The last label ends at the axis' end, inside the picture.
        let anchor = if k == months { "end" } else { "middle" };
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"##,
            TOP + h,
            TOP + h + 5.0,
            TOP + h + 18.0,
            date(t)
        );
        if k < months {
            let mid = x(t + (add_months_ms(start, k + 1, UTC8_OFFSET_MS) - t) / 2);
            let _ = writeln!(
                s,
                r##"<text x="{mid:.1}" y="{:.1}" text-anchor="middle" fill="#777">month {}</text>"##,
                TOP + h + 34.0,
                k + 1
            );
        }
    }
    // Axes.
    let _ = writeln!(
        s,
        r#"<polyline points="{LEFT},{TOP} {LEFT},{:.1} {:.1},{:.1}" fill="none" stroke="black"/>"#,
        TOP + h,
        LEFT + w,
        TOP + h
    );
    // Expiry start and the peak.
    let fe = model.first_expiry_ms();
    if fe < end {
        let xx = x(fe);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#c33" stroke-dasharray="5,4"/><text x="{:.1}" y="{:.1}" fill="#c33">expiry starts {}: steady state</text>"##,
            TOP + h,
            xx + 5.0,
            TOP + 14.0,
            date(fe)
        );
    }
    let py = y(peak.disk_bytes);
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#36a" stroke-dasharray="2,3"/><text x="{:.1}" y="{:.1}" fill="#36a">peak {}</text>"##,
        LEFT + w,
        LEFT + 6.0,
        py - 5.0,
        esc(&human_bytes(peak.disk_bytes))
    );
    // The saw-tooth.
    let mut line = String::with_capacity(pts.len() * 16);
    for p in &pts {
        let _ = write!(line, "{:.2},{:.2} ", x(p.at_ms.min(end)), y(p.disk_bytes));
    }
    let _ =
        writeln!(s, r##"<polyline fill="none" stroke="#1a7f37" stroke-width="1.5" points="{}"/>"##, line.trim_end());
    let _ = writeln!(s, "</svg>");
    s
}

/// `2`, `2.5`, `0.25`: a tick value without trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{Inputs, PerMessage};
    use super::*;

    #[test]
    fn steps_and_units() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(31.0), 50.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(3.5 * 1024.0 * 1024.0 * 1024.0), "3.5 GiB");
        assert_eq!(trim(2.5), "2.5");
        assert_eq!(trim(20.0), "20");
    }

    #[test]
    fn the_chart_is_well_formed_and_marks_expiry() {
        let start = portlog_engine::time::parse_time_ms("2026-01-01T00:00:00+08:00").unwrap();
        let per = PerMessage { sealed: 25.0, index_share: 0.2, open: 130.0 };
        let m = Model::new(Inputs::new(50.0, 5, start, per)).unwrap();
        let svg = render(&m, 7, "a <test> & more");
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;test&gt; &amp; more"));
        assert!(svg.contains("expiry starts 2026-06-02") && svg.contains("month 7"), "{svg}");
        // One point per sample of the series, all inside the plot.
        let pts = svg.split("points=\"").last().unwrap().split('"').next().unwrap();
        let n = pts.split(' ').count();
        assert!(n > 4 * 200, "{n}");
        for p in pts.split(' ') {
            let (a, b) = p.split_once(',').unwrap();
            let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
            assert!(
                (LEFT - 0.01..=WIDTH - RIGHT + 0.01).contains(&a) && (TOP - 0.01..=HEIGHT - BOTTOM + 0.01).contains(&b)
            );
        }
        // Zero rate: no division by zero.
        let z = Model::new(Inputs::new(0.0, 5, start, per)).unwrap();
        assert!(!render(&z, 7, "zero").contains("NaN"));
    }
}
