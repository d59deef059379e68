//! `portlog.v1.Rejects`: the reject registry. Every call is audited before its answer goes out:
//! a listing or an export with the number of rejects returned, a registration or an import as a
//! change; a refused call as `denied:…`.

use super::{assignment_id, at_or_now, blocking, parse_number, parse_sub_port, State};
use crate::audit::{Audit, Subject};
use crate::error;
use portlog_client::proto::{
    rejects_server::Rejects, AddRejectRequest, ExportChunk, ExportRequest, ImportReply, ImportRequest,
    ListByNumberRequest, ListBySubPortRequest, Reject, RejectFileFormat,
};
use portlog_engine::registry::{self, RejectFormat, RejectInput, RejectSource};
use std::io::Read;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The Rejects service.
pub struct RejectsApi {
    state: State,
}

impl RejectsApi {
    /// The service over `state`.
    pub fn new(state: State) -> Self {
        RejectsApi { state }
    }
}

/// A stream of rejects.
pub type RejectStream = Pin<Box<dyn Stream<Item = Result<Reject, Status>> + Send>>;

/// A stream of exported bytes.
pub type ExportStream = Pin<Box<dyn Stream<Item = Result<ExportChunk, Status>> + Send>>;

/// Bytes per exported chunk.
const EXPORT_CHUNK_BYTES: usize = 256 << 10;

/// Import chunks buffered between the network and the parsing thread.
const IMPORT_CHUNKS_BUFFERED: usize = 8;

fn reject_to_proto(r: &registry::Reject, in_force: bool) -> Reject {
    Reject {
        sub_port: r.sub_port.clone(),
        assignment_id: u64::from(r.assignment),
        number: r.number.clone(),
        at_ms: r.at_ms,
        source: r.source.as_str().to_string(),
        text: r.text.clone(),
        in_force,
        registered: false,
    }
}

fn format_of(f: i32) -> Result<RejectFormat, Status> {
    match RejectFileFormat::try_from(f) {
        Ok(RejectFileFormat::Unspecified | RejectFileFormat::JsonLines) => Ok(RejectFormat::JsonLines),
        Ok(RejectFileFormat::Csv) => Ok(RejectFormat::Csv),
        Err(_) => Err(error::invalid("format", format!("{f} is not a format (1 JSON lines, 2 CSV)"))),
    }
}

fn stream_of<T: Send + 'static>(items: Vec<T>) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
    Box::pin(tokio_stream::iter(items.into_iter().map(Ok)))
}

/// One message from the network side of an import to its parser.
enum Piece {
    /// The next bytes.
    Data(Vec<u8>),
    /// The whole file was received.
    End,
}

/// The import's input: the bytes of the call's chunks, read on the blocking side. The channel
/// closing without [`Piece::End`] (the call failed, passed a limit or was cancelled) is a read
/// error, never a clean end: a truncated file must not be imported.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Piece>,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(c)) => (self.cur, self.pos) = (c, 0),
                Some(Piece::End) => self.ended = true,
                None => return Err(std::io::Error::other("the import call ended before its last chunk")),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[tonic::async_trait]
impl Rejects for RejectsApi {
    type ListBySubPortStream = RejectStream;
    type ListByNumberStream = RejectStream;
    type ExportStream = ExportStream;

    async fn add(&self, req: Request<AddRejectRequest>) -> Result<Response<Reject>, Status> {
        let audit = Audit::of(&self.state, &req);
        let r = req.into_inner();
        let subject = Subject::none().number(&r.number).sub_port(&r.sub_port);
        audit.admit("reject.add", subject.clone()).await?;
        let input = RejectInput {
            sub_port: parse_sub_port("sub_port", &r.sub_port)?.to_string(),
            number: parse_number("number", &r.number)?,
            at_ms: at_or_now(r.at_ms),
            source: RejectSource::Api,
            text: r.text,
            assignment: None,
        };
        let state = self.state.clone();
        let (outcome, in_force) = blocking(move || {
            let mut out = state.registry().register_rejects(&[input]).map_err(error::status)?;
            let o = out.pop().ok_or_else(|| Status::internal("the registry answered no outcome"))?;
            let in_force = state.registry().assignment(o.reject.assignment).is_ok_and(|a| a.in_force(state.now_ms()));
            Ok((o, in_force))
        })
        .await?;
        let detail = format!(
            "assignment={}{}",
            outcome.reject.assignment,
            if outcome.registered { "" } else { " already_rejected" }
        );
        audit
            .record("reject.add", subject.detail(detail), 0)
            .await
            .map_err(|st| Status::new(st.code(), format!("the reject was registered, but {}", st.message())))?;
        let mut reply = reject_to_proto(&outcome.reject, in_force);
        reply.registered = outcome.registered;
        Ok(Response::new(reply))
    }

    async fn list_by_sub_port(
        &self,
        req: Request<ListBySubPortRequest>,
    ) -> Result<Response<Self::ListBySubPortStream>, Status> {
        let audit = Audit::of(&self.state, &req);
        let r = req.into_inner();
        let subject = Subject::none().sub_port(&r.sub_port);
        let asked = if r.assignment_id == 0 { String::new() } else { format!("assignment={}", r.assignment_id) };
        audit.admit("reject.list", subject.clone().detail(asked)).await?;
        let sub_port = parse_sub_port("sub_port", &r.sub_port)?;
        let assignment = assignment_id("assignment_id", r.assignment_id)?;
        let state = self.state.clone();
        let (rejects, id, in_force) = blocking(move || {
            let reg = state.registry();
            // Resolve the assignment first, so that the audit names it even for an empty list.
            let id = match assignment {
                Some(id) => id,
                None => reg.in_force(sub_port.as_str(), state.now_ms()).map(|a| a.id).ok_or_else(|| {
                    Status::not_found(format!(
                        "no assignment of sub-port {sub_port} is in force now; name one with assignment_id"
                    ))
                })?,
            };
            let rejects = reg.rejects_of_sub_port(sub_port.as_str(), Some(id)).map_err(error::status)?;
            let in_force = reg.assignment(id).is_ok_and(|a| a.in_force(state.now_ms()));
            Ok((rejects, id, in_force))
        })
        .await?;
        audit.record("reject.list", subject.detail(format!("assignment={id}")), rejects.len() as u64).await?;
        Ok(Response::new(stream_of(rejects.iter().map(|x| reject_to_proto(x, in_force)).collect())))
    }

    async fn list_by_number(
        &self,
        req: Request<ListByNumberRequest>,
    ) -> Result<Response<Self::ListByNumberStream>, Status> {
        let audit = Audit::of(&self.state, &req);
        let r = req.into_inner();
        let subject = Subject::none().number(&r.number);
        audit.admit("reject.list", subject.clone()).await?;
        let number = parse_number("number", &r.number)?;
        let state = self.state.clone();
        let rejects = blocking(move || state.registry().rejects_of_number(number).map_err(error::status)).await?;
        audit.record("reject.list", subject, rejects.len() as u64).await?;
        Ok(Response::new(stream_of(rejects.iter().map(|(x, in_force)| reject_to_proto(x, *in_force)).collect())))
    }

    async fn import(&self, req: Request<Streaming<ImportRequest>>) -> Result<Response<ImportReply>, Status> {
        let audit = Audit::of(&self.state, &req);
        // A refused import is audited without reading its stream.
        audit.admit("reject.import", Subject::none()).await?;
        let mut stream = req.into_inner();
        let first = stream.message().await?.ok_or_else(|| error::invalid("sub_port", "the import stream was empty"))?;
        let sub_port = parse_sub_port("sub_port", &first.sub_port)?;
        let assignment = assignment_id("assignment_id", first.assignment_id)?;
        let format = format_of(first.format)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(IMPORT_CHUNKS_BUFFERED);
        let state = self.state.clone();
        let sp = sub_port.clone();
        let worker = crate::api::spawn_background(move || {
            let input = std::io::BufReader::new(ChunkReader { rx, cur: Vec::new(), pos: 0, ended: false });
            state.registry().import_rejects(sp.as_str(), assignment, input, format).map_err(error::status)
        });
        let (bytes_max, messages_max) = (self.state.cfg.import_bytes_max, self.state.cfg.stream_messages_max);
        let (mut bytes, mut messages) = (first.data.len() as u64, 1u64);
        let mut refused = None;
        let mut next = Some(first.data);
        loop {
            if let Some(data) = next.take() {
                if tx.send(Piece::Data(data)).await.is_err() {
                    break; // the parser stopped (a limit): its result says why
                }
            }
            match stream.message().await {
                Ok(Some(m)) => {
                    bytes += m.data.len() as u64;
                    messages += 1;
                    if bytes > bytes_max || messages > messages_max {
                        refused = Some(Status::resource_exhausted(format!(
                            "the import is larger than {bytes_max} bytes (import_bytes_max) or {messages_max} messages (stream_messages_max); nothing was imported: split the file"
                        )));
                        break;
                    }
                    next = Some(m.data);
                }
                Ok(None) => break,
                Err(st) => {
                    refused = Some(st);
                    break;
                }
            }
        }
        if let Some(st) = refused {
            // The channel closes without its end: the parser fails, nothing is imported.
            return Err(st);
        }
        // The parser may have stopped early (a limit): then this send fails and its result says
        // why.
        let _ = tx.send(Piece::End).await;
        drop(tx);
        let report = worker.await.map_err(|e| Status::internal(format!("import task failed: {e}")))??;
        let detail = format!(
            "assignment={} rows={} registered={} already={}",
            report.assignment, report.rows, report.registered, report.already
        );
        audit
            .record("reject.import", Subject::none().sub_port(sub_port.as_str()).detail(detail), 0)
            .await
            .map_err(|st| Status::new(st.code(), format!("the import was registered, but {}", st.message())))?;
        Ok(Response::new(ImportReply {
            assignment_id: u64::from(report.assignment),
            rows: report.rows,
            registered: report.registered,
            already: report.already,
        }))
    }

    async fn export(&self, req: Request<ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        let audit = Audit::of(&self.state, &req);
        let r = req.into_inner();
        let subject = Subject::none().sub_port(&r.sub_port);
        audit.admit("reject.export", subject.clone()).await?;
        let sub_port = parse_sub_port("sub_port", &r.sub_port)?;
        let assignment = assignment_id("assignment_id", r.assignment_id)?;
        let format = format_of(r.format)?;
        let state = self.state.clone();
        let (bytes, n) = blocking(move || {
            let mut out = Vec::new();
            let n = state
                .registry()
                .export_rejects(sub_port.as_str(), assignment, format, &mut out)
                .map_err(error::status)?;
            Ok((out, n))
        })
        .await?;
        let detail = if r.assignment_id == 0 { String::new() } else { format!("assignment={}", r.assignment_id) };
        audit.record("reject.export", subject.detail(detail), n).await?;
        let chunks: Vec<ExportChunk> =
            bytes.chunks(EXPORT_CHUNK_BYTES).map(|c| ExportChunk { data: c.to_vec() }).collect();
        Ok(Response::new(stream_of(chunks)))
    }
}
