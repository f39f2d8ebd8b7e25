//! In-memory pipes, sinks, closed streams and adapters over tokio's `AsyncWrite`/`AsyncRead`.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use super::error::{StreamError, StreamResult};
use super::streams::{InputStream, OutputStream};
use super::write_queue::{ChunkSink, QueuedOutputStream, WriteQueue};

/// The `check-write` grant of streams that never push back (sinks, files).
pub const UNBOUNDED_WRITE_PERMIT: usize = 1 << 20;

/// A bounded in-memory output pipe whose contents the embedder reads back.
///
/// Clones share the same buffer. `check-write` grants the free space; the embedder frees
/// space with [`MemoryOutputPipe::take_contents`], which wakes a guest waiting to write.
///
/// ```
/// use weir::io::{MemoryOutputPipe, OutputStream};
/// let pipe = MemoryOutputPipe::new(1024);
/// let mut stream = pipe.clone();
/// assert_eq!(stream.check_write().unwrap(), 1024);
/// stream.write(bytes::Bytes::from_static(b"hi")).unwrap();
/// assert_eq!(&pipe.contents()[..], b"hi");
/// ```
#[derive(Clone)]
pub struct MemoryOutputPipe {
    shared: Arc<OutputPipeShared>,
}

struct OutputPipeShared {
    capacity: usize,
    state: Mutex<OutputPipeState>,
    space: Notify,
}

#[derive(Default)]
struct OutputPipeState {
    buffer: BytesMut,
    closed: bool,
}

impl MemoryOutputPipe {
    /// A pipe that holds at most `capacity` unread bytes.
    pub fn new(capacity: usize) -> Self {
        MemoryOutputPipe {
            shared: Arc::new(OutputPipeShared {
                capacity,
                state: Mutex::new(OutputPipeState::default()),
                space: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutputPipeState> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the unread contents.
    pub fn contents(&self) -> Bytes {
        Bytes::copy_from_slice(&self.lock().buffer)
    }

    /// Takes the unread contents, freeing space for the guest.
    pub fn take_contents(&self) -> Bytes {
        let taken = self.lock().buffer.split().freeze();
        self.shared.space.notify_waiters();
        taken
    }

    /// Closes the pipe: from now on the guest's operations report `closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.shared.space.notify_waiters();
    }

    /// The pipe's capacity.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }
}

#[async_trait::async_trait]
impl OutputStream for MemoryOutputPipe {
    fn check_write(&mut self) -> StreamResult<usize> {
        let state = self.lock();
        if state.closed {
            return Err(StreamError::Closed);
        }
        Ok(self.shared.capacity.saturating_sub(state.buffer.len()))
    }

    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let mut state = self.lock();
        if state.closed {
            return Err(StreamError::Closed);
        }
        // Several handles may each hold a grant; never grow past the capacity.
        if state.buffer.len() + bytes.len() > self.shared.capacity {
            return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                "memory pipe full: {} bytes do not fit in the {} free",
                bytes.len(),
                self.shared.capacity - state.buffer.len()
            )));
        }
        state.buffer.extend_from_slice(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        if self.lock().closed {
            return Err(StreamError::Closed);
        }
        Ok(())
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        let shared = self.shared.clone();
        super::wait_for_permit(&shared.space, || self.check_write()).await
    }
}

/// An in-memory input pipe over fixed contents; `closed` after the last byte.
#[derive(Clone)]
pub struct MemoryInputPipe {
    remaining: Bytes,
}

impl MemoryInputPipe {
    /// A pipe that yields `contents`, then end of stream.
    pub fn new(contents: impl Into<Bytes>) -> Self {
        MemoryInputPipe {
            remaining: contents.into(),
        }
    }
}

#[async_trait::async_trait]
impl InputStream for MemoryInputPipe {
    fn read(&mut self, max: usize) -> StreamResult<Bytes> {
        if self.remaining.is_empty() {
            return Err(StreamError::Closed);
        }
        let n = max.min(self.remaining.len());
        Ok(self.remaining.split_to(n))
    }

    async fn ready(&mut self) {}
}

/// An output stream that accepts and discards everything.
#[derive(Clone, Copy, Default)]
pub struct SinkOutputStream;

#[async_trait::async_trait]
impl OutputStream for SinkOutputStream {
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(UNBOUNDED_WRITE_PERMIT)
    }
    fn write(&mut self, _bytes: Bytes) -> StreamResult<()> {
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    async fn write_ready(&mut self) -> StreamResult<usize> {
        Ok(UNBOUNDED_WRITE_PERMIT)
    }
    fn write_zeroes(&mut self, _len: usize) -> StreamResult<()> {
        Ok(())
    }
}

/// An output stream that is closed from the start.
#[derive(Clone, Copy, Default)]
pub struct ClosedOutputStream;

#[async_trait::async_trait]
impl OutputStream for ClosedOutputStream {
    fn check_write(&mut self) -> StreamResult<usize> {
        Err(StreamError::Closed)
    }
    fn write(&mut self, _bytes: Bytes) -> StreamResult<()> {
        Err(StreamError::Closed)
    }
    fn flush(&mut self) -> StreamResult<()> {
        Err(StreamError::Closed)
    }
    async fn write_ready(&mut self) -> StreamResult<usize> {
        Err(StreamError::Closed)
    }
}

/// An input stream at end of stream from the start (stdin when none is configured).
#[derive(Clone, Copy, Default)]
pub struct ClosedInputStream;

#[async_trait::async_trait]
impl InputStream for ClosedInputStream {
    fn read(&mut self, _max: usize) -> StreamResult<Bytes> {
        Err(StreamError::Closed)
    }
    async fn ready(&mut self) {}
}

struct AsyncWriteSink<W>(W);

#[async_trait::async_trait]
impl<W: AsyncWrite + Send + Unpin + 'static> ChunkSink for AsyncWriteSink<W> {
    async fn write_all(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.0.write_all(&chunk).await
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }
}

/// An output stream over any tokio [`AsyncWrite`].
///
/// Writes go into a queue of `capacity` bytes that a tokio task drains, so the guest never
/// blocks; `flush` completes when the writer's own `flush` returned. Must be created inside
/// a tokio runtime. As an [`crate::OutputSource`] (a guest's stdout or stderr) every
/// `get-stdout` call gets a handle on the same queue. Once the last handle is gone (the
/// guest's streams and, for a source, its [`crate::WasiCtx`]), the task writes what is
/// still queued and ends; a writer that has not taken it 5 s later is given up (the bytes
/// are dropped and the writer closed), so a dropped instance leaves no task behind.
pub struct AsyncWriteStream {
    inner: QueuedOutputStream,
}

impl AsyncWriteStream {
    /// Spawns the writer task on the current tokio runtime.
    pub fn new(capacity: usize, writer: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        let queue = WriteQueue::new(capacity);
        tokio::spawn(queue.clone().run_worker(AsyncWriteSink(writer)));
        AsyncWriteStream {
            inner: QueuedOutputStream::new(queue),
        }
    }
}

impl crate::OutputSource for AsyncWriteStream {
    fn stream(&self) -> Box<dyn OutputStream> {
        Box::new(AsyncWriteStream {
            inner: self.inner.another_handle(),
        })
    }
}

#[async_trait::async_trait]
impl OutputStream for AsyncWriteStream {
    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.inner.write(bytes)
    }
    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }
    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.inner.write_ready().await
    }
}

/// An input stream over any tokio [`AsyncRead`].
///
/// A tokio task reads ahead one chunk at a time (at most `chunk_size` bytes buffered), so
/// `read` never blocks. Must be created inside a tokio runtime.
pub struct AsyncReadStream {
    buffered: Bytes,
    receiver: mpsc::Receiver<std::io::Result<Bytes>>,
    /// An error received by `ready`, for the next `read` to report.
    pending_error: Option<std::io::Error>,
    finished: bool,
}

impl AsyncReadStream {
    /// Spawns the reader task on the current tokio runtime.
    pub fn new(chunk_size: usize, mut reader: impl AsyncRead + Send + Unpin + 'static) -> Self {
        let (sender, receiver) = mpsc::channel(1);
        let chunk_size = chunk_size.max(1);
        tokio::spawn(async move {
            loop {
                let mut buffer = BytesMut::with_capacity(chunk_size);
                let message = match reader.read_buf(&mut buffer).await {
                    Ok(0) => return,
                    Ok(_) => Ok(buffer.freeze()),
                    Err(error) => Err(error),
                };
                let failed = message.is_err();
                if sender.send(message).await.is_err() || failed {
                    return;
                }
            }
        });
        AsyncReadStream {
            buffered: Bytes::new(),
            receiver,
            pending_error: None,
            finished: false,
        }
    }

    fn accept(&mut self, message: Option<std::io::Result<Bytes>>) {
        match message {
            Some(Ok(bytes)) => self.buffered = bytes,
            Some(Err(error)) => {
                self.pending_error = Some(error);
                self.finished = true;
            }
            None => self.finished = true,
        }
    }
}

#[async_trait::async_trait]
impl InputStream for AsyncReadStream {
    fn read(&mut self, max: usize) -> StreamResult<Bytes> {
        if self.buffered.is_empty() && !self.finished {
            match self.receiver.try_recv() {
                Ok(message) => self.accept(Some(message)),
                Err(mpsc::error::TryRecvError::Empty) => return Ok(Bytes::new()),
                Err(mpsc::error::TryRecvError::Disconnected) => self.accept(None),
            }
        }
        if self.buffered.is_empty() {
            return match self.pending_error.take() {
                Some(error) => Err(StreamError::LastOperationFailed(wasmtime::Error::new(
                    error,
                ))),
                None => Err(StreamError::Closed),
            };
        }
        let n = max.min(self.buffered.len());
        Ok(self.buffered.split_to(n))
    }

    async fn ready(&mut self) {
        if !self.buffered.is_empty() || self.finished {
            return;
        }
        let message = self.receiver.recv().await;
        self.accept(message);
    }
}
