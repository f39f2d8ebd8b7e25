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

/// A response body: the guest's, or one the host wrote (an error page).
pub type ServerBody = Either<HostBody, Full<Bytes>>;

/// Why a request got no response from the guest.
#[derive(Debug)]
pub enum HandlerFailure {
    /// The guest answered with an error code.
    Guest(ErrorCode),
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
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_concurrent_requests: 1000,
            request_timeout: Some(Duration::from_secs(60)),
        }
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
    pre: ProxyPre<T>,
    make_store: F,
    options: ServeOptions,
    shutdown: S,
) -> std::io::Result<()>
where
    T: WasiHttpView + Send + 'static,
    F: Fn() -> wasmtime::Result<Store<T>> + Send + Sync + 'static,
    S: Future<Output = ()>,
{
    let make_store = Arc::new(make_store);
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_requests));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
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
    pre: ProxyPre<T>,
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
        Ok(_slot) => match make_store() {
            Err(error) => {
                tracing::error!(target: "weir::serve", "cannot set up an instance: {error:#}");
                host_response(http::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
            Ok(store) => match handle(pre, store, request, options.request_timeout).await {
                Ok(response) => response.map(Either::Left),
                Err(failure) => {
                    tracing::error!(target: "weir::serve", "{method} {path}: {failure}");
                    host_response(http::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                }
            },
        },
    };
    tracing::info!(
        target: "weir::serve",
        "{peer} {method} {path} -> {} in {:.1} ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    response
}
