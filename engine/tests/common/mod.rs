//! Shared helpers for the engine's integration tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use portlog_engine::{Direction, LogConfig, PhoneNumber, Record, SubPort, Usage};

/// 2026-05-01T00:00:00+08:00.
pub const DAY0_MS: i64 = 1_777_564_800_000;
pub const DAY_MS: i64 = 86_400_000;

pub fn rec(i: u64, sub_port: &str, ts_ms: i64) -> Record {
    let mo = i.is_multiple_of(5);
    Record {
        dir: if mo { Direction::Mo } else { Direction::Mt },
        sub_port: SubPort::parse(sub_port).unwrap(),
        peer: PhoneNumber::from_u64(13_800_000_000 + (i * 7_919) % 100_000).unwrap(),
        ts_ms,
        usage: if mo { None } else { Some(Usage::Commercial) },
        text: if mo {
            "R".into()
        } else {
            format!("【星河银行】第{i}号活动，满100减20。拒收请回复R")
        },
    }
}

/// A small configuration that seals often.
pub fn small_config(shards: u32) -> LogConfig {
    LogConfig {
        shards,
        segment_bytes_max: 1 << 20,
        block_bytes_max: 16 << 10,
        batch_bytes_max: 256 << 10,
        ..LogConfig::default()
    }
}

pub fn collect(it: portlog_engine::Records) -> Vec<Record> {
    it.collect::<Result<Vec<_>, _>>().unwrap()
}
