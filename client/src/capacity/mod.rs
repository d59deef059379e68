//! Capacity planning for the message log: how much disk a constant message rate needs under
//! calendar-month retention, day by day, from the first day of traffic into the steady state
//! that expiry keeps. `portlog capacity` prints it; `portlog-capacity-check` (benches) checks
//! it against an engine that was fed the same rate. The model and its measured inputs are
//! explained in `docs/capacity.md`.
//!
//! The model follows what the engine does, with the engine's own time arithmetic:
//!
//! * records of local day *D* (UTC+8) go to day *D*'s segments, one per shard;
//! * day *D* stays **open** (uncompressed rows, [`PerMessage::open`] bytes per message) until
//!   `seal_after_ms` past its end (`seal_grace_ms`, 2 h by default), and is **sealed** after
//!   ([`PerMessage::sealed`] bytes per message, footer indexes included); an open day holds at
//!   most [`Inputs::open_bytes_max`] (a shard's open segment is sealed when it reaches
//!   `segment_bytes_max`), the rest of it is sealed;
//! * day *D* is **eligible** at `time::add_months_ms(end of D - 1 ms, months)`, the instant its
//!   last record is, and is **deleted** whole by the first retention run at or after it:
//!   [`Inputs::retention_lag_ms`] later at worst (the run's interval, 10 min by default).
//!
//! ```
//! use portlog_client::capacity::{Inputs, Model, PerMessage};
//! # fn main() -> Result<(), portlog_client::capacity::CapacityError> {
//! let start = portlog_engine::time::parse_time_ms("2026-01-01T00:00:00+08:00").expect("time");
//! let per = PerMessage { sealed: 25.0, index_share: 0.2, open: 130.0 };
//! let model = Model::new(Inputs::new(100.0, 5, start, per))?;
//! let rows = model.months(7);
//! assert!(rows[0].point.disk_bytes < rows[4].point.disk_bytes); // growing for five months,
//! let peak = model.peak();                                       // then flat: expiry keeps it
//! assert!(rows[6].point.disk_bytes <= peak.disk_bytes && rows[6].point.disk_bytes > 0.97 * peak.disk_bytes);
//! # Ok(()) }
//! ```

pub mod svg;

use crate::proto::StatsReply;
use portlog_engine::time::{add_months_ms, bucket_start_ms, DAY_MS, UTC8_OFFSET_MS};
use portlog_engine::{LogConfig, LogStats, RetentionConfig};
use serde::Serialize;

/// Bytes per message of sealed segments (footers and dictionary included) used when neither a
/// flag nor a server gives a figure: measured by `portlog-capacity-check --sample-only --rate
/// 10` (865,230 generated messages in one day, 4 shards, the default sealing with packed
/// blocks; 2026-12-03, docs/capacity.md). The figure depends on the daily volume per shard:
/// 15.7 at 1 message/s, 19.3 at 0.15.
pub const DEFAULT_SEALED_BYTES_PER_MESSAGE: f64 = 14.5;
/// Share of the sealed bytes that are footer indexes (block table, sub-port and number
/// indexes, number filter, text templates and record shapes; not the dictionary), measured
/// with [`DEFAULT_SEALED_BYTES_PER_MESSAGE`].
pub const DEFAULT_INDEX_SHARE: f64 = 0.368;
/// Bytes per message of open (unsealed) segments, measured with
/// [`DEFAULT_SEALED_BYTES_PER_MESSAGE`]: the uncompressed rows with their headers.
pub const DEFAULT_OPEN_BYTES_PER_MESSAGE: f64 = 137.4;
/// Fewest messages a server must hold (sealed, resp. open) for its figure to be used instead of
/// the default: a handful of messages is mostly segment headers and frame overhead.
pub const MIN_MEASURED_MESSAGES: u64 = 10_000;

/// Why a model cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
    /// An input is out of range; names the input.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The input (`rate`, `months`, `bytes_per_message`, ...).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CapacityError {
    CapacityError::Invalid { field, reason: reason.into() }
}

/// The per-message figures of the model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerMessage {
    /// Bytes per message of sealed segments, their footers (indexes, filter, dictionary)
    /// included: the server's `sealed_bytes / sealed_records`.
    pub sealed: f64,
    /// Share (0..1) of the sealed bytes that are footer indexes, for the index column:
    /// `(index_bytes - dictionary_bytes) / sealed_bytes`.
    pub index_share: f64,
    /// Bytes per message of open segments (uncompressed rows): the days not sealed yet, and
    /// the "raw" column. The server's `open_bytes / open_records`.
    pub open: f64,
}

/// Everything the model needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Inputs {
    /// Messages per second, constant.
    pub rate_per_s: f64,
    /// Retention in calendar months (the engine's `[retention] months`).
    pub months: u32,
    /// First instant of traffic; the model starts at the beginning of its day (UTC+8).
    pub start_ms: i64,
    /// Bytes per message.
    pub per_message: PerMessage,
    /// A day's segments are sealed this long after the day ends, in ms: the larger of
    /// `seal_grace_ms` and `seal_idle_ms` (2 h by default).
    pub seal_after_ms: i64,
    /// Most bytes an open day holds: `shards * segment_bytes_max` (4 × 128 MiB by default).
    pub open_bytes_max: f64,
    /// Longest wait between a day becoming eligible and its deletion, in ms: the retention
    /// run's `interval_ms` (10 min by default). 0: deleted the instant it is eligible.
    pub retention_lag_ms: i64,
}

impl Inputs {
    /// Inputs with the engine's default configuration for the sealing and retention timings.
    pub fn new(rate_per_s: f64, months: u32, start_ms: i64, per_message: PerMessage) -> Self {
        let log = LogConfig::default();
        let retention = RetentionConfig::default();
        Self {
            rate_per_s,
            months,
            start_ms,
            per_message,
            seal_after_ms: log.seal_grace_ms.max(log.seal_idle_ms),
            open_bytes_max: f64::from(log.shards) * log.segment_bytes_max as f64,
            retention_lag_ms: retention.interval_ms as i64,
        }
    }
}

/// What the log holds at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Point {
    /// The instant, ms since the epoch.
    pub at_ms: i64,
    /// Days (buckets) held, the open ones included.
    pub days: u32,
    /// Messages held.
    pub records: f64,
    /// The messages held, uncompressed (`records * open` bytes per message).
    pub raw_bytes: f64,
    /// Bytes of sealed segments.
    pub sealed_bytes: f64,
    /// Of `sealed_bytes`, the footer indexes.
    pub index_bytes: f64,
    /// Bytes of open segments.
    pub open_bytes: f64,
    /// Disk used by the log: sealed plus open.
    pub disk_bytes: f64,
}

/// One row of the per-month table: the top of the month's saw-tooth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MonthRow {
    /// 1 for the first month of traffic.
    pub month: u32,
    /// First instant of the month (local midnight).
    pub from_ms: i64,
    /// First instant after it.
    pub to_ms: i64,
    /// The most the log held in the month, just before a day's expiry run (or, before expiry
    /// starts, at the month's end).
    pub point: Point,
}

/// The model over validated [`Inputs`].
#[derive(Debug, Clone)]
pub struct Model {
    inputs: Inputs,
    /// Start of day 0.
    day0_ms: i64,
}

impl Model {
    /// Validates `inputs`, naming the first bad one.
    pub fn new(inputs: Inputs) -> Result<Self, CapacityError> {
        let r = inputs.rate_per_s;
        if !(r.is_finite() && r >= 0.0) {
            return Err(invalid("rate", format!("{r} is not a non-negative number of messages")));
        }
        if !(1..=1200).contains(&inputs.months) {
            return Err(invalid("months", format!("{} is not in 1..=1200", inputs.months)));
        }
        let pm = inputs.per_message;
        if !(pm.sealed.is_finite() && pm.sealed > 0.0) {
            return Err(invalid("bytes_per_message", format!("{} is not a positive number of bytes", pm.sealed)));
        }
        if !(pm.open.is_finite() && pm.open > 0.0) {
            return Err(invalid("open_bytes_per_message", format!("{} is not a positive number of bytes", pm.open)));
        }
        if !(0.0..1.0).contains(&pm.index_share) {
            return Err(invalid("index_share", format!("{} is not in [0, 1)", pm.index_share)));
        }
        if !(0..=7 * DAY_MS).contains(&inputs.seal_after_ms) {
            return Err(invalid("seal_after_ms", "must be 0..=7 days"));
        }
        if !(0..=7 * DAY_MS).contains(&inputs.retention_lag_ms) {
            return Err(invalid("retention_lag_ms", "must be 0..=7 days"));
        }
        if !(inputs.open_bytes_max.is_finite() && inputs.open_bytes_max > 0.0) {
            return Err(invalid("open_bytes_max", "must be positive"));
        }
        // The horizon (`months + 12` months after the start) must stay before the year 10000.
        if !(0..=253_402_300_799_999 - 1300 * 31 * DAY_MS).contains(&inputs.start_ms) {
            return Err(invalid("start", "must be between 1970 and 9888"));
        }
        let day0_ms = bucket_start_ms(inputs.start_ms, DAY_MS, UTC8_OFFSET_MS);
        Ok(Self { inputs, day0_ms })
    }

    /// The inputs.
    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// Start of the first day of traffic (local midnight).
    pub fn start_ms(&self) -> i64 {
        self.day0_ms
    }

    fn day_start(&self, i: i64) -> i64 {
        self.day0_ms + i * DAY_MS
    }

    /// The instant day `i` becomes eligible: its last millisecond plus `months`.
    fn eligible_ms(&self, i: i64) -> i64 {
        add_months_ms(self.day_start(i + 1) - 1, self.inputs.months, UTC8_OFFSET_MS)
    }

    /// The instant day `i` is deleted at the latest: eligible, plus the retention lag.
    pub fn expiry_ms(&self, i: i64) -> i64 {
        self.eligible_ms(i) + self.inputs.retention_lag_ms
    }

    /// When expiry starts: the first day's deletion.
    pub fn first_expiry_ms(&self) -> i64 {
        self.expiry_ms(0)
    }

    /// Messages per day.
    pub fn records_per_day(&self) -> f64 {
        self.inputs.rate_per_s * (DAY_MS / 1000) as f64
    }

    /// What the log holds just before instant `t`: every message with a time before `t`; the
    /// days whose deletion instant ([`Model::expiry_ms`]) is at or before `t` gone; the days
    /// that ended `seal_after_ms` or more before `t` sealed.
    pub fn at(&self, t: i64) -> Point {
        self.state(t, t)
    }

    /// The messages with a time before `t`, less the days deleted by `deleted_by` (those whose
    /// [`Model::expiry_ms`] is at or before it), sealed as at `t`.
    fn state(&self, t: i64, deleted_by: i64) -> Point {
        let mut p = Point { at_ms: t, ..Point::default() };
        if t <= self.day0_ms {
            return p;
        }
        let last = (t - 1 - self.day0_ms).div_euclid(DAY_MS);
        // The oldest day held: deletion instants never decrease with the day (add_months_ms is
        // monotonic), so the days gone are a prefix.
        let (mut lo, mut hi) = (0i64, last + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.expiry_ms(mid) <= deleted_by {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let first = lo;
        if first > last {
            return p;
        }
        let pm = self.inputs.per_message;
        let per_ms = self.inputs.rate_per_s / 1000.0;
        // Days before `sealed_to` are whole and sealed.
        let sealed_to = ((t - self.inputs.seal_after_ms - self.day0_ms).div_euclid(DAY_MS)).clamp(first, last + 1);
        let mut sealed_records = (sealed_to - first) as f64 * self.records_per_day();
        let mut open_records = 0.0;
        let mut open_room = self.inputs.open_bytes_max / pm.open;
        for i in sealed_to..=last {
            let recs = per_ms * (t.min(self.day_start(i + 1)) - self.day_start(i)) as f64;
            // A shard's open segment is sealed when it reaches segment_bytes_max; what an
            // open day holds beyond the cap is sealed already.
            let open = recs.min(open_room);
            open_room -= open;
            open_records += open;
            sealed_records += recs - open;
        }
        p.days = (last - first + 1) as u32;
        p.records = sealed_records + open_records;
        p.raw_bytes = p.records * pm.open;
        p.sealed_bytes = sealed_records * pm.sealed;
        p.index_bytes = p.sealed_bytes * pm.index_share;
        p.open_bytes = open_records * pm.open;
        p.disk_bytes = p.sealed_bytes + p.open_bytes;
        p
    }

    /// The top of day `i`'s saw-tooth: every message of the day in, and the day that expires
    /// at its end still there. That day is eligible at the day's last millisecond (or, for a
    /// month-end day clamped to the next month, at its end) and deleted by the next retention
    /// run, up to `retention_lag_ms` later; the messages of those minutes are left out (a
    /// `retention_lag_ms / 1 day` share of a day's: 0.7 % of one day for the default 10 min).
    pub fn top_of_day(&self, i: i64) -> Point {
        let end = self.day_start(i + 1);
        Point { at_ms: end - 1, ..self.state(end, end - 2 + self.inputs.retention_lag_ms) }
    }

    /// The day index holding instant `t`.
    fn day_of(&self, t: i64) -> i64 {
        (t - self.day0_ms).div_euclid(DAY_MS)
    }

    /// One row per month of traffic, from the first to the `n`th: the most the log held during
    /// the month (the tops of its days' saw-teeth).
    pub fn months(&self, n: u32) -> Vec<MonthRow> {
        (1..=n)
            .map(|k| {
                let from_ms = add_months_ms(self.day0_ms, k - 1, UTC8_OFFSET_MS);
                let to_ms = add_months_ms(self.day0_ms, k, UTC8_OFFSET_MS);
                let point = self.max_top(self.day_of(from_ms), self.day_of(to_ms));
                MonthRow { month: k, from_ms, to_ms, point }
            })
            .collect()
    }

    /// The highest top of day over days `[from, to)`; the latest of equals.
    fn max_top(&self, from: i64, to: i64) -> Point {
        let mut best = self.top_of_day(from);
        for i in from + 1..to {
            let p = self.top_of_day(i);
            if p.disk_bytes >= best.disk_bytes {
                best = p;
            }
        }
        best
    }

    /// The disk needed: the highest top of day from the first day to a year after expiry
    /// starts (five calendar months hold 150 to 153 days depending on where they fall, so the
    /// steady state moves a little through the year).
    pub fn peak(&self) -> Point {
        let to = add_months_ms(self.day0_ms, self.inputs.months + 12, UTC8_OFFSET_MS);
        self.max_top(0, self.day_of(to))
    }

    /// Points tracing the saw-tooth from the first day up to (not including) day `days`: per
    /// day, just after the previous day's expiry, just before and after the previous day's
    /// seal, and the top of the day.
    pub fn series(&self, days: i64) -> Vec<Point> {
        let lag = self.inputs.retention_lag_ms;
        let seal = self.inputs.seal_after_ms;
        let mut out = Vec::with_capacity(days.max(0) as usize * 4);
        for i in 0..days {
            let s = self.day_start(i);
            let mut ts = vec![s + lag, s + seal, s + seal + 1];
            ts.sort_unstable();
            ts.dedup();
            out.extend(ts.into_iter().map(|t| self.at(t)));
            out.push(self.top_of_day(i));
        }
        out
    }
}

/// What a server (or an engine) measured: the figures the per-message inputs come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Measured {
    /// Messages in sealed segments.
    pub sealed_records: u64,
    /// Bytes of sealed segment files.
    pub sealed_bytes: u64,
    /// Of those, footers (indexes, filter, dictionary, section table, trailer).
    pub index_bytes: u64,
    /// Of the footers, zstd dictionaries.
    pub dictionary_bytes: u64,
    /// Messages in open segments.
    pub open_records: u64,
    /// Bytes of open segment files.
    pub open_bytes: u64,
}

impl Measured {
    /// From the server's Stats reply.
    pub fn from_reply(s: &StatsReply) -> Self {
        Self {
            sealed_records: s.sealed_records,
            sealed_bytes: s.sealed_bytes,
            index_bytes: s.index_bytes,
            dictionary_bytes: s.dictionary_bytes,
            open_records: s.open_records,
            open_bytes: s.open_bytes,
        }
    }

    /// From an engine's log, in process (what the server's Stats reply is made of).
    pub fn from_log(s: &LogStats) -> Self {
        Self {
            sealed_records: s.sealed_records,
            sealed_bytes: s.sealed_bytes,
            index_bytes: s.index_bytes,
            dictionary_bytes: s.dict_bytes,
            open_records: s.records.saturating_sub(s.sealed_records),
            open_bytes: s.open_bytes,
        }
    }
}

/// Where a figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// Measured on data (a running server, or a sample run) over this many messages.
    Measured {
        /// Messages the figure was measured over.
        messages: u64,
    },
    /// The documented default; `measured_messages` is what the server had (too few), if asked.
    Default {
        /// Messages the server held, when there was one.
        measured_messages: Option<u64>,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => write!(f, "flag"),
            Source::Measured { messages } => write!(f, "measured over {messages} messages"),
            Source::Default { measured_messages: None } => write!(f, "default"),
            Source::Default { measured_messages: Some(n) } => {
                write!(f, "default: the server holds {n} such messages, fewer than {MIN_MEASURED_MESSAGES}")
            }
        }
    }
}

/// The per-message figures with their sources.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sourced {
    /// The figures.
    pub per_message: PerMessage,
    /// Where `sealed` came from.
    pub sealed: Source,
    /// Where `index_share` came from.
    pub index_share: Source,
    /// Where `open` came from.
    pub open: Source,
}

/// The per-message figures: a flag wins, then a measurement over at least
/// [`MIN_MEASURED_MESSAGES`] messages, then the defaults. The index share follows the sealed
/// figure's measurement (a flag for the sealed bytes keeps the default share).
pub fn per_message(measured: Option<&Measured>, sealed_flag: Option<f64>, open_flag: Option<f64>) -> Sourced {
    let sealed_n = measured.map(|m| m.sealed_records);
    let open_n = measured.map(|m| m.open_records);
    let enough = |n: Option<u64>| n.is_some_and(|n| n >= MIN_MEASURED_MESSAGES);
    let default = |n: Option<u64>| Source::Default { measured_messages: n };
    let (sealed, sealed_src, share, share_src) = match (sealed_flag, measured) {
        (Some(b), _) => (b, Source::Flag, DEFAULT_INDEX_SHARE, default(None)),
        (None, Some(m)) if enough(sealed_n) && m.sealed_bytes > 0 => {
            let n = m.sealed_records;
            let share = m.index_bytes.saturating_sub(m.dictionary_bytes) as f64 / m.sealed_bytes as f64;
            let src = Source::Measured { messages: n };
            (m.sealed_bytes as f64 / n as f64, src, share, src)
        }
        (None, _) => (DEFAULT_SEALED_BYTES_PER_MESSAGE, default(sealed_n), DEFAULT_INDEX_SHARE, default(sealed_n)),
    };
    let (open, open_src) = match (open_flag, measured) {
        (Some(b), _) => (b, Source::Flag),
        (None, Some(m)) if enough(open_n) && m.open_bytes > 0 => {
            (m.open_bytes as f64 / m.open_records as f64, Source::Measured { messages: m.open_records })
        }
        (None, _) => (DEFAULT_OPEN_BYTES_PER_MESSAGE, default(open_n)),
    };
    Sourced {
        per_message: PerMessage { sealed, index_share: share, open },
        sealed: sealed_src,
        index_share: share_src,
        open: open_src,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use portlog_engine::time::parse_time_ms;

    fn at(s: &str) -> i64 {
        parse_time_ms(s).unwrap()
    }

    /// Equal but for float rounding.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * a.abs().max(b.abs())
    }

    const PER: PerMessage = PerMessage { sealed: 20.0, index_share: 0.25, open: 100.0 };

    /// 1 message per second, 5 months from 2026-01-01, retention acting at once.
    fn model(months: u32, start: &str) -> Model {
        let mut i = Inputs::new(1.0, months, at(start), PER);
        i.retention_lag_ms = 0;
        Model::new(i).unwrap()
    }

    #[test]
    fn a_day_is_open_until_sealed_then_compressed() {
        let m = model(5, "2026-01-01T00:00:00+08:00");
        let noon = m.at(at("2026-01-01T12:00:00+08:00"));
        assert_eq!((noon.days, noon.records), (1, 43_200.0));
        assert_eq!((noon.open_bytes, noon.sealed_bytes, noon.disk_bytes), (4_320_000.0, 0.0, 4_320_000.0));
        assert_eq!(noon.raw_bytes, 4_320_000.0);
        // 01:00 on day 2: day 1 is whole but still open (2 h grace).
        let p = m.at(at("2026-01-02T01:00:00+08:00"));
        assert_eq!((p.days, p.records, p.sealed_bytes), (2, 90_000.0, 0.0));
        // 03:00: day 1 sealed.
        let p = m.at(at("2026-01-02T03:00:00+08:00"));
        assert_eq!((p.records, p.sealed_bytes, p.open_bytes), (97_200.0, 86_400.0 * 20.0, 10_800.0 * 100.0));
        assert_eq!(p.index_bytes, 86_400.0 * 20.0 * 0.25);
        assert_eq!(m.at(m.start_ms()), Point { at_ms: m.start_ms(), ..Point::default() });
    }

    #[test]
    fn month_arithmetic_follows_the_calendar() {
        // 31 January 2026 starts; one month of retention: the month after 31 January has no
        // 31st, so the first day goes at 1 March 00:00 (clamped up, like the engine).
        let m = model(1, "2026-01-31T09:00:00+08:00");
        assert_eq!(m.start_ms(), at("2026-01-31T00:00:00+08:00"));
        assert_eq!(m.first_expiry_ms(), at("2026-03-01T00:00:00+08:00"));
        // 1 February's last record is eligible at 1 March 23:59:59.999.
        assert_eq!(m.expiry_ms(1), at("2026-03-01T23:59:59.999+08:00"));
        let rows = m.months(3);
        assert_eq!(
            rows.iter().map(|r| r.from_ms).collect::<Vec<_>>(),
            vec![
                at("2026-01-31T00:00:00+08:00"),
                at("2026-03-01T00:00:00+08:00"), // "31 February" is clamped to 1 March
                at("2026-03-31T00:00:00+08:00"),
            ]
        );
        // Five months from 1 January: 151 days (Jan..May), deleted from 1 June.
        let m = model(5, "2026-01-01T00:00:00+08:00");
        assert_eq!(m.first_expiry_ms(), at("2026-06-01T23:59:59.999+08:00"));
        let top = m.top_of_day(m.day_of(at("2026-06-01T12:00:00+08:00")));
        assert_eq!(top.days, 152, "1 January to 1 June, the first still there at the top of 1 June");
        let after = m.at(at("2026-06-02T00:00:00+08:00"));
        assert_eq!(after.days, 151, "2 January to 1 June");
    }

    #[test]
    fn disk_grows_until_expiry_then_stays_flat() {
        let m = model(5, "2026-01-01T00:00:00+08:00");
        let rows = m.months(7);
        let disk: Vec<f64> = rows.iter().map(|r| r.point.disk_bytes).collect();
        for w in disk[..5].windows(2) {
            assert!(w[1] > w[0], "{disk:?}");
        }
        // Steady state: months 6 and 7 hold 5 calendar months (150..=153 days) plus the open day.
        let day_sealed = 86_400.0 * 20.0;
        for r in &rows[5..] {
            let p = r.point;
            assert!((151..=154).contains(&p.days), "{p:?}");
            assert!(close(p.disk_bytes, (f64::from(p.days) - 1.0) * day_sealed + 86_400.0 * 100.0), "{p:?}");
        }
        // The peak over a year: the longest five months (153 days, e.g. March..July) plus the
        // day about to expire, one of them open.
        let peak = m.peak();
        assert_eq!(peak.days, 154);
        assert!(close(peak.disk_bytes, 153.0 * day_sealed + 86_400.0 * 100.0), "{peak:?}");
        // First reached at the top of 1 August (1 March to 1 August held).
        assert_eq!(m.top_of_day(m.day_of(at("2026-08-01T12:00:00+08:00"))).disk_bytes, peak.disk_bytes);
        // Once expiry runs, the saw-tooth stays below the peak and within a few days of it (five
        // months are 150 to 153 days; at night the previous day is still open).
        let s = m.series(400);
        let late: Vec<f64> = s[s.len() - 200..].iter().map(|p| p.disk_bytes).collect();
        let lo = late.iter().cloned().fold(f64::MAX, f64::min);
        assert!(lo > peak.disk_bytes - 4.0 * 86_400.0 * 100.0, "{lo} {}", peak.disk_bytes);
        assert!(late.iter().all(|d| *d <= peak.disk_bytes));
    }

    #[test]
    fn the_retention_lag_keeps_the_expiring_day_longer() {
        let mut i = Inputs::new(1.0, 5, at("2026-01-01T00:00:00+08:00"), PER);
        let lagged = Model::new(i).unwrap();
        i.retention_lag_ms = 0;
        let prompt = Model::new(i).unwrap();
        let t = at("2026-06-02T00:05:00+08:00");
        assert_eq!(lagged.at(t).days, prompt.at(t).days + 1);
        assert_eq!(lagged.first_expiry_ms(), prompt.first_expiry_ms() + 600_000);
    }

    #[test]
    fn an_open_day_holds_at_most_the_open_cap() {
        let mut i = Inputs::new(100.0, 5, at("2026-01-01T00:00:00+08:00"), PER);
        i.open_bytes_max = 1e6;
        let m = Model::new(i).unwrap();
        let p = m.at(at("2026-01-01T12:00:00+08:00"));
        assert_eq!(p.open_bytes, 1e6);
        assert_eq!(p.sealed_bytes, (4_320_000.0 - 10_000.0) * 20.0);
    }

    #[test]
    fn zero_rate_needs_nothing() {
        let mut i = Inputs::new(0.0, 5, at("2026-01-01T00:00:00+08:00"), PER);
        i.retention_lag_ms = 0;
        let m = Model::new(i).unwrap();
        assert!(m.months(7).iter().all(|r| r.point.disk_bytes == 0.0 && r.point.records == 0.0));
        assert_eq!(m.peak().disk_bytes, 0.0);
    }

    #[test]
    fn bad_inputs_are_named() {
        let ok = Inputs::new(1.0, 5, at("2026-01-01T00:00:00+08:00"), PER);
        let field = |i: Inputs| match Model::new(i) {
            Err(CapacityError::Invalid { field, .. }) => field,
            Ok(_) => "accepted",
        };
        assert_eq!(field(Inputs { rate_per_s: -1.0, ..ok }), "rate");
        assert_eq!(field(Inputs { rate_per_s: f64::NAN, ..ok }), "rate");
        assert_eq!(field(Inputs { rate_per_s: f64::INFINITY, ..ok }), "rate");
        assert_eq!(field(Inputs { months: 0, ..ok }), "months");
        assert_eq!(field(Inputs { months: 1201, ..ok }), "months");
        let pm = |sealed, index_share, open| Inputs { per_message: PerMessage { sealed, index_share, open }, ..ok };
        assert_eq!(field(pm(0.0, 0.2, 100.0)), "bytes_per_message");
        assert_eq!(field(pm(-3.0, 0.2, 100.0)), "bytes_per_message");
        assert_eq!(field(pm(20.0, 1.0, 100.0)), "index_share");
        assert_eq!(field(pm(20.0, 0.2, 0.0)), "open_bytes_per_message");
        assert_eq!(field(Inputs { start_ms: -1, ..ok }), "start");
        assert_eq!(field(ok), "accepted");
        let e = Model::new(Inputs { months: 0, ..ok }).unwrap_err();
        assert_eq!(e.to_string(), "invalid months: 0 is not in 1..=1200");
    }

    #[test]
    fn per_message_figures_prefer_flags_then_enough_measurement_then_defaults() {
        let m = Measured {
            sealed_records: 100_000,
            sealed_bytes: 2_500_000,
            index_bytes: 600_000,
            dictionary_bytes: 100_000,
            open_records: 20_000,
            open_bytes: 2_700_000,
        };
        let s = per_message(Some(&m), None, None);
        assert_eq!(s.per_message, PerMessage { sealed: 25.0, index_share: 0.2, open: 135.0 });
        assert_eq!(s.sealed, Source::Measured { messages: 100_000 });
        let s = per_message(Some(&m), Some(30.0), Some(140.0));
        assert_eq!(s.per_message, PerMessage { sealed: 30.0, index_share: DEFAULT_INDEX_SHARE, open: 140.0 });
        assert_eq!((s.sealed, s.open), (Source::Flag, Source::Flag));
        let few = Measured { sealed_records: 3, open_records: 9_999, ..m };
        let s = per_message(Some(&few), None, None);
        assert_eq!(s.per_message.sealed, DEFAULT_SEALED_BYTES_PER_MESSAGE);
        assert_eq!(s.sealed, Source::Default { measured_messages: Some(3) });
        assert_eq!(s.open, Source::Default { measured_messages: Some(9_999) });
        assert!(s.open.to_string().contains("fewer than 10000"), "{}", s.open);
        let s = per_message(None, None, None);
        assert_eq!(s.sealed, Source::Default { measured_messages: None });
        assert_eq!(s.per_message.open, DEFAULT_OPEN_BYTES_PER_MESSAGE);
    }
}
