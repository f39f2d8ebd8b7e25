//! The `wasi:cli` core: stdio sources and sinks, exit codes and terminals (the 0.2 glue is
//! `crate::p2::cli`, the 0.3 glue `crate::p3`).

use std::fmt;

use wasmtime::component::Resource;

use crate::WasiCtxView;
use crate::io::{
    ClosedInputStream, ClosedOutputStream, InputStream, MemoryInputPipe, MemoryOutputPipe,
    OutputStream, SinkOutputStream,
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

impl WasiCtxView<'_> {
    pub(crate) fn terminal_output(
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
