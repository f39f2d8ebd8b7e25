//! `wasi:cli@0.3.0`: environment and exit as in 0.2; stdio as component-model streams over
//! the context's 0.2 stdio sources.
//!
//! - `stdout`/`stderr.write-via-stream`: a [`ByteConsumer`] moves the guest's bytes from
//!   its memory to Weir's output stream (within its `check-write` permits, zero-copy where
//!   the stream allows). The returned future resolves once the guest dropped its end and
//!   every byte was flushed, or with `pipe` (the reader went away) / `io`.
//! - `stdin.read-via-stream`: a [`ByteProducer`] reads at most what the guest asked for
//!   straight into the guest's buffer.

use std::sync::Arc;

use tokio::sync::oneshot;
use wasmtime::component::{Access, FutureReader, Resource, StreamReader};

use super::bindings::wasi::cli::{
    environment, exit, stderr, stdin, stdout, terminal_input, terminal_output, terminal_stderr,
    terminal_stdin, terminal_stdout, types::ErrorCode,
};
use super::streams::{ByteConsumer, ByteProducer, Outcome, flushing, outcome_future};
use crate::cli::{I32Exit, TerminalInput, TerminalOutput};
use crate::io::StreamError;
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

/// Pipes the guest's `data` into a new stream of `sink`; the future resolves once every
/// byte was flushed.
fn write_via_stream<U: 'static>(
    mut store: Access<'_, U, HasWasi>,
    data: StreamReader<u8>,
    sink: Arc<dyn OutputSource>,
) -> wasmtime::Result<FutureReader<Outcome<ErrorCode>>> {
    let (sender, receiver) = oneshot::channel();
    let flush = flushing(error_code, ErrorCode::Io);
    let consumer = ByteConsumer::new(sink.stream(), sender, error_code, flush);
    data.pipe(&mut store, consumer)?;
    outcome_future(&mut store, receiver)
}

impl<U: 'static> stdout::HostWithStore<U> for HasWasi {
    fn write_via_stream(
        mut store: Access<'_, U, Self>,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Outcome<ErrorCode>>> {
        let sink = store.get().ctx.stdout.clone();
        write_via_stream(store, data, sink)
    }
}

impl<U: 'static> stderr::HostWithStore<U> for HasWasi {
    fn write_via_stream(
        mut store: Access<'_, U, Self>,
        data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Outcome<ErrorCode>>> {
        let sink = store.get().ctx.stderr.clone();
        write_via_stream(store, data, sink)
    }
}

impl<U: 'static> stdin::HostWithStore<U> for HasWasi {
    fn read_via_stream(
        mut store: Access<'_, U, Self>,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<Outcome<ErrorCode>>)> {
        let source = store.get().ctx.stdin.stream();
        let (sender, receiver) = oneshot::channel();
        let stream = StreamReader::new(&mut store, ByteProducer::new(source, sender, error_code))?;
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
