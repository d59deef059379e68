//! The soak test's model and tools (`server/tests/soak.rs`): a seeded generator of records whose
//! fields follow from their id, the model of what was sent and acknowledged (records, rejects),
//! the expected answers of the check, latency samples, and the daemon as a child process whose
//! pid is known (for SIGKILL and for reading its memory in `/proc`).
#![allow(clippy::unwrap_used)]

use portlog_client::proto::{self, DenyReason};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DAY_MS: i64 = 86_400_000;
/// Back-filled records are this old (about seven months: past the five months of retention).
pub const OLD_AGE_MS: i64 = 214 * DAY_MS;
/// Sub-ports in the ledger, each under one commercial assignment.
pub const SUB_PORTS: usize = 8;
/// A sub-port the ledger does not know (checks on it: `unknown_sub_port`).
pub const UNKNOWN_SUB_PORT: &str = "1069099000";
/// The provider's registered signature.
pub const SIGNATURE: &str = "星河银行";
/// Share of all records, in per mille, that go to number 0 (a "hot" number with a long trace).
pub const HOT_PERMILLE: u64 = 100;

/// The i-th sub-port of the ledger.
pub fn sub_port(i: usize) -> String {
    format!("106901234{:04}", 5600 + i)
}

/// The i-th number of the pool: 11 digits starting with 13.
pub fn number(i: u32) -> String {
    (13_000_000_000u64 + u64::from(i) * 104_729).to_string()
}

/// splitmix64: the test's only randomness (no rand in this package's dev-dependencies).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5eed_50a4)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    /// True `permille` times in a thousand.
    pub fn permille(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }
}

/// The splitmix64 finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a generated record is, which decides its time and whether the server must take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Up to two hours old.
    Recent,
    /// Up to 30 s ahead of the clock (within the server's skew of an hour).
    Ahead,
    /// Back-filled, seven months old: retention expires it.
    Old,
    /// A recent MO whose text is a reject keyword: registers a reject before the ack.
    Reject,
    /// Three hours ahead: refused (`ts`), must never be stored.
    BadFuture,
    /// A ten-digit peer: refused (`peer`).
    BadPeer,
    /// An MT without usage: refused (`usage`).
    BadUsage,
}

impl Kind {
    /// The field the server names when it refuses the record.
    pub fn refused_field(self) -> Option<&'static str> {
        match self {
            Kind::BadFuture => Some("ts"),
            Kind::BadPeer => Some("peer"),
            Kind::BadUsage => Some("usage"),
            _ => None,
        }
    }
}

/// A record's fields but its time, a function of (seed, id).
#[derive(Debug, Clone)]
pub struct Spec {
    pub kind: Kind,
    pub sp: u8,
    pub num: u32,
    pub dir: proto::Direction,
    pub usage: proto::Usage,
    pub text: String,
    /// How the peer is written on input: 0 plain, 1 `+86`, 2 `0086`, 3 `86`.
    pub form: u8,
}

/// Texts of MOs that are reject keywords (trimmed, case-folded, full-width folded, trailing
/// punctuation ignored).
const REJECT_TEXTS: [&str; 7] = ["R", "r", " R ", "Ｒ", "R。", "r!", "\u{3000}R"];

/// The record `id` of the run seeded `seed`, over a pool of `numbers` numbers.
pub fn spec(seed: u64, id: u64, numbers: u32) -> Spec {
    let h = mix(seed ^ mix(id.wrapping_add(1)));
    let g = mix(h);
    let roll = h % 1000;
    let kind = match roll {
        0..=9 => Kind::BadFuture,
        10..=14 => Kind::BadPeer,
        15..=19 => Kind::BadUsage,
        20..=49 => Kind::Old,
        50..=69 => Kind::Reject,
        70..=99 => Kind::Ahead,
        _ => Kind::Recent,
    };
    let num = if (g >> 40) % 1000 < HOT_PERMILLE { 0 } else { ((g >> 8) % u64::from(numbers)) as u32 };
    let sp = ((g >> 52) % SUB_PORTS as u64) as u8;
    let form = ((g >> 60) % 4) as u8;
    let mo = kind == Kind::Reject || (kind != Kind::BadUsage && (h >> 20) % 100 < 35);
    let pick = (h >> 32) % 8;
    let (dir, usage, text) = if mo {
        let text = if kind == Kind::Reject {
            REJECT_TEXTS[(pick % REJECT_TEXTS.len() as u64) as usize].to_string()
        } else {
            // Near misses of the keyword among them: not a reject.
            match pick {
                0 => format!("R soak#{id}"),
                1 => format!("RR soak#{id}"),
                2 => format!("拒收 soak#{id}"),
                _ => format!("好的，收到 soak#{id}"),
            }
        };
        (proto::Direction::Mo, proto::Usage::Unspecified, text)
    } else {
        let usage = match kind {
            Kind::BadUsage => proto::Usage::Unspecified,
            _ => [proto::Usage::Commercial, proto::Usage::Service, proto::Usage::Public][((h >> 24) % 3) as usize],
        };
        let text = match pick {
            0 => format!("【{SIGNATURE}】会员日满100减20 soak#{id}。拒收请回复R"),
            1 => format!("您的验证码为{:06}，5分钟内有效 soak#{id}", (h >> 40) % 1_000_000),
            2 => {
                let n = 1 + ((h >> 40) % 60) as usize;
                format!("soak#{id} {}", "长文本🚀 \"quoted\" \\ tab\t line\n".repeat(n))
            }
            3 => format!("soak#{id}\u{0}nul and \u{10FFFF} edge"),
            _ => format!("【{SIGNATURE}】账单已出 soak#{id}"),
        };
        (proto::Direction::Mt, usage, text)
    };
    Spec { kind, sp, num, dir, usage, text, form }
}

impl Spec {
    /// The time a record of this kind gets when generated at `now_ms`.
    pub fn ts_at(&self, now_ms: i64, rng: &mut Rng) -> i64 {
        match self.kind {
            Kind::Recent | Kind::Reject | Kind::BadPeer | Kind::BadUsage => now_ms - rng.range(0, 2 * 3_600_000),
            Kind::Ahead => now_ms + rng.range(0, 30_000),
            Kind::Old => now_ms - OLD_AGE_MS - rng.range(0, 3 * DAY_MS),
            Kind::BadFuture => now_ms + 3 * 3_600_000,
        }
    }

    /// The message as sent.
    pub fn to_wire(&self, ts_ms: i64) -> proto::Message {
        let n = number(self.num);
        let peer = match self.kind {
            Kind::BadPeer => n[..10].to_string(),
            _ => match self.form {
                0 => n,
                1 => format!("+86{n}"),
                2 => format!("0086{n}"),
                _ => format!("86{n}"),
            },
        };
        proto::Message {
            dir: self.dir as i32,
            sub_port: sub_port(self.sp as usize),
            peer,
            ts_ms,
            usage: self.usage as i32,
            text: self.text.clone(),
        }
    }

    /// The message as a trace must answer it (the peer normalised).
    pub fn key(&self, ts_ms: i64) -> Key {
        (self.dir as i32, sub_port(self.sp as usize), number(self.num), ts_ms, self.usage as i32, self.text.clone())
    }
}

/// Every field of a message: what is compared, byte for byte.
pub type Key = (i32, String, String, i64, i32, String);

/// A message's [`Key`].
pub fn key_of(m: &proto::Message) -> Key {
    (m.dir, m.sub_port.clone(), m.peer.clone(), m.ts_ms, m.usage, m.text.clone())
}

/// What is known of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sent in a call that has not answered, or that failed: may or may not be stored.
    Unknown,
    /// In a call whose reply came: durable, must be found.
    Acked,
    /// Found after a restart although its call failed: must stay.
    Recovered,
    /// Not found after a restart and its call is dead: must never appear.
    Lost,
    /// Bad (the server must refuse it): must never appear.
    Refused,
}

/// A (sub-port index, number index) pair.
pub type Pair = (u8, u32);

/// The model of everything sent: per record its time and state, per number its records, the
/// pairs with reject keywords sent (tainted) and acknowledged.
#[derive(Debug)]
pub struct Model {
    pub seed: u64,
    pub numbers: u32,
    /// By id: time and state.
    pub recs: Vec<(i64, State)>,
    /// By number: the ids of its records.
    pub by_number: Vec<Vec<u32>>,
    /// Pairs to which a reject keyword was sent (acknowledged or not).
    pub tainted: HashSet<Pair>,
    /// The same as a list, for drawing checks.
    pub tainted_list: Vec<Pair>,
    /// Pairs whose reject must be in force: an MO "R" acknowledged, or a reject found after a
    /// restart.
    pub rejected: HashSet<Pair>,
    /// Times of the reject MOs sent per pair (a `since` must be one of them).
    pub reject_ts: HashMap<Pair, Vec<i64>>,
    /// Back-filled (old) records sent, and acknowledged.
    pub old_sent: u64,
}

impl Model {
    /// An empty model.
    pub fn new(seed: u64, numbers: u32) -> Model {
        Model {
            seed,
            numbers,
            recs: Vec::new(),
            by_number: vec![Vec::new(); numbers as usize],
            tainted: HashSet::new(),
            tainted_list: Vec::new(),
            rejected: HashSet::new(),
            reject_ts: HashMap::new(),
            old_sent: 0,
        }
    }

    /// The spec of record `id`.
    pub fn spec(&self, id: u32) -> Spec {
        spec(self.seed, u64::from(id), self.numbers)
    }

    /// Generates the next record at `now_ms`, recorded as in flight (or refused, if bad).
    pub fn generate(&mut self, now_ms: i64, rng: &mut Rng) -> (u32, Spec, i64) {
        let id = self.recs.len() as u32;
        let s = self.spec(id);
        let ts = s.ts_at(now_ms, rng);
        let state = if s.kind.refused_field().is_some() { State::Refused } else { State::Unknown };
        self.recs.push((ts, state));
        self.by_number[s.num as usize].push(id);
        if s.kind == Kind::Old {
            self.old_sent += 1;
        }
        if s.kind == Kind::Reject {
            let pair = (s.sp, s.num);
            if self.tainted.insert(pair) {
                self.tainted_list.push(pair);
            }
            self.reject_ts.entry(pair).or_default().push(ts);
        }
        (id, s, ts)
    }

    /// The reply of the call carrying `ids` came: they are durable.
    pub fn ack(&mut self, ids: &[u32]) {
        for &id in ids {
            if self.recs[id as usize].1 == State::Unknown {
                self.recs[id as usize].1 = State::Acked;
                let s = self.spec(id);
                if s.kind == Kind::Reject {
                    self.rejected.insert((s.sp, s.num));
                }
            }
        }
    }

    /// Whether record `id` must be found (by a read that starts now), and whether it may be.
    pub fn must_may(&self, id: u32, old_gone: bool) -> (bool, bool) {
        let (_, st) = self.recs[id as usize];
        let old = self.spec(id).kind == Kind::Old;
        let may = matches!(st, State::Unknown | State::Acked | State::Recovered) && !(old && old_gone);
        let must = matches!(st, State::Acked | State::Recovered) && !old;
        (must, may)
    }
}

/// The expected answer of a check question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Sub-port and number only.
    Plain,
    /// From memory alone: no since-time.
    SkipSince,
    /// With a text that follows the content rules.
    GoodText,
    /// With a text without signature: `bad_signature` unless rejected first.
    BadText,
    /// Usage service on a commercial sub-port: `usage_mismatch`.
    Service,
    /// The unknown sub-port: `unknown_sub_port`.
    Unknown,
}

/// One check question and what the model knew when it was asked.
#[derive(Debug, Clone)]
pub struct Question {
    pub pair: Pair,
    pub variant: Variant,
    /// The reject was in force before the question was sent.
    pub must_reject: bool,
}

impl Question {
    /// The request.
    pub fn request(&self) -> proto::CheckRequest {
        let sp = if self.variant == Variant::Unknown {
            UNKNOWN_SUB_PORT.to_string()
        } else {
            sub_port(self.pair.0 as usize)
        };
        let mut r = proto::CheckRequest { sub_port: sp, number: number(self.pair.1), ..Default::default() };
        match self.variant {
            Variant::SkipSince => r.skip_since = true,
            Variant::GoodText => r.text = format!("【{SIGNATURE}】新品上市。拒收请回复R"),
            Variant::BadText => r.text = "新品上市".into(),
            Variant::Service => r.usage = proto::Usage::Service as i32,
            _ => {}
        }
        r
    }

    /// Checks the reply against the model (`tainted`: a reject keyword was sent to the pair at
    /// some time before the reply was read; `reject_ts`: the times of those MOs; `aid`: the
    /// assignment of each sub-port). `Ok(true)` when the answer was `rejected`.
    pub fn judge(&self, r: &proto::CheckReply, tainted: bool, reject_ts: &[i64], aid: &[u64]) -> Result<bool, String> {
        let bad = |why: &str| Err(format!("check {:?} {:?}: {why}; reply {r:?}", self.variant, self.pair));
        if !r.error.is_empty() {
            return bad("an error");
        }
        let reason = DenyReason::try_from(r.reason).unwrap_or(DenyReason::Unspecified);
        if self.variant == Variant::Unknown {
            return if !r.allow && reason == DenyReason::UnknownSubPort && r.assignment_id == 0 {
                Ok(false)
            } else {
                bad("expected unknown_sub_port")
            };
        }
        if r.assignment_id != aid[self.pair.0 as usize] {
            return bad("wrong assignment");
        }
        if self.variant == Variant::Service {
            return if !r.allow && reason == DenyReason::UsageMismatch {
                Ok(false)
            } else {
                bad("expected usage_mismatch")
            };
        }
        if reason == DenyReason::Rejected && !r.allow {
            if !tainted {
                return bad("rejected, but no reject keyword was ever sent to this pair");
            }
            let since_ok = if self.variant == Variant::SkipSince {
                r.since_ms == 0
            } else {
                // The reject binds at the MO's time, or at the server's clock if the MO was
                // (up to 30 s) ahead of it.
                reject_ts.iter().any(|&t| r.since_ms <= t && r.since_ms >= t - 120_000)
            };
            return if since_ok { Ok(true) } else { bad("since_ms is not the time of a reject MO sent") };
        }
        if self.must_reject {
            return bad("not rejected, but the MO \"R\" was acknowledged before the question");
        }
        let expect = if self.variant == Variant::BadText {
            (false, DenyReason::BadSignature)
        } else {
            (true, DenyReason::Unspecified)
        };
        if (r.allow, reason) == expect && r.since_ms == 0 {
            Ok(false)
        } else {
            bad("expected allow (or bad_signature for the bad text)")
        }
    }
}

/// Latency samples and counts of one kind of call.
#[derive(Debug, Default, Clone)]
pub struct Lat {
    /// Microseconds of each successful call.
    pub us: Vec<u32>,
    /// Calls that failed with an allowed status (while the daemon was killed or stopping).
    pub failed: u64,
    /// Items (checks in batches, records ingested or traced).
    pub items: u64,
}

impl Lat {
    /// Records one successful call of `items` items that took `d`.
    pub fn ok(&mut self, d: Duration, items: u64) {
        self.us.push(d.as_micros().min(u32::MAX as u128) as u32);
        self.items += items;
    }

    /// The p-th percentile in ms (0 when empty).
    pub fn pct_ms(&self, p: f64) -> f64 {
        if self.us.is_empty() {
            return 0.0;
        }
        let mut v = self.us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p / 100.0).round() as usize;
        f64::from(v[i]) / 1000.0
    }
}

/// The daemon as a child process, with its pid (for SIGKILL and `/proc`).
pub struct Proc {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The last lines of its stderr.
    pub log: Arc<Mutex<VecDeque<String>>>,
}

/// Lines of the daemon's stderr kept for a failure message.
const LOG_LINES_KEPT: usize = 400;

impl Proc {
    /// Starts `BIN --data-dir DIR --listen 127.0.0.1:0 EXTRA…` and waits (up to 120 s) until ready.
    pub fn start(bin: &str, dir: &Path, extra: &[&str]) -> Proc {
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("portlog-server ready") {
                    let addr = line.split_whitespace().find_map(|w| w.strip_prefix("addr=")).map(str::to_string);
                    if let Some(t) = tx.take() {
                        let _ = t.send(addr);
                    }
                }
                let mut l = sink.lock().unwrap();
                if l.len() >= LOG_LINES_KEPT {
                    l.pop_front();
                }
                l.push_back(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Some(a)) => a,
            _ => {
                let _ = child.kill();
                panic!("the daemon never said it was ready: {:?}", log.lock().unwrap());
            }
        };
        Proc { child: Some(child), addr, log }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `http://ADDR`.
    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM (the exit is collected by [`Proc::wait`]).
    pub fn sigterm(&self) {
        let st = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().unwrap();
        assert!(st.success());
    }

    /// Waits at most `limit` for the exit status; `None` past it (the daemon is then killed).
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of its stderr, joined.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `(VmRSS, VmHWM)` of process `pid` in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
