//! Adding Weir's WASI interfaces to a component [`Linker`].

use wasmtime::component::{HasData, Linker};

use crate::bindings::wasi;
use crate::{WasiCtxView, WasiView};

/// Marks the store data Weir's host functions borrow: a [`WasiCtxView`].
pub struct HasWasi;

impl HasData for HasWasi {
    type Data<'a> = WasiCtxView<'a>;
}

pub(crate) fn view<T: WasiView>(data: &mut T) -> WasiCtxView<'_> {
    data.wasi()
}

/// Interfaces whose functions never wait: the same for async and sync engines.
fn add_nonblocking<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    let get = view::<T>;
    wasi::clocks::monotonic_clock::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::clocks::wall_clock::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::random::random::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::random::insecure::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::random::insecure_seed::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::io::error::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::environment::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::exit::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::stdin::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::stdout::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::stderr::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::terminal_input::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::terminal_output::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::terminal_stdin::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::terminal_stdout::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::cli::terminal_stderr::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::filesystem::types::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::filesystem::preopens::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::sockets::network::add_to_linker::<T, HasWasi>(linker, &Default::default(), get)?;
    wasi::sockets::instance_network::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::sockets::udp::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::sockets::udp_create_socket::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::sockets::tcp::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::sockets::tcp_create_socket::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::sockets::ip_name_lookup::add_to_linker::<T, HasWasi>(linker, get)?;
    Ok(())
}

/// Adds every interface Weir implements, for components run with Wasmtime's async API
/// (`instantiate_async`, `call_async`). Waiting functions (`poll`, `blocking-*`) yield to
/// the executor instead of blocking the thread.
///
/// Components importing any WASI 0.2.x version (0.2.0 to 0.2.12) link against these.
pub fn add_to_linker_async<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    add_nonblocking(linker)?;
    let get = view::<T>;
    wasi::io::poll::add_to_linker::<T, HasWasi>(linker, get)?;
    wasi::io::streams::add_to_linker::<T, HasWasi>(linker, get)?;
    crate::p2::io::add_write_from_guest_memory(linker)?;
    Ok(())
}

/// Adds every interface Weir implements, for components run with Wasmtime's synchronous API
/// (`instantiate`, `call`). Waiting functions block the calling thread.
pub fn add_to_linker_sync<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    add_nonblocking(linker)?;
    let get = view::<T>;
    crate::bindings::sync_io::wasi::io::poll::add_to_linker::<T, HasWasi>(linker, get)?;
    crate::bindings::sync_io::wasi::io::streams::add_to_linker::<T, HasWasi>(linker, get)?;
    crate::p2::io::add_write_from_guest_memory(linker)?;
    Ok(())
}
