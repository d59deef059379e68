//! `portlog.v1.Stats`: what the data directory holds.

use super::{blocking, State};
use portlog_client::proto::{stats_server::Stats, JournalStats, StatsReply, StatsRequest};
use std::path::Path;
use tonic::{Request, Response, Status};

/// The Stats service.
pub struct StatsApi {
    state: State,
}

impl StatsApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        StatsApi { state }
    }
}

/// Sum of the lengths of the files below `dir`. RocksDB creates and deletes files at any moment:
/// an entry that vanishes while it is listed is skipped, and an unreadable directory counts 0.
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

#[tonic::async_trait]
impl Stats for StatsApi {
    async fn get(&self, _req: Request<StatsRequest>) -> Result<Response<StatsReply>, Status> {
        let state = self.state.clone();
        let (st, rs, registry_bytes) = blocking(move || {
            let registry_bytes = dir_bytes(&state.engine.dir().join("registry"));
            Ok((state.log().stats(), state.registry().stats(), registry_bytes))
        })
        .await?;
        let bytes_per_message =
            if st.sealed_records > 0 { st.sealed_bytes as f64 / st.sealed_records as f64 } else { 0.0 };
        Ok(Response::new(StatsReply {
            records: st.records,
            sealed_segments: st.sealed_segments,
            open_segments: st.open_segments,
            bytes_on_disk: st.sealed_bytes + st.open_bytes,
            sealed_bytes: st.sealed_bytes,
            sealed_records: st.sealed_records,
            open_bytes: st.open_bytes,
            index_bytes: st.index_bytes,
            bytes_per_message,
            rejects: rs.rejects,
            assignments: rs.assignments,
            oldest_ts_ms: st.oldest_ts_ms,
            newest_ts_ms: st.newest_ts_ms,
            open_records: st.records.saturating_sub(st.sealed_records),
            dictionary_bytes: st.dict_bytes,
            registry_bytes,
            journal: st.journal.map(|j| JournalStats {
                frames: j.frames,
                appends: j.appends,
                records: j.records,
                bytes: j.bytes,
                sync_seconds: j.sync_ns as f64 / 1e9,
                checkpoints: j.checkpoints,
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::{state, NOW};
    use super::*;
    use portlog_engine::{Direction, PhoneNumber, Record, SubPort, Usage};

    #[tokio::test]
    async fn reports_open_and_sealed_figures_and_the_registry_size() {
        let dir = tempfile::tempdir().unwrap();
        let (st, _clock) = state(dir.path());
        let rec = |i: u64| Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse("1069012345601").unwrap(),
            peer: PhoneNumber::from_u64(13_800_138_000 + i).unwrap(),
            ts_ms: NOW - 1_000 + i as i64,
            usage: Some(Usage::Service),
            text: format!("验证码 {i:06}"),
        };
        st.engine.ingest((0..3).map(rec).collect()).unwrap();
        let api = StatsApi::new(st.clone());
        let r = api.get(Request::new(StatsRequest {})).await.unwrap().into_inner();
        assert_eq!((r.records, r.open_records, r.sealed_records), (3, 3, 0));
        assert!(r.open_bytes > 0 && r.registry_bytes > 0, "{r:?}");
        assert_eq!((r.bytes_per_message, r.dictionary_bytes), (0.0, 0));
        st.log().seal_all().unwrap();
        let r = api.get(Request::new(StatsRequest {})).await.unwrap().into_inner();
        assert_eq!((r.open_records, r.sealed_records), (0, 3));
        assert!(r.bytes_per_message > 0.0 && r.index_bytes > 0 && r.index_bytes < r.sealed_bytes, "{r:?}");
        // Three records make no dictionary (fewer than 8 blocks).
        assert_eq!(r.dictionary_bytes, 0);
        // These settings sync nothing, so there is no journal to report.
        assert_eq!(r.journal, None);
    }

    /// With a syncing log the reply carries the journal's counters: one append of three
    /// records is one frame, and the checkpoint taken at open is counted.
    #[tokio::test]
    async fn reports_the_journal_of_a_syncing_log() {
        use portlog_engine::{LogConfig, SyncPolicy};
        let dir = tempfile::tempdir().unwrap();
        let log = LogConfig { shards: 2, sync: SyncPolicy::Data, ..LogConfig::default() };
        let (st, _clock) = super::super::testing::state_with_log(dir.path(), Default::default(), log);
        let api = StatsApi::new(st.clone());
        let before = api.get(Request::new(StatsRequest {})).await.unwrap().into_inner().journal.unwrap();
        assert_eq!((before.frames, before.appends, before.records), (0, 0, 0));
        assert!(before.checkpoints >= 1, "{before:?}");
        let rec = |i: u64| Record {
            dir: Direction::Mt,
            sub_port: SubPort::parse(&format!("106901234560{i}")).unwrap(),
            peer: PhoneNumber::from_u64(13_800_138_000 + i).unwrap(),
            ts_ms: NOW - 1_000 + i as i64,
            usage: Some(Usage::Service),
            text: format!("验证码 {i:06}"),
        };
        st.engine.ingest((0..3).map(rec).collect()).unwrap();
        let j = api.get(Request::new(StatsRequest {})).await.unwrap().into_inner().journal.unwrap();
        assert_eq!((j.frames, j.appends, j.records), (1, 1, 3), "{j:?}");
        assert!(j.bytes > 0 && j.sync_seconds > 0.0, "{j:?}");
    }
}
