//! Weir: a WASI 0.2 and 0.3 host for Wasmtime.
//!
//! Layout: one host core per interface (`io`, `cli`, `clocks`, `random`, `filesystem`,
//! `sockets`, `sys`), and a thin glue layer per ABI over it: [`p2`] (WASI 0.2), [`p3`]
//! (WASI 0.3) and [`p1`] (preview1 core modules).
//!
//! Weir implements `wasi:io`, `wasi:clocks`, `wasi:random`, `wasi:cli` and
//! `wasi:filesystem` (0.2.0 through 0.2.12) for components run by Wasmtime, with the exact
//! permit contract of `wasi:io/streams` enforced for every stream.
//!
//! ```no_run
//! use wasmtime::component::{Component, Linker, ResourceTable};
//! use wasmtime::{Config, Engine, Store};
//! use weir::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
//!
//! struct State { wasi: WasiCtx, table: ResourceTable }
//! impl WasiView for State {
//!     fn wasi(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//!
//! # async fn run() -> wasmtime::Result<()> {
//! let mut config = Config::new();
//! let engine = Engine::new(&config)?;
//! let mut linker = Linker::<State>::new(&engine);
//! weir::add_to_linker_async(&mut linker)?;
//! let wasi = WasiCtxBuilder::new().inherit_stdio().arg("hello").build();
//! let mut store = Store::new(&engine, State { wasi, table: ResourceTable::new() });
//! let component = Component::from_file(&engine, "examples/hello.wasm")?;
//! let outcome = weir::command::run_async(&mut store, &linker, &component).await?;
//! println!("guest exited with {}", outcome.exit_code());
//! # Ok(()) }
//! ```

pub mod p2;
pub use p2::bindings;
pub mod cli;
pub mod clocks;
pub mod command;
mod ctx;
pub mod error;
pub mod filesystem;
pub mod io;
mod linker;
pub mod p1;
pub mod p3;
pub mod program;
pub mod random;
pub mod sockets;
mod sync;
mod sys;

pub use cli::{I32Exit, InputSource, OutputSource};
pub use ctx::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
pub use filesystem::{DirPerms, FilePerms};
pub use linker::{HasWasi, add_to_linker_async, add_to_linker_sync};
pub use sync::spawn;
