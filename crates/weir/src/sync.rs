//! Synchronous `wasi:io` bindings for engines without async support: each waiting function
//! runs the shared async implementation to completion on the calling thread.

use std::future::Future;
use std::sync::OnceLock;

use wasmtime::component::Resource;

use crate::WasiCtxView;
use crate::bindings::sync_io::wasi::io::{poll, streams};
use crate::io::{InputStreamResource, OutputStreamResource};
use crate::io::{PollableResource, StreamError, StreamResult};
use crate::p2::io::IoOps;

fn fallback_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-sync")
            .enable_all()
            .build()
            .unwrap_or_else(|error| panic!("weir: cannot start a tokio runtime: {error}"))
    })
}

/// Runs `f` where a tokio reactor is current (the caller's runtime, or Weir's own), so that
/// I/O objects created inside register with a running reactor.
pub(crate) fn with_reactor<R>(f: impl FnOnce() -> R) -> R {
    if tokio::runtime::Handle::try_current().is_ok() {
        f()
    } else {
        let _guard = fallback_runtime().enter();
        f()
    }
}

/// Runs `future` in the background on the current tokio runtime, or on Weir's own when the
/// caller has none (a synchronous embedding). Crates layering interfaces over Weir (such as
/// `weir-http`) use it so that their host functions work with both linkers.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.spawn(future),
        Err(_) => fallback_runtime().spawn(future),
    }
}

/// Runs `future` to completion on this thread, whether or not a tokio runtime is current.
pub(crate) fn block_on<F: Future + Send>(future: F) -> F::Output
where
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(future))
        }
        // A current-thread runtime cannot be blocked from inside; wait on another thread.
        Ok(_) => std::thread::scope(|scope| {
            scope
                .spawn(|| fallback_runtime().block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
        Err(_) => fallback_runtime().block_on(future),
    }
}

type Output = Resource<OutputStreamResource>;
type Input = Resource<InputStreamResource>;

impl poll::Host for WasiCtxView<'_> {
    fn poll(&mut self, pollables: Vec<Resource<PollableResource>>) -> wasmtime::Result<Vec<u32>> {
        block_on(crate::io::poll::poll_list(self.table, pollables))
    }
}

impl poll::HostPollable for WasiCtxView<'_> {
    fn block(&mut self, pollable: Resource<PollableResource>) -> wasmtime::Result<()> {
        block_on(crate::io::poll::pollable_block(self.table, &pollable))
    }
    fn ready(&mut self, pollable: Resource<PollableResource>) -> wasmtime::Result<bool> {
        crate::io::poll::pollable_is_ready(self.table, &pollable)
    }
    fn drop(&mut self, pollable: Resource<PollableResource>) -> wasmtime::Result<()> {
        crate::io::poll::pollable_drop(self.table, pollable)
    }
}

impl streams::Host for WasiCtxView<'_> {
    fn convert_stream_error(
        &mut self,
        error: StreamError,
    ) -> wasmtime::Result<streams::StreamError> {
        Ok(
            match crate::p2::io::to_guest_stream_error(self.table, error)? {
                crate::bindings::wasi::io::streams::StreamError::Closed => {
                    streams::StreamError::Closed
                }
                crate::bindings::wasi::io::streams::StreamError::LastOperationFailed(error) => {
                    streams::StreamError::LastOperationFailed(error)
                }
            },
        )
    }
}

impl streams::HostOutputStream for WasiCtxView<'_> {
    fn check_write(&mut self, stream: Output) -> StreamResult<u64> {
        IoOps(self.table).check_write(&stream)
    }
    fn write(&mut self, stream: Output, contents: Vec<u8>) -> StreamResult<()> {
        IoOps(self.table).write(&stream, contents)
    }
    fn blocking_write_and_flush(&mut self, stream: Output, contents: Vec<u8>) -> StreamResult<()> {
        block_on(IoOps(self.table).blocking_write_and_flush(&stream, contents))
    }
    fn flush(&mut self, stream: Output) -> StreamResult<()> {
        IoOps(self.table).flush(&stream)
    }
    fn blocking_flush(&mut self, stream: Output) -> StreamResult<()> {
        block_on(IoOps(self.table).blocking_flush(&stream))
    }
    fn subscribe(&mut self, stream: Output) -> wasmtime::Result<Resource<PollableResource>> {
        crate::io::subscribe(self.table, &stream)
    }
    fn write_zeroes(&mut self, stream: Output, len: u64) -> StreamResult<()> {
        IoOps(self.table).write_zeroes(&stream, len)
    }
    fn blocking_write_zeroes_and_flush(&mut self, stream: Output, len: u64) -> StreamResult<()> {
        block_on(IoOps(self.table).blocking_write_zeroes_and_flush(&stream, len))
    }
    fn splice(&mut self, stream: Output, src: Input, len: u64) -> StreamResult<u64> {
        IoOps(self.table).splice(&stream, &src, len)
    }
    fn blocking_splice(&mut self, stream: Output, src: Input, len: u64) -> StreamResult<u64> {
        block_on(IoOps(self.table).blocking_splice(&stream, &src, len))
    }
    fn drop(&mut self, stream: Output) -> wasmtime::Result<()> {
        IoOps(self.table).drop_output(stream)
    }
}

impl streams::HostInputStream for WasiCtxView<'_> {
    fn read(&mut self, stream: Input, len: u64) -> StreamResult<Vec<u8>> {
        IoOps(self.table).read(&stream, len)
    }
    fn blocking_read(&mut self, stream: Input, len: u64) -> StreamResult<Vec<u8>> {
        block_on(IoOps(self.table).blocking_read(&stream, len))
    }
    fn skip(&mut self, stream: Input, len: u64) -> StreamResult<u64> {
        IoOps(self.table).skip(&stream, len)
    }
    fn blocking_skip(&mut self, stream: Input, len: u64) -> StreamResult<u64> {
        block_on(IoOps(self.table).blocking_skip(&stream, len))
    }
    fn subscribe(&mut self, stream: Input) -> wasmtime::Result<Resource<PollableResource>> {
        crate::io::subscribe(self.table, &stream)
    }
    fn drop(&mut self, stream: Input) -> wasmtime::Result<()> {
        IoOps(self.table).drop_input(stream)
    }
}
