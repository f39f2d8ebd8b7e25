//! A bounded queue between a guest-facing [`OutputStream`] and a background writer.
//!
//! Guests write into the queue without blocking; a worker (a thread for stdout/stderr, a
//! tokio task for [`AsyncWriteStream`](super::AsyncWriteStream)) drains it. The queue's
//! capacity is the stream's backpressure: `check-write` grants the free space.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

use super::error::{StreamError, StreamResult};
use super::streams::{OutputStream, SliceWriter};

/// How the worker's destination failed.
enum Failure {
    /// The destination is gone (broken pipe): report `closed`.
    Closed,
    /// Report this error once as `last-operation-failed`, then `closed`.
    Error(io::Error),
    /// The error was reported; report `closed` from now on.
    Reported,
}

#[derive(Default)]
struct QueueState {
    chunks: VecDeque<Bytes>,
    enqueued_total: u64,
    written_total: u64,
    /// The worker flushes the destination once `written_total` reaches this.
    flush_requested: u64,
    flushed_total: u64,
    failure: Option<Failure>,
    /// Set when the last stream handle is gone: the worker exits after draining.
    handles_gone: bool,
}

/// Writes smaller than this go to the worker even when a direct write is possible: it
/// joins many of them into one vectored write, where writing each directly would cost a
/// system call apiece (16-byte preview1 `fd_write`s: 2.8x wasmtime-wasi through the
/// worker, 1.15x direct; see docs/benchmarks.md).
const DIRECT_MIN_BYTES: usize = 4096;

/// Writes what the destination takes right now without waiting (0: nothing now).
pub(crate) type DirectWrite = Box<dyn Fn(&[u8]) -> io::Result<usize> + Send + Sync>;

fn abandoned_error() -> io::Error {
    io::Error::other("the stream was dropped and its destination took no bytes in time")
}

/// Shared state between stream handles and the worker.
pub(crate) struct WriteQueue {
    state: Mutex<QueueState>,
    capacity: usize,
    /// When the destination can be written without waiting, a write finding the queue
    /// empty goes straight there from the guest's thread; only what it does not take now
    /// is queued for the worker. Saves the hand-off to a thread that competes for cores.
    direct: Option<DirectWrite>,
    /// Wakes the worker.
    work: Notify,
    /// Wakes guests waiting for space or a completed flush.
    progress: Notify,
    /// Signalled when the last stream handle is gone.
    gone: Notify,
}

/// How long the worker keeps handing queued bytes to a destination, once the last stream
/// handle is gone (the guest, or its whole instance, was dropped): a destination that has
/// not taken them by then is given up, so that a dropped instance leaves no task or writer
/// behind however stuck its reader is.
pub(crate) const ABANDONED_WRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl WriteQueue {
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Self::with_direct(capacity, None)
    }

    /// A queue whose writes try `direct` first when nothing is queued (see the field).
    pub(crate) fn with_direct(capacity: usize, direct: Option<DirectWrite>) -> Arc<Self> {
        Arc::new(WriteQueue {
            state: Mutex::new(QueueState::default()),
            capacity: capacity.max(1),
            direct,
            work: Notify::new(),
            progress: Notify::new(),
            gone: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A poisoned lock only means a panic elsewhere; the state itself stays consistent
        // (every update is a few plain assignments).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until everything enqueued so far has been written and flushed, or the
    /// destination failed. Used before process exit so that no output is lost.
    pub(crate) fn wait_drained_blocking(&self) {
        // Bytes a guest wrote without flushing are delivered too: ask for the flush here,
        // or the wait below would never end.
        self.request_flush();
        loop {
            {
                let state = self.lock();
                if state.failure.is_some() || state.flushed_total >= state.enqueued_total {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// A write of a stream handle: straight to the destination only when nothing is queued
    /// or being written, so bytes never overtake earlier ones (the lock stays held so that no
    /// other handle can queue in between); the rest is queued for the worker.
    fn write(&self, source: Source<'_>) -> StreamResult<()> {
        let mut state = self.lock();
        QueuedOutputStream::check_failure(&mut state)?;
        let bytes = source.as_slice();
        if bytes.is_empty() {
            return Ok(());
        }
        let mut written = 0;
        if let Some(direct) = &self.direct
            && bytes.len() >= DIRECT_MIN_BYTES
            && state.enqueued_total == state.written_total
        {
            match direct(bytes) {
                Ok(n) => {
                    written = n.min(bytes.len());
                    state.enqueued_total += written as u64;
                    state.written_total += written as u64;
                    if written == bytes.len() {
                        return Ok(());
                    }
                }
                Err(error) => {
                    // This write failed: report it now, then `closed` from here on.
                    let closed = error.kind() == io::ErrorKind::BrokenPipe;
                    state.failure = Some(if closed {
                        Failure::Closed
                    } else {
                        Failure::Reported
                    });
                    drop(state);
                    self.progress.notify_waiters();
                    return Err(if closed {
                        StreamError::Closed
                    } else {
                        StreamError::LastOperationFailed(wasmtime::Error::new(error))
                    });
                }
            }
        }
        let rest = source.into_bytes_from(written);
        state.enqueued_total += rest.len() as u64;
        state.chunks.push_back(rest);
        drop(state);
        self.work.notify_one();
        Ok(())
    }

    /// Requests a flush of everything enqueued so far and returns its target.
    fn request_flush(&self) -> u64 {
        let mut state = self.lock();
        let target = state.enqueued_total;
        if target > state.flush_requested {
            state.flush_requested = target;
            drop(state);
            self.work.notify_one();
        }
        target
    }

    /// The worker loop: drains the queue into `sink` until every handle is gone and the
    /// queue is empty, or the destination fails.
    pub(crate) async fn run_worker<S: ChunkSink>(self: Arc<Self>, mut sink: S) {
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut state = self.lock();
                let batch: Vec<Bytes> = state.chunks.drain(..).collect();
                let flush_to =
                    (state.flush_requested > state.flushed_total).then_some(state.flush_requested);
                if !batch.is_empty() || flush_to.is_some() {
                    Some((batch, flush_to))
                } else if state.handles_gone {
                    return;
                } else {
                    None
                }
            };
            let Some((batch, flush_to)) = next else {
                notified.await;
                continue;
            };
            // Small chunks (a guest printing line by line) go out together in one vectored
            // write; big ones one at a time, so that space frees up as each is written.
            let mut rest = &batch[..];
            while !rest.is_empty() {
                let group = coalesced_group_len(rest);
                let (chunks, after) = rest.split_at(group);
                rest = after;
                let len: usize = chunks.iter().map(Bytes::len).sum();
                let written = tokio::select! {
                    written = sink.write_all_vectored(chunks) => written,
                    () = self.abandoned() => return self.fail(abandoned_error()),
                };
                if let Err(error) = written {
                    self.fail(error);
                    return;
                }
                let mut state = self.lock();
                state.written_total += len as u64;
                drop(state);
                self.progress.notify_waiters();
            }
            if let Some(target) = flush_to {
                // Flush only once everything up to the target was written.
                let written = self.lock().written_total;
                if written >= target {
                    let flushed = tokio::select! {
                        flushed = sink.flush() => flushed,
                        () = self.abandoned() => return self.fail(abandoned_error()),
                    };
                    if let Err(error) = flushed {
                        self.fail(error);
                        return;
                    }
                    let mut state = self.lock();
                    state.flushed_total = state.flushed_total.max(written);
                    drop(state);
                    self.progress.notify_waiters();
                }
            }
        }
    }

    /// Resolves [`ABANDONED_WRITE_GRACE`] after the last stream handle went.
    async fn abandoned(&self) {
        super::wait_until(&self.gone, || self.lock().handles_gone.then_some(())).await;
        tokio::time::sleep(ABANDONED_WRITE_GRACE).await;
    }

    fn fail(&self, error: io::Error) {
        let mut state = self.lock();
        state.failure = Some(if error.kind() == io::ErrorKind::BrokenPipe {
            Failure::Closed
        } else {
            Failure::Error(error)
        });
        state.chunks.clear();
        drop(state);
        self.progress.notify_waiters();
    }
}

/// Chunks the worker writes together: at most this many bytes...
const GROUP_BYTES: usize = 64 * 1024;
/// ...in at most this many chunks (Linux's `IOV_MAX` is 1024).
const GROUP_CHUNKS: usize = 1024;

/// How many of the leading `chunks` form the next write: one chunk of at least
/// [`GROUP_BYTES`], or as many smaller ones as fit in [`GROUP_BYTES`] and [`GROUP_CHUNKS`].
fn coalesced_group_len(chunks: &[Bytes]) -> usize {
    let mut bytes = 0;
    let mut count = 0;
    for chunk in chunks.iter().take(GROUP_CHUNKS) {
        if count > 0 && bytes + chunk.len() > GROUP_BYTES {
            break;
        }
        bytes += chunk.len();
        count += 1;
    }
    count.max(1)
}

/// The bytes of a write: owned by the stream already, or borrowed from guest memory (copied
/// only if they must be queued).
enum Source<'a> {
    Owned(Bytes),
    Borrowed(&'a [u8]),
}

impl Source<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Source::Owned(bytes) => bytes,
            Source::Borrowed(slice) => slice,
        }
    }

    /// The bytes from `offset` on, as a chunk to queue.
    fn into_bytes_from(self, offset: usize) -> Bytes {
        match self {
            Source::Owned(mut bytes) => bytes.split_off(offset),
            Source::Borrowed(slice) => Bytes::copy_from_slice(&slice[offset..]),
        }
    }
}

impl SliceWriter for WriteQueue {
    fn write_slice(&self, bytes: &[u8]) -> StreamResult<()> {
        self.write(Source::Borrowed(bytes))
    }
}

/// Where a worker writes.
#[async_trait::async_trait]
pub(crate) trait ChunkSink: Send + 'static {
    async fn write_all(&mut self, chunk: Bytes) -> io::Result<()>;
    /// Writes every chunk, in order; a sink that has a vectored write overrides this.
    async fn write_all_vectored(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        for chunk in chunks {
            self.write_all(chunk.clone()).await?;
        }
        Ok(())
    }
    async fn flush(&mut self) -> io::Result<()>;
}

/// A guest-facing handle on a [`WriteQueue`].
pub(crate) struct QueuedOutputStream {
    queue: Arc<WriteQueue>,
    /// This handle's pending flush: `check_write` returns 0 until the worker flushed this far.
    flush_target: u64,
}

impl QueuedOutputStream {
    pub(crate) fn new(queue: Arc<WriteQueue>) -> Self {
        QueuedOutputStream {
            queue,
            flush_target: 0,
        }
    }

    /// Another handle on the same queue, with its own flush state.
    pub(crate) fn another_handle(&self) -> Self {
        Self::new(self.queue.clone())
    }

    fn check_failure(state: &mut QueueState) -> StreamResult<()> {
        match state.failure.take() {
            None => Ok(()),
            Some(Failure::Error(error)) => {
                state.failure = Some(Failure::Reported);
                Err(StreamError::LastOperationFailed(wasmtime::Error::new(
                    error,
                )))
            }
            Some(kept) => {
                state.failure = Some(kept);
                Err(StreamError::Closed)
            }
        }
    }
}

#[async_trait::async_trait]
impl OutputStream for QueuedOutputStream {
    fn check_write(&mut self) -> StreamResult<usize> {
        let mut state = self.queue.lock();
        Self::check_failure(&mut state)?;
        if state.flushed_total < self.flush_target {
            return Ok(0);
        }
        // Accepted and not yet written by the worker, including the batch in flight.
        let pending = state.enqueued_total - state.written_total;
        Ok(self.queue.capacity.saturating_sub(pending as usize))
    }

    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.queue.write(Source::Owned(bytes))
    }

    fn slice_writer(&self) -> Option<Arc<dyn SliceWriter>> {
        // Only a queue that writes directly gains from borrowed bytes: without a direct path
        // every byte is copied into the queue anyway.
        match self.queue.direct {
            Some(_) => Some(self.queue.clone()),
            None => None,
        }
    }

    fn flush(&mut self) -> StreamResult<()> {
        let mut state = self.queue.lock();
        Self::check_failure(&mut state)?;
        // Direct writes leave nothing behind to flush: everything is with the destination.
        if self.queue.direct.is_some() && state.enqueued_total == state.written_total {
            state.flushed_total = state.enqueued_total;
            self.flush_target = state.enqueued_total;
            return Ok(());
        }
        drop(state);
        self.flush_target = self.queue.request_flush();
        Ok(())
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        let queue = self.queue.clone();
        super::wait_for_permit(&queue.progress, || self.check_write()).await
    }
}

impl Drop for QueuedOutputStream {
    fn drop(&mut self) {
        // Only the last handle (plus the worker's own reference) ends the worker. Global
        // queues (stdout) keep a reference in a static, so they never end.
        if Arc::strong_count(&self.queue) <= 2 {
            self.queue.lock().handles_gone = true;
            self.queue.work.notify_one();
            self.queue.gone.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(lens: &[usize]) -> Vec<Bytes> {
        lens.iter().map(|&n| Bytes::from(vec![0u8; n])).collect()
    }

    #[test]
    fn small_chunks_are_grouped_and_big_ones_go_alone() {
        assert_eq!(coalesced_group_len(&chunks(&[16; 10])), 10);
        assert_eq!(coalesced_group_len(&chunks(&[16; 5000])), GROUP_CHUNKS);
        assert_eq!(coalesced_group_len(&chunks(&[GROUP_BYTES, 16])), 1);
        assert_eq!(coalesced_group_len(&chunks(&[16, GROUP_BYTES, 16])), 1);
        assert_eq!(coalesced_group_len(&chunks(&[4 * GROUP_BYTES])), 1);
        assert_eq!(
            coalesced_group_len(&chunks(&[GROUP_BYTES / 2, GROUP_BYTES / 2, 1])),
            2
        );
    }
}
