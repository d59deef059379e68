//! `portlog.v1.Stats`: what the data directory holds.

use super::{blocking, State};
use portlog_client::proto::{stats_server::Stats, StatsReply, StatsRequest};
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

#[tonic::async_trait]
impl Stats for StatsApi {
    async fn get(&self, _req: Request<StatsRequest>) -> Result<Response<StatsReply>, Status> {
        let state = self.state.clone();
        let (st, rs) = blocking(move || Ok((state.log().stats(), state.registry().stats()))).await?;
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
        }))
    }
}
