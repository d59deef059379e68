//! A deterministic, endless stream of realistic records (see [`Generator`]).

use crate::templates::{Part, Slot, Templates};
use anyhow::{bail, Result};
use portlog_engine::time::{civil_from_days, DAY_MS, UTC8_OFFSET_MS};
use portlog_engine::{Direction, PhoneNumber, Record, SubPort};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1, Zipf};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;

/// 2026-05-01T09:00:00+08:00 in ms since the epoch: the default start of record time.
pub const DEFAULT_START_MS: i64 = days_from_civil_const(2026, 5, 1) * DAY_MS + 9 * 3_600_000 - UTC8_OFFSET_MS;

/// `days_from_civil` usable in a constant (the engine's is not `const`); checked against it in
/// the tests.
const fn days_from_civil_const(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The shape of a workload.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadConfig {
    /// Seed of every random choice: the same seed and config give the same records.
    pub seed: u64,
    /// Distinct sub-ports (`10690` + 8 digits), each assigned to one provider and usage.
    pub sub_ports: u32,
    /// Distinct user numbers.
    pub numbers: u64,
    /// Zipf exponent of sub-port popularity (0 = uniform).
    pub sub_port_zipf: f64,
    /// Zipf exponent of number popularity (0 = uniform).
    pub number_zipf: f64,
    /// Fraction of records that are MO (user to sub-port).
    pub mo_fraction: f64,
    /// Fraction of MOs whose text is a reject keyword (`R`/`r`).
    pub reject_rate: f64,
    /// Record time of the stream's start, ms since the epoch.
    pub start_ms: i64,
    /// Records per second of record time (Poisson arrivals).
    pub rate_per_s: f64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            sub_ports: 2_000,
            numbers: 1_000_000,
            sub_port_zipf: 1.0,
            number_zipf: 0.8,
            mo_fraction: 0.1,
            reject_rate: 0.3,
            start_ms: DEFAULT_START_MS,
            rate_per_s: 200.0,
        }
    }
}

/// Mainland mobile prefixes (first three digits) numbers are drawn from.
const MOBILE_PREFIXES: &[u64] = &[
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 147, 150, 151, 152, 153, 155, 156, 157, 158, 159, 166, 170, 171,
    172, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 193, 195, 196, 198, 199,
];
const CITIES: &[&str] =
    &["北京", "上海", "广州", "深圳", "成都", "杭州", "西安", "重庆", "三亚", "昆明", "厦门", "青岛", "大理", "桂林"];
const AREAS: &[&str] = &[
    "朝阳区",
    "海淀区",
    "城东街道",
    "高新区",
    "滨江区",
    "天河区",
    "南山区",
    "武侯区",
    "新华小区",
    "阳光花园",
    "开发区",
];
const COURSES: &[&str] = &["Python入门", "少儿编程", "数据分析", "雅思写作", "高等数学", "Java进阶", "考研英语"];
const DEPTS: &[&str] = &["内科", "外科", "儿科", "眼科", "口腔科", "皮肤科", "骨科", "妇产科", "心内科"];
const AIRLINES: &[&str] = &["CA", "MU", "CZ", "HU", "ZH", "3U", "MF"];
const SURNAMES: &[&str] = &["张", "李", "王", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
const ESTATES: &[&str] = &["锦绣华庭", "翡翠湾", "御景园", "滨江壹号", "春风里", "云栖府"];
const CAR_MODELS: &[&str] = &["驰骋X5", "驰骋S7", "驰骋E3", "驰骋GT", "驰骋L9"];
const ROUND_AMOUNTS: &[u32] = &[9, 19, 29, 50, 99, 100, 199, 200, 299, 500, 999, 1000, 2000, 5000, 10000, 50000];
const DISCOUNTS: &[u32] = &[5, 10, 15, 20, 30, 50];

/// A deterministic, endless [`Iterator`] of records: MTs from the templates and MOs (rejects
/// and short replies), on Zipf-popular sub-ports and numbers, with record times advancing at
/// [`WorkloadConfig::rate_per_s`]. It holds no records: take as many as needed.
#[derive(Debug)]
pub struct Generator {
    templates: Arc<Templates>,
    cfg: WorkloadConfig,
    rng: StdRng,
    /// Each sub-port with the index of its provider.
    sub_ports: Vec<(SubPort, usize)>,
    sub_port_rank: Zipf<f64>,
    number_rank: Zipf<f64>,
    number_salt: u64,
    /// Record time elapsed since the start, in ms.
    elapsed_ms: f64,
    last_ts_ms: i64,
}

impl Generator {
    /// A generator of `cfg`'s workload over `templates`.
    pub fn new(templates: Arc<Templates>, cfg: WorkloadConfig) -> Result<Self> {
        if cfg.sub_ports == 0 || cfg.sub_ports > 100_000_000 {
            bail!("sub_ports must be 1..=100000000");
        }
        if cfg.numbers == 0 {
            bail!("numbers must be positive");
        }
        if !(0.0..=1.0).contains(&cfg.mo_fraction) || !(0.0..=1.0).contains(&cfg.reject_rate) {
            bail!("mo_fraction and reject_rate must be in 0..=1");
        }
        if !(cfg.rate_per_s > 0.0 && cfg.rate_per_s.is_finite()) {
            bail!("rate_per_s must be positive");
        }
        if cfg.start_ms < 0 {
            bail!("start_ms must not be before 1970");
        }
        let sub_port_rank = Zipf::new(u64::from(cfg.sub_ports), cfg.sub_port_zipf)
            .map_err(|e| anyhow::anyhow!("sub_port_zipf: {e}"))?;
        let number_rank = Zipf::new(cfg.numbers, cfg.number_zipf).map_err(|e| anyhow::anyhow!("number_zipf: {e}"))?;
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut seen = HashSet::new();
        let mut sub_ports = Vec::with_capacity(cfg.sub_ports as usize);
        while sub_ports.len() < cfg.sub_ports as usize {
            let v: u64 = rng.gen_range(0..100_000_000);
            if seen.insert(v) {
                let sp = SubPort::parse(&format!("10690{v:08}"))?;
                sub_ports.push((sp, rng.gen_range(0..templates.providers.len())));
            }
        }
        let number_salt = rng.gen();
        Ok(Self {
            templates,
            rng,
            sub_ports,
            sub_port_rank,
            number_rank,
            number_salt,
            elapsed_ms: 0.0,
            last_ts_ms: cfg.start_ms,
            cfg,
        })
    }

    /// The workload's configuration.
    pub fn config(&self) -> &WorkloadConfig {
        &self.cfg
    }

    /// Record time of the last record produced (the start time before the first).
    pub fn last_ts_ms(&self) -> i64 {
        self.last_ts_ms
    }

    /// The number of popularity rank `rank` (1 = most popular): a fixed pseudo-random mobile
    /// number, so that popular numbers are spread over every prefix.
    fn number_of(&self, rank: u64) -> PhoneNumber {
        let h = splitmix64(rank ^ self.number_salt);
        let prefix = MOBILE_PREFIXES[(h % MOBILE_PREFIXES.len() as u64) as usize];
        let v = prefix * 100_000_000 + (h >> 16) % 100_000_000;
        // Three digits starting with 1, then eight: always 11 digits starting with 1.
        PhoneNumber::from_u64(v).expect("a mobile prefix and 8 digits make a valid number")
    }

    fn fill(&mut self, out: &mut String, slot: Slot, ts_ms: i64) {
        let r = &mut self.rng;
        // `write!` to a String cannot fail.
        let _ = match slot {
            Slot::Amount if r.gen_bool(0.6) => write!(out, "{}", pick(r, ROUND_AMOUNTS)),
            Slot::Amount => {
                let cents: u32 = r.gen_range(100..1_000_000);
                write!(out, "{}.{:02}", cents / 100, cents % 100)
            }
            Slot::Balance => {
                let cents: u64 = r.gen_range(0..10_000_000);
                write!(out, "{}.{:02}", cents / 100, cents % 100)
            }
            Slot::Area => write!(out, "{}", pick(r, AREAS)),
            Slot::City => write!(out, "{}", pick(r, CITIES)),
            Slot::Course => write!(out, "{}", pick(r, COURSES)),
            Slot::Dept => write!(out, "{}", pick(r, DEPTS)),
            Slot::EstateName => write!(out, "{}", pick(r, ESTATES)),
            Slot::CarModel => write!(out, "{}", pick(r, CAR_MODELS)),
            Slot::PersonName => write!(out, "{}师傅", pick(r, SURNAMES)),
            Slot::Code => write!(out, "{:06}", r.gen_range(0..1_000_000u32)),
            Slot::Tail => write!(out, "{:04}", r.gen_range(0..10_000u32)),
            Slot::Date => {
                let day = (ts_ms + UTC8_OFFSET_MS).div_euclid(DAY_MS) + r.gen_range(0..30);
                let (_, m, d) = civil_from_days(day);
                write!(out, "{m}月{d}日")
            }
            Slot::Time => write!(out, "{:02}:{:02}", r.gen_range(7..23u32), 5 * r.gen_range(0..12u32)),
            Slot::Discount => write!(out, "{}", pick(r, DISCOUNTS)),
            Slot::Flight => write!(out, "{}{}", pick(r, AIRLINES), r.gen_range(1000..10_000u32)),
            Slot::N if r.gen_bool(0.8) => write!(out, "{}", r.gen_range(1..=30u32)),
            Slot::N => write!(out, "{}", r.gen_range(31..=500u32)),
            Slot::Percent => write!(out, "{}", r.gen_range(50..=95u32)),
            Slot::NetworkGeneration => write!(out, "{}", r.gen_range(4..=5u32)),
            Slot::PricePerSqm => write!(out, "{}", 100 * r.gen_range(80..=600u32)),
            Slot::Order => write!(out, "{}", r.gen_range(100_000_000_000..1_000_000_000_000u64)),
            Slot::Phone if r.gen_bool(0.3) => {
                write!(out, "400-{:03}-{:04}", r.gen_range(0..1000u32), r.gen_range(0..10_000u32))
            }
            Slot::Phone => write!(out, "{}{:08}", pick(r, MOBILE_PREFIXES), r.gen_range(0..100_000_000u32)),
            Slot::Rate => write!(out, "{:.1}", f64::from(r.gen_range(28..=180u32)) / 10.0),
            Slot::Remain => write!(out, "{}", r.gen_range(0..10_240u32)),
        };
    }
}

/// A uniformly chosen element of a non-empty constant list.
fn pick<T: Copy>(r: &mut StdRng, list: &[T]) -> T {
    list[r.gen_range(0..list.len())]
}

impl Iterator for Generator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let gap: f64 = Exp1.sample(&mut self.rng);
        self.elapsed_ms += gap * 1000.0 / self.cfg.rate_per_s;
        let ts_ms = self.cfg.start_ms.saturating_add(self.elapsed_ms as i64);
        self.last_ts_ms = ts_ms;
        let sp_idx = (self.sub_port_rank.sample(&mut self.rng) as usize).clamp(1, self.sub_ports.len()) - 1;
        let rank = self.number_rank.sample(&mut self.rng) as u64;
        let peer = self.number_of(rank);
        let (sub_port, provider) = self.sub_ports[sp_idx].clone();
        let templates = self.templates.clone();
        if self.rng.gen_bool(self.cfg.mo_fraction) {
            let list = if self.rng.gen_bool(self.cfg.reject_rate) { &templates.mo_reject } else { &templates.mo_other };
            let text = list.choose(&mut self.rng).cloned().unwrap_or_default();
            return Some(Record { dir: Direction::Mo, sub_port, peer, ts_ms, usage: None, text });
        }
        let p = &templates.providers[provider];
        let t = &templates.mt[p.templates.choose(&mut self.rng).copied().unwrap_or(0)];
        let mut text = String::with_capacity(256);
        for part in &t.parts {
            match part {
                Part::Lit(s) => text.push_str(s),
                Part::Slot(slot) => self.fill(&mut text, *slot, ts_ms),
            }
        }
        Some(Record { dir: Direction::Mt, sub_port, peer, ts_ms, usage: Some(t.usage), text })
    }
}

/// A 64-bit mixer (SplitMix64's finaliser): a bijection with good avalanche.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portlog_engine::time::days_from_civil;
    use portlog_engine::Usage;

    fn gen(cfg: WorkloadConfig) -> Generator {
        Generator::new(Arc::new(Templates::load_default().unwrap()), cfg).unwrap()
    }

    #[test]
    fn start_time_is_may_first_nine_local() {
        assert_eq!(days_from_civil_const(2026, 5, 1), days_from_civil(2026, 5, 1));
        assert_eq!(portlog_engine::time::rfc3339_utc8(DEFAULT_START_MS), "2026-05-01T09:00:00.000+08:00");
    }

    #[test]
    fn same_seed_same_records() {
        let a: Vec<Record> = gen(WorkloadConfig::default()).take(2_000).collect();
        let b: Vec<Record> = gen(WorkloadConfig::default()).take(2_000).collect();
        assert_eq!(a, b);
        let c: Vec<Record> = gen(WorkloadConfig { seed: 7, ..WorkloadConfig::default() }).take(2_000).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn records_are_valid_and_filled() {
        let cfg = WorkloadConfig::default();
        let mut g = gen(cfg.clone());
        let mut prev = cfg.start_ms;
        for r in g.by_ref().take(20_000) {
            r.validate(16 << 10).unwrap();
            assert!(!r.text.contains('{') && !r.text.contains('}'), "unfilled placeholder: {}", r.text);
            let sp = r.sub_port.as_str();
            assert!(sp.len() == 13 && sp.starts_with("10690"), "{sp}");
            let n = r.peer.to_string();
            assert!(n.len() == 11 && n.starts_with('1'), "{n}");
            assert_eq!(PhoneNumber::parse(&n).unwrap(), r.peer);
            assert!(r.ts_ms >= prev, "time goes forward");
            prev = r.ts_ms;
            if r.dir == Direction::Mt {
                assert!(r.text.starts_with('【'), "{}", r.text);
                if r.usage == Some(Usage::Commercial) {
                    assert!(r.text.ends_with("拒收请回复R"), "{}", r.text);
                }
            }
        }
        // 20 000 records at 200/s span about 100 s.
        let span_s = (g.last_ts_ms() - cfg.start_ms) as f64 / 1000.0;
        assert!((80.0..120.0).contains(&span_s), "{span_s}");
    }

    #[test]
    fn mix_follows_the_config() {
        let cfg = WorkloadConfig { mo_fraction: 0.25, reject_rate: 0.5, ..WorkloadConfig::default() };
        let n = 40_000;
        let (mut mo, mut rejects) = (0, 0);
        let mut sub_ports = HashSet::new();
        for r in gen(cfg).take(n) {
            sub_ports.insert(r.sub_port.clone());
            if r.dir == Direction::Mo {
                mo += 1;
                if r.text.trim() == "R" || r.text.trim() == "r" {
                    rejects += 1;
                }
            }
        }
        let mo_share = f64::from(mo) / n as f64;
        let reject_share = f64::from(rejects) / f64::from(mo);
        assert!((0.23..0.27).contains(&mo_share), "{mo_share}");
        assert!((0.46..0.54).contains(&reject_share), "{reject_share}");
        assert!(sub_ports.len() > 500, "Zipf over 2000 sub-ports reaches many: {}", sub_ports.len());
    }

    #[test]
    fn every_slot_is_filled() {
        let t = Arc::new(Templates::load_default().unwrap());
        let slots = [
            Slot::Amount,
            Slot::Area,
            Slot::Balance,
            Slot::City,
            Slot::Code,
            Slot::Course,
            Slot::Date,
            Slot::Dept,
            Slot::Discount,
            Slot::Flight,
            Slot::N,
            Slot::Percent,
            Slot::NetworkGeneration,
            Slot::PricePerSqm,
            Slot::PersonName,
            Slot::EstateName,
            Slot::CarModel,
            Slot::Order,
            Slot::Phone,
            Slot::Rate,
            Slot::Remain,
            Slot::Tail,
            Slot::Time,
        ];
        let mut g = Generator::new(t, WorkloadConfig::default()).unwrap();
        for slot in slots {
            let mut s = String::new();
            g.fill(&mut s, slot, DEFAULT_START_MS);
            assert!(!s.is_empty(), "{slot:?}");
        }
        let mut s = String::new();
        g.fill(&mut s, Slot::Code, DEFAULT_START_MS);
        assert!(s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()), "{s}");
        let mut s = String::new();
        g.fill(&mut s, Slot::Date, DEFAULT_START_MS);
        assert!(s.contains('月') && s.ends_with('日'), "{s}");
    }
}
