//! `wasi:io`: errors, pollables and streams.
//!
//! The embedder-facing traits are [`OutputStream`], [`InputStream`] and [`Pollable`]. The
//! guest-facing contract (permits, traps, `closed` vs `last-operation-failed`) is enforced
//! here, in the host layer, once for every stream implementation: an implementation only has
//! to be honest about how much it can take.

mod error;
pub(crate) mod host;
pub mod pipe;
pub(crate) mod poll;
pub mod stdio;
mod streams;
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
    loop {
        let woken = notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let permit = check_write()?;
        if permit > 0 {
            return Ok(permit);
        }
        woken.await;
    }
}

pub use streams::{
    InputStream, InputStreamResource, MAX_BLOCKING_WRITE_BYTES, MAX_READ_BYTES, OutputStream,
    OutputStreamResource, SliceWriter,
};
