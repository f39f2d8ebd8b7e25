//! The [`OutputStream`] and [`InputStream`] traits and the guest-facing stream resources.

use bytes::Bytes;

use super::error::{StreamError, StreamResult};
use super::poll::Pollable;

/// `blocking-write-and-flush` and `blocking-write-zeroes-and-flush` accept at most this many
/// bytes; more traps (the WIT's limit).
pub const MAX_BLOCKING_WRITE_BYTES: u64 = 4096;

/// The most bytes one `read`/`skip`/`splice` moves. The WIT lets a read return fewer bytes
/// than asked; capping keeps host memory bounded whatever length a guest passes.
pub const MAX_READ_BYTES: usize = 1 << 20;

/// A byte sink a guest writes to through `wasi:io/streams.output-stream`.
///
/// # Contract
///
/// No method but [`OutputStream::write_ready`] may block or wait.
///
/// - [`check_write`](OutputStream::check_write) returns how many bytes
///   [`write`](OutputStream::write) accepts right now. `Ok(0)` means "wait on `write_ready`".
///   While a [`flush`](OutputStream::flush) is in progress it must return `Ok(0)`.
/// - [`write`](OutputStream::write) is only ever called with at most the number of bytes the
///   previous `check_write` returned (the host traps a guest that asks for more, so
///   implementations need not re-check). It must not block: accept the bytes into a buffer
///   and complete the I/O in the background if needed.
/// - [`flush`](OutputStream::flush) starts delivering everything written so far; it does
///   not wait. When `write_ready` resolves afterwards, the flush has completed.
/// - [`write_ready`](OutputStream::write_ready) resolves with the current `check_write`
///   value once it is non-zero, or with the error that `check_write` would return.
/// - Errors: [`StreamError::Closed`] when the destination is gone for good (no error to
///   report); [`StreamError::LastOperationFailed`] for a failure, reported once, after which
///   the stream reports `Closed`.
/// - [`cancel`](OutputStream::cancel) is called when the guest drops the stream. Bytes
///   already accepted must still be delivered if at all possible: dropping a stream loses no
///   data.
#[async_trait::async_trait]
pub trait OutputStream: Send + 'static {
    /// How many bytes `write` accepts now, without blocking.
    fn check_write(&mut self) -> StreamResult<usize>;
    /// Accepts `bytes` (at most the last `check_write` value) without blocking.
    fn write(&mut self, bytes: Bytes) -> StreamResult<()>;
    /// Starts flushing; `check_write` returns `Ok(0)` until it completes.
    fn flush(&mut self) -> StreamResult<()>;
    /// Waits until `check_write` would return non-zero (or an error) and returns it.
    async fn write_ready(&mut self) -> StreamResult<usize>;
    /// Writes `len` zero bytes; same rules as `write`.
    fn write_zeroes(&mut self, len: usize) -> StreamResult<()> {
        self.write(Bytes::from(vec![0; len]))
    }
    /// Called when the guest drops the stream.
    fn cancel(&mut self) {}
}

/// A byte source a guest reads through `wasi:io/streams.input-stream`.
///
/// # Contract
///
/// - [`read`](InputStream::read) returns at most `max` bytes without blocking; an empty
///   buffer means "nothing yet, wait on `ready`". At end of stream it returns
///   [`StreamError::Closed`] (after all buffered data was returned).
/// - [`skip`](InputStream::skip) is `read` that discards; it returns how many bytes were
///   skipped.
/// - [`ready`](InputStream::ready) resolves when `read` would return data, `Closed` or an
///   error.
/// - A failure is reported once as [`StreamError::LastOperationFailed`]; after it, `Closed`.
#[async_trait::async_trait]
pub trait InputStream: Send + 'static {
    /// Reads up to `max` bytes without blocking.
    fn read(&mut self, max: usize) -> StreamResult<Bytes>;
    /// Skips up to `max` bytes without blocking.
    fn skip(&mut self, max: usize) -> StreamResult<usize> {
        Ok(self.read(max)?.len())
    }
    /// Waits until `read` would make progress or report an error.
    async fn ready(&mut self);
    /// Called when the guest drops the stream.
    fn cancel(&mut self) {}
}

/// The guest's `output-stream` resource: an [`OutputStream`] plus the permit bookkeeping the
/// WIT requires.
pub struct OutputStreamResource {
    stream: Box<dyn OutputStream>,
    /// Bytes granted by the last `check-write` and not yet used by `write`/`write-zeroes`.
    permit: usize,
}

impl OutputStreamResource {
    /// Wraps a stream for the guest.
    pub fn new(stream: impl OutputStream) -> Self {
        Self::from_box(Box::new(stream))
    }

    /// Wraps a boxed stream for the guest.
    pub fn from_box(stream: Box<dyn OutputStream>) -> Self {
        OutputStreamResource { stream, permit: 0 }
    }

    /// `check-write`: asks the stream and records the grant.
    pub fn check_write(&mut self) -> StreamResult<usize> {
        self.permit = 0;
        let permit = self.stream.check_write()?;
        self.permit = permit;
        Ok(permit)
    }

    fn take_permit(&mut self, what: &str, len: usize) -> StreamResult<()> {
        if len > self.permit {
            return Err(StreamError::trap(format_args!(
                "wasi:io/streams.output-stream.{what}: {len} bytes exceed the {} bytes permitted \
                 by the last check-write",
                self.permit
            )));
        }
        self.permit -= len;
        Ok(())
    }

    /// `write`: traps if `bytes` exceeds the permit.
    pub fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take_permit("write", bytes.len())?;
        self.stream.write(bytes)
    }

    /// `write-zeroes`: traps if `len` exceeds the permit.
    pub fn write_zeroes(&mut self, len: u64) -> StreamResult<()> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take_permit("write-zeroes", len)?;
        self.stream.write_zeroes(len)
    }

    /// `flush`.
    pub fn flush(&mut self) -> StreamResult<()> {
        self.stream.flush()
    }

    /// Waits until the stream accepts bytes; returns how many.
    pub async fn write_ready(&mut self) -> StreamResult<usize> {
        self.stream.write_ready().await
    }

    /// The body of `blocking-write-and-flush` / `blocking-write-zeroes-and-flush`, as the WIT
    /// spells it out: write in permitted chunks, flush, wait for the flush, check-write.
    pub async fn blocking_write_and_flush(
        &mut self,
        what: &str,
        len: u64,
        mut chunk: impl FnMut(usize) -> Option<Bytes>,
    ) -> StreamResult<()> {
        if len > MAX_BLOCKING_WRITE_BYTES {
            return Err(StreamError::trap(format_args!(
                "wasi:io/streams.output-stream.{what}: {len} bytes exceed the limit of \
                 {MAX_BLOCKING_WRITE_BYTES}"
            )));
        }
        // `len` ≤ 4096, so it fits in usize.
        let mut remaining = len as usize;
        while remaining > 0 {
            let permit = self.stream.write_ready().await?;
            let n = permit.min(remaining);
            match chunk(n) {
                Some(bytes) => self.stream.write(bytes)?,
                None => self.stream.write_zeroes(n)?,
            }
            remaining -= n;
        }
        self.stream.flush()?;
        self.stream.write_ready().await?;
        self.check_write()?;
        Ok(())
    }

    /// `blocking-flush`: flush, then wait for it to complete.
    pub async fn blocking_flush(&mut self) -> StreamResult<()> {
        self.stream.flush()?;
        self.stream.write_ready().await?;
        Ok(())
    }

    /// The permit left from the last `check-write`.
    pub fn permit(&self) -> usize {
        self.permit
    }

    pub(crate) fn cancel(&mut self) {
        self.stream.cancel()
    }
}

#[async_trait::async_trait]
impl Pollable for OutputStreamResource {
    async fn ready(&mut self) {
        let _ = self.stream.write_ready().await;
    }
}

/// The guest's `input-stream` resource.
pub struct InputStreamResource {
    stream: Box<dyn InputStream>,
}

impl InputStreamResource {
    /// Wraps a stream for the guest.
    pub fn new(stream: impl InputStream) -> Self {
        Self::from_box(Box::new(stream))
    }

    /// Wraps a boxed stream for the guest.
    pub fn from_box(stream: Box<dyn InputStream>) -> Self {
        InputStreamResource { stream }
    }

    /// `read`, with the length capped at [`MAX_READ_BYTES`].
    pub fn read(&mut self, len: u64) -> StreamResult<Bytes> {
        self.stream.read(cap_len(len))
    }

    /// `skip`, with the length capped at [`MAX_READ_BYTES`].
    pub fn skip(&mut self, len: u64) -> StreamResult<u64> {
        Ok(self.stream.skip(cap_len(len))? as u64)
    }

    /// Waits until a read would make progress.
    pub async fn ready(&mut self) {
        self.stream.ready().await
    }

    pub(crate) fn cancel(&mut self) {
        self.stream.cancel()
    }
}

fn cap_len(len: u64) -> usize {
    usize::try_from(len)
        .unwrap_or(usize::MAX)
        .min(MAX_READ_BYTES)
}

#[async_trait::async_trait]
impl Pollable for InputStreamResource {
    async fn ready(&mut self) {
        self.stream.ready().await
    }
}
