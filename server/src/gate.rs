//! The tower layer in front of every service: authentication and roles (auth.rs's table), the
//! concurrent-call limit (RESOURCE_EXHAUSTED when full), the caller's identity put in the request
//! extensions, structured access logs and per-call metrics. A refused call is answered here,
//! except for the audited methods (`auth::AUDITED`), whose handlers audit the attempt and then
//! answer the refusal put in the extensions (`audit::Refusal`). Deadlines (`grpc-timeout`) are
//! enforced by tonic around this layer; streaming handlers also check them (api/mod.rs).

use crate::audit::Refusal;
use crate::auth::{self, Access, Denied, Tokens};
use crate::metrics::Metrics;
use http_body::Frame;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::Bytes;
use tonic::Status;

/// Shared state of the layer.
pub struct Gate {
    tokens: Option<Tokens>,
    permits: Arc<Semaphore>,
    calls_max: usize,
    metrics: Arc<Metrics>,
}

impl Gate {
    /// `tokens`: `None` for open access; `calls_max`: concurrent calls allowed.
    pub fn new(tokens: Option<Tokens>, calls_max: usize, metrics: Arc<Metrics>) -> Self {
        Gate { tokens, permits: Arc::new(Semaphore::new(calls_max)), calls_max, metrics }
    }
}

/// The layer.
#[derive(Clone)]
pub struct GateLayer(pub Arc<Gate>);

impl<S> tower::Layer<S> for GateLayer {
    type Service = GateService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GateService { inner, gate: self.0.clone() }
    }
}

/// The service the layer wraps around the router.
#[derive(Clone)]
pub struct GateService<S> {
    inner: S,
    gate: Arc<Gate>,
}

type BoxFut<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

fn refuse<E: Send + 'static>(st: Status) -> BoxFut<http::Response<Body>, E> {
    Box::pin(std::future::ready(Ok(st.into_http())))
}

impl<S> tower::Service<http::Request<Body>> for GateService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFut<http::Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let gate = self.gate.clone();
        let path = req.uri().path().to_owned();
        let method = Metrics::method_index(&path);
        let started = Instant::now();
        let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        let (caller, refusal) = match auth::authorize(gate.tokens.as_ref(), &path, authorization) {
            Ok(c) => (c, None),
            Err(d) => {
                let st = match d {
                    Denied::Unauthenticated(m) => Status::unauthenticated(m),
                    Denied::PermissionDenied(m) => Status::permission_denied(m),
                };
                let caller = auth::identify(gate.tokens.as_ref(), authorization);
                tracing::warn!(method = %path, caller = %caller.name, code = ?st.code(), reason = st.message(), "call refused");
                if !auth::audited(&path) {
                    gate.metrics.record_call(method, st.code() as i32, started.elapsed());
                    return refuse(st);
                }
                // An audited method: its handler writes `denied:ACTION` with the request's
                // arguments, then answers this refusal (crate::audit).
                (caller, Some(Refusal { code: st.code(), message: st.message().to_string() }))
            }
        };
        let permit = if auth::access(&path) == Access::Open {
            None
        } else {
            match gate.permits.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    gate.metrics.overloaded.fetch_add(1, Relaxed);
                    let st = Status::resource_exhausted(format!(
                        "server overloaded: {} calls in progress (concurrent_calls_max); retry later",
                        gate.calls_max
                    ));
                    tracing::warn!(method = %path, caller = %caller.name, "call refused: overloaded");
                    gate.metrics.record_call(method, st.code() as i32, started.elapsed());
                    return refuse(st);
                }
            }
        };
        tracing::debug!(method = %path, caller = %caller.name, "call");
        req.extensions_mut().insert(caller);
        if let Some(r) = refusal {
            req.extensions_mut().insert(r);
        }
        gate.metrics.in_flight.fetch_add(1, Relaxed);
        let mut guard = CallGuard { metrics: gate.metrics.clone(), method, started, code: None, _permit: permit };
        // The usual tower dance: the clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let res = inner.call(req).await?;
            // A trailers-only response (an error before any message) carries its status here.
            guard.code = grpc_status(res.headers());
            Ok(res.map(|b| Body::new(GuardedBody { inner: b, guard })))
        })
    }
}

fn grpc_status(h: &http::HeaderMap) -> Option<i32> {
    h.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok())
}

/// Lives as long as the call: holds the concurrency permit and records the outcome when the
/// response body ends (or the call is dropped: client gone, deadline).
struct CallGuard {
    metrics: Arc<Metrics>,
    method: usize,
    started: Instant,
    code: Option<i32>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Relaxed);
        // No status seen: the call was abandoned (cancelled by the client or its deadline).
        let code = self.code.unwrap_or(tonic::Code::Cancelled as i32);
        self.metrics.record_call(self.method, code, self.started.elapsed());
    }
}

struct GuardedBody {
    inner: Body,
    guard: CallGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &polled {
            if let Some(code) = f.trailers_ref().and_then(grpc_status) {
                this.guard.code = Some(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
