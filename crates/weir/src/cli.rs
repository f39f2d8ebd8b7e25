//! `wasi:cli`: environment, exit, stdio and terminals.

use std::fmt;

use wasmtime::component::Resource;

use crate::WasiCtxView;
use crate::bindings::wasi::cli;
use crate::io::{
    ClosedInputStream, ClosedOutputStream, InputStream, InputStreamResource, MemoryInputPipe,
    MemoryOutputPipe, OutputStream, OutputStreamResource, SinkOutputStream,
};

/// The guest's exit status, carried as the error that ends `wasi:cli/run.run` when the guest
/// calls `wasi:cli/exit.exit` or `exit-with-code`.
///
/// Embedders find it with `error.downcast_ref::<I32Exit>()`;
/// [`crate::command::run_async`] does this for you.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I32Exit(pub i32);

impl fmt::Display for I32Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest exited with status {}", self.0)
    }
}

impl std::error::Error for I32Exit {}

/// Makes the stream a guest gets from `wasi:cli/stdin.get-stdin` (one per call).
pub trait InputSource: Send + Sync + 'static {
    /// A new stream handle.
    fn stream(&self) -> Box<dyn InputStream>;
    /// Whether `wasi:cli/terminal-stdin` should report a terminal.
    fn is_terminal(&self) -> bool {
        false
    }
}

/// Makes the stream a guest gets from `get-stdout`/`get-stderr` (one per call).
pub trait OutputSource: Send + Sync + 'static {
    /// A new stream handle.
    fn stream(&self) -> Box<dyn OutputStream>;
    /// Whether `wasi:cli/terminal-stdout`/`terminal-stderr` should report a terminal.
    fn is_terminal(&self) -> bool {
        false
    }
}

/// The host's stdin.
pub struct HostStdin;
/// The host's stdout.
pub struct HostStdout;
/// The host's stderr.
pub struct HostStderr;

impl InputSource for HostStdin {
    fn stream(&self) -> Box<dyn InputStream> {
        Box::new(crate::io::stdio::stdin())
    }
    fn is_terminal(&self) -> bool {
        crate::io::stdio::is_terminal(0)
    }
}

impl OutputSource for HostStdout {
    fn stream(&self) -> Box<dyn OutputStream> {
        Box::new(crate::io::stdio::stdout())
    }
    fn is_terminal(&self) -> bool {
        crate::io::stdio::is_terminal(1)
    }
}

impl OutputSource for HostStderr {
    fn stream(&self) -> Box<dyn OutputStream> {
        Box::new(crate::io::stdio::stderr())
    }
    fn is_terminal(&self) -> bool {
        crate::io::stdio::is_terminal(2)
    }
}

impl InputSource for MemoryInputPipe {
    fn stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }
}

impl InputSource for ClosedInputStream {
    fn stream(&self) -> Box<dyn InputStream> {
        Box::new(ClosedInputStream)
    }
}

impl OutputSource for MemoryOutputPipe {
    fn stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputSource for SinkOutputStream {
    fn stream(&self) -> Box<dyn OutputStream> {
        Box::new(SinkOutputStream)
    }
}

impl OutputSource for ClosedOutputStream {
    fn stream(&self) -> Box<dyn OutputStream> {
        Box::new(ClosedOutputStream)
    }
}

/// The `terminal-input` resource (it has no methods in WASI 0.2).
pub struct TerminalInput;
/// The `terminal-output` resource (it has no methods in WASI 0.2).
pub struct TerminalOutput;

impl cli::environment::Host for WasiCtxView<'_> {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.ctx.env.clone())
    }
    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.ctx.args.clone())
    }
    fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.ctx.initial_cwd.clone())
    }
}

impl cli::exit::Host for WasiCtxView<'_> {
    fn exit(&mut self, status: Result<(), ()>) -> wasmtime::Result<()> {
        let code = if status.is_ok() { 0 } else { 1 };
        Err(wasmtime::Error::new(I32Exit(code)))
    }
    fn exit_with_code(&mut self, status_code: u8) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(I32Exit(i32::from(status_code))))
    }
}

impl cli::stdin::Host for WasiCtxView<'_> {
    fn get_stdin(&mut self) -> wasmtime::Result<Resource<InputStreamResource>> {
        let stream = InputStreamResource::from_box(self.ctx.stdin.stream());
        Ok(self.table.push(stream)?)
    }
}

impl cli::stdout::Host for WasiCtxView<'_> {
    fn get_stdout(&mut self) -> wasmtime::Result<Resource<OutputStreamResource>> {
        let stream = OutputStreamResource::from_box(self.ctx.stdout.stream());
        Ok(self.table.push(stream)?)
    }
}

impl cli::stderr::Host for WasiCtxView<'_> {
    fn get_stderr(&mut self) -> wasmtime::Result<Resource<OutputStreamResource>> {
        let stream = OutputStreamResource::from_box(self.ctx.stderr.stream());
        Ok(self.table.push(stream)?)
    }
}

impl cli::terminal_input::Host for WasiCtxView<'_> {}
impl cli::terminal_input::HostTerminalInput for WasiCtxView<'_> {
    fn drop(&mut self, rep: Resource<TerminalInput>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl cli::terminal_output::Host for WasiCtxView<'_> {}
impl cli::terminal_output::HostTerminalOutput for WasiCtxView<'_> {
    fn drop(&mut self, rep: Resource<TerminalOutput>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl WasiCtxView<'_> {
    fn terminal_output(
        &mut self,
        is_terminal: bool,
    ) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        if is_terminal {
            Ok(Some(self.table.push(TerminalOutput)?))
        } else {
            Ok(None)
        }
    }
}

impl cli::terminal_stdin::Host for WasiCtxView<'_> {
    fn get_terminal_stdin(&mut self) -> wasmtime::Result<Option<Resource<TerminalInput>>> {
        if self.ctx.stdin.is_terminal() {
            Ok(Some(self.table.push(TerminalInput)?))
        } else {
            Ok(None)
        }
    }
}

impl cli::terminal_stdout::Host for WasiCtxView<'_> {
    fn get_terminal_stdout(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        let is_terminal = self.ctx.stdout.is_terminal();
        self.terminal_output(is_terminal)
    }
}

impl cli::terminal_stderr::Host for WasiCtxView<'_> {
    fn get_terminal_stderr(&mut self) -> wasmtime::Result<Option<Resource<TerminalOutput>>> {
        let is_terminal = self.ctx.stderr.is_terminal();
        self.terminal_output(is_terminal)
    }
}
