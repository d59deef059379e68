//! Every gRPC request through the service layer, fuzzed against the real daemon.
//!
//! The methods are walked from the compiled descriptor sets the daemon serves (as the
//! access-control test does), so a new method is fuzzed without a change here. Each gets
//! `PORTLOG_REQUEST_FUZZ_ROUNDS` (default 200) seeded inputs through a raw-bytes codec: plausible
//! protobuf (fields 1-10 of every wire type, with values that reach the validators: numbers and
//! sub-ports of every length, times, huge and negative varints, UTF-8 texts with `【】` and `R`,
//! nested messages) and mutations of it (truncated, a byte flipped), and one in eight pure
//! random bytes; client and bidirectional streams get one to three messages.
//!
//! Every answer must be a definite one: OK, or an error status with a message, of a code a
//! handler gives for bad input (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS,
//! OUT_OF_RANGE, RESOURCE_EXHAUSTED), or INTERNAL only for a message tonic could not decode.
//! Never UNKNOWN, UNAVAILABLE or CANCELLED (a handler panicking or the daemon dying), never no
//! answer within 20 s. Afterwards the daemon is alive and SERVING, printed no panic, and still
//! ingests and traces. A failure prints the seed (`PORTLOG_REQUEST_FUZZ_SEED` reruns it).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/methods.rs"]
mod methods;

use common::Daemon;
use methods::{compiled_services, Method, RawCodec};
use portlog_engine::io::SplitMix64;
use prost::bytes::Bytes;
use std::time::Duration;
use tonic::transport::Channel;
use tonic::{Code, Status};

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Strings that reach the validators behind the fields.
fn text(rng: &mut SplitMix64) -> Vec<u8> {
    let s: String = match rng.below(10) {
        0 => String::new(),
        1 => (0..rng.below(25)).map(|_| char::from(b'0' + rng.below(10) as u8)).collect(),
        2 => rng.pick(&["13800138000", "+8613800138000", "008613800138000", "1380013800", "99999999999"]).to_string(),
        3 => rng.pick(&["1069012345601", "10690", "106901234560123456789", "1069x", "2069012345601"]).to_string(),
        4 => rng.pick(&["2026-05-01T09:30:00+08:00", "2026-13-01T00:00:00Z", "yesterday", "0"]).to_string(),
        5 => {
            rng.pick(&["R", " r ", "Ｒ", "TD", "【星河银行】满100减20。拒收请回复R", "【】", "拒收请回复R"]).to_string()
        }
        6 => rng.pick(&["commercial", "service", "public", "mt", "mo", "admin", "*"]).to_string(),
        7 => "x".repeat(rng.below(5000) as usize),
        _ => {
            let bytes: Vec<u8> = (0..rng.below(40)).map(|_| rng.next_u64() as u8).collect();
            return bytes;
        }
    };
    s.into_bytes()
}

fn message(rng: &mut SplitMix64, depth: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(7) {
        let field = 1 + rng.below(10);
        match rng.below(if depth < 2 { 5 } else { 4 }) {
            0 => {
                varint(&mut out, field << 3);
                let v = *rng.pick(&[
                    0,
                    1,
                    2,
                    3,
                    u64::MAX,
                    i64::MAX as u64,
                    (-1i64) as u64,
                    13_800_138_000,
                    1_069_012_345_601,
                    1_777_600_000_000,
                    4_000_000_000_000,
                    1_000_000,
                ]);
                varint(&mut out, if rng.below(4) == 0 { rng.next_u64() } else { v });
            }
            1 => {
                varint(&mut out, (field << 3) | 1);
                out.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
            2 => {
                varint(&mut out, (field << 3) | 5);
                out.extend_from_slice(&(rng.next_u64() as u32).to_le_bytes());
            }
            3 => {
                let t = text(rng);
                varint(&mut out, (field << 3) | 2);
                varint(&mut out, t.len() as u64);
                out.extend_from_slice(&t);
            }
            _ => {
                let m = message(rng, depth + 1);
                varint(&mut out, (field << 3) | 2);
                varint(&mut out, m.len() as u64);
                out.extend_from_slice(&m);
            }
        }
    }
    out
}

fn input(rng: &mut SplitMix64) -> Vec<u8> {
    match rng.below(8) {
        0 => (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect(),
        1 => {
            let mut m = message(rng, 0);
            let cut = rng.below(m.len() as u64 + 1) as usize;
            m.truncate(cut);
            m
        }
        2 => {
            let mut m = message(rng, 0);
            if !m.is_empty() {
                let i = rng.below(m.len() as u64) as usize;
                m[i] ^= 1 << rng.below(8);
            }
            m
        }
        _ => message(rng, 0),
    }
}

/// Calls `path` with `msgs` and drains the answer (up to 10,000 messages).
async fn call(ch: &Channel, path: &str, msgs: Vec<Bytes>) -> Status {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    if let Err(e) = grpc.ready().await {
        return Status::unavailable(format!("channel not ready: {e}"));
    }
    let req = tonic::Request::new(tokio_stream::iter(msgs));
    let path = http::uri::PathAndQuery::try_from(path).unwrap();
    let fut = async {
        match grpc.streaming(req, path.clone(), RawCodec).await {
            Err(st) => st,
            Ok(resp) => {
                let mut s = resp.into_inner();
                // Health.Watch streams status changes for as long as the call lasts.
                let most = if path.as_str() == "/grpc.health.v1.Health/Watch" { 1 } else { 10_000 };
                for _ in 0..most {
                    match s.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => return Status::ok("ended"),
                        Err(st) => return st,
                    }
                }
                Status::ok("still sending after the messages read")
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| Status::deadline_exceeded("no answer within 20 s"))
}

fn definite(st: &Status) -> bool {
    match st.code() {
        Code::Ok => true,
        Code::InvalidArgument
        | Code::NotFound
        | Code::FailedPrecondition
        | Code::AlreadyExists
        | Code::OutOfRange
        | Code::ResourceExhausted => !st.message().is_empty(),
        // tonic's own answer to bytes that are not the method's message.
        Code::Internal => st.message().contains("decod"),
        _ => false,
    }
}

#[test]
fn every_method_answers_arbitrary_requests_with_a_definite_status_and_the_daemon_survives() {
    let seed: u64 = std::env::var("PORTLOG_REQUEST_FUZZ_SEED").map_or_else(
        |_| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
                % 1_000_000_007
        },
        |s| s.parse().expect("PORTLOG_REQUEST_FUZZ_SEED: a number"),
    );
    let rounds: u64 = std::env::var("PORTLOG_REQUEST_FUZZ_ROUNDS").map_or(200, |s| s.parse().expect("a number"));
    eprintln!("request fuzz: seed {seed}, {rounds} inputs per method");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (calls, failures, codes) = rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(d.http()).unwrap().connect().await.unwrap();
        let methods: Vec<Method> = compiled_services()
            .into_iter()
            .filter(|(s, _)| s.starts_with("portlog.v1.") || s == "grpc.health.v1.Health")
            .flat_map(|(_, ms)| ms)
            .collect();
        assert!(methods.len() > 20, "{methods:?}");
        let mut rng = SplitMix64::new(seed);
        let mut failures = Vec::new();
        let mut codes = std::collections::BTreeMap::<String, u64>::new();
        let mut calls = 0u64;
        for m in &methods {
            for i in 0..rounds {
                let n = if m.client_streaming { 1 + rng.below(3) } else { 1 };
                let msgs: Vec<Bytes> = (0..n).map(|_| Bytes::from(input(&mut rng))).collect();
                let shown: Vec<String> = msgs.iter().map(|b| format!("{:02x?}", &b[..b.len().min(48)])).collect();
                let st = call(&ch, &m.path, msgs).await;
                calls += 1;
                *codes.entry(format!("{:?}", st.code())).or_default() += 1;
                if !definite(&st) {
                    failures.push(format!(
                        "{} ({}) input {i}: {:?} {:?}; sent {shown:?}",
                        m.path,
                        m.kind(),
                        st.code(),
                        st.message()
                    ));
                }
            }
        }
        // Alive, serving, and still doing its job.
        let mut h = tonic_health::pb::health_client::HealthClient::new(ch.clone());
        let status = h.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap();
        assert_eq!(status.into_inner().status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
        (calls, failures, codes)
    });
    let run = common::portlog(
        &["--endpoint", &d.http(), "ingest", "-"],
        Some(&format!(
            "{{\"dir\":\"mt\",\"sub_port\":\"1069012345601\",\"peer\":\"13800138000\",\"ts\":{},\"usage\":\"service\",\"text\":\"after the fuzzing\"}}\n",
            common::now_ms()
        )),
    );
    assert_eq!(run.code, 0, "ingest after the fuzzing: {}", run.stderr);
    let trace = common::portlog(&["--endpoint", &d.http(), "--json", "trace", "--number", "13800138000"], None);
    assert!(trace.stdout.contains("after the fuzzing"), "trace after the fuzzing: {} {}", trace.stdout, trace.stderr);
    let log = d.stderr();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    eprintln!("request fuzz: {calls} calls, codes {codes:?}");
    assert!(
        failures.is_empty(),
        "seed {seed} (rerun: PORTLOG_REQUEST_FUZZ_SEED={seed}): {} of {calls} calls without a definite answer:\n{}",
        failures.len(),
        failures.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
}
