//! `wasi:http` 0.2 for the Weir WASI host.
//!
//! - [`add_to_linker_async`] adds `wasi:http/types` and `wasi:http/outgoing-handler`;
//!   [`add_proxy_to_linker_async`] adds them together with Weir's WASI interfaces, which is
//!   what a `wasi:http/proxy` component needs.
//! - [`server`] serves a proxy component: one fresh instance per request.
//! - Bodies are Weir streams: an outgoing body's `check-write` grants at most
//!   [`body::WRITE_PERMIT`] bytes, writing past it traps, and a declared `content-length`
//!   is enforced (writing more, or finishing with less, is the WIT's body-size error).
//! - Outgoing requests are denied unless the [`HttpPolicy`] allows their host and port.
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

use std::ops::RangeInclusive;

use wasmtime::component::{HasData, Linker, ResourceTable};
use weir::sockets::{Action, NamePattern, PolicyError};

pub use bindings::{ErrorCode, Method, Scheme};
pub use error::HttpError;

/// The HTTP state of one instance.
pub struct WasiHttpCtx {
    pub(crate) policy: HttpPolicy,
}

impl WasiHttpCtx {
    /// A context whose outgoing requests follow `policy`.
    pub fn new(policy: HttpPolicy) -> Self {
        WasiHttpCtx { policy }
    }
}

impl Default for WasiHttpCtx {
    /// Outgoing requests denied.
    fn default() -> Self {
        WasiHttpCtx::new(HttpPolicy::deny_all())
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

/// One rule of an [`HttpPolicy`].
#[derive(Clone, Debug)]
pub struct HttpRule {
    pub action: Action,
    pub hosts: NamePattern,
    pub ports: RangeInclusive<u16>,
}

/// Which outgoing requests a guest may make, by host name (or IP literal) and port; deny
/// by default, deny rules win.
#[derive(Clone, Debug, Default)]
pub struct HttpPolicy {
    rules: Vec<HttpRule>,
}

impl HttpPolicy {
    /// Every request denied.
    pub fn deny_all() -> Self {
        HttpPolicy { rules: Vec::new() }
    }

    /// Every request allowed (`weir run -S http` without rules, as in wasmtime).
    pub fn allow_all() -> Self {
        HttpPolicy::deny_all().with_rule(HttpRule {
            action: Action::Allow,
            hosts: NamePattern::Any,
            ports: 0..=u16::MAX,
        })
    }

    pub fn with_rule(mut self, rule: HttpRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds `allow` (or `deny`) rules written `HOST_PATTERN[:PORTS]`: `example.com`,
    /// `*.example.com:443`, `127.0.0.1:8000-8999`, `*`.
    pub fn parse_rule(action: Action, text: &str) -> Result<HttpRule, PolicyError> {
        let (hosts, ports) = match text.rsplit_once(':') {
            Some((hosts, ports)) if !hosts.is_empty() && !hosts.ends_with(':') => {
                (hosts, parse_ports(ports)?)
            }
            _ => (text, 0..=u16::MAX),
        };
        let hosts = hosts.trim_start_matches('[').trim_end_matches(']');
        Ok(HttpRule {
            action,
            hosts: hosts.parse()?,
            ports,
        })
    }

    /// The rule that decides a request to `host:port` (`None`: no rule, denied).
    pub fn decide(&self, host: &str, port: u16) -> Option<&HttpRule> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let matching = |action: Action| {
            self.rules.iter().find(|rule| {
                rule.action == action && rule.hosts.matches(host) && rule.ports.contains(&port)
            })
        };
        matching(Action::Deny).or_else(|| matching(Action::Allow))
    }

    /// Whether a request to `host:port` is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.decide(host, port)
            .is_some_and(|rule| rule.action == Action::Allow)
    }
}

fn parse_ports(text: &str) -> Result<RangeInclusive<u16>, PolicyError> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| PolicyError(format!("`{p}` is not a port number")))
    };
    match text.split_once('-') {
        Some((low, high)) => Ok(port(low)?..=port(high)?),
        None => {
            let p = port(text)?;
            Ok(p..=p)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_denies_by_default_and_deny_rules_win() {
        assert!(!HttpPolicy::deny_all().allows("example.com", 80));
        let policy = HttpPolicy::deny_all()
            .with_rule(HttpPolicy::parse_rule(Action::Allow, "*.example.com:443").unwrap())
            .with_rule(HttpPolicy::parse_rule(Action::Allow, "127.0.0.1:8000-8999").unwrap())
            .with_rule(HttpPolicy::parse_rule(Action::Deny, "bad.example.com").unwrap());
        assert!(policy.allows("api.example.com", 443));
        assert!(!policy.allows("api.example.com", 80));
        assert!(!policy.allows("example.com", 443), "subdomains only");
        assert!(!policy.allows("bad.example.com", 443));
        assert!(policy.allows("127.0.0.1", 8080));
        assert!(!policy.allows("127.0.0.1", 9000));
        assert!(HttpPolicy::allow_all().allows("anything", 1));
    }
}
