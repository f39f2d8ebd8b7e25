//! The `wasi:sockets` core: UDP, TCP and name lookup state machines under a deny-by-default
//! [`NetworkPolicy`], with limits and counters; `crate::p2::sockets` and `crate::p3::sockets`
//! are the two ABIs over it.

pub mod ip_name_lookup;
mod policy;
pub mod tcp;
pub mod udp;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub use policy::{
    Action, Cidr, Decision, NamePattern, NetworkPolicy, NetworkUse, PolicyError, Rule,
};

use crate::bindings::wasi::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};

/// Default for [`SocketsConfig::max_udp_sockets`].
pub const DEFAULT_MAX_UDP_SOCKETS: usize = 256;
/// Default for [`SocketsConfig::max_tcp_sockets`] (listeners and connections together).
pub const DEFAULT_MAX_TCP_SOCKETS: usize = 1024;

/// Per-instance network settings.
#[derive(Clone, Debug)]
pub struct SocketsConfig {
    /// Which addresses the guest may use, and how.
    pub policy: Arc<NetworkPolicy>,
    /// Whether `create-udp-socket` works at all (`-S udp`).
    pub udp: bool,
    /// The most UDP sockets the guest may have open at once.
    pub max_udp_sockets: usize,
    /// Whether `create-tcp-socket` works at all (`-S tcp`).
    pub tcp: bool,
    /// The most TCP sockets (listeners and connections) the guest may have open at once.
    pub max_tcp_sockets: usize,
    /// How long [`crate::command::run_async`]/[`crate::command::run_sync`] keep delivering
    /// TCP bytes the guest wrote but the kernel had not taken yet, after the guest returned.
    pub tcp_delivery_limit: std::time::Duration,
}

/// Default for [`SocketsConfig::tcp_delivery_limit`].
pub const DEFAULT_TCP_DELIVERY_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for SocketsConfig {
    fn default() -> Self {
        SocketsConfig {
            policy: Arc::new(NetworkPolicy::deny_all()),
            udp: true,
            max_udp_sockets: DEFAULT_MAX_UDP_SOCKETS,
            tcp: true,
            max_tcp_sockets: DEFAULT_MAX_TCP_SOCKETS,
            tcp_delivery_limit: DEFAULT_TCP_DELIVERY_LIMIT,
        }
    }
}

/// Per-instance network counters (`weir run --stats` prints them).
#[derive(Debug, Default)]
pub struct NetworkStats {
    /// UDP datagrams sent.
    pub udp_datagrams_sent: AtomicU64,
    /// UDP payload bytes sent.
    pub udp_bytes_sent: AtomicU64,
    /// UDP datagrams received (and returned to the guest).
    pub udp_datagrams_received: AtomicU64,
    /// UDP payload bytes received.
    pub udp_bytes_received: AtomicU64,
    /// TCP connections established (connected or accepted).
    pub tcp_connections: AtomicU64,
    /// TCP bytes accepted from the guest for sending.
    pub tcp_bytes_sent: AtomicU64,
    /// Of those, bytes the kernel could not take at once: the background writer sent them.
    pub tcp_bytes_deferred: AtomicU64,
    /// TCP bytes received.
    pub tcp_bytes_received: AtomicU64,
    /// Host names resolved.
    pub name_lookups: AtomicU64,
    /// Operations the policy denied (including dropped incoming datagrams and refused
    /// incoming connections).
    pub denied: AtomicU64,
}

impl NetworkStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A one-line summary.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "udp: {} datagrams / {} bytes sent, {} datagrams / {} bytes received; \
             tcp: {} connections, {} bytes sent, {} bytes received; {} name lookups; {} denied",
            get(&self.udp_datagrams_sent),
            get(&self.udp_bytes_sent),
            get(&self.udp_datagrams_received),
            get(&self.udp_bytes_received),
            get(&self.tcp_connections),
            get(&self.tcp_bytes_sent),
            get(&self.tcp_bytes_received),
            get(&self.name_lookups),
            get(&self.denied),
        )
    }
}

/// The socket part of a [`crate::WasiCtx`].
#[derive(Default)]
pub(crate) struct SocketsCtx {
    pub(crate) config: SocketsConfig,
    pub(crate) stats: Arc<NetworkStats>,
    pub(crate) open_udp_sockets: Arc<AtomicUsize>,
    pub(crate) open_tcp_sockets: Arc<AtomicUsize>,
    /// Bounds the instance's concurrent name lookups (created on first use).
    pub(crate) lookup_slots: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
    pub(crate) background_writers: tcp::BackgroundWriters,
}

impl Drop for SocketsCtx {
    fn drop(&mut self) {
        // The instance is gone: its writers must not outlive it (see `BackgroundWriters`).
        self.background_writers.cancel();
    }
}

/// One socket's share of a per-instance socket limit, released when the socket closes.
pub(crate) struct SocketSlot(Arc<AtomicUsize>);

impl SocketSlot {
    /// Takes a slot of `open`, or fails with `new-socket-limit` when `max` are taken.
    pub(crate) fn take(open: &Arc<AtomicUsize>, max: usize) -> SocketResult<SocketSlot> {
        let before = open.fetch_add(1, Ordering::AcqRel);
        let slot = SocketSlot(open.clone());
        if before >= max {
            return Err(ErrorCode::NewSocketLimit.into());
        }
        Ok(slot)
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A buffer size for `set-receive-buffer-size`/`set-send-buffer-size`: 0 is refused;
/// anything else is clamped to what `setsockopt` takes (the kernel clamps further and
/// doubles it).
fn buffer_size(value: u64) -> SocketResult<usize> {
    if value == 0 {
        return Err(ErrorCode::InvalidArgument.into());
    }
    Ok(value.min(i32::MAX as u64 / 2) as usize)
}

/// Which of a socket's two kernel buffers.
#[derive(Clone, Copy)]
pub(crate) enum Buffer {
    Receive,
    Send,
}

/// `receive-buffer-size`/`send-buffer-size`: the kernel's figure halved on Linux, which
/// doubles what it is given for bookkeeping: the size the guest set reads back (an unset
/// buffer reads as half the kernel's default, as in wasmtime).
pub(crate) fn get_buffer_size(socket: socket2::SockRef<'_>, buffer: Buffer) -> SocketResult<u64> {
    let kernel = match buffer {
        Buffer::Receive => socket.recv_buffer_size()?,
        Buffer::Send => socket.send_buffer_size()?,
    };
    Ok(crate::sys::guest_buffer_size(kernel) as u64)
}

/// `set-receive-buffer-size`/`set-send-buffer-size`, with the WIT's validation.
pub(crate) fn set_buffer_size(
    socket: socket2::SockRef<'_>,
    buffer: Buffer,
    value: u64,
) -> SocketResult<()> {
    let size = buffer_size(value)?;
    match buffer {
        Buffer::Receive => socket.set_recv_buffer_size(size)?,
        Buffer::Send => socket.set_send_buffer_size(size)?,
    }
    Ok(())
}

/// The guest's `network` resource: the policy it was created under.
pub struct Network {
    pub(crate) policy: Arc<NetworkPolicy>,
}

/// A `wasi:sockets` failure: an error code for the guest, or a trap.
pub type SocketError = crate::error::GuestError<ErrorCode>;

impl From<ErrorCode> for SocketError {
    fn from(code: ErrorCode) -> Self {
        SocketError::Code(code)
    }
}

impl From<std::io::Error> for SocketError {
    fn from(error: std::io::Error) -> Self {
        SocketError::Code(crate::sys::socket_error_code(&error))
    }
}

impl From<rustix::io::Errno> for SocketError {
    fn from(errno: rustix::io::Errno) -> Self {
        std::io::Error::from(errno).into()
    }
}

/// A failure to create a socket: the WIT's `create-*-socket` calls an unsupported address
/// family `not-supported`.
pub(crate) fn create_error(error: std::io::Error) -> SocketError {
    if error.raw_os_error() == Some(rustix::io::Errno::AFNOSUPPORT.raw_os_error()) {
        return ErrorCode::NotSupported.into();
    }
    error.into()
}

/// A new non-blocking, close-on-exec socket of `family`; IPv6 sockets are IPv6-only, as
/// the WIT asks. Failures are [`create_error`]s.
pub(crate) fn new_socket(
    family: IpAddressFamily,
    kind: socket2::Type,
    protocol: socket2::Protocol,
) -> SocketResult<socket2::Socket> {
    let domain = if is_ipv4(family) {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let socket = socket2::Socket::new(domain, kind.nonblocking().cloexec(), Some(protocol))
        .map_err(create_error)?;
    if !is_ipv4(family) {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

/// Result of a socket operation.
pub type SocketResult<T> = Result<T, SocketError>;

/// Checks `network_use` of `address` against `policy`; a denial is logged, counted and
/// reported as `access-denied`.
pub(crate) fn enforce(
    policy: &NetworkPolicy,
    stats: &NetworkStats,
    network_use: NetworkUse,
    address: SocketAddr,
) -> SocketResult<()> {
    match policy.check(network_use, address) {
        Decision::Allowed(_) => Ok(()),
        Decision::Denied(rule) => {
            let rule = denial_reason(rule);
            tracing::warn!(target: "weir::policy", %address, r#use = %network_use, %rule, "network access denied");
            NetworkStats::add(&stats.denied, 1);
            Err(ErrorCode::AccessDenied.into())
        }
    }
}

/// Checks a lookup of `name` against `policy`, like [`enforce`].
pub(crate) fn enforce_name(
    policy: &NetworkPolicy,
    stats: &NetworkStats,
    name: &str,
) -> SocketResult<()> {
    match policy.check_name(name) {
        Decision::Allowed(_) => Ok(()),
        Decision::Denied(rule) => {
            let rule = denial_reason(rule);
            tracing::warn!(target: "weir::policy", %name, r#use = %NetworkUse::IpNameLookup, %rule, "network access denied");
            NetworkStats::add(&stats.denied, 1);
            Err(ErrorCode::AccessDenied.into())
        }
    }
}

fn denial_reason(rule: Option<&Rule>) -> String {
    match rule {
        Some(rule) => rule.to_string(),
        None => "no allow rule matched (deny by default)".to_string(),
    }
}

/// WIT address → Rust address.
pub(crate) fn to_socket_addr(address: IpSocketAddress) -> SocketAddr {
    match address {
        IpSocketAddress::Ipv4(a) => {
            let (x, y, z, w) = a.address;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(x, y, z, w), a.port))
        }
        IpSocketAddress::Ipv6(a) => {
            let (s0, s1, s2, s3, s4, s5, s6, s7) = a.address;
            SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::new(s0, s1, s2, s3, s4, s5, s6, s7),
                a.port,
                a.flow_info,
                a.scope_id,
            ))
        }
    }
}

/// Rust address → WIT address.
pub(crate) fn from_socket_addr(address: SocketAddr) -> IpSocketAddress {
    match address {
        SocketAddr::V4(a) => {
            let [x, y, z, w] = a.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: a.port(),
                address: (x, y, z, w),
            })
        }
        SocketAddr::V6(a) => {
            let s = a.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: a.port(),
                flow_info: a.flowinfo(),
                address: (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
                scope_id: a.scope_id(),
            })
        }
    }
}

/// The family of an address, with IPv4-mapped IPv6 addresses refused: WASI sockets of the
/// IPv6 family are IPv6-only.
pub(crate) fn check_family(family: IpAddressFamily, address: &SocketAddr) -> SocketResult<()> {
    match (family, address) {
        (IpAddressFamily::Ipv4, SocketAddr::V4(_)) => Ok(()),
        (IpAddressFamily::Ipv6, SocketAddr::V6(a)) if a.ip().to_ipv4_mapped().is_none() => Ok(()),
        _ => Err(ErrorCode::InvalidArgument.into()),
    }
}

/// A usable remote address: right family, not unspecified, not port 0.
pub(crate) fn check_remote(family: IpAddressFamily, address: &SocketAddr) -> SocketResult<()> {
    check_family(family, address)?;
    if address.ip().is_unspecified() || address.port() == 0 {
        return Err(ErrorCode::InvalidArgument.into());
    }
    Ok(())
}

/// A usable unicast remote address (what TCP needs): [`check_remote`] and [`check_unicast`].
pub(crate) fn check_unicast_remote(
    family: IpAddressFamily,
    address: &SocketAddr,
) -> SocketResult<()> {
    check_remote(family, address)?;
    check_unicast(address)
}

/// Refuses multicast addresses (IPv4 and IPv6) and the IPv4 broadcast address
/// (255.255.255.255) with `invalid-argument`, before any system call: TCP's `bind` and
/// `connect` take unicast addresses only (the unspecified address counts as unicast here).
pub(crate) fn check_unicast(address: &SocketAddr) -> SocketResult<()> {
    let broadcast = matches!(address, SocketAddr::V4(a) if a.ip().is_broadcast());
    if address.ip().is_multicast() || broadcast {
        return Err(ErrorCode::InvalidArgument.into());
    }
    Ok(())
}

pub(crate) fn is_ipv4(family: IpAddressFamily) -> bool {
    matches!(family, IpAddressFamily::Ipv4)
}

/// Forgets the reactor's cached read readiness of `registration` (after a read said "would
/// block"), so that the next wait sleeps until the kernel reports new data.
pub(crate) fn clear_read_readiness<T: std::os::fd::AsRawFd>(
    registration: &tokio::io::unix::AsyncFd<T>,
) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if let std::task::Poll::Ready(Ok(mut guard)) = registration.poll_read_ready(&mut cx) {
        guard.clear_ready();
    }
}

/// `IP_TTL` or `IPV6_UNICAST_HOPS`, whichever the family uses.
pub(crate) fn hop_limit(socket: socket2::SockRef<'_>, family: IpAddressFamily) -> SocketResult<u8> {
    let hops = if is_ipv4(family) {
        socket.ttl_v4()?
    } else {
        socket.unicast_hops_v6()?
    };
    Ok(u8::try_from(hops).unwrap_or(u8::MAX))
}

/// Sets the hop limit; 0 is `invalid-argument`.
pub(crate) fn set_hop_limit(
    socket: socket2::SockRef<'_>,
    family: IpAddressFamily,
    value: u8,
) -> SocketResult<()> {
    if value == 0 {
        return Err(ErrorCode::InvalidArgument.into());
    }
    if is_ipv4(family) {
        socket.set_ttl_v4(u32::from(value))?;
    } else {
        socket.set_unicast_hops_v6(u32::from(value))?;
    }
    Ok(())
}
