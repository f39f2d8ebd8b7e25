//! `wasi:io` host functions. The logic lives in [`IoOps`], shared by the async bindings
//! (implemented here) and the sync bindings (in `crate::sync`).

use bytes::Bytes;
use wasmtime::component::{Resource, ResourceTable};

use crate::WasiCtxView;
use crate::bindings::wasi::io::{error, poll as poll_bindings, streams};
use crate::io::error::{IoError, StreamError, StreamResult};
use crate::io::poll::{self, PollableResource};
use crate::io::streams::{InputStreamResource, MAX_READ_BYTES, OutputStreamResource};

/// Converts a host [`StreamError`] into the guest's `stream-error` (or a trap).
pub(crate) fn to_guest_stream_error(
    table: &mut ResourceTable,
    error: StreamError,
) -> wasmtime::Result<streams::StreamError> {
    match error {
        StreamError::Closed => Ok(streams::StreamError::Closed),
        StreamError::LastOperationFailed(error) => Ok(streams::StreamError::LastOperationFailed(
            table.push(IoError(error))?,
        )),
        StreamError::Trap(error) => Err(error),
    }
}

/// The `wasi:io` operations over a resource table.
pub(crate) struct IoOps<'a>(pub &'a mut ResourceTable);

type Output = Resource<OutputStreamResource>;
type Input = Resource<InputStreamResource>;

impl IoOps<'_> {
    pub(crate) fn check_write(&mut self, stream: &Output) -> StreamResult<u64> {
        Ok(self.0.get_mut(stream)?.check_write()? as u64)
    }

    pub(crate) fn write(&mut self, stream: &Output, contents: Vec<u8>) -> StreamResult<()> {
        self.0.get_mut(stream)?.write(Bytes::from(contents))
    }

    pub(crate) fn write_zeroes(&mut self, stream: &Output, len: u64) -> StreamResult<()> {
        self.0.get_mut(stream)?.write_zeroes(len)
    }

    pub(crate) fn flush(&mut self, stream: &Output) -> StreamResult<()> {
        self.0.get_mut(stream)?.flush()
    }

    pub(crate) async fn blocking_write_and_flush(
        &mut self,
        stream: &Output,
        contents: Vec<u8>,
    ) -> StreamResult<()> {
        let mut contents = Bytes::from(contents);
        let len = contents.len() as u64;
        self.0
            .get_mut(stream)?
            .blocking_write_and_flush("blocking-write-and-flush", len, |n| {
                Some(contents.split_to(n))
            })
            .await
    }

    pub(crate) async fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: &Output,
        len: u64,
    ) -> StreamResult<()> {
        self.0
            .get_mut(stream)?
            .blocking_write_and_flush("blocking-write-zeroes-and-flush", len, |_| None)
            .await
    }

    pub(crate) async fn blocking_flush(&mut self, stream: &Output) -> StreamResult<()> {
        self.0.get_mut(stream)?.blocking_flush().await
    }

    /// `splice`: as the WIT spells it out, `check-write`, then `read` at most that many
    /// bytes, then `write` them. Never blocks.
    pub(crate) fn splice(&mut self, dst: &Output, src: &Input, len: u64) -> StreamResult<u64> {
        let permit = self.0.get_mut(dst)?.check_write()?;
        let len = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .min(permit)
            .min(MAX_READ_BYTES);
        if len == 0 {
            return Ok(0);
        }
        let bytes = self.0.get_mut(src)?.read(len as u64)?;
        let n = bytes.len() as u64;
        self.0.get_mut(dst)?.write(bytes)?;
        Ok(n)
    }

    /// `blocking-splice`: waits for the destination to accept and the source to produce, then
    /// splices. Returns 0 only when `len` is 0.
    pub(crate) async fn blocking_splice(
        &mut self,
        dst: &Output,
        src: &Input,
        len: u64,
    ) -> StreamResult<u64> {
        if len == 0 {
            return Ok(0);
        }
        loop {
            self.0.get_mut(dst)?.write_ready().await?;
            self.0.get_mut(src)?.ready().await;
            let n = self.splice(dst, src, len)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }

    pub(crate) fn read(&mut self, stream: &Input, len: u64) -> StreamResult<Vec<u8>> {
        Ok(self.0.get_mut(stream)?.read(len)?.into())
    }

    pub(crate) async fn blocking_read(
        &mut self,
        stream: &Input,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        if len == 0 {
            return self.read(stream, 0);
        }
        loop {
            let stream_entry = self.0.get_mut(stream)?;
            stream_entry.ready().await;
            let bytes = stream_entry.read(len)?;
            if !bytes.is_empty() {
                return Ok(bytes.into());
            }
        }
    }

    pub(crate) fn skip(&mut self, stream: &Input, len: u64) -> StreamResult<u64> {
        self.0.get_mut(stream)?.skip(len)
    }

    pub(crate) async fn blocking_skip(&mut self, stream: &Input, len: u64) -> StreamResult<u64> {
        if len == 0 {
            return self.skip(stream, 0);
        }
        loop {
            let stream_entry = self.0.get_mut(stream)?;
            stream_entry.ready().await;
            let n = stream_entry.skip(len)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }

    pub(crate) fn drop_output(&mut self, stream: Output) -> wasmtime::Result<()> {
        let mut entry = self.0.delete(stream)?;
        entry.cancel();
        Ok(())
    }

    pub(crate) fn drop_input(&mut self, stream: Input) -> wasmtime::Result<()> {
        let mut entry = self.0.delete(stream)?;
        entry.cancel();
        Ok(())
    }
}

impl error::Host for WasiCtxView<'_> {}

impl error::HostError for WasiCtxView<'_> {
    fn to_debug_string(&mut self, err: Resource<IoError>) -> wasmtime::Result<String> {
        Ok(format!("{:#}", self.table.get(&err)?.0))
    }
    fn drop(&mut self, err: Resource<IoError>) -> wasmtime::Result<()> {
        self.table.delete(err)?;
        Ok(())
    }
}

impl poll_bindings::Host for WasiCtxView<'_> {
    async fn poll(
        &mut self,
        pollables: Vec<Resource<PollableResource>>,
    ) -> wasmtime::Result<Vec<u32>> {
        poll::poll_list(self.table, pollables).await
    }
}

impl poll_bindings::HostPollable for WasiCtxView<'_> {
    async fn block(&mut self, pollable: Resource<PollableResource>) -> wasmtime::Result<()> {
        poll::pollable_block(self.table, &pollable).await
    }
    fn ready(&mut self, pollable: Resource<PollableResource>) -> wasmtime::Result<bool> {
        poll::pollable_is_ready(self.table, &pollable)
    }
    fn drop(&mut self, pollable: Resource<PollableResource>) -> wasmtime::Result<()> {
        poll::pollable_drop(self.table, pollable)
    }
}

impl streams::Host for WasiCtxView<'_> {
    fn convert_stream_error(
        &mut self,
        error: StreamError,
    ) -> wasmtime::Result<streams::StreamError> {
        to_guest_stream_error(self.table, error)
    }
}

impl streams::HostOutputStream for WasiCtxView<'_> {
    fn check_write(&mut self, stream: Output) -> StreamResult<u64> {
        IoOps(self.table).check_write(&stream)
    }
    fn write(&mut self, stream: Output, contents: Vec<u8>) -> StreamResult<()> {
        IoOps(self.table).write(&stream, contents)
    }
    async fn blocking_write_and_flush(
        &mut self,
        stream: Output,
        contents: Vec<u8>,
    ) -> StreamResult<()> {
        IoOps(self.table)
            .blocking_write_and_flush(&stream, contents)
            .await
    }
    fn flush(&mut self, stream: Output) -> StreamResult<()> {
        IoOps(self.table).flush(&stream)
    }
    async fn blocking_flush(&mut self, stream: Output) -> StreamResult<()> {
        IoOps(self.table).blocking_flush(&stream).await
    }
    fn subscribe(&mut self, stream: Output) -> wasmtime::Result<Resource<PollableResource>> {
        poll::subscribe(self.table, &stream)
    }
    fn write_zeroes(&mut self, stream: Output, len: u64) -> StreamResult<()> {
        IoOps(self.table).write_zeroes(&stream, len)
    }
    async fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Output,
        len: u64,
    ) -> StreamResult<()> {
        IoOps(self.table)
            .blocking_write_zeroes_and_flush(&stream, len)
            .await
    }
    fn splice(&mut self, stream: Output, src: Input, len: u64) -> StreamResult<u64> {
        IoOps(self.table).splice(&stream, &src, len)
    }
    async fn blocking_splice(&mut self, stream: Output, src: Input, len: u64) -> StreamResult<u64> {
        IoOps(self.table).blocking_splice(&stream, &src, len).await
    }
    fn drop(&mut self, stream: Output) -> wasmtime::Result<()> {
        IoOps(self.table).drop_output(stream)
    }
}

impl streams::HostInputStream for WasiCtxView<'_> {
    fn read(&mut self, stream: Input, len: u64) -> StreamResult<Vec<u8>> {
        IoOps(self.table).read(&stream, len)
    }
    async fn blocking_read(&mut self, stream: Input, len: u64) -> StreamResult<Vec<u8>> {
        IoOps(self.table).blocking_read(&stream, len).await
    }
    fn skip(&mut self, stream: Input, len: u64) -> StreamResult<u64> {
        IoOps(self.table).skip(&stream, len)
    }
    async fn blocking_skip(&mut self, stream: Input, len: u64) -> StreamResult<u64> {
        IoOps(self.table).blocking_skip(&stream, len).await
    }
    fn subscribe(&mut self, stream: Input) -> wasmtime::Result<Resource<PollableResource>> {
        poll::subscribe(self.table, &stream)
    }
    fn drop(&mut self, stream: Input) -> wasmtime::Result<()> {
        IoOps(self.table).drop_input(stream)
    }
}

/// Replaces the bindings' `[method]output-stream.write` with one that takes the bytes as a
/// `WasmList<u8>` (a view of guest memory) instead of a `Vec<u8>`: a stream with a
/// [`SliceWriter`](super::streams::SliceWriter) (host stdout) writes them to the OS straight
/// from guest memory, without the copy the generated binding makes (a third of a 64 KiB
/// stdout flood's time to `/dev/null` in `perf`). Same contract as the generated one: the
/// permit check, closed latch, errors and traps of [`OutputStreamResource::write`].
pub(crate) fn add_write_from_guest_memory<T: crate::WasiView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    use wasmtime::component::WasmList;
    linker.allow_shadowing(true);
    let added = linker
        .instance("wasi:io/streams@0.2.12")
        .and_then(|mut streams| {
            streams.func_wrap(
                "[method]output-stream.write",
                |mut store: wasmtime::StoreContextMut<'_, T>,
                 (stream, contents): (Output, WasmList<u8>)| {
                    let result = write_from_guest_memory(&mut store, &stream, &contents);
                    let view = store.data_mut().wasi();
                    Ok((match result {
                        Ok(()) => Ok(()),
                        Err(error) => Err(to_guest_stream_error(view.table, error)?),
                    },))
                },
            )
        });
    // Back to refusing duplicate definitions, the default an embedder expects.
    linker.allow_shadowing(false);
    added
}

fn write_from_guest_memory<T: crate::WasiView + 'static>(
    store: &mut wasmtime::StoreContextMut<'_, T>,
    stream: &Output,
    contents: &wasmtime::component::WasmList<u8>,
) -> StreamResult<()> {
    // The guest memory view and the resource table are both in the store: look the stream
    // up again after each use of the memory.
    fn resource<'a, T: crate::WasiView + 'static>(
        store: &'a mut wasmtime::StoreContextMut<'_, T>,
        stream: &Output,
    ) -> StreamResult<&'a mut OutputStreamResource> {
        Ok(store.data_mut().wasi().table.get_mut(stream)?)
    }
    match resource(store, stream)?.begin_write(contents.len())? {
        Some(writer) => {
            let result = writer.write_slice(contents.as_le_slice(&*store));
            resource(store, stream)?.finish_write(result)
        }
        None => {
            let bytes = Bytes::copy_from_slice(contents.as_le_slice(&*store));
            resource(store, stream)?.write_permitted(bytes)
        }
    }
}
