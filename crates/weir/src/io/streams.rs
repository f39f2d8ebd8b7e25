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
    /// Optionally, a writer that takes a `write`'s bytes borrowed from guest memory, so a
    /// stream that can hand them to the OS at once saves copying them first (host stdout
    /// does). The host calls it, instead of `write`, under the same rules as `write`.
    fn slice_writer(&self) -> Option<std::sync::Arc<dyn SliceWriter>> {
        None
    }
}

/// See [`OutputStream::slice_writer`]: [`write_slice`](SliceWriter::write_slice) has the
/// contract of [`OutputStream::write`], with the bytes borrowed for the call only.
pub trait SliceWriter: Send + Sync {
    /// Accepts `bytes` (at most the last `check_write` value) without blocking.
    fn write_slice(&self, bytes: &[u8]) -> StreamResult<()>;
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
    /// `read` into `buffer` (at most its length), returning how many bytes were placed.
    /// Streams that can receive straight into the caller's memory (a TCP socket into a
    /// WASI 0.3 guest's buffer) override it to save a copy.
    fn read_into(&mut self, buffer: &mut [u8]) -> StreamResult<usize> {
        let bytes = self.read(buffer.len())?;
        let n = bytes.len().min(buffer.len());
        buffer[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
    /// Waits until `read` would make progress or report an error.
    async fn ready(&mut self);
    /// Called when the guest drops the stream.
    fn cancel(&mut self) {}
}

/// Remembers that a stream has reported `closed` (or `last-operation-failed`, after which a
/// stream is closed): from then on every operation reports `closed` without asking the
/// stream again, whatever a particular implementation would answer (a TCP stream asked for
/// 0 bytes after end of stream, say).
#[derive(Default)]
struct ClosedLatch {
    closed: bool,
    /// A failure a pollable's wait observed: the guest's next operation reports it (once),
    /// instead of losing it to the wait, which has no way to return it.
    deferred: Option<wasmtime::Error>,
}

impl ClosedLatch {
    fn check(&mut self) -> StreamResult<()> {
        match self.deferred.take() {
            Some(error) => Err(StreamError::LastOperationFailed(error)),
            None if self.closed => Err(StreamError::Closed),
            None => Ok(()),
        }
    }

    /// Latches what a wait without a result (a pollable) saw, keeping a failure for the
    /// next operation to report.
    fn defer<T>(&mut self, result: StreamResult<T>) {
        match result {
            Err(StreamError::LastOperationFailed(error)) => {
                self.closed = true;
                self.deferred = Some(error);
            }
            Err(StreamError::Closed) => self.closed = true,
            _ => {}
        }
    }

    /// Passes `result` through, latching if it closes the stream.
    fn observe<T>(&mut self, result: StreamResult<T>) -> StreamResult<T> {
        if matches!(
            result,
            Err(StreamError::Closed | StreamError::LastOperationFailed(_))
        ) {
            self.closed = true;
        }
        result
    }
}

/// The guest's `output-stream` resource: an [`OutputStream`] plus the permit bookkeeping the
/// WIT requires. Once the stream has reported `closed` or `last-operation-failed`, every
/// operation reports `closed`.
pub struct OutputStreamResource {
    stream: Box<dyn OutputStream>,
    /// Bytes granted by the last `check-write` and not yet used by `write`/`write-zeroes`.
    permit: usize,
    latch: ClosedLatch,
}

impl OutputStreamResource {
    /// Wraps a stream for the guest.
    pub fn new(stream: impl OutputStream) -> Self {
        Self::from_box(Box::new(stream))
    }

    /// Wraps a boxed stream for the guest.
    pub fn from_box(stream: Box<dyn OutputStream>) -> Self {
        OutputStreamResource {
            stream,
            permit: 0,
            latch: ClosedLatch::default(),
        }
    }

    /// `check-write`: asks the stream and records the grant.
    pub fn check_write(&mut self) -> StreamResult<usize> {
        self.permit = 0;
        self.latch.check()?;
        let permit = self.latch.observe(self.stream.check_write())?;
        self.permit = permit;
        Ok(permit)
    }

    fn take_permit(&mut self, what: &str, len: usize) -> StreamResult<()> {
        if len > self.permit {
            return Err(StreamError::trap(format_args!(
                "wasi:io/streams.output-stream.{what}: {len} bytes exceed the {} bytes permitted \
                 by the last check-write (write exceeded budget)",
                self.permit
            )));
        }
        self.permit -= len;
        Ok(())
    }

    /// `write`: traps if `bytes` exceeds the permit (on a stream that has reported `closed`,
    /// there is no permit to check: `closed`).
    pub fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.latch.check()?;
        self.take_permit("write", bytes.len())?;
        self.latch.observe(self.stream.write(bytes))
    }

    /// The first half of a `write` of `len` bytes borrowed from guest memory: the permit is
    /// taken (or the write traps/reports `closed`, as [`write`](Self::write)); returns the
    /// stream's [`SliceWriter`] if it has one. Then either write through it and pass its
    /// result to [`finish_write`](Self::finish_write), or, without one, call
    /// [`write_permitted`](Self::write_permitted) with a copy of the bytes.
    pub(crate) fn begin_write(
        &mut self,
        len: usize,
    ) -> StreamResult<Option<std::sync::Arc<dyn SliceWriter>>> {
        self.latch.check()?;
        self.take_permit("write", len)?;
        Ok(self.stream.slice_writer())
    }

    /// Records the result of a [`begin_write`](Self::begin_write) done through the writer.
    pub(crate) fn finish_write(&mut self, result: StreamResult<()>) -> StreamResult<()> {
        self.latch.observe(result)
    }

    /// Completes a [`begin_write`](Self::begin_write) for a stream without a slice writer.
    pub(crate) fn write_permitted(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.latch.observe(self.stream.write(bytes))
    }

    /// `write-zeroes`: traps if `len` exceeds the permit.
    pub fn write_zeroes(&mut self, len: u64) -> StreamResult<()> {
        self.latch.check()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take_permit("write-zeroes", len)?;
        self.latch.observe(self.stream.write_zeroes(len))
    }

    /// `flush`.
    pub fn flush(&mut self) -> StreamResult<()> {
        self.latch.check()?;
        self.latch.observe(self.stream.flush())
    }

    /// Waits until the stream accepts bytes; returns how many.
    pub async fn write_ready(&mut self) -> StreamResult<usize> {
        self.latch.check()?;
        let ready = self.stream.write_ready().await;
        self.latch.observe(ready)
    }

    /// The body of `blocking-write-and-flush` / `blocking-write-zeroes-and-flush`, as the WIT
    /// spells it out: write in permitted chunks, flush, wait for the flush, check-write.
    pub async fn blocking_write_and_flush(
        &mut self,
        what: &str,
        len: u64,
        chunk: impl FnMut(usize) -> Option<Bytes>,
    ) -> StreamResult<()> {
        if len > MAX_BLOCKING_WRITE_BYTES {
            // The parenthesis is wasmtime's wording, kept for tools that match on it.
            return Err(StreamError::trap(format_args!(
                "wasi:io/streams.output-stream.{what}: {len} bytes exceed the limit of \
                 {MAX_BLOCKING_WRITE_BYTES} (Buffer too large for {what} (expected at most \
                 {MAX_BLOCKING_WRITE_BYTES}))"
            )));
        }
        self.latch.check()?;
        let result = self.blocking_write_and_flush_unlatched(len, chunk).await;
        self.latch.observe(result)
    }

    async fn blocking_write_and_flush_unlatched(
        &mut self,
        len: u64,
        mut chunk: impl FnMut(usize) -> Option<Bytes>,
    ) -> StreamResult<()> {
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
        self.permit = self.stream.check_write()?;
        Ok(())
    }

    /// `blocking-flush`: flush, then wait for it to complete.
    pub async fn blocking_flush(&mut self) -> StreamResult<()> {
        self.latch.check()?;
        let result = async {
            self.stream.flush()?;
            self.stream.write_ready().await?;
            Ok(())
        }
        .await;
        self.latch.observe(result)
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
        if self.latch.closed {
            return;
        }
        let ready = self.stream.write_ready().await;
        self.latch.defer(ready);
    }
}

/// The guest's `input-stream` resource. Once the stream has reported `closed` or
/// `last-operation-failed`, every read and skip, of any length, reports `closed`.
pub struct InputStreamResource {
    stream: Box<dyn InputStream>,
    latch: ClosedLatch,
}

impl InputStreamResource {
    /// Wraps a stream for the guest.
    pub fn new(stream: impl InputStream) -> Self {
        Self::from_box(Box::new(stream))
    }

    /// Wraps a boxed stream for the guest.
    pub fn from_box(stream: Box<dyn InputStream>) -> Self {
        InputStreamResource {
            stream,
            latch: ClosedLatch::default(),
        }
    }

    /// `read`, with the length capped at [`MAX_READ_BYTES`].
    pub fn read(&mut self, len: u64) -> StreamResult<Bytes> {
        self.latch.check()?;
        self.latch.observe(self.stream.read(cap_len(len)))
    }

    /// `skip`, with the length capped at [`MAX_READ_BYTES`].
    pub fn skip(&mut self, len: u64) -> StreamResult<u64> {
        self.latch.check()?;
        Ok(self.latch.observe(self.stream.skip(cap_len(len)))? as u64)
    }

    /// Waits until a read would make progress (at once on a closed stream).
    pub async fn ready(&mut self) {
        if !self.latch.closed {
            self.stream.ready().await
        }
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
        InputStreamResource::ready(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input stream that fails once, then would happily produce data again.
    struct FailsOnce {
        failed: bool,
    }

    #[async_trait::async_trait]
    impl InputStream for FailsOnce {
        fn read(&mut self, max: usize) -> StreamResult<Bytes> {
            if !self.failed {
                self.failed = true;
                return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                    "boom"
                )));
            }
            Ok(Bytes::from(vec![1; max]))
        }
        async fn ready(&mut self) {}
    }

    /// An output stream that fails once, then would accept bytes again.
    struct FailsOnceOut {
        failed: bool,
    }

    #[async_trait::async_trait]
    impl OutputStream for FailsOnceOut {
        fn check_write(&mut self) -> StreamResult<usize> {
            if !self.failed {
                self.failed = true;
                return Err(StreamError::LastOperationFailed(wasmtime::format_err!(
                    "boom"
                )));
            }
            Ok(100)
        }
        fn write(&mut self, _bytes: Bytes) -> StreamResult<()> {
            Ok(())
        }
        fn flush(&mut self) -> StreamResult<()> {
            Ok(())
        }
        async fn write_ready(&mut self) -> StreamResult<usize> {
            self.check_write()
        }
    }

    fn is_closed<T: std::fmt::Debug>(result: StreamResult<T>) -> bool {
        matches!(result, Err(StreamError::Closed))
    }

    #[test]
    fn after_a_failure_an_input_stream_stays_closed_whatever_the_stream_says() {
        let mut input = InputStreamResource::new(FailsOnce { failed: false });
        assert!(matches!(
            input.read(10),
            Err(StreamError::LastOperationFailed(_))
        ));
        assert!(is_closed(input.read(10)));
        assert!(is_closed(input.read(0)));
        assert!(is_closed(input.skip(0)));
        assert!(is_closed(input.skip(10)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn after_a_failure_an_output_stream_stays_closed_whatever_the_stream_says() {
        let mut output = OutputStreamResource::new(FailsOnceOut { failed: false });
        assert!(matches!(
            output.check_write(),
            Err(StreamError::LastOperationFailed(_))
        ));
        assert!(is_closed(output.check_write()));
        assert_eq!(output.permit(), 0);
        assert!(is_closed(output.write(Bytes::from_static(b"x"))));
        assert!(is_closed(output.write_zeroes(0)));
        assert!(is_closed(output.flush()));
        assert!(is_closed(output.write_ready().await));
        assert!(is_closed(output.blocking_flush().await));
        assert!(is_closed(
            output
                .blocking_write_and_flush("blocking-write-and-flush", 1, |n| Some(Bytes::from(
                    vec![0; n]
                )))
                .await
        ));
        // The size limit is still a trap, checked before the stream's state.
        assert!(matches!(
            output
                .blocking_write_and_flush("blocking-write-and-flush", 4097, |_| None)
                .await,
            Err(StreamError::Trap(_))
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failure_seen_by_the_pollable_is_reported_by_the_next_operation() {
        let mut output = OutputStreamResource::new(FailsOnceOut { failed: false });
        Pollable::ready(&mut output).await;
        assert!(matches!(
            output.check_write(),
            Err(StreamError::LastOperationFailed(_))
        ));
        assert!(is_closed(output.check_write()));
        // The size limit is still a trap, checked before the stream's state.
        assert!(matches!(
            output
                .blocking_write_and_flush("blocking-write-and-flush", 4097, |_| None)
                .await,
            Err(StreamError::Trap(_))
        ));
    }
}
