//! `wasi:http` 0.2 for the Weir WASI host.
//!
//! - [`add_to_linker_async`] adds `wasi:http/types` and `wasi:http/outgoing-handler`;
//!   [`add_proxy_to_linker_async`] adds them together with Weir's WASI interfaces, which is
//!   what a `wasi:http/proxy` component needs.
//! - [`server`] serves a proxy component: one fresh instance per request.
//! - Bodies are Weir streams: an outgoing body's `check-write` grants at most
//!   [`body::WRITE_PERMIT`] bytes, writing past it traps, and a declared `content-length`
//!   is enforced (writing more, or finishing with less, is the WIT's body-size error).
//! - Outgoing requests go over HTTP/1.1, `http` or `https` (rustls, Mozilla roots by
//!   default, [`WasiHttpCtx::with_tls_config`] for others).
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
pub mod p3;
pub mod server;
pub mod types;

use wasmtime::component::{HasData, Linker, ResourceTable};
use weir::sockets::NetworkPolicy;

pub use bindings::{ErrorCode, Method, Scheme};
pub use error::HttpError;
pub use outgoing::{
    ConnectionPool, MAX_IDLE_PER_ORIGIN, OutgoingTarget, RequestSender, SenderBody, SenderFuture,
};

/// The rustls version `weir-http` uses, for [`WasiHttpCtx::with_tls_config`].
pub use rustls;

/// The HTTP state of one instance.
pub struct WasiHttpCtx {
    /// Its `http-request` rules decide which outgoing requests may be sent.
    pub(crate) policy: NetworkPolicy,
    /// How `https` requests verify servers.
    pub(crate) tls: std::sync::Arc<rustls::ClientConfig>,
    /// Sends allowed requests instead of Weir's own client, if set.
    pub(crate) sender: Option<std::sync::Arc<dyn RequestSender>>,
    /// Connections kept for later requests.
    pub(crate) pool: std::sync::Arc<ConnectionPool>,
    /// The most bytes one `fields` the guest builds may hold (see
    /// [`WasiHttpCtx::with_field_size_limit`]).
    pub(crate) field_size_limit: usize,
}

/// The default of [`WasiHttpCtx::with_field_size_limit`]: 128 KiB, as in wasmtime.
pub const DEFAULT_FIELD_SIZE_LIMIT: usize = 128 * 1024;

impl WasiHttpCtx {
    /// A context whose outgoing requests follow the `http-request` rules of `policy`
    /// (usually the same policy as the instance's [`weir::WasiCtx`]); `https` requests
    /// trust the Mozilla root certificates ([`default_tls_config`]).
    pub fn new(policy: NetworkPolicy) -> Self {
        WasiHttpCtx {
            policy,
            tls: default_tls_config(),
            sender: None,
            pool: ConnectionPool::new(),
            field_size_limit: DEFAULT_FIELD_SIZE_LIMIT,
        }
    }

    /// Bounds the host memory one `fields` resource built by the guest may hold: its names
    /// and values plus [`fields::ENTRY_OVERHEAD`] bytes per entry. A `from-list`, `set` or
    /// `append` that would go past `limit` traps (WASI 0.2's `header-error` has no case for
    /// it), with a message naming the limit. Default [`DEFAULT_FIELD_SIZE_LIMIT`].
    pub fn with_field_size_limit(mut self, limit: usize) -> Self {
        self.field_size_limit = limit;
        self
    }

    /// Reuses connections from `pool`, which other contexts may share (see
    /// [`ConnectionPool`] for when that is safe).
    pub fn with_connection_pool(mut self, pool: std::sync::Arc<ConnectionPool>) -> Self {
        self.pool = pool;
        self
    }

    /// The connections this context keeps for reuse.
    pub fn connection_pool(&self) -> &std::sync::Arc<ConnectionPool> {
        &self.pool
    }

    /// Sends the requests the policy allows with `sender` instead of Weir's own client.
    pub fn with_sender(mut self, sender: std::sync::Arc<dyn RequestSender>) -> Self {
        self.sender = Some(sender);
        self
    }

    /// Uses `config` for `https` requests (other roots, client certificates). Its ALPN
    /// protocols are replaced by `http/1.1`, the protocol Weir's client speaks.
    pub fn with_tls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.tls = std::sync::Arc::new(config);
        self
    }
}

/// A TLS client configuration trusting the Mozilla root certificates (`webpki-roots`),
/// with the `ring` provider, TLS 1.2 and 1.3, ALPN `http/1.1`; built once per process.
pub fn default_tls_config() -> std::sync::Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            std::sync::Arc::new(tls_config_trusting(roots))
        })
        .clone()
}

/// A TLS client configuration trusting `roots` (ring provider, ALPN `http/1.1`).
pub fn tls_config_trusting(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    // rustls marks ring as lacking post-quantum key exchange (X25519, P-256, P-384 only);
    // it is used because aws-lc-rs, the post-quantum provider, needs a CMake/C build.
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // Not input-dependent: ring implements every default protocol version.
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
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

pub(crate) fn view<T: WasiHttpView>(data: &mut T) -> WasiHttpCtxView<'_> {
    data.http()
}

/// Adds `wasi:http/types` and `wasi:http/outgoing-handler` (0.2.0 to 0.2.12), for
/// components run with Wasmtime's async API. Pair it with [`weir::add_to_linker_async`].
pub fn add_to_linker_async<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    add_http_interfaces(linker)
}

/// Adds `wasi:http/types` and `wasi:http/outgoing-handler` (0.2.0 to 0.2.12), for
/// components run with Wasmtime's synchronous API. Pair it with [`weir::add_to_linker_sync`],
/// whose `wasi:io` waits block the calling thread.
///
/// No function of these interfaces blocks: requests are sent and bodies are read on tasks
/// of the caller's tokio runtime, or of Weir's own when the caller has none.
///
/// ```
/// # struct Host { wasi: weir::WasiCtx, http: weir_http::WasiHttpCtx, table: wasmtime::component::ResourceTable }
/// # impl weir::WasiView for Host { fn wasi(&mut self) -> weir::WasiCtxView<'_> { weir::WasiCtxView { ctx: &mut self.wasi, table: &mut self.table } } }
/// # impl weir_http::WasiHttpView for Host { fn http(&mut self) -> weir_http::WasiHttpCtxView<'_> { weir_http::WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table } } }
/// let engine = wasmtime::Engine::default();
/// let mut linker = wasmtime::component::Linker::<Host>::new(&engine);
/// weir::add_to_linker_sync(&mut linker)?;
/// weir_http::add_to_linker_sync(&mut linker)?;
/// # Ok::<(), wasmtime::Error>(())
/// ```
pub fn add_to_linker_sync<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    add_http_interfaces(linker)
}

/// The HTTP host functions never wait, so both linkers share them.
fn add_http_interfaces<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
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

/// [`add_proxy_to_linker_async`] for Wasmtime's synchronous API.
pub fn add_proxy_to_linker_sync<T: WasiHttpView + weir::WasiView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    weir::add_to_linker_sync(linker)?;
    add_to_linker_sync(linker)
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
