//! `wasi:sockets/ip-name-lookup`: host names resolved by the system resolver on a blocking
//! thread, under the policy's `ip-name-lookup` rules. IP literals are parsed, not looked up;
//! Unicode names are converted to ASCII with IDNA (UTS #46, the `idna` crate) first, and the
//! policy judges the ASCII form. With no `ip-name-lookup` allow rule at all, lookups are off:
//! every lookup reports `permanent-resolver-failure`, as in wasmtime.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{NetworkStats, NetworkUse, SocketResult, enforce_name};
use crate::bindings::wasi::sockets::network::{ErrorCode, IpAddress};
use crate::io::Pollable;

type Lookup = Result<Vec<IpAddr>, ErrorCode>;

/// The most lookups of one instance that run at once; more wait for a free slot. Each runs
/// `getaddrinfo` on a thread of tokio's blocking pool, which all instances share.
pub const MAX_CONCURRENT_LOOKUPS: usize = 8;

/// The guest's `resolve-address-stream` resource.
pub struct ResolveAddressStream {
    state: Resolution,
}

impl Drop for ResolveAddressStream {
    fn drop(&mut self) {
        if let Resolution::Pending(lookup) = &self.state {
            lookup.abort();
        }
    }
}

enum Resolution {
    /// The resolver is still working.
    Pending(JoinHandle<Lookup>),
    /// The addresses not yet returned, in the resolver's order.
    Done(std::vec::IntoIter<IpAddr>),
    /// The lookup failed; every call reports it.
    Failed(ErrorCode),
}

impl ResolveAddressStream {
    fn finished(addresses: Lookup) -> Resolution {
        match addresses {
            Ok(addresses) => Resolution::Done(unique_unmapped(addresses).into_iter()),
            Err(code) => Resolution::Failed(code),
        }
    }

    fn settle(&mut self, result: Result<Lookup, tokio::task::JoinError>) {
        // A resolver thread that panicked or was cancelled gave no answer.
        let lookup = result.unwrap_or(Err(ErrorCode::PermanentResolverFailure));
        self.state = Self::finished(lookup);
    }

    pub(crate) fn next_address(&mut self) -> SocketResult<Option<IpAddress>> {
        if let Resolution::Pending(handle) = &mut self.state {
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(handle).poll(&mut cx) {
                Poll::Ready(result) => self.settle(result),
                Poll::Pending => return Err(ErrorCode::WouldBlock.into()),
            }
        }
        match &mut self.state {
            Resolution::Done(addresses) => Ok(addresses.next().map(to_wit_address)),
            Resolution::Failed(code) => Err((*code).into()),
            Resolution::Pending(_) => Err(ErrorCode::WouldBlock.into()),
        }
    }
}

#[async_trait::async_trait]
impl Pollable for ResolveAddressStream {
    async fn ready(&mut self) {
        if let Resolution::Pending(handle) = &mut self.state {
            let result = handle.await;
            self.settle(result);
        }
    }
}

/// IPv4-mapped IPv6 addresses become IPv4 (the WIT never returns mapped ones); duplicates
/// are dropped, keeping the resolver's order.
fn unique_unmapped(addresses: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut unique: Vec<IpAddr> = Vec::with_capacity(addresses.len());
    for address in addresses {
        let address = address.to_canonical();
        if !unique.contains(&address) {
            unique.push(address);
        }
    }
    unique
}

fn to_wit_address(address: IpAddr) -> IpAddress {
    match address {
        IpAddr::V4(a) => {
            let [x, y, z, w] = a.octets();
            IpAddress::Ipv4((x, y, z, w))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddress::Ipv6((s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]))
        }
    }
}

/// An IP literal (`127.0.0.1`, `::1`, `[::1]`), if `name` is one.
fn ip_literal(name: &str) -> Option<IpAddr> {
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    unbracketed.parse().ok()
}

/// Whether `name` is a syntactically valid ASCII host name: dot-separated labels of 1 to 63
/// letters, digits, hyphens or underscores, not starting or ending with a hyphen, at most 253
/// characters (a trailing dot allowed).
fn is_valid_host_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The ASCII form of a host name (IDNA for Unicode names), if it is a valid one.
fn ascii_host_name(name: &str) -> Option<String> {
    let ascii = if name.is_ascii() {
        name.to_string()
    } else {
        idna::domain_to_ascii(name).ok()?
    };
    is_valid_host_name(&ascii).then_some(ascii)
}

/// Starts resolving `name` under `policy` (the checks, the literal shortcut and the bounded
/// resolver pool that 0.2's `resolve-addresses` and 0.3's share).
pub(crate) fn start_lookup(
    sockets: &super::SocketsCtx,
    policy: &Arc<crate::sockets::NetworkPolicy>,
    name: String,
) -> SocketResult<ResolveAddressStream> {
    {
        let state = if !policy.may_allow(NetworkUse::IpNameLookup) {
            // Name lookup is not enabled at all (no rule could allow one): the interface is
            // off, for IP literals too. As in wasmtime, that is reported as
            // `permanent-resolver-failure` by `resolve-next-address`; `access-denied` is for
            // a name that rules exist for but do not allow.
            tracing::warn!(target: "weir::policy", %name, r#use = %NetworkUse::IpNameLookup, "name lookup is not enabled (no ip-name-lookup allow rule)");
            NetworkStats::add(&sockets.stats.denied, 1);
            ResolveAddressStream::finished(Err(ErrorCode::PermanentResolverFailure))
        } else if let Some(address) = ip_literal(&name) {
            ResolveAddressStream::finished(Ok(vec![address]))
        } else {
            let name = ascii_host_name(&name).ok_or(ErrorCode::InvalidArgument)?;
            enforce_name(policy, &sockets.stats, &name)?;
            NetworkStats::add(&sockets.stats.name_lookups, 1);
            let slots = sockets
                .lookup_slots
                .get_or_init(|| Arc::new(Semaphore::new(MAX_CONCURRENT_LOOKUPS)))
                .clone();
            let lookup = crate::sync::with_reactor(|| {
                tokio::spawn(async move {
                    let slot = slots
                        .acquire_owned()
                        .await
                        .map_err(|_closed| ErrorCode::PermanentResolverFailure)?;
                    // The slot goes with the resolver thread: a lookup abandoned by the
                    // guest still counts until `getaddrinfo` returns.
                    let resolver = tokio::task::spawn_blocking(move || {
                        let _slot = slot;
                        crate::sys::resolve_host(&name)
                    });
                    resolver
                        .await
                        .unwrap_or(Err(ErrorCode::PermanentResolverFailure))
                })
            });
            Resolution::Pending(lookup)
        };
        Ok(ResolveAddressStream { state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_name_syntax() {
        for good in ["localhost", "example.com.", "a-b.c_d.org", "x1"] {
            assert!(is_valid_host_name(good), "{good}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            ".",
            "a..b",
            "-a.com",
            "a-.com",
            "a b",
            "bücher.de",
            &long_label,
        ] {
            assert!(!is_valid_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn unicode_names_become_ascii() {
        assert_eq!(
            ascii_host_name("bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(ascii_host_name("localhost").as_deref(), Some("localhost"));
        assert_eq!(ascii_host_name("bad..name"), None);
        assert_eq!(ascii_host_name("a b.example"), None);
    }

    #[test]
    fn literals_and_mapped_addresses() {
        assert_eq!(ip_literal("127.0.0.1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip_literal("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(ip_literal("localhost"), None);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(unique_unmapped(vec![mapped, v4]), vec![v4]);
    }
}
