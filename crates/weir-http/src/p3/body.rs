//! Bodies of 0.3 requests and responses: the host's bodies (hyper's) as component-model
//! streams for the guest, and the guest's streams as hyper bodies.
//!
//! Memory stays bounded both ways: a host body is read only as far as the guest reads
//! (one frame kept at most), and a guest body reaches hyper through a channel of
//! [`FRAME_QUEUE`] frames of at most [`MAX_FRAME`] bytes.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body as _, Frame};
use tokio::sync::{mpsc, oneshot};
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Access, Destination, FutureConsumer, FutureProducer, FutureReader, Resource, Source,
    StreamConsumer, StreamProducer, StreamReader, StreamResult as Transfer,
};

use super::bindings::wasi::http::types::ErrorCode;
use super::types::{Body, MAX_FRAME, TrailersFuture};
use crate::fields::FieldsResource;
use crate::{HasHttp, WasiHttpCtxView};

/// A body received by the host.
pub type HostBody = http_body_util::combinators::BoxBody<Bytes, ErrorCode>;

/// Frames of a guest's body waiting for hyper.
pub(crate) const FRAME_QUEUE: usize = 4;

type Getter<U> = fn(&mut U) -> WasiHttpCtxView<'_>;

/// A message body as the guest reads it: its contents stream and trailers future.
pub(crate) fn into_guest_stream<U: 'static>(
    host: &mut Access<'_, U, HasHttp>,
    body: Body,
) -> wasmtime::Result<(StreamReader<u8>, TrailersFuture)> {
    match body {
        Body::Guest { contents, trailers } => {
            let contents = match contents {
                Some(contents) => contents,
                // A message built without contents: an empty stream.
                None => StreamReader::new(&mut *host, std::iter::empty::<u8>())?,
            };
            Ok((contents, trailers))
        }
        Body::Host(body) => {
            let (sender, receiver) = oneshot::channel();
            let getter = host.getter();
            let contents = StreamReader::new(
                &mut *host,
                HostContents {
                    body,
                    leftover: Bytes::new(),
                    trailers: Some(sender),
                },
            )?;
            let trailers = FutureReader::new(&mut *host, HostTrailers { receiver, getter })?;
            Ok((contents, trailers))
        }
    }
}

type Trailers = Result<Option<http::HeaderMap>, ErrorCode>;

/// A host body's data, read as far as the guest reads. Handed back to the host as a
/// response's contents (a handler answering with the request's own body), it is taken out
/// of the stream again ([`StreamReader::try_into`]) and its frames go to hyper as they are.
pub struct HostContents {
    body: HostBody,
    /// The part of the last frame the guest's buffer could not take.
    leftover: Bytes,
    /// Where the body's end goes: its trailers, or its error.
    trailers: Option<oneshot::Sender<Trailers>>,
}

impl HostContents {
    /// Whether any data may still come (false for a body known to be empty).
    pub(crate) fn may_have_data(&self) -> bool {
        !self.leftover.is_empty() || !self.body.is_end_stream()
    }

    fn end(&mut self, trailers: Trailers) -> Poll<wasmtime::Result<Transfer>> {
        if let Some(sender) = self.trailers.take() {
            let _ = sender.send(trailers);
        }
        Poll::Ready(Ok(Transfer::Dropped))
    }
}

impl<D> StreamProducer<D> for HostContents {
    type Item = u8;
    type Buffer = Option<u8>;

    fn try_into(
        me: Pin<Box<Self>>,
        ty: std::any::TypeId,
    ) -> Result<Box<dyn std::any::Any>, Pin<Box<Self>>> {
        if ty == std::any::TypeId::of::<HostContents>() {
            Ok(Box::new(*Pin::into_inner(me)))
        } else {
            Err(me)
        }
    }

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        destination: Destination<'a, u8, Option<u8>>,
        finish: bool,
    ) -> Poll<wasmtime::Result<Transfer>> {
        loop {
            if !self.leftover.is_empty() {
                let wanted = destination
                    .remaining(&mut store)
                    .unwrap_or(self.leftover.len());
                if wanted == 0 {
                    return Poll::Ready(Ok(Transfer::Completed));
                }
                let n = wanted.min(self.leftover.len());
                let mut direct = destination.as_direct(store, n);
                let room = direct.remaining();
                let n = n.min(room.len());
                room[..n].copy_from_slice(&self.leftover[..n]);
                direct.mark_written(n);
                self.leftover.advance(n);
                return Poll::Ready(Ok(Transfer::Completed));
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending if finish => return Poll::Ready(Ok(Transfer::Cancelled)),
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return self.end(Ok(None)),
                Poll::Ready(Some(Err(code))) => return self.end(Err(code)),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.leftover = data,
                    Err(frame) => {
                        let trailers = frame.into_trailers().ok();
                        return self.end(Ok(trailers));
                    }
                },
            }
        }
    }
}

/// A host body's trailers, for the guest once the contents ended.
struct HostTrailers<U: 'static> {
    receiver: oneshot::Receiver<Trailers>,
    getter: Getter<U>,
}

impl<U: 'static> FutureProducer<U> for HostTrailers<U> {
    type Item = Result<Option<Resource<FieldsResource>>, ErrorCode>;

    fn poll_produce(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<U>,
        finish: bool,
    ) -> Poll<wasmtime::Result<Option<Self::Item>>> {
        let trailers = match Pin::new(&mut self.receiver).poll(cx) {
            Poll::Pending if finish => return Poll::Ready(Ok(None)),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(trailers)) => trailers,
            // The guest dropped the contents before their end: no trailers were read.
            Poll::Ready(Err(_)) => Ok(None),
        };
        let item = match trailers {
            Ok(Some(map)) => {
                let fields = FieldsResource::immutable_from(&map);
                Ok(Some((self.getter)(store.data_mut()).table.push(fields)?))
            }
            Ok(None) => Ok(None),
            Err(code) => Err(code),
        };
        Poll::Ready(Ok(Some(item)))
    }
}

type Frames = mpsc::Sender<Result<Frame<Bytes>, ErrorCode>>;
type Reserving = Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    mpsc::OwnedPermit<Result<Frame<Bytes>, ErrorCode>>,
                    mpsc::error::SendError<()>,
                >,
            > + Send,
    >,
>;

/// Moves a guest's contents stream into the channel hyper's body reads, a frame of at
/// most [`MAX_FRAME`] bytes at a time; dropped, it says the data is all queued.
pub(crate) struct GuestContents {
    frames: Frames,
    reserving: Option<Reserving>,
    done: Option<oneshot::Sender<()>>,
}

impl GuestContents {
    /// `done`, if given, is told once the stream ended (for a caller that keeps a sender
    /// of `frames` and so cannot wait for the channel to close).
    pub(crate) fn new(frames: Frames, done: Option<oneshot::Sender<()>>) -> Self {
        GuestContents {
            frames,
            reserving: None,
            done,
        }
    }
}

impl<D> StreamConsumer<D> for GuestContents {
    type Item = u8;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<Transfer>> {
        let frames = self.frames.clone();
        let reserving = self
            .reserving
            .get_or_insert_with(|| Box::pin(frames.reserve_owned()));
        let permit = match reserving.as_mut().poll(cx) {
            Poll::Pending if finish => return Poll::Ready(Ok(Transfer::Cancelled)),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(permit)) => permit,
            // hyper dropped the body: the client went away.
            Poll::Ready(Err(_)) => return Poll::Ready(Ok(Transfer::Dropped)),
        };
        self.reserving = None;
        let mut source = source.as_direct(store);
        let bytes = source.remaining();
        if bytes.is_empty() {
            // A zero-length write asks whether the stream is writable: it is; the permit
            // goes back.
            drop(permit);
            return Poll::Ready(Ok(Transfer::Completed));
        }
        let n = bytes.len().min(MAX_FRAME);
        let chunk = Bytes::copy_from_slice(&bytes[..n]);
        source.mark_read(n);
        permit.send(Ok(Frame::data(chunk)));
        Poll::Ready(Ok(Transfer::Completed))
    }
}

impl Drop for GuestContents {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// Takes the value of a guest's trailers future, as a header map for hyper; dropped, it
/// says so on `done` (if given).
pub(crate) struct GuestTrailers<U: 'static> {
    sender: Option<oneshot::Sender<Trailers>>,
    getter: Getter<U>,
    done: Option<oneshot::Sender<()>>,
}

impl<U: 'static> GuestTrailers<U> {
    pub(crate) fn new(
        sender: oneshot::Sender<Trailers>,
        getter: Getter<U>,
        done: Option<oneshot::Sender<()>>,
    ) -> Self {
        GuestTrailers {
            sender: Some(sender),
            getter,
            done,
        }
    }
}

impl<U: 'static> Drop for GuestTrailers<U> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

impl<U: 'static> FutureConsumer<U> for GuestTrailers<U> {
    type Item = Result<Option<Resource<FieldsResource>>, ErrorCode>;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        mut store: StoreContextMut<U>,
        mut source: Source<'_, Self::Item>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(&mut store, &mut value)?;
        let trailers = match value {
            Some(Ok(Some(fields))) => {
                let fields = (self.getter)(store.data_mut()).table.delete(fields)?;
                Ok(Some(fields.to_header_map()))
            }
            Some(Ok(None)) | None => Ok(None),
            Some(Err(code)) => Err(code),
        };
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(trailers);
        }
        Poll::Ready(Ok(()))
    }
}

/// Where a response body reports how its transmission went.
pub(crate) type Transmitted = Option<oneshot::Sender<Result<(), ErrorCode>>>;

/// A response body for hyper: a host body passed through (a handler answering with a body
/// it received, trailers included), or the guest's: first the data of a host stream it
/// handed back unread (`direct`), then the data frames from the channel, then the
/// trailers. A guest body reports its transmission: done once hyper took its end, an
/// error if the body failed or hyper dropped it before its end (the client went away).
pub enum ServiceBody {
    Guest {
        direct: Option<HostContents>,
        /// Data frames; closed once the guest's stream ended.
        frames: mpsc::Receiver<Result<Frame<Bytes>, ErrorCode>>,
        /// The trailers future's value, read after the last data frame.
        trailers: Option<oneshot::Receiver<Trailers>>,
        transmitted: Transmitted,
    },
    Host {
        body: HostBody,
        /// Told when hyper read the end (the instance runs until then: it may be what
        /// feeds this body, as when a request it sends streams its own body).
        finished: Option<oneshot::Sender<()>>,
    },
}

impl ServiceBody {
    /// The next frame of `direct`, or `None` once it ended (its trailers or error then go
    /// where the guest's trailers future reads them, and the trailers channel carries them
    /// on).
    fn poll_direct(direct: &mut HostContents, cx: &mut Context<'_>) -> Poll<Option<Frame<Bytes>>> {
        if !direct.leftover.is_empty() {
            return Poll::Ready(Some(Frame::data(std::mem::take(&mut direct.leftover))));
        }
        let end = match Pin::new(&mut direct.body).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => return Poll::Ready(Some(Frame::data(data))),
                Err(frame) => Ok(frame.into_trailers().ok()),
            },
            Poll::Ready(Some(Err(code))) => Err(code),
            Poll::Ready(None) => Ok(None),
        };
        if let Some(sender) = direct.trailers.take() {
            let _ = sender.send(end);
        }
        Poll::Ready(None)
    }

    fn report(transmitted: &mut Transmitted, outcome: Result<(), ErrorCode>) {
        if let Some(transmitted) = transmitted.take() {
            let _ = transmitted.send(outcome);
        }
    }
}

impl Drop for ServiceBody {
    fn drop(&mut self) {
        // Dropped before its end was read: the response was not transmitted.
        if let ServiceBody::Guest { transmitted, .. } = self {
            ServiceBody::report(transmitted, Err(ErrorCode::ConnectionTerminated));
        }
    }
}

/// A body failure, as hyper reports it.
#[derive(Debug)]
pub struct BodyError(pub ErrorCode);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the guest's body failed: {:?}", self.0)
    }
}

impl std::error::Error for BodyError {}

impl http_body::Body for ServiceBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ServiceBody::Guest {
                direct,
                frames,
                trailers,
                transmitted,
            } => {
                if let Some(contents) = direct {
                    match ServiceBody::poll_direct(contents, cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                        Poll::Ready(None) => *direct = None,
                    }
                }
                match frames.poll_recv(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(frame))) => return Poll::Ready(Some(Ok(frame))),
                    Poll::Ready(Some(Err(code))) => {
                        ServiceBody::report(transmitted, Err(code.clone()));
                        return Poll::Ready(Some(Err(BodyError(code))));
                    }
                    Poll::Ready(None) => {}
                }
                let Some(receiver) = trailers else {
                    ServiceBody::report(transmitted, Ok(()));
                    return Poll::Ready(None);
                };
                let end = std::task::ready!(Pin::new(receiver).poll(cx));
                *trailers = None;
                match end {
                    // The trailers are the end: hyper took it.
                    Ok(Ok(Some(map))) => {
                        ServiceBody::report(transmitted, Ok(()));
                        Poll::Ready(Some(Ok(Frame::trailers(map))))
                    }
                    // No trailers (or the guest dropped the future without a value).
                    Ok(Ok(None)) | Err(_) => {
                        ServiceBody::report(transmitted, Ok(()));
                        Poll::Ready(None)
                    }
                    Ok(Err(code)) => {
                        ServiceBody::report(transmitted, Err(code.clone()));
                        Poll::Ready(Some(Err(BodyError(code))))
                    }
                }
            }
            ServiceBody::Host { body, finished } => {
                let frame = std::task::ready!(Pin::new(body).poll_frame(cx));
                if !matches!(frame, Some(Ok(_)))
                    && let Some(finished) = finished.take()
                {
                    let _ = finished.send(());
                }
                Poll::Ready(frame.map(|frame| frame.map_err(BodyError)))
            }
        }
    }
}
