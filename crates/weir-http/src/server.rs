//! Serving a `wasi:http/proxy` component: one fresh instance per request.
//!
//! [`handle`] runs one request through a new instance of a pre-instantiated component;
//! [`serve`] accepts connections (HTTP/1.1 with keep-alive, and HTTP/2 without TLS, h2c),
//! limits concurrent requests (503 beyond the limit), gives a request that the guest does
//! not answer in time a 500, turns a trap or a handler that never answers into a 500 with
//! a log line, logs one access line per request (`weir::serve` target) and stops on a
//! shutdown signal after the requests in flight have finished.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use tokio::net::TcpListener;
use wasmtime::Store;

use crate::WasiHttpView;
use crate::bindings::ProxyPre;
use crate::bindings::wasi::http::types::ErrorCode;
use crate::body::HostBody;
use crate::types::{IncomingRequestResource, ResponseOutparamResource};

/// A response body: a 0.2 guest's, a 0.3 guest's, or one the host wrote (an error page).
pub type ServerBody = Either<Either<HostBody, crate::p3::ServiceBody>, Full<Bytes>>;

/// What [`serve`] runs per request: a 0.2 `proxy` component or a 0.3 `service` one.
pub enum Handler<T: 'static> {
    Proxy(ProxyPre<T>),
    /// A fresh instance per request.
    Service(crate::p3::bindings::ServicePre<T>),
    /// Instances reused across requests ([`crate::p3::ServicePool`]).
    SharedService(Arc<crate::p3::ServicePool<T>>),
}

impl<T: 'static> Clone for Handler<T> {
    fn clone(&self) -> Self {
        match self {
            Handler::Proxy(pre) => Handler::Proxy(pre.clone()),
            Handler::Service(pre) => Handler::Service(pre.clone()),
            Handler::SharedService(pool) => Handler::SharedService(pool.clone()),
        }
    }
}

impl<T: 'static> From<ProxyPre<T>> for Handler<T> {
    fn from(pre: ProxyPre<T>) -> Self {
        Handler::Proxy(pre)
    }
}

impl<T: 'static> From<crate::p3::bindings::ServicePre<T>> for Handler<T> {
    fn from(pre: crate::p3::bindings::ServicePre<T>) -> Self {
        Handler::Service(pre)
    }
}

/// Why a request got no response from the guest.
#[derive(Debug)]
pub enum HandlerFailure {
    /// The guest answered with an error code.
    Guest(ErrorCode),
    /// A WASI 0.3 guest answered with an error code (shown as text).
    ServiceError(String),
    /// The guest trapped before answering.
    Trap(wasmtime::Error),
    /// The handler returned without calling `response-outparam.set`.
    NoResponse,
    /// The handler did not answer within the request timeout.
    TimedOut(Duration),
}

impl std::fmt::Display for HandlerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerFailure::Guest(code) => write!(f, "the guest answered with an error: {code:?}"),
            HandlerFailure::ServiceError(code) => {
                write!(f, "the guest answered with an error: {code}")
            }
            HandlerFailure::Trap(error) => write!(f, "the guest trapped: {error:#}"),
            HandlerFailure::NoResponse => {
                f.write_str("the handler returned without setting a response")
            }
            HandlerFailure::TimedOut(limit) => {
                write!(f, "the handler did not answer within {limit:?}")
            }
        }
    }
}

/// Runs `request` through a new instance of `pre` in `store` (on a task of the current
/// runtime) and returns the guest's response head and streaming body. The instance lives
/// until the guest's handler returns, so the body keeps streaming after this returns.
pub async fn handle<T, B>(
    pre: ProxyPre<T>,
    mut store: Store<T>,
    request: http::Request<B>,
    timeout: Option<Duration>,
) -> Result<http::Response<HostBody>, HandlerFailure>
where
    T: WasiHttpView + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<ErrorCode> + Send,
{
    let (outparam, answer) = ResponseOutparamResource::new();
    let resources = {
        let view = store.data_mut().http();
        view.table
            .push(IncomingRequestResource::new(request))
            .and_then(|r| Ok((r, view.table.push(outparam)?)))
    };
    let (request, outparam) = resources.map_err(|e| HandlerFailure::Trap(e.into()))?;
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut store, request, outparam)
            .await
    });
    let answered = match timeout {
        Some(limit) => match tokio::time::timeout(limit, answer).await {
            Ok(answered) => answered,
            Err(_) => {
                task.abort();
                return Err(HandlerFailure::TimedOut(limit));
            }
        },
        None => answer.await,
    };
    match answered {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(HandlerFailure::Guest(code)),
        // The outparam was dropped unset: the handler ended (or trapped) without answering.
        Err(_) => match task.await {
            Ok(Ok(())) => Err(HandlerFailure::NoResponse),
            Ok(Err(trap)) => Err(HandlerFailure::Trap(trap)),
            Err(join) => Err(HandlerFailure::Trap(wasmtime::format_err!("{join}"))),
        },
    }
}

/// How [`serve`] runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Requests handled at once; more get a 503.
    pub max_concurrent_requests: usize,
    /// How long the guest may take to answer (set its response); `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// Where to count requests and their latencies, if anywhere.
    pub stats: Option<Arc<ServeStats>>,
    /// The most bytes of request head (HTTP/1.1, at least 8192) or header list (HTTP/2) a
    /// client may send; larger requests are refused (`431`, or an HTTP/2 stream error)
    /// before any instance exists. `None`: hyper's defaults (~400 KiB and 16 KiB).
    pub max_fields_size: Option<usize>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_concurrent_requests: 1000,
            request_timeout: Some(Duration::from_secs(60)),
            stats: None,
            max_fields_size: None,
        }
    }
}

/// Latency buckets: 8 per power of two of microseconds (12.5% wide), up to 2^41 µs.
const LATENCY_BUCKETS: usize = 320;

fn latency_bucket(micros: u64) -> usize {
    if micros < 8 {
        return micros as usize;
    }
    let log = 63 - micros.leading_zeros() as usize;
    let mantissa = ((micros >> (log - 3)) & 7) as usize;
    ((log - 2) * 8 + mantissa).min(LATENCY_BUCKETS - 1)
}

/// The smallest latency (µs) that falls in `bucket`.
fn bucket_floor(bucket: usize) -> u64 {
    if bucket < 8 {
        return bucket as u64;
    }
    let (log, mantissa) = (bucket / 8 + 2, (bucket % 8) as u64);
    (8 + mantissa) << (log - 3)
}

/// Request counters of a server: by status class, and a latency histogram (time from the
/// request's arrival to its response head).
pub struct ServeStats {
    by_class: [std::sync::atomic::AtomicU64; 6],
    latency: Box<[std::sync::atomic::AtomicU64]>,
}

impl Default for ServeStats {
    fn default() -> Self {
        ServeStats {
            by_class: Default::default(),
            latency: (0..LATENCY_BUCKETS).map(|_| Default::default()).collect(),
        }
    }
}

impl std::fmt::Debug for ServeStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl ServeStats {
    /// Counts one response.
    pub fn record(&self, status: http::StatusCode, latency: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let class = usize::from(status.as_u16() / 100).min(5);
        self.by_class[class].fetch_add(1, Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency[latency_bucket(micros)].fetch_add(1, Relaxed);
    }

    /// Responses counted so far.
    pub fn requests(&self) -> u64 {
        self.by_class
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .sum()
    }

    /// Responses with a status of `class`xx (`2` for 2xx).
    pub fn with_status_class(&self, class: usize) -> u64 {
        self.by_class
            .get(class)
            .map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// An upper bound of the `quantile` (0..=1) latency, within 12.5%; `None` before any
    /// request.
    pub fn latency_quantile(&self, quantile: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Some(Duration::from_micros(bucket_floor(bucket + 1)));
            }
        }
        None
    }

    /// One line: counts by class and latency percentiles.
    pub fn summary(&self) -> String {
        let ms = |q: f64| {
            self.latency_quantile(q).map_or("-".to_string(), |d| {
                format!("{:.2} ms", d.as_secs_f64() * 1e3)
            })
        };
        format!(
            "{} requests (2xx {}, 3xx {}, 4xx {}, 5xx {}); latency p50 <= {}, p90 <= {}, p99 <= {}, max <= {}",
            self.requests(),
            self.with_status_class(2),
            self.with_status_class(3),
            self.with_status_class(4),
            self.with_status_class(5),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(1.0)
        )
    }
}

fn host_response(status: http::StatusCode, text: &str) -> http::Response<ServerBody> {
    let mut response =
        http::Response::new(Either::Right(Full::new(Bytes::from(format!("{text}\n")))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves `pre` on `listener` until `shutdown` resolves, then waits for the connections
/// in flight to finish. `make_store` makes each request's store (its own WASI and HTTP
/// contexts).
pub async fn serve<T, F, S>(
    listener: TcpListener,
    pre: impl Into<Handler<T>>,
    make_store: F,
    options: ServeOptions,
    shutdown: S,
) -> std::io::Result<()>
where
    T: WasiHttpView + Send + 'static,
    F: Fn() -> wasmtime::Result<Store<T>> + Send + Sync + 'static,
    S: Future<Output = ()>,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_requests));
    serve_sharing_slots(listener, pre, make_store, options, slots, shutdown).await
}

/// [`serve`] with the request slots in `slots` (`options.max_concurrent_requests` is not
/// used): several servers sharing one semaphore share one limit, as `weir serve` does
/// with a server per core, each on its own listener of the same port.
pub async fn serve_sharing_slots<T, F, S>(
    listener: TcpListener,
    pre: impl Into<Handler<T>>,
    make_store: F,
    options: ServeOptions,
    slots: Arc<tokio::sync::Semaphore>,
    shutdown: S,
) -> std::io::Result<()>
where
    T: WasiHttpView + Send + 'static,
    F: Fn() -> wasmtime::Result<Store<T>> + Send + Sync + 'static,
    S: Future<Output = ()>,
{
    let pre: Handler<T> = pre.into();
    let make_store = Arc::new(make_store);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    if let Some(max) = options.max_fields_size {
        // hyper's HTTP/1.1 buffer cannot be smaller than 8192 bytes.
        builder.http1().max_buf_size(max.max(8192));
        builder
            .http2()
            .max_header_list_size(u32::try_from(max).unwrap_or(u32::MAX));
    }
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: keep serving the others.
                    tracing::warn!(target: "weir::serve", "accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (pre, make_store, slots, options) = (
            pre.clone(),
            make_store.clone(),
            slots.clone(),
            options.clone(),
        );
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let (pre, make_store, slots, options) = (
                    pre.clone(),
                    make_store.clone(),
                    slots.clone(),
                    options.clone(),
                );
                async move {
                    Ok::<_, Infallible>(
                        respond(pre, &*make_store, &slots, &options, peer, request).await,
                    )
                }
            });
        let connection = builder
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(target: "weir::serve", "connection from {peer}: {error}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

async fn respond<T, F>(
    pre: Handler<T>,
    make_store: &F,
    slots: &tokio::sync::Semaphore,
    options: &ServeOptions,
    peer: std::net::SocketAddr,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<ServerBody>
where
    T: WasiHttpView + Send + 'static,
    F: Fn() -> wasmtime::Result<Store<T>>,
{
    let started = Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let response = match slots.try_acquire() {
        Err(_) => host_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "too many requests at once",
        ),
        // A shared instance has its own store: none is made per request.
        Ok(_slot) => match match pre {
            Handler::SharedService(_) => Ok(None),
            _ => make_store().map(Some),
        } {
            Err(error) => {
                tracing::error!(target: "weir::serve", "cannot set up an instance: {error:#}");
                host_response(http::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
            Ok(store) => match run_handler(pre, store, request, options.request_timeout).await {
                Ok(response) => response,
                Err(failure) => {
                    tracing::error!(target: "weir::serve", "{method} {path}: {failure}");
                    host_response(http::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                }
            },
        },
    };
    let elapsed = started.elapsed();
    if let Some(stats) = &options.stats {
        stats.record(response.status(), elapsed);
    }
    tracing::info!(
        target: "weir::serve",
        "{peer} {method} {path} -> {} in {:.1} ms",
        response.status().as_u16(),
        elapsed.as_secs_f64() * 1e3
    );
    response
}

/// Runs one request through either kind of handler.
async fn run_handler<T>(
    pre: Handler<T>,
    store: Option<Store<T>>,
    request: http::Request<hyper::body::Incoming>,
    timeout: Option<Duration>,
) -> Result<http::Response<ServerBody>, HandlerFailure>
where
    T: WasiHttpView + Send + 'static,
{
    let store =
        || store.ok_or_else(|| HandlerFailure::Trap(wasmtime::format_err!("no store was made")));
    match pre {
        Handler::Proxy(pre) => Ok(handle(pre, store()?, request, timeout)
            .await?
            .map(|body| Either::Left(Either::Left(body)))),
        Handler::Service(pre) => {
            let request = request.map(crate::p3::host_body);
            Ok(crate::p3::handle(pre, store()?, request, timeout)
                .await?
                .map(|body| Either::Left(Either::Right(body))))
        }
        Handler::SharedService(pool) => {
            let request = request.map(crate::p3::host_body);
            Ok(pool
                .handle(request, timeout)
                .await?
                .map(|body| Either::Left(Either::Right(body))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_contiguous_and_quantiles_bound_the_samples() {
        for bucket in 0..LATENCY_BUCKETS - 1 {
            let floor = bucket_floor(bucket);
            assert_eq!(latency_bucket(floor), bucket, "floor of {bucket}");
            assert_eq!(latency_bucket(bucket_floor(bucket + 1) - 1), bucket);
        }
        let stats = ServeStats::default();
        assert_eq!(stats.latency_quantile(0.5), None);
        for ms in 1..=100 {
            stats.record(http::StatusCode::OK, Duration::from_millis(ms));
        }
        stats.record(
            http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(2),
        );
        assert_eq!(stats.requests(), 101);
        assert_eq!(stats.with_status_class(2), 100);
        assert_eq!(stats.with_status_class(5), 1);
        let p50 = stats.latency_quantile(0.5).unwrap();
        assert!(
            p50 >= Duration::from_millis(51) && p50 <= Duration::from_millis(58),
            "{p50:?}"
        );
        let max = stats.latency_quantile(1.0).unwrap();
        assert!(
            max >= Duration::from_secs(2) && max <= Duration::from_millis(2250),
            "{max:?}"
        );
        assert!(
            stats.summary().starts_with("101 requests (2xx 100,"),
            "{}",
            stats.summary()
        );
    }
}
