//! Bodies: `incoming-body` (read by the guest as a Weir input stream), `outgoing-body`
//! (written by the guest through a Weir output stream, with the output-stream permit
//! contract), `future-trailers`, and [`HostBody`], the `http_body::Body` hyper sends.
//!
//! Memory per body is bounded: an incoming body holds at most [`INCOMING_FRAMES`] frames
//! read ahead, an outgoing one at most [`OUTGOING_CHUNKS`] writes of at most
//! [`WRITE_PERMIT`] bytes each.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, oneshot};
use wasmtime::component::Resource;
use weir::io::{
    InputStream, InputStreamResource, OutputStream, OutputStreamResource, Pollable, StreamError,
    StreamResult,
};

use crate::WasiHttpCtxView;
use crate::bindings::wasi::http::types::{
    ErrorCode, HostFutureTrailers, HostIncomingBody, HostOutgoingBody,
};
use crate::error::{HttpError, internal};
use crate::fields::FieldsResource;

/// Frames of an incoming body read ahead of the guest.
pub const INCOMING_FRAMES: usize = 4;
/// Writes of an outgoing body queued for the peer.
pub const OUTGOING_CHUNKS: usize = 2;
/// The most bytes one `check-write` grants on an outgoing body.
pub const WRITE_PERMIT: usize = 64 << 10;

type TrailersResult = Result<Option<http::HeaderMap>, ErrorCode>;

/// The guest's `incoming-body`.
pub struct IncomingBodyResource {
    stream: Option<IncomingBodyStream>,
    trailers: oneshot::Receiver<TrailersResult>,
}

impl IncomingBodyResource {
    /// Reads `body` on a task of the current runtime, at most [`INCOMING_FRAMES`] ahead.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<ErrorCode> + Send,
    {
        let (data, receiver) = mpsc::channel(INCOMING_FRAMES);
        let (trailers_sender, trailers) = oneshot::channel();
        weir::spawn(pump(body, data, trailers_sender));
        IncomingBodyResource {
            stream: Some(IncomingBodyStream {
                receiver,
                buffered: Bytes::new(),
                failed: None,
                ended: false,
            }),
            trailers,
        }
    }
}

/// Moves `body`'s frames to the guest's stream, then its trailers (or error) to the
/// trailers channel. Once the guest has dropped the stream, the rest of the data is
/// discarded so that the trailers can still arrive.
async fn pump<B>(
    mut body: B,
    data: mpsc::Sender<Result<Bytes, ErrorCode>>,
    trailers: oneshot::Sender<TrailersResult>,
) where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<ErrorCode> + Send,
{
    let mut data = Some(data);
    loop {
        match body.frame().await {
            None => {
                let _ = trailers.send(Ok(None));
                return;
            }
            Some(Err(error)) => {
                let code: ErrorCode = error.into();
                if let Some(data) = &data {
                    let _ = data.send(Err(code.clone())).await;
                }
                let _ = trailers.send(Err(code));
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(bytes) => {
                    if let Some(sender) = &data
                        && sender.send(Ok(bytes)).await.is_err()
                    {
                        data = None;
                    }
                }
                Err(frame) => {
                    if let Ok(map) = frame.into_trailers() {
                        let _ = trailers.send(Ok(Some(map)));
                        return;
                    }
                }
            },
        }
    }
}

/// The input stream of an incoming body.
pub struct IncomingBodyStream {
    receiver: mpsc::Receiver<Result<Bytes, ErrorCode>>,
    buffered: Bytes,
    failed: Option<ErrorCode>,
    ended: bool,
}

impl IncomingBodyStream {
    fn take(&mut self, max: usize) -> Bytes {
        let n = max.min(self.buffered.len());
        self.buffered.split_to(n)
    }
}

#[async_trait::async_trait]
impl InputStream for IncomingBodyStream {
    fn read(&mut self, max: usize) -> StreamResult<Bytes> {
        if !self.buffered.is_empty() {
            return Ok(self.take(max));
        }
        if let Some(code) = self.failed.take() {
            return Err(HttpError::stream_error(code));
        }
        if self.ended {
            return Err(StreamError::Closed);
        }
        match self.receiver.try_recv() {
            Ok(Ok(bytes)) => {
                self.buffered = bytes;
                Ok(self.take(max))
            }
            Ok(Err(code)) => Err(HttpError::stream_error(code)),
            Err(mpsc::error::TryRecvError::Empty) => Ok(Bytes::new()),
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.ended = true;
                Err(StreamError::Closed)
            }
        }
    }

    async fn ready(&mut self) {
        if !self.buffered.is_empty() || self.failed.is_some() || self.ended {
            return;
        }
        match self.receiver.recv().await {
            Some(Ok(bytes)) => self.buffered = bytes,
            Some(Err(code)) => self.failed = Some(code),
            None => self.ended = true,
        }
    }
}

/// The guest's `future-trailers`.
pub enum FutureTrailersResource {
    Waiting(oneshot::Receiver<TrailersResult>),
    Ready(TrailersResult),
    Taken,
}

fn body_task_gone() -> ErrorCode {
    internal("the body's reader ended without trailers")
}

#[async_trait::async_trait]
impl Pollable for FutureTrailersResource {
    async fn ready(&mut self) {
        if let FutureTrailersResource::Waiting(receiver) = self {
            let result = receiver.await.unwrap_or_else(|_| Err(body_task_gone()));
            *self = FutureTrailersResource::Ready(result);
        }
    }
}

/// What the guest writes into an outgoing body, in order.
pub(crate) enum Outgoing {
    Data(Bytes),
    /// `finish` was called (with these trailers).
    End(Option<http::HeaderMap>),
}

/// The body hyper sends for an outgoing request or response: what the guest writes. If the
/// guest drops its `outgoing-body` without `finish`, the body ends with an error, so the
/// peer sees an incomplete message rather than a complete one.
pub struct HostBody {
    receiver: Option<mpsc::Receiver<Outgoing>>,
    size: Option<u64>,
    counters: Option<Arc<BodyCounters>>,
    /// For a channel's body: whether it may carry bytes (see [`HostBody::from_channel`]).
    may_have_body: bool,
    /// Told when hyper read the body's end.
    on_end: Option<oneshot::Sender<()>>,
}

impl HostBody {
    /// A body carrying what `receiver` delivers (for a WASI 0.3 request sent through the
    /// 0.2 client). `may_have_body` is false only for a body known to be empty (a GET
    /// sent with it has no body framing at all); `on_end` is told once hyper read the
    /// end, and dropped unsent if hyper gave up on the body before that.
    pub(crate) fn from_channel(
        receiver: mpsc::Receiver<Outgoing>,
        may_have_body: bool,
        on_end: oneshot::Sender<()>,
    ) -> Self {
        HostBody {
            receiver: Some(receiver),
            size: None,
            counters: None,
            may_have_body,
            on_end: Some(on_end),
        }
    }

    /// A body with nothing in it.
    pub fn empty() -> Self {
        HostBody {
            receiver: None,
            size: Some(0),
            counters: None,
            may_have_body: false,
            on_end: None,
        }
    }

    /// For a request that HTTP/1.1 sends without a body unless it declares one (GET, HEAD,
    /// CONNECT without `content-length`): if the guest has written nothing yet, the body
    /// becomes empty by declaration (later bytes are the body-size error, never silently
    /// dropped) and this returns `false`; if it has written bytes, returns `true`: the
    /// request must then be sent chunked.
    pub(crate) fn has_body_or_declare_empty(&self) -> bool {
        let Some(counters) = &self.counters else {
            return self.may_have_body;
        };
        if counters.written.load(Ordering::Relaxed) > 0 || counters.limit().is_some() {
            return true;
        }
        // Guest calls on one store never overlap, so no write lands in between.
        counters.limit.store(0, Ordering::Relaxed);
        false
    }
}

impl http_body::Body for HostBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let Some(receiver) = self.receiver.as_mut() else {
            return Poll::Ready(None);
        };
        match receiver.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Outgoing::Data(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Poll::Ready(Some(Outgoing::End(trailers))) => {
                self.receiver = None;
                if let Some(on_end) = self.on_end.take() {
                    let _ = on_end.send(());
                }
                Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))))
            }
            Poll::Ready(None) => {
                self.receiver = None;
                Poll::Ready(Some(Err(HttpError(internal(
                    "the guest dropped the body without finishing it",
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.receiver.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.size {
            Some(n) => http_body::SizeHint::with_exact(n),
            None => http_body::SizeHint::default(),
        }
    }
}

/// Which message an outgoing body belongs to (for its size error).
#[derive(Clone, Copy, Debug)]
pub enum BodySide {
    Request,
    Response,
}

impl BodySide {
    fn size_error(self, written: u64) -> ErrorCode {
        match self {
            BodySide::Request => ErrorCode::HttpRequestBodySize(Some(written)),
            BodySide::Response => ErrorCode::HttpResponseBodySize(Some(written)),
        }
    }
}

/// What an outgoing body's resource, stream and [`HostBody`] share.
#[derive(Debug)]
struct BodyCounters {
    written: AtomicU64,
    /// The most bytes the body may carry: its `content-length`, 0 for a request sent
    /// without a body, or [`NO_LIMIT`].
    limit: AtomicU64,
}

const NO_LIMIT: u64 = u64::MAX;

impl BodyCounters {
    fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::Relaxed)).filter(|&limit| limit != NO_LIMIT)
    }

    /// Nothing may be written any more, so a peer that stopped reading loses nothing.
    fn complete(&self) -> bool {
        self.limit() == Some(self.written.load(Ordering::Relaxed))
    }
}

/// The guest's `outgoing-body`.
pub struct OutgoingBodyResource {
    sender: mpsc::Sender<Outgoing>,
    stream: Option<OutgoingBodyStream>,
    counters: Arc<BodyCounters>,
    side: BodySide,
}

impl OutgoingBodyResource {
    /// A body and the [`HostBody`] that carries what the guest writes into it;
    /// `content_length` (from the message's headers) is enforced.
    pub fn new(content_length: Option<u64>, side: BodySide) -> (Self, HostBody) {
        let (sender, receiver) = mpsc::channel(OUTGOING_CHUNKS);
        let counters = Arc::new(BodyCounters {
            written: AtomicU64::new(0),
            limit: AtomicU64::new(content_length.unwrap_or(NO_LIMIT)),
        });
        let stream = OutgoingBodyStream {
            sender: sender.clone(),
            permit: None,
            counters: counters.clone(),
            side,
        };
        (
            OutgoingBodyResource {
                sender,
                stream: Some(stream),
                counters: counters.clone(),
                side,
            },
            HostBody {
                receiver: Some(receiver),
                size: content_length,
                counters: Some(counters),
                may_have_body: true,
                on_end: None,
            },
        )
    }
}

/// The output stream of an outgoing body.
pub struct OutgoingBodyStream {
    sender: mpsc::Sender<Outgoing>,
    /// Room reserved in the channel for the next write.
    permit: Option<mpsc::OwnedPermit<Outgoing>>,
    counters: Arc<BodyCounters>,
    side: BodySide,
}

#[async_trait::async_trait]
impl OutputStream for OutgoingBodyStream {
    fn check_write(&mut self) -> StreamResult<usize> {
        if self.permit.is_some() {
            return Ok(WRITE_PERMIT);
        }
        match self.sender.clone().try_reserve_owned() {
            Ok(permit) => {
                self.permit = Some(permit);
                Ok(WRITE_PERMIT)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Ok(0),
            // A complete body needs no reader: a write of more bytes is the size error.
            Err(mpsc::error::TrySendError::Closed(_)) if self.counters.complete() => {
                Ok(WRITE_PERMIT)
            }
            // The peer went away (the connection closed).
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StreamError::Closed),
        }
    }

    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let len = bytes.len() as u64;
        let total = self.counters.written.load(Ordering::Relaxed) + len;
        if let Some(limit) = self.counters.limit()
            && total > limit
        {
            // More than the declared `content-length`: the WIT's body-size error.
            return Err(HttpError::stream_error(self.side.size_error(total)));
        }
        if len == 0 {
            return Ok(());
        }
        let Some(permit) = self.permit.take() else {
            // The host checked the permit before calling us.
            return Err(StreamError::trap("outgoing-body write without a permit"));
        };
        self.counters.written.store(total, Ordering::Relaxed);
        permit.send(Outgoing::Data(bytes));
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        // Written bytes are already queued for the connection.
        Ok(())
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        if self.permit.is_some() {
            return Ok(WRITE_PERMIT);
        }
        match self.sender.clone().reserve_owned().await {
            Ok(permit) => {
                self.permit = Some(permit);
                Ok(WRITE_PERMIT)
            }
            Err(_) if self.counters.complete() => Ok(WRITE_PERMIT),
            Err(_) => Err(StreamError::Closed),
        }
    }
}

impl HostIncomingBody for WasiHttpCtxView<'_> {
    fn stream(
        &mut self,
        body: Resource<IncomingBodyResource>,
    ) -> wasmtime::Result<Result<Resource<InputStreamResource>, ()>> {
        let Some(stream) = self.table.get_mut(&body)?.stream.take() else {
            return Ok(Err(()));
        };
        Ok(Ok(self
            .table
            .push_child(InputStreamResource::new(stream), &body)?))
    }

    fn finish(
        &mut self,
        body: Resource<IncomingBodyResource>,
    ) -> wasmtime::Result<Resource<FutureTrailersResource>> {
        // Traps if the body's stream is still alive (it is a child), as the WIT says.
        let body = self.table.delete(body)?;
        Ok(self
            .table
            .push(FutureTrailersResource::Waiting(body.trailers))?)
    }

    fn drop(&mut self, body: Resource<IncomingBodyResource>) -> wasmtime::Result<()> {
        self.table.delete(body)?;
        Ok(())
    }
}

impl HostFutureTrailers for WasiHttpCtxView<'_> {
    fn subscribe(
        &mut self,
        trailers: Resource<FutureTrailersResource>,
    ) -> wasmtime::Result<Resource<weir::io::PollableResource>> {
        weir::io::subscribe(self.table, &trailers)
    }

    #[allow(clippy::type_complexity)]
    fn get(
        &mut self,
        trailers: Resource<FutureTrailersResource>,
    ) -> wasmtime::Result<Option<Result<Result<Option<Resource<FieldsResource>>, ErrorCode>, ()>>>
    {
        let state = self.table.get_mut(&trailers)?;
        if let FutureTrailersResource::Waiting(receiver) = state {
            match receiver.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return Ok(None),
                Err(oneshot::error::TryRecvError::Closed) => {
                    *state = FutureTrailersResource::Ready(Err(body_task_gone()))
                }
                Ok(result) => *state = FutureTrailersResource::Ready(result),
            }
        }
        match std::mem::replace(state, FutureTrailersResource::Taken) {
            FutureTrailersResource::Ready(Ok(Some(map))) => {
                let fields = self.table.push(FieldsResource::immutable_from(&map))?;
                Ok(Some(Ok(Ok(Some(fields)))))
            }
            FutureTrailersResource::Ready(Ok(None)) => Ok(Some(Ok(Ok(None)))),
            FutureTrailersResource::Ready(Err(code)) => Ok(Some(Ok(Err(code)))),
            FutureTrailersResource::Taken | FutureTrailersResource::Waiting(_) => Ok(Some(Err(()))),
        }
    }

    fn drop(&mut self, trailers: Resource<FutureTrailersResource>) -> wasmtime::Result<()> {
        self.table.delete(trailers)?;
        Ok(())
    }
}

impl HostOutgoingBody for WasiHttpCtxView<'_> {
    fn write(
        &mut self,
        body: Resource<OutgoingBodyResource>,
    ) -> wasmtime::Result<Result<Resource<OutputStreamResource>, ()>> {
        let Some(stream) = self.table.get_mut(&body)?.stream.take() else {
            return Ok(Err(()));
        };
        Ok(Ok(self
            .table
            .push_child(OutputStreamResource::new(stream), &body)?))
    }

    fn finish(
        &mut self,
        body: Resource<OutgoingBodyResource>,
        trailers: Option<Resource<FieldsResource>>,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        // Traps if the body's stream is still alive (it is a child), as the WIT says.
        let body = self.table.delete(body)?;
        let trailers = match trailers {
            Some(trailers) => Some(self.table.delete(trailers)?.to_header_map()),
            None => None,
        };
        let written = body.counters.written.load(Ordering::Relaxed);
        if let Some(declared) = body.counters.limit()
            && written != declared
        {
            // Fewer bytes than the declared `content-length`: the message is cut short
            // (dropping the sender ends the host body with an error).
            return Ok(Err(body.side.size_error(written)));
        }
        // The stream is gone, so its queued chunks are in the channel; `End` follows them.
        // A peer that went away no longer needs it.
        match body.sender.try_send(Outgoing::End(trailers)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(end)) => {
                let sender = body.sender.clone();
                weir::spawn(async move {
                    let _ = sender.send(end).await;
                });
            }
        }
        Ok(Ok(()))
    }

    fn drop(&mut self, body: Resource<OutgoingBodyResource>) -> wasmtime::Result<()> {
        self.table.delete(body)?;
        Ok(())
    }
}
