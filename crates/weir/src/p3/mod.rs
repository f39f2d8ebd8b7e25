//! WASI 0.3 (`wasi:*@0.3.0`) for components run on Wasmtime's component-model-async:
//! a thin layer over the same host core as 0.2. Stdio streams are Weir's
//! [`OutputStream`](crate::io::OutputStream)/[`InputStream`](crate::io::InputStream) (the
//! same sources, limits and zero-copy stdout writer), clocks and random use the 0.2 code's
//! helpers, and everything lives in the same [`WasiCtx`](crate::WasiCtx) and resource table,
//! so a component importing 0.2 and 0.3 interfaces together is served by one context.
//!
//! Provided so far: `wasi:cli` (environment, exit, run, stdin/stdout/stderr, terminal-*),
//! `wasi:clocks` (monotonic-clock, system-clock, types; `timezone` is `@unstable` and not
//! linked), `wasi:random`, `wasi:filesystem`, `wasi:sockets` (TCP, UDP and name lookup).
//! Not yet: `wasi:http` 0.3 (`weir run` refuses a component importing it, naming it).

pub mod bindings;
mod cli;
mod clocks;
mod filesystem;
mod random;
pub mod sockets;
mod streams;

use wasmtime::component::Linker;

use crate::linker::{HasWasi, view};
use crate::{WasiView, command::Outcome};

/// The interfaces [`add_to_linker_async`] adds, by name without the version (for telling a
/// user which 0.3 imports of a component are not provided).
pub const INTERFACES: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:cli/types",
    "wasi:clocks/monotonic-clock",
    "wasi:clocks/system-clock",
    "wasi:clocks/types",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:sockets/types",
    "wasi:sockets/ip-name-lookup",
];

/// Adds the WASI 0.3 interfaces Weir implements. WASI 0.3 is async-only: run the
/// component with Wasmtime's async API (`instantiate_async`, `run_concurrent`). Add
/// [`crate::add_to_linker_async`] too for the 0.2 interfaces such components often also
/// import (for example through the preview1 adapter).
pub fn add_to_linker_async<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use bindings::wasi::{cli, clocks, random};
    let get = view::<T>;
    cli::environment::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::exit::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::stdin::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::stdout::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::stderr::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::terminal_input::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::terminal_output::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::terminal_stdin::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::terminal_stdout::add_to_linker::<T, HasWasi>(linker, get)?;
    cli::terminal_stderr::add_to_linker::<T, HasWasi>(linker, get)?;
    clocks::monotonic_clock::add_to_linker::<T, HasWasi>(linker, get)?;
    clocks::system_clock::add_to_linker::<T, HasWasi>(linker, get)?;
    clocks::types::add_to_linker::<T, HasWasi>(linker, get)?;
    random::random::add_to_linker::<T, HasWasi>(linker, get)?;
    random::insecure::add_to_linker::<T, HasWasi>(linker, get)?;
    random::insecure_seed::add_to_linker::<T, HasWasi>(linker, get)?;
    bindings::wasi::filesystem::types::add_to_linker::<T, HasWasi>(linker, get)?;
    bindings::wasi::filesystem::preopens::add_to_linker::<T, HasWasi>(linker, get)?;
    bindings::wasi::sockets::types::add_to_linker::<T, HasWasi>(linker, get)?;
    bindings::wasi::sockets::ip_name_lookup::add_to_linker::<T, HasWasi>(linker, get)?;
    Ok(())
}

/// Whether `component` is a WASI 0.3 command: it exports `wasi:cli/run@0.3.x`.
pub fn is_command(component: &wasmtime::component::Component) -> bool {
    component.get_export_index(None, RUN_INTERFACE).is_some()
}

/// The export a WASI 0.3 command is called through.
const RUN_INTERFACE: &str = "wasi:cli/run@0.3.0";

/// Instantiates a WASI 0.3 command and runs its `wasi:cli/run.run` to completion,
/// including the subtasks and streams it leaves running (stdout is delivered before this
/// returns). `exit`/`exit-with-code` come back as [`Outcome::Exit`], as for 0.2.
pub async fn run_async<T: WasiView + 'static>(
    store: &mut wasmtime::Store<T>,
    linker: &Linker<T>,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<Outcome> {
    let instance = linker.instantiate_async(&mut *store, component).await?;
    let command = bindings::Command::new(&mut *store, &instance)?;
    let result = store
        .run_concurrent(async |accessor| command.wasi_cli_run().call_run(accessor).await)
        .await
        .and_then(|ran| ran);
    crate::command::outcome(result.map(|ran| (ran,)))
}
