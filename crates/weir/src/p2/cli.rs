//! `wasi:cli@0.2.x`: environment, exit, stdio and terminal-* over the context's sources.

use crate::WasiCtxView;
use crate::bindings::wasi::cli;
use crate::cli::*;
use crate::io::{InputStreamResource, OutputStreamResource};
use wasmtime::component::Resource;

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
