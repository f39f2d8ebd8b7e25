//! Shared harness: run a component through the real Weir library, async or sync.
#![allow(dead_code, unused_imports)]

use std::sync::OnceLock;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use weir::command::Outcome;
use weir::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

pub use weir_test_guests::{rust_guest, wat_guest, wat_guest_with};

/// How the guest is driven.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// `add_to_linker_async` + `call_async` on a multi-threaded tokio runtime.
    Async,
    /// `add_to_linker_sync` + `call` on a plain thread (no runtime).
    Sync,
}

pub const MODES: [Mode; 2] = [Mode::Async, Mode::Sync];

pub struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl Host {
    pub fn new(wasi: WasiCtx, table: ResourceTable) -> Self {
        Host { wasi, table }
    }
}

impl WasiView for Host {
    fn wasi(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(Engine::default)
}

/// Runs `component` with the WASI context `wasi`.
pub fn run(mode: Mode, component: &[u8], wasi: WasiCtx) -> wasmtime::Result<Outcome> {
    let engine = engine();
    let component = Component::new(engine, component)?;
    let host = Host {
        wasi,
        table: ResourceTable::new(),
    };
    let mut store = Store::new(engine, host);
    match mode {
        Mode::Async => {
            let mut linker = Linker::new(engine);
            weir::add_to_linker_async(&mut linker)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            // run_async delivers this instance's unsent TCP bytes before it returns.
            runtime.block_on(weir::command::run_async(&mut store, &linker, &component))
        }
        Mode::Sync => {
            let mut linker = Linker::new(engine);
            weir::add_to_linker_sync(&mut linker)?;
            std::thread::scope(|scope| {
                scope
                    .spawn(|| weir::command::run_sync(&mut store, &linker, &component))
                    .join()
                    .expect("guest thread panicked")
            })
        }
    }
}

/// Runs the preview1 core module `module` (no adapter: `weir::p1`) with the context `wasi`.
pub fn run_module(mode: Mode, module: &[u8], wasi: WasiCtx) -> wasmtime::Result<Outcome> {
    let engine = engine();
    let module = wasmtime::Module::new(engine, module)?;
    let mut store = Store::new(
        engine,
        Host {
            wasi,
            table: ResourceTable::new(),
        },
    );
    let mut linker = wasmtime::Linker::new(engine);
    match mode {
        Mode::Async => {
            weir::p1::add_to_linker_async(&mut linker)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(weir::command::run_module_async(
                &mut store, &linker, &module,
            ))
        }
        Mode::Sync => {
            weir::p1::add_to_linker_sync(&mut linker)?;
            std::thread::scope(|scope| {
                scope
                    .spawn(|| weir::command::run_module_sync(&mut store, &linker, &module))
                    .join()
                    .expect("guest thread panicked")
            })
        }
    }
}

/// Runs the preview1 module `guest` (see [`weir_test_guests::core_module`]) with `args`
/// (argv[0] is the guest name) and a customised context.
pub fn run_core_guest(
    mode: Mode,
    guest: &str,
    args: &[&str],
    configure: impl FnOnce(&mut WasiCtxBuilder),
) -> wasmtime::Result<Outcome> {
    let module =
        weir_test_guests::core_module(guest).map_err(|e| wasmtime::format_err!("{e:#}"))?;
    let mut builder = WasiCtxBuilder::new();
    builder.arg(guest).args(args.iter().copied());
    configure(&mut builder);
    run_module(mode, &module, builder.build())
}

/// Runs a Rust guest with `args` (argv[0] is the guest name) and a customised context.
pub fn run_rust(
    mode: Mode,
    guest: &str,
    args: &[&str],
    configure: impl FnOnce(&mut WasiCtxBuilder),
) -> wasmtime::Result<Outcome> {
    let component = rust_guest(guest).map_err(|e| wasmtime::format_err!("{e:#}"))?;
    let mut builder = WasiCtxBuilder::new();
    builder.arg(guest).args(args.iter().copied());
    configure(&mut builder);
    run(mode, &component, builder.build())
}

/// The whole error chain as one string, for asserting on trap messages.
pub fn chain(error: &wasmtime::Error) -> String {
    error
        .chain()
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Asserts that `result` is a trap whose chain mentions `needle`.
pub fn assert_trap(result: wasmtime::Result<Outcome>, needle: &str) {
    match result {
        Ok(outcome) => {
            panic!("expected a trap mentioning `{needle}`, guest ended with {outcome:?}")
        }
        Err(error) => {
            let text = chain(&error);
            assert!(
                text.contains(needle),
                "trap `{text}` does not mention `{needle}`"
            );
        }
    }
}

/// Runs a script guest (`udp_script`, `tcp_script`) with `commands` under `policy` (plus
/// `configure`) and returns the result part of each printed `COMMAND => RESULT` line.
pub fn run_script(
    mode: Mode,
    guest: &str,
    policy: weir::sockets::NetworkPolicy,
    configure: impl FnOnce(&mut WasiCtxBuilder),
    commands: &[&str],
) -> Vec<String> {
    let out = weir::io::MemoryOutputPipe::new(1 << 20);
    let outcome = run_rust(mode, guest, commands, |b| {
        b.network_policy(policy)
            .stdout(out.clone())
            .inherit_stderr();
        configure(b);
    })
    .unwrap_or_else(|e| panic!("{mode:?}: {}", chain(&e)));
    let text = String::from_utf8(out.contents().to_vec()).expect("utf-8 transcript");
    assert_eq!(outcome, Outcome::Success, "{mode:?}: {text}");
    text.lines()
        .map(|line| {
            line.split_once(" => ")
                .map(|(_, r)| r.to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Asserts a transcript line by line; an expected line ending in `*` is a prefix.
pub fn assert_lines(actual: &[String], expected: &[&str]) {
    assert_eq!(actual.len(), expected.len(), "{actual:#?}");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        if let Some(prefix) = e.strip_suffix('*') {
            assert!(
                a.starts_with(prefix),
                "line {i}: `{a}` does not start with `{prefix}`"
            );
        } else {
            assert_eq!(a, e, "line {i}");
        }
    }
}

/// How many descriptors the process has open (`/proc/self/fd`).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// A peer that accepts one connection on `listener`, reads nothing for `delay` (so that a
/// guest's writes pile up unsent), then reads until the connection ends.
pub fn late_reader(
    listener: std::net::TcpListener,
    delay: std::time::Duration,
) -> std::thread::JoinHandle<std::io::Result<Vec<u8>>> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept()?;
        std::thread::sleep(delay);
        let mut received = Vec::new();
        std::io::Read::read_to_end(&mut stream, &mut received)?;
        Ok(received)
    })
}

/// WAT for a guest's `cabi_realloc`: a bump allocator from 0x100000 that never frees (the
/// memory must reach past what a test returns into it).
pub const BUMP_REALLOC: &str = r#"(global $heap (mut i32) (i32.const 0x100000))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))"#;
