//! Running a `wasi:cli/command` component: instantiate, call `wasi:cli/run.run`, and turn
//! the outcome (normal return, `exit`, trap) into an exit status.

use wasmtime::component::{Component, ComponentExportIndex, Instance, Linker, TypedFunc};
use wasmtime::{AsContextMut, Store};

use crate::WasiView;
use crate::cli::I32Exit;
use crate::sockets::tcp::BackgroundWriters;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `run` returned `ok`.
    Success,
    /// `run` returned `err`.
    Failure,
    /// The guest called `exit` / `exit-with-code` with this status.
    Exit(i32),
}

impl Outcome {
    /// The process exit status `wasmtime run` would report.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Success => 0,
            Outcome::Failure => 1,
            Outcome::Exit(code) => code,
        }
    }
}

type RunFunc = TypedFunc<(), (Result<(), ()>,)>;

/// Finds `wasi:cli/run.run` in any 0.2.x version.
fn run_export_index(component: &Component) -> wasmtime::Result<ComponentExportIndex> {
    let interface = component
        .get_export_index(None, "wasi:cli/run@0.2.12")
        .or_else(|| component.get_export_index(None, "wasi:cli/run@0.2.0"))
        .ok_or_else(|| {
            wasmtime::format_err!(
                "the component does not export `wasi:cli/run` (it is not a wasi:cli/command)"
            )
        })?;
    component
        .get_export_index(Some(&interface), "run")
        .ok_or_else(|| {
            wasmtime::format_err!("the component's `wasi:cli/run` has no `run` function")
        })
}

fn run_func<T>(
    store: impl AsContextMut<Data = T>,
    instance: &Instance,
    index: &ComponentExportIndex,
) -> wasmtime::Result<RunFunc> {
    instance.get_typed_func::<(), (Result<(), ()>,)>(store, index)
}

pub(crate) fn outcome(result: wasmtime::Result<(Result<(), ()>,)>) -> wasmtime::Result<Outcome> {
    match result {
        Ok((Ok(()),)) => Ok(Outcome::Success),
        Ok((Err(()),)) => Ok(Outcome::Failure),
        Err(error) => match error.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(Outcome::Exit(exit.0)),
            None => Err(error),
        },
    }
}

/// Instantiates `component` and runs it, on an engine with async support.
///
/// A trap comes back as `Err` (with its backtrace); `exit` comes back as [`Outcome::Exit`].
/// However the guest ended, TCP bytes it wrote that the kernel had not taken yet are
/// delivered before this returns, for up to the context's
/// [`tcp_delivery_limit`](crate::WasiCtxBuilder::tcp_delivery_limit); this instance's
/// writers only, not other instances'.
pub async fn run_async<T: WasiView + 'static>(
    store: &mut Store<T>,
    linker: &Linker<T>,
    component: &Component,
) -> wasmtime::Result<Outcome> {
    let (writers, limit) = delivery(store);
    let result = call_run_async(store, linker, component).await;
    writers.deliver_within(limit).await;
    result
}

/// [`run_async`] without the wait for TCP delivery, for any store (also one whose data is
/// not a [`WasiView`]); the caller waits for
/// [`WasiCtx::tcp_background_writers`](crate::WasiCtx::tcp_background_writers) itself.
pub async fn call_run_async<T: Send + 'static>(
    store: &mut Store<T>,
    linker: &Linker<T>,
    component: &Component,
) -> wasmtime::Result<Outcome> {
    let index = run_export_index(component)?;
    let instance = linker.instantiate_async(&mut *store, component).await?;
    let run = run_func(&mut *store, &instance, &index)?;
    outcome(run.call_async(&mut *store, ()).await)
}

/// Instantiates `component` and runs it, on an engine without async support; TCP bytes
/// are delivered before it returns, as in [`run_async`].
pub fn run_sync<T: WasiView + 'static>(
    store: &mut Store<T>,
    linker: &Linker<T>,
    component: &Component,
) -> wasmtime::Result<Outcome> {
    let (writers, limit) = delivery(store);
    let result = call_run_sync(store, linker, component);
    crate::sync::block_on(writers.deliver_within(limit));
    result
}

/// [`run_sync`] without the wait for TCP delivery (the sync twin of [`call_run_async`]).
fn call_run_sync<T: 'static>(
    store: &mut Store<T>,
    linker: &Linker<T>,
    component: &Component,
) -> wasmtime::Result<Outcome> {
    let index = run_export_index(component)?;
    let instance = linker.instantiate(&mut *store, component)?;
    let run = run_func(&mut *store, &instance, &index)?;
    outcome(run.call(&mut *store, ()))
}

/// The instance's TCP background writers and how long to wait for them.
fn delivery<T: WasiView>(store: &mut Store<T>) -> (BackgroundWriters, std::time::Duration) {
    let view = store.data_mut().wasi();
    (
        view.ctx.tcp_background_writers(),
        view.ctx.tcp_delivery_limit(),
    )
}

/// Instantiates a preview1 command module (one exporting `_start`, linked with
/// [`crate::p1::add_to_linker_async`]) and runs it, on an engine with async support.
///
/// `proc_exit(N)` comes back as [`Outcome::Exit`] with `N` unchanged (wasmtime 48 makes
/// N ≥ 126 an error); returning from `_start` is [`Outcome::Success`].
pub async fn run_module_async<T: Send + 'static>(
    store: &mut Store<T>,
    linker: &wasmtime::Linker<T>,
    module: &wasmtime::Module,
) -> wasmtime::Result<Outcome> {
    let instance = linker.instantiate_async(&mut *store, module).await?;
    let start = start_func(&mut *store, &instance)?;
    exit_outcome(start.call_async(&mut *store, ()).await)
}

/// Instantiates a preview1 command module (linked with [`crate::p1::add_to_linker_sync`])
/// and runs it, on an engine without async support; see [`run_module_async`].
pub fn run_module_sync<T: 'static>(
    store: &mut Store<T>,
    linker: &wasmtime::Linker<T>,
    module: &wasmtime::Module,
) -> wasmtime::Result<Outcome> {
    let instance = linker.instantiate(&mut *store, module)?;
    let start = start_func(&mut *store, &instance)?;
    exit_outcome(start.call(&mut *store, ()))
}

fn start_func<T: 'static>(
    store: &mut Store<T>,
    instance: &wasmtime::Instance,
) -> wasmtime::Result<wasmtime::TypedFunc<(), ()>> {
    instance
        .get_typed_func::<(), ()>(&mut *store, "_start")
        .map_err(|_| {
            wasmtime::format_err!(
                "the module exports no `_start` function (it is not a WASI command module)"
            )
        })
}

/// The outcome of a call into a guest that returns nothing (`_start`, an invoked export):
/// `Ok` is [`Outcome::Success`], an [`I32Exit`] is [`Outcome::Exit`] (0 is success), and any
/// other error (a trap) stays an error.
pub fn exit_outcome(result: wasmtime::Result<()>) -> wasmtime::Result<Outcome> {
    match result {
        Ok(()) => Ok(Outcome::Success),
        Err(error) => match error.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(match exit.0 {
                0 => Outcome::Success,
                code => Outcome::Exit(code),
            }),
            None => Err(error),
        },
    }
}
