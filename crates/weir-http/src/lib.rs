//! `wasi:http` 0.2 for the Weir WASI host.
//!
//! - [`add_to_linker_async`] adds `wasi:http/types` and `wasi:http/outgoing-handler`;
//!   [`add_proxy_to_linker_async`] adds them together with Weir's WASI interfaces, which is
//!   what a `wasi:http/proxy` component needs.
//! - [`server`] serves a proxy component: one fresh instance per request.
//! - Bodies are Weir streams: an outgoing body's `check-write` grants at most
//!   [`body::WRITE_PERMIT`] bytes, writing past it traps, and a declared `content-length`
//!   is enforced (writing more, or finishing with less, is the WIT's body-size error).
//! - Outgoing requests are denied unless an `http-request` rule of the instance's
//!   [`NetworkPolicy`] allows their host and port (`http-request=*.example.com:443`).
//!
//! ```no_run
//! use wasmtime::component::{Linker, ResourceTable};
//! use weir::{WasiCtx, WasiCtxView, WasiView};
//! use weir_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
//!
//! struct Host { wasi: WasiCtx, http: WasiHttpCtx, table: ResourceTable }
//! impl WasiView for Host {
//!     fn wasi(&mut self) -> WasiCtxView<'_> {
//!         WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
//!     }
//! }
//! impl WasiHttpView for Host {
//!     fn http(&mut self) -> WasiHttpCtxView<'_> {
//!         WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table }
//!     }
//! }
//! # fn main() -> wasmtime::Result<()> {
//! let engine = wasmtime::Engine::default();
//! let mut linker = Linker::<Host>::new(&engine);
//! weir_http::add_proxy_to_linker_async(&mut linker)?;
//! # Ok(()) }
//! ```

pub mod bindings;
pub mod body;
mod error;
pub mod fields;
mod outgoing;
pub mod server;
pub mod types;

use wasmtime::component::{HasData, Linker, ResourceTable};
use weir::sockets::NetworkPolicy;

pub use bindings::{ErrorCode, Method, Scheme};
pub use error::HttpError;

/// The HTTP state of one instance.
pub struct WasiHttpCtx {
    /// Its `http-request` rules decide which outgoing requests may be sent.
    pub(crate) policy: NetworkPolicy,
}

impl WasiHttpCtx {
    /// A context whose outgoing requests follow the `http-request` rules of `policy`
    /// (usually the same policy as the instance's [`weir::WasiCtx`]).
    pub fn new(policy: NetworkPolicy) -> Self {
        WasiHttpCtx { policy }
    }
}

impl Default for WasiHttpCtx {
    /// Outgoing requests denied.
    fn default() -> Self {
        WasiHttpCtx::new(NetworkPolicy::deny_all())
    }
}

/// What the HTTP host functions borrow from the store's data.
pub struct WasiHttpCtxView<'a> {
    pub ctx: &'a mut WasiHttpCtx,
    pub table: &'a mut ResourceTable,
}

/// Store data that gives access to its HTTP context and resource table (the same table as
/// its [`weir::WasiView`]).
pub trait WasiHttpView {
    fn http(&mut self) -> WasiHttpCtxView<'_>;
}

/// Marks the store data the HTTP host functions borrow: a [`WasiHttpCtxView`].
pub struct HasHttp;

impl HasData for HasHttp {
    type Data<'a> = WasiHttpCtxView<'a>;
}

fn view<T: WasiHttpView>(data: &mut T) -> WasiHttpCtxView<'_> {
    data.http()
}

/// Adds `wasi:http/types` and `wasi:http/outgoing-handler` (0.2.0 to 0.2.12).
pub fn add_to_linker_async<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    bindings::wasi::http::types::add_to_linker::<T, HasHttp>(
        linker,
        &Default::default(),
        view::<T>,
    )?;
    bindings::wasi::http::outgoing_handler::add_to_linker::<T, HasHttp>(linker, view::<T>)?;
    Ok(())
}

/// Adds Weir's WASI interfaces and `wasi:http`: everything a `wasi:http/proxy` component
/// imports (and a command component using `wasi:http`, for `weir run -S http`).
pub fn add_proxy_to_linker_async<T: WasiHttpView + weir::WasiView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    weir::add_to_linker_async(linker)?;
    add_to_linker_async(linker)
}

impl bindings::wasi::http::types::Host for WasiHttpCtxView<'_> {
    fn http_error_code(
        &mut self,
        error: wasmtime::component::Resource<weir::io::IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let error = self.table.get(&error)?;
        Ok(error.0.downcast_ref::<HttpError>().map(|e| e.0.clone()))
    }
}
