//! The host process's stdin, stdout and stderr as guest streams.
//!
//! Writes to stdout/stderr never block the guest: when the descriptor can take them at once
//! (a file, `/dev/null`, a pipe with room, a socket) they are written from the guest's
//! thread, straight from guest memory for components; otherwise (a terminal, a full pipe,
//! writes under 4 KiB) they go into a bounded queue that a dedicated thread writes to the
//! file descriptor, in order. For a pipe, the direct path writes through a second,
//! non-blocking open of the same pipe (`/proc/self/fd/N`), kept for the process's lifetime:
//! closing fd 1 alone then does not give the reader end-of-file until the process exits.
//! `WEIR_STDIO_THREAD_ONLY` in the environment turns the direct path off (for benchmarks).
//!
//! Reads from stdin are served by a thread that reads one chunk at a time, only when a guest
//! asks. Call [`flush_stdio`] before the
//! process exits so that queued output is not lost (`weir run` does).

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use super::error::{StreamError, StreamResult};
use super::streams::{InputStream, OutputStream};
use super::write_queue::{ChunkSink, DirectWrite, QueuedOutputStream, WriteQueue};
use crate::sys::DirectWriter;

/// Bytes stdout/stderr buffer ahead of the file descriptor (the guest's `check-write` budget).
pub const STDIO_QUEUE_BYTES: usize = 1 << 20;

/// Chunk size of stdin reads.
const STDIN_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy)]
enum StdFd {
    Stdout,
    Stderr,
}

struct StdSink(StdFd);

#[async_trait::async_trait]
impl ChunkSink for StdSink {
    async fn write_all(&mut self, chunk: Bytes) -> io::Result<()> {
        self.write_all_vectored(std::slice::from_ref(&chunk)).await
    }
    async fn write_all_vectored(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        // This runs on the queue's dedicated thread, so blocking here is the point. Write to
        // the descriptor directly: std's stdout is line-buffered, which would split every
        // chunk containing a newline into extra system calls. Holding the lock (after
        // flushing anything the host printed) keeps host and guest output from interleaving.
        match self.0 {
            StdFd::Stdout => {
                let mut lock = io::stdout().lock();
                lock.flush()?;
                writev_all_fd(lock.as_fd(), chunks)
            }
            StdFd::Stderr => writev_all_fd(io::stderr().lock().as_fd(), chunks),
        }
    }
    async fn flush(&mut self) -> io::Result<()> {
        match self.0 {
            StdFd::Stdout => io::stdout().lock().flush(),
            StdFd::Stderr => io::stderr().lock().flush(),
        }
    }
}

fn write_all_fd(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

/// Writes every chunk in order with vectored writes, resuming after partial writes.
fn writev_all_fd(fd: BorrowedFd<'_>, chunks: &[Bytes]) -> io::Result<()> {
    let mut first = 0; // the first chunk not completely written
    let mut offset = 0; // how much of it was written
    while first < chunks.len() {
        if chunks.len() - first == 1 {
            return write_all_fd(fd, &chunks[first][offset..]);
        }
        let slices: Vec<io::IoSlice<'_>> = std::iter::once(&chunks[first][offset..])
            .chain(chunks[first + 1..].iter().map(|chunk| &chunk[..]))
            .map(io::IoSlice::new)
            .collect();
        let mut written = match rustix::io::writev(fd, &slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        };
        while first < chunks.len() && written >= chunks[first].len() - offset {
            written -= chunks[first].len() - offset;
            first += 1;
            offset = 0;
        }
        offset += written;
    }
    Ok(())
}

/// Writes from the guest's thread when the host's descriptor can take bytes without waiting
/// (see [`DirectWriter`]); `None` leaves every write to the writer thread.
fn direct_write(fd: StdFd) -> Option<DirectWrite> {
    if std::env::var_os("WEIR_STDIO_THREAD_ONLY").is_some() {
        return None; // to compare both paths (weir-bench), not a user setting
    }
    let writer = match fd {
        StdFd::Stdout => DirectWriter::for_fd(io::stdout().as_fd()),
        StdFd::Stderr => DirectWriter::for_fd(io::stderr().as_fd()),
    }?;
    Some(Box::new(move |bytes: &[u8]| match fd {
        StdFd::Stdout => {
            // As the writer thread does: the host's own buffered output goes first.
            let mut lock = io::stdout().lock();
            lock.flush()?;
            writer.try_write(lock.as_fd(), bytes)
        }
        StdFd::Stderr => writer.try_write(io::stderr().lock().as_fd(), bytes),
    }))
}

fn spawn_std_queue(fd: StdFd, name: &str) -> Arc<WriteQueue> {
    let queue = WriteQueue::with_direct(STDIO_QUEUE_BYTES, direct_write(fd));
    let worker = queue.clone();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(worker.run_worker(StdSink(fd))),
                Err(error) => tracing::error!(%error, "cannot start the stdio writer"),
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot spawn the stdio writer thread");
    }
    queue
}

fn stdout_queue() -> &'static Arc<WriteQueue> {
    static QUEUE: OnceLock<Arc<WriteQueue>> = OnceLock::new();
    QUEUE.get_or_init(|| spawn_std_queue(StdFd::Stdout, "weir-stdout"))
}

fn stderr_queue() -> &'static Arc<WriteQueue> {
    static QUEUE: OnceLock<Arc<WriteQueue>> = OnceLock::new();
    QUEUE.get_or_init(|| spawn_std_queue(StdFd::Stderr, "weir-stderr"))
}

/// Waits until everything guests wrote to the host's stdout and stderr reached the file
/// descriptors (or writing failed). Call before the process exits.
pub fn flush_stdio() {
    stdout_queue().wait_drained_blocking();
    stderr_queue().wait_drained_blocking();
}

/// The host process's stdout as a guest stream. Every handle shares one queue.
pub fn stdout() -> impl OutputStream {
    QueuedOutputStream::new(stdout_queue().clone())
}

/// The host process's stderr as a guest stream. Every handle shares one queue.
pub fn stderr() -> impl OutputStream {
    QueuedOutputStream::new(stderr_queue().clone())
}

#[derive(Default)]
struct StdinState {
    buffer: BytesMut,
    eof: bool,
    error: Option<io::Error>,
    error_reported: bool,
    /// A reader asked for more data.
    wanted: bool,
}

struct StdinShared {
    state: Mutex<StdinState>,
    want: Condvar,
    arrived: Notify,
}

impl StdinShared {
    fn lock(&self) -> MutexGuard<'_, StdinState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader_loop(&self) {
        let mut chunk = vec![0u8; STDIN_CHUNK_BYTES];
        loop {
            {
                let mut state = self.lock();
                while !state.wanted {
                    state = self.want.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
            let result = io::stdin().lock().read(&mut chunk);
            let mut state = self.lock();
            state.wanted = false;
            let done = match result {
                Ok(0) => {
                    state.eof = true;
                    true
                }
                Ok(n) => {
                    state.buffer.extend_from_slice(&chunk[..n]);
                    false
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => false,
                Err(error) => {
                    state.error = Some(error);
                    true
                }
            };
            drop(state);
            self.arrived.notify_waiters();
            if done {
                return;
            }
        }
    }
}

fn stdin_shared() -> &'static Arc<StdinShared> {
    static SHARED: OnceLock<Arc<StdinShared>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let shared = Arc::new(StdinShared {
            state: Mutex::new(StdinState::default()),
            want: Condvar::new(),
            arrived: Notify::new(),
        });
        let reader = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("weir-stdin".into())
            .spawn(move || reader.reader_loop());
        if let Err(error) = spawned {
            let mut state = shared.lock();
            state.error = Some(error);
        }
        shared
    })
}

/// The host process's stdin as a guest stream. Every handle shares one buffer.
pub fn stdin() -> impl InputStream {
    StdinStream
}

struct StdinStream;

impl StdinStream {
    /// Takes up to `max` bytes, or reports EOF/error, or asks the reader for more.
    fn take(state: &mut StdinState, max: usize) -> StreamResult<Option<Bytes>> {
        if !state.buffer.is_empty() {
            let n = max.min(state.buffer.len());
            return Ok(Some(state.buffer.split_to(n).freeze()));
        }
        if let Some(error) = state.error.take() {
            state.error_reported = true;
            return Err(StreamError::LastOperationFailed(wasmtime::Error::new(
                error,
            )));
        }
        if state.eof || state.error_reported {
            return Err(StreamError::Closed);
        }
        Ok(None)
    }
}

#[async_trait::async_trait]
impl InputStream for StdinStream {
    fn read(&mut self, max: usize) -> StreamResult<Bytes> {
        let shared = stdin_shared();
        let mut state = shared.lock();
        if max == 0 {
            // A zero-length read still reports a closed stream.
            if state.buffer.is_empty() && (state.eof || state.error_reported) {
                return Err(StreamError::Closed);
            }
            return Ok(Bytes::new());
        }
        match Self::take(&mut state, max)? {
            Some(bytes) => Ok(bytes),
            None => {
                state.wanted = true;
                drop(state);
                shared.want.notify_one();
                Ok(Bytes::new())
            }
        }
    }

    async fn ready(&mut self) {
        let shared = stdin_shared();
        loop {
            let arrived = shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let mut state = shared.lock();
                if !state.buffer.is_empty()
                    || state.eof
                    || state.error.is_some()
                    || state.error_reported
                {
                    return;
                }
                state.wanted = true;
            }
            shared.want.notify_one();
            arrived.await;
        }
    }
}

/// Whether the host's stdin/stdout/stderr is a terminal.
pub(crate) fn is_terminal(fd: u8) -> bool {
    use std::io::IsTerminal;
    match fd {
        0 => io::stdin().is_terminal(),
        1 => io::stdout().is_terminal(),
        _ => io::stderr().is_terminal(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_writes_resume_after_partial_writes_in_order() {
        // More than a pipe holds, in chunks of uneven sizes, so some writes are partial.
        let chunks: Vec<Bytes> = (0..3000usize)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 1 + (i * 37) % 700]))
            .collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let drain = std::thread::spawn(move || {
            let mut received = Vec::new();
            reader.read_to_end(&mut received).expect("read");
            received
        });
        writev_all_fd(writer.as_fd(), &chunks).expect("writev");
        drop(writer);
        assert_eq!(drain.join().expect("drain"), expected);
    }
}
