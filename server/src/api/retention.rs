//! `portlog.v1.Retention`: expiry on demand (`Engine::retention_run_with`, on a blocking thread)
//! and the history of runs. A real run is audited (`retention.run`, with the records deleted)
//! after it has acted; a refused call is audited as `denied:retention.run`. Dry runs are audited
//! too: they reveal what the log holds.

use super::{blocking, State};
use crate::audit::{Audit, Subject};
use crate::error;
use portlog_client::proto::{retention_server::Retention, RetentionHistoryRequest, RetentionReply, RetentionRequest};
use portlog_engine::{RetentionReport, RetentionRun, Trigger};
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Retention service.
pub struct RetentionApi {
    state: State,
}

impl RetentionApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        RetentionApi { state }
    }
}

/// A stream of recorded runs.
pub type ReportStream = Pin<Box<dyn Stream<Item = Result<RetentionReply, Status>> + Send>>;

/// An engine report as a wire reply.
pub fn report_to_proto(r: RetentionReport) -> RetentionReply {
    RetentionReply {
        segments_deleted: r.segments_deleted,
        records_deleted: r.records_deleted,
        bytes_freed: r.bytes_freed,
        rejects_purged: r.rejects_purged,
        dry_run: r.dry_run,
        consents_purged: r.consents_purged,
        now_ms: r.now_ms,
        cutoff_ms: r.cutoff_ms,
        oldest_record_ms: r.oldest_record_ms,
        duration_us: r.duration_us,
        warnings: r.warnings,
        seq: r.seq,
        months: r.months,
        open_segments_sealed: r.open_segments_sealed,
        refused: r.refused.unwrap_or_default(),
        trigger: match r.trigger {
            Trigger::OnDemand => "on_demand",
            Trigger::Schedule => "schedule",
        }
        .to_string(),
    }
}

#[tonic::async_trait]
impl Retention for RetentionApi {
    async fn run(&self, req: Request<RetentionRequest>) -> Result<Response<RetentionReply>, Status> {
        let audit = Audit::of(&self.state, &req);
        let r = req.into_inner();
        let action = if r.dry_run { "retention.dry_run" } else { "retention.run" };
        audit.admit(action, Subject::none()).await?;
        let opts = RetentionRun { dry_run: r.dry_run, confirm_clock_until_ms: r.confirm_clock_until_ms };
        let state = self.state.clone();
        let report = blocking(move || state.engine.retention_run_with(opts).map_err(error::status)).await?;
        let detail = format!(
            "segments={} records={} bytes={} rejects={} consents={}",
            report.segments_deleted,
            report.records_deleted,
            report.bytes_freed,
            report.rejects_purged,
            report.consents_purged
        );
        audit
            .record(action, Subject::none().detail(detail), report.records_deleted)
            .await
            .map_err(|st| Status::new(st.code(), format!("the retention run completed, but {}", st.message())))?;
        Ok(Response::new(report_to_proto(report)))
    }

    type HistoryStream = ReportStream;

    async fn history(&self, _req: Request<RetentionHistoryRequest>) -> Result<Response<Self::HistoryStream>, Status> {
        let state = self.state.clone();
        let reports = blocking(move || state.engine.retention_history().map_err(error::status)).await?;
        let replies: Vec<Result<RetentionReply, Status>> =
            reports.into_iter().map(|r| Ok(report_to_proto(r))).collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }
}
