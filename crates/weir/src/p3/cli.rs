//! `wasi:cli@0.3.0`: environment and exit as in 0.2; stdio as component-model streams over
//! the context's 0.2 stdio sources.
//!
//! - `stdout`/`stderr.write-via-stream`: a [`StreamConsumer`] moves the guest's bytes from
//!   its memory to Weir's output stream, never more than the stream's `check-write` grants
//!   (so host memory stays bounded by the stream's own buffer), through the zero-copy slice
//!   writer where the stream has one. The returned future resolves once the guest dropped
//!   its end and every byte was flushed, or with `pipe` (the reader went away) / `io`.
//! - `stdin.read-via-stream`: a [`StreamProducer`] reads at most what the guest asked for
//!   straight into the guest's buffer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Access, Destination, FutureReader, Resource, Source, StreamConsumer, StreamProducer,
    StreamReader, StreamResult as Transfer,
};

use super::bindings::wasi::cli::{
    environment, exit, stderr, stdin, stdout, terminal_input, terminal_output, terminal_stderr,
    terminal_stdin, terminal_stdout, types::ErrorCode,
};
use crate::cli::{I32Exit, TerminalInput, TerminalOutput};
use crate::io::{InputStream, MAX_READ_BYTES, OutputStream, SliceWriter, StreamError};
use crate::linker::HasWasi;
use crate::{OutputSource, WasiCtxView};

impl environment::Host for WasiCtxView<'_> {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.ctx.env.clone())
    }
    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.args.clone())
    }
    fn get_initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.initial_cwd.clone())
    }
}

impl exit::Host for WasiCtxView<'_> {
    fn exit(&mut self, status: Result<(), ()>) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(I32Exit(if status.is_ok() {
            0
        } else {
            1
        })))
    }
    fn exit_with_code(&mut self, status_code: u8) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(I32Exit(status_code.into())))
    }
}

/// The result the future of `write-via-stream`/`read-via-stream` resolves to.
type Outcome = Result<(), ErrorCode>;

/// A future for the guest that resolves with what `outcome` receives (`Ok` if its sender
/// is dropped unsent: nothing went wrong).
fn outcome_future<U: 'static>(
    store: &mut Access<'_, U, HasWasi>,
    outcome: oneshot::Receiver<Outcome>,
) -> wasmtime::Result<FutureReader<Outcome>> {
    FutureReader::new(store, async move {
        Ok::<_, wasmtime::Error>(outcome.await.unwrap_or(Ok(())))
    })
}

/// Pipes the guest's `data` into a new stream of `sink`.
fn write_via_stream<U: 'static>(
    mut store: Access<'_, U, HasWasi>,
    data: StreamReader<u8>,
    sink: Arc<dyn OutputSource>,
) -> wasmtime::Result<FutureReader<Outcome>> {
    let (sender, receiver) = oneshot::channel();
    data.pipe(&mut store, StdioConsumer::new(sink.stream(), sender))?;
    outcome_future(&mut store, receiver)
}

impl<U: 'static> stdout::HostWithStore<U> for HasWasi {
    fn write_via_stream(
        mut store: Access<'_, U, Self>,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Outcome>> {
        let sink = store.get().ctx.stdout.clone();
        write_via_stream(store, data, sink)
    }
}

impl<U: 'static> stderr::HostWithStore<U> for HasWasi {
    fn write_via_stream(
        mut store: Access<'_, U, Self>,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Outcome>> {
        let sink = store.get().ctx.stderr.clone();
        write_via_stream(store, data, sink)
    }
}

impl<U: 'static> stdin::HostWithStore<U> for HasWasi {
    fn read_via_stream(
        mut store: Access<'_, U, Self>,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<Outcome>)> {
        let source = store.get().ctx.stdin.stream();
        let (sender, receiver) = oneshot::channel();
        let producer = StdinProducer {
            stream: Slot::Idle(source),
            outcome: Some(sender),
        };
        let stream = StreamReader::new(&mut store, producer)?;
        Ok((stream, outcome_future(&mut store, receiver)?))
    }
}

impl stdout::Host for WasiCtxView<'_> {}
impl stderr::Host for WasiCtxView<'_> {}
impl stdin::Host for WasiCtxView<'_> {}

/// The error code a failed stdio stream reports to the guest, or the trap it must raise.
fn error_code(error: StreamError) -> wasmtime::Result<ErrorCode> {
    match error {
        // The reader (or the source) is gone for good.
        StreamError::Closed => Ok(ErrorCode::Pipe),
        StreamError::LastOperationFailed(error) => {
            tracing::debug!("stdio stream failed: {error:#}");
            Ok(ErrorCode::Io)
        }
        StreamError::Trap(error) => Err(error),
    }
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

/// Moves bytes from the guest's `stream<u8>` into a Weir output stream.
struct StdioConsumer {
    stream: Slot<Box<dyn OutputStream>>,
    slice_writer: Option<Arc<dyn SliceWriter>>,
    outcome: Option<oneshot::Sender<Outcome>>,
}

impl StdioConsumer {
    fn new(stream: Box<dyn OutputStream>, outcome: oneshot::Sender<Outcome>) -> Self {
        StdioConsumer {
            slice_writer: stream.slice_writer(),
            stream: Slot::Idle(stream),
            outcome: Some(outcome),
        }
    }

    /// Ends the stream with `error` reported through the future (or a trap).
    fn fail(&mut self, error: StreamError) -> Poll<wasmtime::Result<Transfer>> {
        self.stream = Slot::Gone;
        let code = match error_code(error) {
            Ok(code) => code,
            Err(trap) => return Poll::Ready(Err(trap)),
        };
        if let Some(outcome) = self.outcome.take() {
            let _ = outcome.send(Err(code));
        }
        Poll::Ready(Ok(Transfer::Dropped))
    }

    /// The stream's current write permit, waiting (unless `finish`) until it is non-zero.
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

impl<D> StreamConsumer<D> for StdioConsumer {
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

impl Drop for StdioConsumer {
    /// The guest dropped its end (or the instance went away): flush what was accepted, then
    /// resolve the future, so that "success" means every byte was written.
    fn drop(&mut self) {
        let Some(outcome) = self.outcome.take() else {
            return;
        };
        let stream = std::mem::replace(&mut self.stream, Slot::Gone);
        let flushed = async move {
            let mut stream = match stream {
                Slot::Idle(stream) => stream,
                Slot::Waiting(waiting) => match waiting.await {
                    (_, Some(error)) => return Err(error),
                    (stream, None) => stream,
                },
                Slot::Gone => return Ok(()),
            };
            stream.flush()?;
            stream.write_ready().await.map(drop)
        };
        crate::sync::spawn(async move {
            let result = match flushed.await {
                Ok(()) => Ok(()),
                Err(error) => Err(error_code(error).unwrap_or(ErrorCode::Io)),
            };
            let _ = outcome.send(result);
        });
    }
}

/// Fills the guest's `stream<u8>` from a Weir input stream.
struct StdinProducer {
    stream: Slot<Box<dyn InputStream>>,
    outcome: Option<oneshot::Sender<Outcome>>,
}

impl StdinProducer {
    /// Ends the stream: `Closed` is the end of input (success), anything else the error.
    fn end(&mut self, error: StreamError) -> Poll<wasmtime::Result<Transfer>> {
        self.stream = Slot::Gone;
        let result = match error {
            StreamError::Closed => Ok(()),
            error => match error_code(error) {
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

impl<D> StreamProducer<D> for StdinProducer {
    type Item = u8;
    // Bytes always go straight into the guest's buffer; nothing is buffered on the side.
    type Buffer = Option<u8>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        destination: Destination<'a, u8, Option<u8>>,
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
            let bytes = match stream.read(wanted.min(MAX_READ_BYTES)) {
                Ok(bytes) => bytes,
                Err(error) => return self.end(error),
            };
            if !bytes.is_empty() {
                let mut direct = destination.as_direct(store, bytes.len());
                let room = direct.remaining();
                let n = bytes.len().min(room.len());
                room[..n].copy_from_slice(&bytes[..n]);
                direct.mark_written(n);
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

/// How much one read asks for when the reader is the host (no guest buffer to size it).
const DEFAULT_READ: usize = 64 * 1024;

impl terminal_input::Host for WasiCtxView<'_> {}
impl terminal_output::Host for WasiCtxView<'_> {}

impl terminal_input::HostTerminalInput for WasiCtxView<'_> {
    fn drop(&mut self, terminal: Resource<TerminalInput>) -> wasmtime::Result<()> {
        self.table.delete(terminal)?;
        Ok(())
    }
}

impl terminal_output::HostTerminalOutput for WasiCtxView<'_> {
    fn drop(&mut self, terminal: Resource<TerminalOutput>) -> wasmtime::Result<()> {
        self.table.delete(terminal)?;
        Ok(())
    }
}

impl terminal_stdin::Host for WasiCtxView<'_> {
    fn get_terminal_stdin(&mut self) -> wasmtime::Result<Option<Resource<TerminalInput>>> {
        if !self.ctx.stdin.is_terminal() {
            return Ok(None);
        }
        Ok(Some(self.table.push(TerminalInput)?))
    }
}

impl terminal_stdout::Host for WasiCtxView<'_> {
    fn get_terminal_stdout(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        if !self.ctx.stdout.is_terminal() {
            return Ok(None);
        }
        Ok(Some(self.table.push(TerminalOutput)?))
    }
}

impl terminal_stderr::Host for WasiCtxView<'_> {
    fn get_terminal_stderr(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        if !self.ctx.stderr.is_terminal() {
            return Ok(None);
        }
        Ok(Some(self.table.push(TerminalOutput)?))
    }
}
