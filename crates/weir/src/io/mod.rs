//! `wasi:io`: errors, pollables and streams.
//!
//! The embedder-facing traits are [`OutputStream`], [`InputStream`] and [`Pollable`]. The
//! guest-facing contract (permits, traps, `closed` vs `last-operation-failed`) is enforced
//! here, in the host layer, once for every stream implementation: an implementation only has
//! to be honest about how much it can take.

pub(crate) mod error;

pub mod pipe;
pub(crate) mod poll;
pub mod stdio;
pub(crate) mod streams;
pub(crate) mod write_queue;

pub use error::{IoError, StreamError, StreamResult};
pub use pipe::{
    AsyncReadStream, AsyncWriteStream, ClosedInputStream, ClosedOutputStream, MemoryInputPipe,
    MemoryOutputPipe, SinkOutputStream,
};
pub use poll::{Pollable, PollableResource, subscribe, subscribe_owned};
/// Waits on `notify` until `check_write` grants a non-zero permit (or fails), without missing
/// a wake-up between the check and the wait.
pub(crate) async fn wait_for_permit(
    notify: &tokio::sync::Notify,
    mut check_write: impl FnMut() -> StreamResult<usize>,
) -> StreamResult<usize> {
    wait_until(notify, || match check_write() {
        Ok(0) => None,
        other => Some(other),
    })
    .await
}

/// Waits until `ready` returns a value, checking it again each time `notify` is signalled
/// (registered before each check, so that a signal between the check and the wait is not
/// missed; `notify_waiters` signals suffice).
pub(crate) async fn wait_until<T>(
    notify: &tokio::sync::Notify,
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    loop {
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Some(value) = ready() {
            return value;
        }
        woken.await;
    }
}

pub use streams::{
    InputStream, InputStreamResource, MAX_BLOCKING_WRITE_BYTES, MAX_READ_BYTES, OutputStream,
    OutputStreamResource, SliceWriter,
};
