//! Weir's byte streams as component-model `stream<u8>`s: the one piece of 0.3 glue that
//! stdio and TCP share.
//!
//! - [`ByteConsumer`] moves the guest's bytes from its memory into a Weir
//!   [`OutputStream`], never more than the stream's `check-write` grants (host memory stays
//!   bounded by the stream's own buffer), through the zero-copy slice writer where the
//!   stream has one. Once the guest drops its end, a finishing step (flush for stdio,
//!   FIN for TCP) runs before the interface's future resolves.
//! - [`ByteProducer`] reads at most what the guest asked for from a Weir [`InputStream`],
//!   straight into the guest's buffer.
//!
//! Both report their end through a `future<result<_, E>>` made by [`outcome_future`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use wasmtime::AsContextMut;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Access, Destination, FutureReader, Source, StreamConsumer, StreamProducer,
    StreamResult as Transfer,
};

use crate::io::{InputStream, MAX_READ_BYTES, OutputStream, SliceWriter, StreamError};
use crate::linker::HasWasi;

/// What a stream's future resolves to.
pub(super) type Outcome<E> = Result<(), E>;

/// The error code a failed stream reports to the guest, or the trap it must raise.
pub(super) type ErrorMap<E> = fn(StreamError) -> wasmtime::Result<E>;

/// A future for the guest that resolves with what `outcome` receives (`Ok` if its sender
/// is dropped unsent: nothing went wrong).
pub(super) fn outcome_future<U: 'static, E>(
    store: &mut Access<'_, U, HasWasi>,
    outcome: oneshot::Receiver<Outcome<E>>,
) -> wasmtime::Result<FutureReader<Outcome<E>>>
where
    E: wasmtime::component::Lower + wasmtime::component::Lift + Send + Sync + 'static,
{
    FutureReader::new(store, async move {
        Ok::<_, wasmtime::Error>(outcome.await.unwrap_or(Ok(())))
    })
}

/// A future already resolved to `outcome` (for a call refused before any stream exists).
pub(super) fn resolved_future<U: 'static, E>(
    store: &mut Access<'_, U, HasWasi>,
    outcome: Outcome<E>,
) -> wasmtime::Result<FutureReader<Outcome<E>>>
where
    E: wasmtime::component::Lower + wasmtime::component::Lift + Send + Sync + 'static,
{
    let (sender, receiver) = oneshot::channel();
    let _ = sender.send(outcome);
    outcome_future(store, receiver)
}

type Waiting<S> = Pin<Box<dyn Future<Output = (S, Option<StreamError>)> + Send>>;

/// A Weir stream that is either at hand or moved into the future waiting for it to be
/// ready (the stream's `ready` borrows it, so the future owns it meanwhile).
enum Slot<S> {
    Idle(S),
    Waiting(Waiting<S>),
    Gone,
}

impl<S> Slot<S> {
    /// Moves the idle stream into the future `wait` makes of it.
    fn start_waiting(&mut self, wait: impl FnOnce(S) -> Waiting<S>) {
        if let Slot::Idle(stream) = std::mem::replace(self, Slot::Gone) {
            *self = Slot::Waiting(wait(stream));
        }
    }

    /// Polls the waiting future, if any; `Ready(error)` once the stream is back at hand.
    fn poll_back(&mut self, cx: &mut Context<'_>) -> Poll<Option<StreamError>> {
        match self {
            Slot::Idle(_) | Slot::Gone => Poll::Ready(None),
            Slot::Waiting(waiting) => match waiting.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready((stream, error)) => {
                    *self = Slot::Idle(stream);
                    Poll::Ready(error)
                }
            },
        }
    }
}

/// The last step of a consumed stream, once the guest dropped its end: it gets the Weir
/// stream and says whether everything accepted was delivered.
pub(super) type Finish<E> = Box<
    dyn FnOnce(Box<dyn OutputStream>) -> Pin<Box<dyn Future<Output = Outcome<E>> + Send>> + Send,
>;

/// Moves bytes from the guest's `stream<u8>` into a Weir output stream.
pub(super) struct ByteConsumer<E: Send + 'static> {
    stream: Slot<Box<dyn OutputStream>>,
    slice_writer: Option<Arc<dyn SliceWriter>>,
    outcome: Option<oneshot::Sender<Outcome<E>>>,
    error_code: ErrorMap<E>,
    finish: Option<Finish<E>>,
}

impl<E: Send + 'static> ByteConsumer<E> {
    pub(super) fn new(
        stream: Box<dyn OutputStream>,
        outcome: oneshot::Sender<Outcome<E>>,
        error_code: ErrorMap<E>,
        finish: Finish<E>,
    ) -> Self {
        ByteConsumer {
            slice_writer: stream.slice_writer(),
            stream: Slot::Idle(stream),
            outcome: Some(outcome),
            error_code,
            finish: Some(finish),
        }
    }

    /// Ends the stream with `error` reported through the future (or a trap).
    fn fail(&mut self, error: StreamError) -> Poll<wasmtime::Result<Transfer>> {
        self.stream = Slot::Gone;
        let code = match (self.error_code)(error) {
            Ok(code) => code,
            Err(trap) => return Poll::Ready(Err(trap)),
        };
        if let Some(outcome) = self.outcome.take() {
            let _ = outcome.send(Err(code));
        }
        Poll::Ready(Ok(Transfer::Dropped))
    }

    /// The stream's current write permit, waiting until it is non-zero.
    fn poll_permit(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, StreamError>> {
        loop {
            if let Some(error) = std::task::ready!(self.stream.poll_back(cx)) {
                return Poll::Ready(Err(error));
            }
            let Slot::Idle(stream) = &mut self.stream else {
                return Poll::Ready(Err(StreamError::Closed));
            };
            let permit = stream.check_write()?;
            if permit > 0 {
                return Poll::Ready(Ok(permit));
            }
            self.stream.start_waiting(|mut stream| {
                Box::pin(async move {
                    let error = stream.write_ready().await.err();
                    (stream, error)
                })
            });
        }
    }
}

impl<D, E: Send + 'static> StreamConsumer<D> for ByteConsumer<E> {
    type Item = u8;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        source: Source<'_, u8>,
        finish: bool,
    ) -> Poll<wasmtime::Result<Transfer>> {
        let permit = match self.poll_permit(cx) {
            Poll::Ready(Ok(permit)) => permit,
            Poll::Ready(Err(error)) => return self.fail(error),
            // Nothing was taken: the guest may cancel its write.
            Poll::Pending if finish => return Poll::Ready(Ok(Transfer::Cancelled)),
            Poll::Pending => return Poll::Pending,
        };
        let mut source = source.as_direct(store);
        let bytes = source.remaining();
        // An empty write asks whether the stream is writable: it is (permit > 0).
        let n = bytes.len().min(permit);
        if n == 0 {
            return Poll::Ready(Ok(Transfer::Completed));
        }
        let this = &mut *self;
        let written = match (&this.slice_writer, &mut this.stream) {
            (Some(writer), _) => writer.write_slice(&bytes[..n]),
            (None, Slot::Idle(stream)) => stream.write(bytes::Bytes::copy_from_slice(&bytes[..n])),
            (None, _) => Err(StreamError::Closed),
        };
        if let Err(error) = written {
            return self.fail(error);
        }
        source.mark_read(n);
        Poll::Ready(Ok(Transfer::Completed))
    }
}

impl<E: Send + 'static> Drop for ByteConsumer<E> {
    /// The guest dropped its end (or the instance went away): finish what was accepted,
    /// then resolve the future, so that "success" means every byte was delivered.
    fn drop(&mut self) {
        let (Some(outcome), Some(finish)) = (self.outcome.take(), self.finish.take()) else {
            return;
        };
        let stream = std::mem::replace(&mut self.stream, Slot::Gone);
        let error_code = self.error_code;
        crate::sync::spawn(async move {
            let stream = match stream {
                Slot::Idle(stream) => Ok(stream),
                Slot::Waiting(waiting) => match waiting.await {
                    (_, Some(error)) => Err(error),
                    (stream, None) => Ok(stream),
                },
                Slot::Gone => return,
            };
            let result = match stream {
                Ok(stream) => finish(stream).await,
                // A trap has no guest left to trap: report the failure instead.
                Err(error) => Err(match error_code(error) {
                    Ok(code) => code,
                    Err(trap) => {
                        tracing::debug!("stream failed after the guest let go: {trap:#}");
                        return;
                    }
                }),
            };
            let _ = outcome.send(result);
        });
    }
}

/// Fills the guest's `stream<u8>` from a Weir input stream.
pub(super) struct ByteProducer<E: Send + 'static> {
    stream: Slot<Box<dyn InputStream>>,
    outcome: Option<oneshot::Sender<Outcome<E>>>,
    error_code: ErrorMap<E>,
    /// Run if the guest drops the stream before its end.
    on_abandon: Option<Box<dyn FnOnce() + Send>>,
}

impl<E: Send + 'static> ByteProducer<E> {
    pub(super) fn new(
        stream: Box<dyn InputStream>,
        outcome: oneshot::Sender<Outcome<E>>,
        error_code: ErrorMap<E>,
    ) -> Self {
        ByteProducer {
            stream: Slot::Idle(stream),
            outcome: Some(outcome),
            error_code,
            on_abandon: None,
        }
    }

    /// Runs `abandon` if the guest drops the stream before its end.
    pub(super) fn on_abandon(mut self, abandon: impl FnOnce() + Send + 'static) -> Self {
        self.on_abandon = Some(Box::new(abandon));
        self
    }

    /// Ends the stream: `Closed` is the end of input (success), anything else the error.
    fn end(&mut self, error: StreamError) -> Poll<wasmtime::Result<Transfer>> {
        self.stream = Slot::Gone;
        self.on_abandon = None;
        let result = match error {
            StreamError::Closed => Ok(()),
            error => match (self.error_code)(error) {
                Ok(code) => Err(code),
                Err(trap) => return Poll::Ready(Err(trap)),
            },
        };
        if let Some(outcome) = self.outcome.take() {
            let _ = outcome.send(result);
        }
        Poll::Ready(Ok(Transfer::Dropped))
    }
}

impl<E: Send + 'static> Drop for ByteProducer<E> {
    fn drop(&mut self) {
        if let Some(abandon) = self.on_abandon.take() {
            abandon();
        }
    }
}

/// How much one read asks for when the reader is the host (no guest buffer to size it).
const DEFAULT_READ: usize = 64 * 1024;

impl<D, E: Send + 'static> StreamProducer<D> for ByteProducer<E> {
    type Item = u8;
    // Bytes always go straight into the guest's buffer; nothing is buffered on the side.
    type Buffer = Option<u8>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, u8, Option<u8>>,
        finish: bool,
    ) -> Poll<wasmtime::Result<Transfer>> {
        loop {
            match self.stream.poll_back(cx) {
                Poll::Ready(None) => {}
                Poll::Ready(Some(error)) => return self.end(error),
                Poll::Pending if finish => return Poll::Ready(Ok(Transfer::Cancelled)),
                Poll::Pending => return Poll::Pending,
            }
            let Slot::Idle(stream) = &mut self.stream else {
                return self.end(StreamError::Closed);
            };
            let wanted = destination.remaining(&mut store).unwrap_or(DEFAULT_READ);
            // A zero-length read asks whether input is ready. Answering yes without looking
            // is allowed (the next read may pend); reading ahead could lose the bytes.
            if wanted == 0 {
                return Poll::Ready(Ok(Transfer::Completed));
            }
            let wanted = wanted.min(MAX_READ_BYTES);
            let mut direct = destination
                .reborrow()
                .as_direct(store.as_context_mut(), wanted);
            let room = direct.remaining();
            let len = room.len().min(wanted);
            let placed = match stream.read_into(&mut room[..len]) {
                Ok(placed) => placed,
                Err(error) => return self.end(error),
            };
            if placed > 0 {
                direct.mark_written(placed);
                return Poll::Ready(Ok(Transfer::Completed));
            }
            if finish {
                return Poll::Ready(Ok(Transfer::Cancelled));
            }
            self.stream.start_waiting(|mut stream| {
                Box::pin(async move {
                    stream.ready().await;
                    (stream, None)
                })
            });
        }
    }
}

/// The finishing step of a stream whose bytes are delivered once flushed (stdio, files):
/// flush, then wait for the flush to complete. `fallback` stands for a trap that has no
/// guest call left to trap.
pub(super) fn flushing<E: Send + 'static>(error_code: ErrorMap<E>, fallback: E) -> Finish<E> {
    Box::new(move |mut stream| {
        Box::pin(async move {
            let flushed = match stream.flush() {
                Ok(()) => stream.write_ready().await.map(drop),
                Err(error) => Err(error),
            };
            flushed.map_err(|error| error_code(error).unwrap_or(fallback))
        })
    })
}
