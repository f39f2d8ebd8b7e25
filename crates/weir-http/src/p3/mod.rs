//! `wasi:http@0.3.0` for the Weir WASI host: the `service` world's `handler` export served
//! by [`handle`] (what `weir serve` runs for a 0.3 component), over the same fields, limits
//! and server as 0.2.
//!
//! - Requests, responses and request options are host resources; bodies are
//!   component-model streams and trailers futures ([`body`]).
//! - An incoming request has scheme `http`, the authority of its URI or `Host` header, and
//!   a `path-with-query` that is never `none` (`/` at least).
//! - A request or response that is dropped without being sent resolves its transmission
//!   future to an error, and closes the body stream and trailers future it held.
//! - A sent request's transmission future resolves once hyper took the end of its body
//!   (the last bytes and trailers are then with the connection); to an error if the body
//!   failed or the connection gave it up before its end.
//! - A GET (HEAD, CONNECT) is sent without body framing only when its body is known to be
//!   empty (no contents, or a received empty body passed on); otherwise it goes chunked,
//!   so no byte the guest writes is dropped.
//! - `wasi:http/client.send` sends through the 0.2 client: the same `http-request` rules,
//!   connection pool, TLS and timeouts; the response body is streamed to the guest as it
//!   arrives.

pub mod bindings;
pub mod body;
mod client;
mod reuse;
mod types;

use std::future::Future as _;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};
use wasmtime::Store;
use wasmtime::component::{Accessor, Linker};

pub use body::{HostBody, ServiceBody};
pub use reuse::{InstanceReuse, ServicePool};
pub use types::{Request, RequestOptions, Response};

use crate::server::HandlerFailure;
use crate::{HasHttp, WasiHttpView};
use bindings::wasi::http::types::ErrorCode;

/// The export a WASI 0.3 HTTP service is called through.
const HANDLER_INTERFACE: &str = "wasi:http/handler@0.3.0";

/// The interfaces [`add_to_linker_async`] adds, by name without the version.
pub const INTERFACES: &[&str] = &["wasi:http/types", "wasi:http/client"];

/// Whether `component` is a WASI 0.3 HTTP service: it exports `wasi:http/handler@0.3.x`.
pub fn is_service(component: &wasmtime::component::Component) -> bool {
    component
        .get_export_index(None, HANDLER_INTERFACE)
        .is_some()
}

/// Adds `wasi:http/types@0.3.0` and `wasi:http/client@0.3.0`. Pair it with
/// [`weir::p3::add_to_linker_async`].
pub fn add_to_linker_async<T: WasiHttpView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    bindings::wasi::http::types::add_to_linker::<T, HasHttp>(linker, crate::view::<T>)?;
    bindings::wasi::http::client::add_to_linker::<T, HasHttp>(linker, crate::view::<T>)?;
    Ok(())
}

/// Adds everything a 0.3 `service` component imports: Weir's WASI 0.2 and 0.3 interfaces
/// (the preview1 adapter inside Rust guests imports 0.2) and `wasi:http` 0.3.
pub fn add_service_to_linker_async<T: WasiHttpView + weir::WasiView + Send + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    weir::add_to_linker_async(linker)?;
    weir::p3::add_to_linker_async(linker)?;
    add_to_linker_async(linker)
}

/// Runs `request` through a new instance of `pre` in `store` (on a task of the current
/// runtime) and returns the guest's response head and streaming body. The instance lives
/// until its response body and trailers were all queued for hyper (a body passed through
/// from elsewhere: until hyper read it) and the guest's tasks exited: a task may go on
/// after it returned its response. With a `timeout`, it is stopped once that much time
/// passed since the request came, whatever still runs.
pub async fn handle<T>(
    pre: bindings::ServicePre<T>,
    mut store: Store<T>,
    request: http::Request<HostBody>,
    timeout: Option<Duration>,
) -> Result<http::Response<ServiceBody>, HandlerFailure>
where
    T: WasiHttpView + Send + 'static,
{
    let (answer, answered) = oneshot::channel();
    let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
    let task = tokio::spawn(async move {
        let service = pre.instantiate_async(&mut store).await?;
        store
            .run_concurrent(async move |accessor| {
                respond(accessor, &service, request, answer).await?;
                run_until_tasks_exit(accessor, deadline).await;
                Ok(())
            })
            .await?
    });
    let answered = match timeout {
        Some(limit) => match tokio::time::timeout(limit, answered).await {
            Ok(answered) => answered,
            Err(_) => {
                task.abort();
                return Err(HandlerFailure::TimedOut(limit));
            }
        },
        None => answered.await,
    };
    match answered {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(HandlerFailure::ServiceError(format!("{code:?}"))),
        Err(_) => match task.await {
            Ok(Ok(())) => Err(HandlerFailure::NoResponse),
            Ok(Err(trap)) => Err(HandlerFailure::Trap(trap)),
            Err(join) => Err(HandlerFailure::Trap(wasmtime::format_err!("{join}"))),
        },
    }
}

/// Lets the guest's tasks run on after their responses, until all exited or `deadline`.
pub(crate) async fn run_until_tasks_exit<T>(
    accessor: &Accessor<T>,
    deadline: Option<tokio::time::Instant>,
) {
    let mut exited = std::pin::pin!(std::future::poll_fn(|cx| {
        accessor.poll_no_interesting_tasks(cx)
    }));
    // Usually the guest is done when its response is: then no timer is set.
    let done_already =
        std::future::poll_fn(|cx| std::task::Poll::Ready(exited.as_mut().poll(cx).is_ready()));
    if done_already.await {
        return;
    }
    match deadline {
        Some(deadline) => {
            if tokio::time::timeout_at(deadline, exited).await.is_err() {
                tracing::warn!(
                    target: "weir::serve",
                    "the guest still ran after its response when the request's time was up; \
                     its instance was stopped"
                );
            }
        }
        None => exited.await,
    }
}

pub(crate) type Answer = oneshot::Sender<Result<http::Response<ServiceBody>, ErrorCode>>;

/// Calls the guest's handler and streams its response to `answer`, until the body and
/// trailers were queued for hyper (the store must run until then: it drives the streams).
pub(crate) async fn respond<T: WasiHttpView + Send + 'static>(
    accessor: &Accessor<T>,
    service: &bindings::Service,
    request: http::Request<HostBody>,
    answer: Answer,
) -> wasmtime::Result<()> {
    let request = accessor.with(|mut access| {
        access
            .data_mut()
            .http()
            .table
            .push(Request::incoming(request))
    })?;
    let response = match service
        .wasi_http_handler()
        .call_handle(accessor, request)
        .await?
    {
        Ok(response) => {
            accessor.with(|mut access| access.data_mut().http().table.delete(response))?
        }
        Err(code) => {
            let _ = answer.send(Err(code));
            return Ok(());
        }
    };
    let Response {
        status,
        headers,
        body,
        transmitted,
    } = response;
    let head = |body: ServiceBody| -> http::Response<ServiceBody> {
        let mut response = http::Response::new(body);
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        *response.headers_mut() = headers.to_header_map();
        response
    };
    let (contents, trailers) = match body {
        types::Body::Host(body) => {
            let (finished, finished_out) = oneshot::channel();
            let finished = Some(finished);
            let _ = answer.send(Ok(head(ServiceBody::Host { body, finished })));
            // The instance keeps running until hyper read the end.
            let outcome = finished_out.await.map_err(|_| client_gone());
            if let Some(transmitted) = transmitted {
                let _ = transmitted.send(outcome);
            }
            return Ok(());
        }
        types::Body::Guest { contents, trailers } => (contents, trailers),
    };
    // The body reads the data, then the trailers. This task waits until the guest's stream
    // and future were taken into the channels (the store must run until then), and for
    // the body's end only if the guest listens for it: usually no word has to come back
    // from the connection's task.
    let (frames, frames_out) = mpsc::channel(body::FRAME_QUEUE);
    let (trailers_in, trailers_out) = oneshot::channel();
    let (contents_done, mut contents_done_out) = oneshot::channel();
    let (trailers_done, mut trailers_done_out) = oneshot::channel();
    // A host stream handed back unread (the request's own body) goes to hyper as it is.
    let mut direct = None;
    accessor.with(|mut access| -> wasmtime::Result<()> {
        match contents.map(|stream| stream.try_into::<body::HostContents>(&mut access)) {
            Some(Ok(host)) => direct = Some(host),
            Some(Err(contents)) => contents.pipe(
                &mut access,
                body::GuestContents::new(frames, Some(contents_done)),
            )?,
            None => {}
        }
        trailers.pipe(
            &mut access,
            body::GuestTrailers::new(trailers_in, crate::view::<T>, Some(trailers_done)),
        )?;
        Ok(())
    })?;
    // The body tells how its transmission went; the guest hears it only while the store
    // runs, so this task waits for it if the guest still holds the future.
    let (outcome, outcome_out) = oneshot::channel();
    let body = ServiceBody::Guest {
        direct,
        frames: frames_out,
        trailers: Some(trailers_out),
        transmitted: Some(outcome),
    };
    // Whether a consumer is gone (true again once the signal was taken).
    let gone =
        |done: &mut oneshot::Receiver<()>| !matches!(done.try_recv(), Err(TryRecvError::Empty));
    // Head and body reach hyper together when the guest writes a short body at once: give
    // it a couple of turns first (microseconds). A head sent alone costs the connection's
    // task a wakeup per part (head, data, end, trailers); with instance reuse on the
    // work-stealing runtime this took `/` from ~24,000 to ~34,000 requests/s at 16
    // connections (docs/benchmarks.md).
    for _ in 0..HEAD_WAIT_TURNS {
        if gone(&mut contents_done_out) && gone(&mut trailers_done_out) {
            break;
        }
        tokio::task::yield_now().await;
    }
    if answer.send(Ok(head(body))).is_err() {
        // The request was given up on (timed out); the guest's streams still end.
        tracing::debug!(target: "weir::serve", "response not wanted any more");
    }
    // Both fire when their consumer is dropped, also when there was none (the sender was
    // dropped above).
    if !gone(&mut contents_done_out) {
        let _ = contents_done_out.await;
    }
    if !gone(&mut trailers_done_out) {
        let _ = trailers_done_out.await;
    }
    if let Some(transmitted) = transmitted.filter(|guest| !guest.is_closed()) {
        let _ = transmitted.send(outcome_out.await.unwrap_or_else(|_| Err(client_gone())));
    }
    Ok(())
}

/// Times a response head waits for the guest to go on with its body. Each is a
/// `yield_now` of the task running the store: tokio polls it again only after other work,
/// and the store's event loop runs the guest in between.
const HEAD_WAIT_TURNS: usize = 2;

fn client_gone() -> ErrorCode {
    ErrorCode::ConnectionTerminated
}

/// The body of a request hyper received, for [`handle`].
pub fn host_body<B>(body: B) -> HostBody
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt;
    body.map_err(|error| {
        tracing::debug!(target: "weir::serve", "request body failed: {error}");
        ErrorCode::HttpProtocolError
    })
    .boxed()
}
