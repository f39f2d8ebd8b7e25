//! `wasi:sockets@0.3.0` over the 0.2 socket core (the same sockets, state machines, policy
//! checks, limits, counters and `sys` calls).
//!
//! - `udp-socket`: `bind`/`connect`/`disconnect` are the 0.2 state machine's steps in one
//!   call (`connect` and `send` bind implicitly, to the unspecified address, which the
//!   policy's `udp-bind` rules must allow as for an explicit bind). `send` is one datagram
//!   per call; it waits (without holding the instance) while the socket's send buffer is
//!   full. `receive` reads through the 0.2 receiver, so `recvmmsg`/GRO batches serve
//!   several calls and datagrams from senders the policy denies are dropped.
//! - `ip-name-lookup.resolve-addresses`: the 0.2 lookup (checks, literals, the bounded
//!   resolver pool), awaited.
//! - `tcp-socket`: `bind`/`listen` are the 0.2 steps in one call (`listen` binds implicitly,
//!   under the `tcp-bind` rules). `connect` waits for the handshake without holding the
//!   instance. `listen`'s stream accepts when the guest reads it; at the socket limit it
//!   waits for a free slot instead of accepting and dropping. `send` moves the guest's
//!   bytes from its memory straight to the socket, as many as the kernel takes at a time
//!   (while the send buffer is full the guest's write waits; the host holds no byte), and
//!   closing the stream sends the FIN after the last byte. `receive` reads from the socket straight into the
//!   guest's buffer; dropping the stream early is `shutdown(SHUT_RD)`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::sync::oneshot;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Access, Accessor, Destination, FutureReader, Resource, StreamProducer, StreamReader,
    StreamResult as Transfer,
};

use super::bindings::wasi::sockets::ip_name_lookup;
use super::bindings::wasi::sockets::types::{
    self, Duration, ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress,
    Ipv6SocketAddress,
};
use super::streams::{ByteProducer, outcome_future, resolved_future};
use crate::WasiCtxView;
use crate::bindings::wasi::sockets::network as p2;
use crate::io::StreamError;
use crate::linker::HasWasi;
use crate::sockets::tcp::{self, TcpState};
use crate::sockets::udp::{self as core, UdpState};
use crate::sockets::{
    Buffer, NetworkStats, SocketError, SocketResult, SocketSlot, check_remote, get_buffer_size,
    hop_limit, set_buffer_size, set_hop_limit,
};

/// The guest's 0.3 `udp-socket`: the 0.2 core socket and the receiver of its current
/// association (replaced when `connect`/`disconnect` change it).
pub struct UdpSocket {
    core: core::UdpSocket,
    incoming: Option<Arc<tokio::sync::Mutex<core::IncomingDatagramStream>>>,
}

/// The guest's 0.3 `tcp-socket`: the 0.2 core socket, and whether its one `send` and one
/// `receive` were taken.
pub struct TcpSocket {
    core: tcp::TcpSocket,
    sending: bool,
    receiving: bool,
}

fn p2_family(family: IpAddressFamily) -> p2::IpAddressFamily {
    match family {
        IpAddressFamily::Ipv4 => p2::IpAddressFamily::Ipv4,
        IpAddressFamily::Ipv6 => p2::IpAddressFamily::Ipv6,
    }
}

fn p3_family(family: p2::IpAddressFamily) -> IpAddressFamily {
    match family {
        p2::IpAddressFamily::Ipv4 => IpAddressFamily::Ipv4,
        p2::IpAddressFamily::Ipv6 => IpAddressFamily::Ipv6,
    }
}

/// The 0.3 address types have the 0.2 shapes: convert field by field, then use the core's
/// conversions.
fn to_socket_addr(address: IpSocketAddress) -> SocketAddr {
    crate::sockets::to_socket_addr(match address {
        IpSocketAddress::Ipv4(a) => p2::IpSocketAddress::Ipv4(p2::Ipv4SocketAddress {
            port: a.port,
            address: a.address,
        }),
        IpSocketAddress::Ipv6(a) => p2::IpSocketAddress::Ipv6(p2::Ipv6SocketAddress {
            port: a.port,
            flow_info: a.flow_info,
            address: a.address,
            scope_id: a.scope_id,
        }),
    })
}

fn from_socket_addr(address: SocketAddr) -> IpSocketAddress {
    match crate::sockets::from_socket_addr(address) {
        p2::IpSocketAddress::Ipv4(a) => IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: a.port,
            address: a.address,
        }),
        p2::IpSocketAddress::Ipv6(a) => IpSocketAddress::Ipv6(Ipv6SocketAddress {
            port: a.port,
            flow_info: a.flow_info,
            address: a.address,
            scope_id: a.scope_id,
        }),
    }
}

/// The 0.3 error code for a 0.2 one (0.3 folds the codes it dropped into `other`).
fn p3_code(code: p2::ErrorCode) -> ErrorCode {
    use p2::ErrorCode as C;
    match code {
        C::AccessDenied => ErrorCode::AccessDenied,
        C::NotSupported => ErrorCode::NotSupported,
        C::InvalidArgument => ErrorCode::InvalidArgument,
        C::OutOfMemory => ErrorCode::OutOfMemory,
        C::Timeout => ErrorCode::Timeout,
        C::InvalidState | C::NotInProgress | C::ConcurrencyConflict => ErrorCode::InvalidState,
        C::AddressNotBindable => ErrorCode::AddressNotBindable,
        C::AddressInUse => ErrorCode::AddressInUse,
        C::RemoteUnreachable => ErrorCode::RemoteUnreachable,
        C::ConnectionRefused => ErrorCode::ConnectionRefused,
        C::ConnectionReset => ErrorCode::ConnectionReset,
        C::ConnectionAborted => ErrorCode::ConnectionAborted,
        C::DatagramTooLarge => ErrorCode::DatagramTooLarge,
        C::NewSocketLimit => {
            ErrorCode::Other(Some("the instance's socket limit is reached".into()))
        }
        other => ErrorCode::Other(Some(format!("{other:?}"))),
    }
}

/// A 0.2 socket result as the 0.3 binding returns it: codes to the guest, traps as traps.
fn returned<T>(result: SocketResult<T>) -> wasmtime::Result<Result<T, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(SocketError::Code(code)) => Ok(Err(p3_code(code))),
        Err(SocketError::Trap(trap)) => Err(trap),
    }
}

impl UdpSocket {
    /// Binds an unbound socket to `address` and starts receiving on it.
    fn bind(
        &mut self,
        sockets: &crate::sockets::SocketsCtx,
        address: SocketAddr,
    ) -> SocketResult<()> {
        if self.core.state != UdpState::Unbound {
            return Err(p2::ErrorCode::InvalidState.into());
        }
        self.core
            .bind_to(sockets.config.policy.clone(), &sockets.stats, address)?;
        self.core.state = UdpState::Bound;
        self.incoming = Some(Arc::new(tokio::sync::Mutex::new(
            self.core.incoming(self.core.generation())?,
        )));
        Ok(())
    }

    /// The implicit bind of `connect` and `send`: to the unspecified address, any port.
    fn bind_implicitly(&mut self, sockets: &crate::sockets::SocketsCtx) -> SocketResult<()> {
        if self.core.state != UdpState::Unbound {
            return Ok(());
        }
        self.bind(sockets, unspecified_address(self.core.shared.family))
    }

    /// Changes the association (`connect`/`disconnect`); receives follow the new one.
    fn reassociate(&mut self, remote: Option<SocketAddr>) -> SocketResult<()> {
        let generation = self.core.reassociate(remote)?;
        self.incoming = Some(Arc::new(tokio::sync::Mutex::new(
            self.core.incoming(generation)?,
        )));
        Ok(())
    }

    /// Where `send` sends, after the WIT's argument checks (the 0.2 core's).
    fn destination(
        &self,
        sockets: &crate::sockets::SocketsCtx,
        len: usize,
        remote: Option<SocketAddr>,
    ) -> SocketResult<SocketAddr> {
        self.core.shared.send_destination(
            &sockets.config.policy,
            self.core.connected(),
            len,
            remote,
        )
    }
}

impl WasiCtxView<'_> {
    fn udp3(&mut self, socket: &Resource<UdpSocket>) -> SocketResult<&mut UdpSocket> {
        Ok(self.table.get_mut(socket)?)
    }

    /// Runs a socket-option call on the socket's shared core.
    fn on_udp<R>(
        &mut self,
        socket: &Resource<UdpSocket>,
        call: impl FnOnce(&core::UdpShared) -> SocketResult<R>,
    ) -> wasmtime::Result<Result<R, ErrorCode>> {
        let shared = &self.udp3(socket).map_err(trap)?.core.shared;
        returned(call(shared))
    }
}

impl types::Host for WasiCtxView<'_> {}

impl types::HostUdpSocket for WasiCtxView<'_> {
    fn create(
        &mut self,
        family: IpAddressFamily,
    ) -> wasmtime::Result<Result<Resource<UdpSocket>, ErrorCode>> {
        let sockets = &self.ctx.sockets;
        let created = (|| {
            if !sockets.config.udp {
                return Err(p2::ErrorCode::AccessDenied.into());
            }
            let slot = SocketSlot::take(&sockets.open_udp_sockets, sockets.config.max_udp_sockets)?;
            core::UdpSocket::new(p2_family(family), sockets.stats.clone(), slot)
        })();
        match returned(created)? {
            Ok(core) => Ok(Ok(self.table.push(UdpSocket {
                core,
                incoming: None,
            })?)),
            Err(code) => Ok(Err(code)),
        }
    }

    fn bind(
        &mut self,
        socket: Resource<UdpSocket>,
        local_address: IpSocketAddress,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        let sockets = &self.ctx.sockets;
        let udp = self.table.get_mut(&socket)?;
        returned(udp.bind(sockets, to_socket_addr(local_address)))
    }

    fn connect(
        &mut self,
        socket: Resource<UdpSocket>,
        remote_address: IpSocketAddress,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        let sockets = &self.ctx.sockets;
        let udp = self.table.get_mut(&socket)?;
        let remote = to_socket_addr(remote_address);
        returned(
            check_remote(udp.core.shared.family, &remote)
                .and_then(|()| udp.bind_implicitly(sockets))
                .and_then(|()| udp.reassociate(Some(remote))),
        )
    }

    fn disconnect(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        let udp = self.table.get_mut(&socket)?;
        if udp.core.connected().is_none() {
            return Ok(Err(ErrorCode::InvalidState));
        }
        returned(udp.reassociate(None))
    }

    fn get_local_address(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<Result<IpSocketAddress, ErrorCode>> {
        let udp = self.udp3(&socket).map_err(trap)?;
        if udp.core.state == UdpState::Unbound {
            return Ok(Err(ErrorCode::InvalidState));
        }
        returned(
            udp.core
                .shared
                .socket
                .get_ref()
                .local_addr()
                .map(from_socket_addr)
                .map_err(SocketError::from),
        )
    }

    fn get_remote_address(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<Result<IpSocketAddress, ErrorCode>> {
        match self.udp3(&socket).map_err(trap)?.core.connected() {
            Some(remote) => Ok(Ok(from_socket_addr(remote))),
            None => Ok(Err(ErrorCode::InvalidState)),
        }
    }

    fn get_address_family(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        Ok(p3_family(self.table.get(&socket)?.core.shared.family))
    }

    fn get_unicast_hop_limit(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<Result<u8, ErrorCode>> {
        self.on_udp(&socket, |shared| {
            hop_limit(shared.socket.get_ref().into(), shared.family)
        })
    }

    fn set_unicast_hop_limit(
        &mut self,
        socket: Resource<UdpSocket>,
        value: u8,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_udp(&socket, |shared| {
            set_hop_limit(shared.socket.get_ref().into(), shared.family, value)
        })
    }

    fn get_receive_buffer_size(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<Result<u64, ErrorCode>> {
        self.on_udp(&socket, |shared| {
            get_buffer_size(shared.socket.get_ref().into(), Buffer::Receive)
        })
    }

    fn set_receive_buffer_size(
        &mut self,
        socket: Resource<UdpSocket>,
        value: u64,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_udp(&socket, |shared| {
            set_buffer_size(shared.socket.get_ref().into(), Buffer::Receive, value)
        })
    }

    fn get_send_buffer_size(
        &mut self,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<Result<u64, ErrorCode>> {
        self.on_udp(&socket, |shared| {
            get_buffer_size(shared.socket.get_ref().into(), Buffer::Send)
        })
    }

    fn set_send_buffer_size(
        &mut self,
        socket: Resource<UdpSocket>,
        value: u64,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_udp(&socket, |shared| {
            set_buffer_size(shared.socket.get_ref().into(), Buffer::Send, value)?;
            Ok(shared.refresh_send_buffer_bytes()?)
        })
    }

    fn drop(&mut self, socket: Resource<UdpSocket>) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}

/// A table failure (a bad handle) as the trap it is.
fn trap(error: SocketError) -> wasmtime::Error {
    match error {
        SocketError::Trap(trap) => trap,
        SocketError::Code(code) => wasmtime::format_err!("unexpected socket error {code:?}"),
    }
}

impl<U: 'static> types::HostUdpSocketWithStore<U> for HasWasi {
    async fn send(
        accessor: &Accessor<U, Self>,
        socket: Resource<UdpSocket>,
        data: Vec<u8>,
        remote_address: Option<IpSocketAddress>,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        let prepared = accessor.with(|mut access| -> SocketResult<_> {
            let view = access.get();
            let sockets = &view.ctx.sockets;
            let udp = view.table.get_mut(&socket)?;
            let destination =
                udp.destination(sockets, data.len(), remote_address.map(to_socket_addr))?;
            udp.bind_implicitly(sockets)?;
            Ok((udp.core.shared.clone(), destination))
        });
        let (shared, destination) = match returned(prepared)? {
            Ok(prepared) => prepared,
            Err(code) => return Ok(Err(code)),
        };
        loop {
            match shared.transmit(destination, &data, None) {
                Ok(()) => {
                    NetworkStats::add(&shared.stats.udp_datagrams_sent, 1);
                    NetworkStats::add(&shared.stats.udp_bytes_sent, data.len() as u64);
                    return Ok(Ok(()));
                }
                // The send buffer is full: wait for room without holding the instance.
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    shared.wait_for_send_permit(data.len().max(1)).await;
                }
                Err(error) => return returned(Err(error.into())),
            }
        }
    }

    async fn receive(
        accessor: &Accessor<U, Self>,
        socket: Resource<UdpSocket>,
    ) -> wasmtime::Result<Result<(Vec<u8>, IpSocketAddress), ErrorCode>> {
        let incoming = accessor.with(|mut access| -> SocketResult<_> {
            let udp = access.get().table.get(&socket)?;
            udp.incoming
                .clone()
                .ok_or_else(|| p2::ErrorCode::InvalidState.into())
        });
        let incoming = match returned(incoming)? {
            Ok(incoming) => incoming,
            Err(code) => return Ok(Err(code)),
        };
        let mut incoming = incoming.lock().await;
        loop {
            match incoming.receive(1) {
                Ok(mut datagrams) if !datagrams.is_empty() => {
                    let datagram = datagrams.swap_remove(0);
                    let sender = crate::sockets::to_socket_addr(datagram.remote_address);
                    return Ok(Ok((datagram.data, from_socket_addr(sender))));
                }
                Ok(_) => crate::io::Pollable::ready(&mut *incoming).await,
                Err(error) => return returned(Err(error)),
            }
        }
    }
}

/// The error code a failed TCP byte stream reports through its future, or its trap.
fn tcp_stream_code(error: StreamError) -> wasmtime::Result<ErrorCode> {
    match error {
        // Closed for writing: a peer that went away (EPIPE) or an earlier failure.
        StreamError::Closed => Ok(ErrorCode::ConnectionBroken),
        StreamError::LastOperationFailed(error) => Ok(match error.downcast_ref::<io::Error>() {
            Some(io) => p3_code(crate::sys::socket_error_code(io)),
            None => ErrorCode::Other(Some(format!("{error:#}"))),
        }),
        StreamError::Trap(trap) => Err(trap),
    }
}

impl TcpSocket {
    fn new(core: tcp::TcpSocket) -> TcpSocket {
        TcpSocket {
            core,
            sending: false,
            receiving: false,
        }
    }

    /// Binds an unbound socket (an explicit `bind`, or the implicit one of `listen`).
    fn bind(
        &mut self,
        sockets: &crate::sockets::SocketsCtx,
        address: SocketAddr,
    ) -> SocketResult<()> {
        self.core
            .bind(&sockets.config.policy, &sockets.stats, address)?;
        self.core.state = TcpState::Bound;
        Ok(())
    }

    /// `listen`: bound implicitly (to the unspecified address, any port, under the
    /// policy's `tcp-bind` rules) if the guest did not bind.
    fn listen(&mut self, sockets: &crate::sockets::SocketsCtx) -> SocketResult<tcp::Acceptor> {
        if self.core.state == TcpState::Unbound {
            let unspecified = unspecified_address(self.core.shared.family);
            self.bind(sockets, unspecified)?;
        }
        self.core.listen(&sockets.stats)?;
        self.core.state = TcpState::Listening;
        self.core.acceptor()
    }
}

/// The unspecified address of `family`, any port: what implicit binds bind to.
fn unspecified_address(family: p2::IpAddressFamily) -> SocketAddr {
    let ip = if crate::sockets::is_ipv4(family) {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    SocketAddr::new(ip, 0)
}

impl WasiCtxView<'_> {
    /// Runs a call on the guest's TCP socket, its result as the 0.3 binding returns it.
    fn on_tcp<R>(
        &mut self,
        socket: &Resource<TcpSocket>,
        call: impl FnOnce(&mut tcp::TcpSocket) -> SocketResult<R>,
    ) -> wasmtime::Result<Result<R, ErrorCode>> {
        let tcp = self.table.get_mut(socket)?;
        returned(call(&mut tcp.core))
    }
}

impl types::HostTcpSocket for WasiCtxView<'_> {
    fn create(
        &mut self,
        family: IpAddressFamily,
    ) -> wasmtime::Result<Result<Resource<TcpSocket>, ErrorCode>> {
        match returned(tcp::TcpSocket::create(&self.ctx.sockets, p2_family(family)))? {
            Ok(core) => Ok(Ok(self.table.push(TcpSocket::new(core))?)),
            Err(code) => Ok(Err(code)),
        }
    }

    fn bind(
        &mut self,
        socket: Resource<TcpSocket>,
        local_address: IpSocketAddress,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        let sockets = &self.ctx.sockets;
        let tcp = self.table.get_mut(&socket)?;
        returned(tcp.bind(sockets, to_socket_addr(local_address)))
    }

    fn get_local_address(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<IpSocketAddress, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.local_address().map(from_socket_addr))
    }

    fn get_remote_address(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<IpSocketAddress, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.remote_address().map(from_socket_addr))
    }

    fn get_is_listening(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&socket)?.core.state == TcpState::Listening)
    }

    fn get_address_family(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<IpAddressFamily> {
        Ok(p3_family(self.table.get(&socket)?.core.shared.family))
    }

    fn set_listen_backlog_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.set_listen_backlog_size(value))
    }

    fn get_keep_alive_enabled(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<bool, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.keep_alive_enabled())
    }

    fn set_keep_alive_enabled(
        &mut self,
        socket: Resource<TcpSocket>,
        value: bool,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.set_keep_alive_enabled(value))
    }

    fn get_keep_alive_idle_time(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<Duration, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.keep_alive_idle_time())
    }

    fn set_keep_alive_idle_time(
        &mut self,
        socket: Resource<TcpSocket>,
        value: Duration,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.set_keep_alive_idle_time(value))
    }

    fn get_keep_alive_interval(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<Duration, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.keep_alive_interval())
    }

    fn set_keep_alive_interval(
        &mut self,
        socket: Resource<TcpSocket>,
        value: Duration,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.set_keep_alive_interval(value))
    }

    fn get_keep_alive_count(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<u32, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.keep_alive_count())
    }

    fn set_keep_alive_count(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u32,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.set_keep_alive_count(value))
    }

    fn get_hop_limit(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<u8, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.hop_limit())
    }

    fn set_hop_limit(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u8,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.set_hop_limit(value))
    }

    fn get_receive_buffer_size(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<u64, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.buffer_size(Buffer::Receive))
    }

    fn set_receive_buffer_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.set_buffer_size(Buffer::Receive, value))
    }

    fn get_send_buffer_size(
        &mut self,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<u64, ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.buffer_size(Buffer::Send))
    }

    fn set_send_buffer_size(
        &mut self,
        socket: Resource<TcpSocket>,
        value: u64,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        self.on_tcp(&socket, |tcp| tcp.set_buffer_size(Buffer::Send, value))
    }

    fn drop(&mut self, socket: Resource<TcpSocket>) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}

impl<U: 'static> types::HostTcpSocketWithStore<U> for HasWasi {
    async fn connect(
        accessor: &Accessor<U, Self>,
        socket: Resource<TcpSocket>,
        remote_address: IpSocketAddress,
    ) -> wasmtime::Result<Result<(), ErrorCode>> {
        let started = accessor.with(|mut access| -> SocketResult<_> {
            let view = access.get();
            let sockets = &view.ctx.sockets;
            let tcp = &mut view.table.get_mut(&socket)?.core;
            tcp.start_connect(
                &sockets.config.policy,
                &sockets.stats,
                to_socket_addr(remote_address),
            )?;
            Ok(tcp.shared.clone())
        });
        let shared = match returned(started)? {
            Ok(shared) => shared,
            Err(code) => return Ok(Err(code)),
        };
        // Waits without holding the instance. A guest that cancels this subtask leaves the
        // socket `connecting`: it can only be dropped, as after a failed connect.
        tcp::TcpSocket::wait_for_connect(&shared).await;
        accessor.with(|mut access| {
            let tcp = &mut access.get().table.get_mut(&socket)?.core;
            returned(tcp.finish_connect())
        })
    }

    fn listen(
        mut host: Access<'_, U, Self>,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<Result<StreamReader<Resource<TcpSocket>>, ErrorCode>> {
        let getter = host.getter();
        let view = host.get();
        let sockets = &view.ctx.sockets;
        let limit = tcp::TcpLimit::of(sockets);
        let tcp = view.table.get_mut(&socket)?;
        let acceptor = match returned(tcp.listen(sockets))? {
            Ok(acceptor) => acceptor,
            Err(code) => return Ok(Err(code)),
        };
        let connections = Connections {
            acceptor: Arc::new(acceptor),
            limit,
            table: getter,
            waiting: None,
        };
        Ok(Ok(StreamReader::new(&mut host, connections)?))
    }

    fn send(
        mut host: Access<'_, U, Self>,
        socket: Resource<TcpSocket>,
        mut data: StreamReader<u8>,
    ) -> wasmtime::Result<FutureReader<Result<(), ErrorCode>>> {
        let tcp = host.get().table.get_mut(&socket)?;
        if tcp.core.state != TcpState::Connected || tcp.sending {
            data.close(&mut host)?;
            return resolved_future(&mut host, Err(ErrorCode::InvalidState));
        }
        tcp.sending = true;
        let (sender, receiver) = oneshot::channel();
        let consumer = SendStream {
            shared: tcp.core.shared.clone(),
            waiting: None,
            outcome: Some(sender),
        };
        data.pipe(&mut host, consumer)?;
        outcome_future(&mut host, receiver)
    }

    fn receive(
        mut host: Access<'_, U, Self>,
        socket: Resource<TcpSocket>,
    ) -> wasmtime::Result<(StreamReader<u8>, FutureReader<Result<(), ErrorCode>>)> {
        let tcp = host.get().table.get_mut(&socket)?;
        if tcp.core.state != TcpState::Connected || tcp.receiving {
            // A stream that ends at once.
            let ended = StreamReader::new(&mut host, std::iter::empty::<u8>())?;
            return Ok((
                ended,
                resolved_future(&mut host, Err(ErrorCode::InvalidState))?,
            ));
        }
        tcp.receiving = true;
        let shared = tcp.core.shared.clone();
        let input = Box::new(tcp.core.input_stream());
        let (sender, receiver) = oneshot::channel();
        // The end of the stream is the peer's FIN (success) or the connection's failure.
        let producer = ByteProducer::new(input, sender, tcp_stream_code)
            // Dropping the stream early is `shutdown(SHUT_RD)`.
            .on_abandon(move || {
                let _ = shared.shutdown_receive();
            });
        let stream = StreamReader::new(&mut host, producer)?;
        Ok((stream, outcome_future(&mut host, receiver)?))
    }
}

/// The consumer of a `send` stream: bytes go from guest memory straight to the socket, as
/// many as the kernel takes; while its send buffer is full the guest's write waits, its
/// bytes still in guest memory. The host holds none of them.
struct SendStream {
    shared: Arc<tcp::TcpShared>,
    waiting: Option<std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send>>>,
    outcome: Option<oneshot::Sender<Result<(), ErrorCode>>>,
}

impl SendStream {
    /// Ends the stream with `error`, reported through the future.
    fn fail(&mut self, error: io::Error) -> std::task::Poll<wasmtime::Result<Transfer>> {
        let code = match error.kind() {
            io::ErrorKind::BrokenPipe => ErrorCode::ConnectionBroken,
            _ => p3_code(crate::sys::socket_error_code(&error)),
        };
        if let Some(outcome) = self.outcome.take() {
            let _ = outcome.send(Err(code));
        }
        std::task::Poll::Ready(Ok(Transfer::Dropped))
    }
}

impl<D> wasmtime::component::StreamConsumer<D> for SendStream {
    type Item = u8;

    fn poll_consume(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        store: StoreContextMut<D>,
        source: wasmtime::component::Source<'_, u8>,
        finish: bool,
    ) -> std::task::Poll<wasmtime::Result<Transfer>> {
        use std::task::Poll;
        let mut source = source.as_direct(store);
        loop {
            if let Some(waiting) = &mut self.waiting {
                match waiting.as_mut().poll(cx) {
                    Poll::Ready(Ok(())) => self.waiting = None,
                    Poll::Ready(Err(error)) => return self.fail(error),
                    // Nothing was taken: the guest may cancel its write.
                    Poll::Pending if finish => return Poll::Ready(Ok(Transfer::Cancelled)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let bytes = source.remaining();
            // An empty write asks whether the stream is writable: yes, the next one waits
            // if the kernel has no room.
            if bytes.is_empty() {
                return Poll::Ready(Ok(Transfer::Completed));
            }
            match self.shared.try_send(bytes) {
                Ok(0) => {
                    let shared = self.shared.clone();
                    self.waiting = Some(Box::pin(async move { shared.writable().await }));
                }
                Ok(n) => {
                    source.mark_read(n);
                    return Poll::Ready(Ok(Transfer::Completed));
                }
                Err(error) => return self.fail(error),
            }
        }
    }
}

impl Drop for SendStream {
    /// The guest closed its end (or the instance went away): every byte it wrote is with
    /// the kernel, so the FIN goes out now and the future resolves.
    fn drop(&mut self) {
        if let Some(outcome) = self.outcome.take() {
            let _ = outcome.send(returned(self.shared.shutdown_send()).unwrap_or(Ok(())));
        }
    }
}

/// How long `listen`'s stream waits before accepting again after a failure that is not
/// "nothing pending" (the socket limit reached, a transient `accept` error): the stream
/// stays open, as the WIT asks, without spinning.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// The stream of connections `listen` returns: each accepted connection becomes a
/// `tcp-socket` in the guest's table when the guest reads it.
struct Connections<U: 'static> {
    acceptor: Arc<tcp::Acceptor>,
    limit: tcp::TcpLimit,
    table: fn(&mut U) -> WasiCtxView<'_>,
    waiting: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

impl<U: 'static> StreamProducer<U> for Connections<U> {
    type Item = Resource<TcpSocket>;
    type Buffer = Option<Resource<TcpSocket>>;

    fn poll_produce<'a>(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        mut store: StoreContextMut<'a, U>,
        mut destination: Destination<'a, Self::Item, Self::Buffer>,
        finish: bool,
    ) -> std::task::Poll<wasmtime::Result<Transfer>> {
        use std::task::Poll;
        loop {
            if let Some(waiting) = &mut self.waiting {
                match waiting.as_mut().poll(cx) {
                    Poll::Ready(()) => self.waiting = None,
                    Poll::Pending if finish => return Poll::Ready(Ok(Transfer::Cancelled)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            // A zero-length read asks whether a connection is ready: answering yes without
            // accepting is allowed, and accepting now could strand the connection.
            if destination.remaining(&mut store) == Some(0) {
                return Poll::Ready(Ok(Transfer::Completed));
            }
            match self.acceptor.accept(&self.limit) {
                Ok(core) => {
                    let connection = (self.table)(store.data_mut())
                        .table
                        .push(TcpSocket::new(core))?;
                    destination.set_buffer(Some(connection));
                    return Poll::Ready(Ok(Transfer::Completed));
                }
                Err(SocketError::Code(p2::ErrorCode::WouldBlock)) => {
                    let acceptor = self.acceptor.clone();
                    self.waiting = Some(Box::pin(async move { acceptor.ready().await }));
                }
                Err(SocketError::Code(code)) => {
                    tracing::debug!(target: "weir::tcp", ?code, "accept failed; retrying");
                    self.waiting = Some(Box::pin(tokio::time::sleep(ACCEPT_RETRY)));
                }
                Err(SocketError::Trap(trap)) => return Poll::Ready(Err(trap)),
            }
        }
    }
}

impl ip_name_lookup::Host for WasiCtxView<'_> {}

/// The lookup error code for a 0.2 one.
fn lookup_code(code: p2::ErrorCode) -> ip_name_lookup::ErrorCode {
    use ip_name_lookup::ErrorCode as L;
    match code {
        p2::ErrorCode::AccessDenied => L::AccessDenied,
        p2::ErrorCode::InvalidArgument => L::InvalidArgument,
        p2::ErrorCode::NameUnresolvable => L::NameUnresolvable,
        p2::ErrorCode::TemporaryResolverFailure => L::TemporaryResolverFailure,
        p2::ErrorCode::PermanentResolverFailure => L::PermanentResolverFailure,
        other => L::Other(Some(format!("{other:?}"))),
    }
}

impl<U: 'static> ip_name_lookup::HostWithStore<U> for HasWasi {
    async fn resolve_addresses(
        accessor: &Accessor<U, Self>,
        name: String,
    ) -> wasmtime::Result<Result<Vec<ip_name_lookup::IpAddress>, ip_name_lookup::ErrorCode>> {
        let started = accessor.with(|mut access| {
            let view = access.get();
            let sockets = &view.ctx.sockets;
            crate::sockets::ip_name_lookup::start_lookup(sockets, &sockets.config.policy, name)
        });
        let failed = |error: SocketError| match error {
            SocketError::Code(code) => Ok(Err(lookup_code(code))),
            SocketError::Trap(trap) => Err(trap),
        };
        let mut lookup = match started {
            Ok(lookup) => lookup,
            Err(error) => return failed(error),
        };
        crate::io::Pollable::ready(&mut lookup).await;
        let mut addresses = Vec::new();
        loop {
            match lookup.next_address() {
                Ok(Some(p2::IpAddress::Ipv4(a))) => {
                    addresses.push(ip_name_lookup::IpAddress::Ipv4(a))
                }
                Ok(Some(p2::IpAddress::Ipv6(a))) => {
                    addresses.push(ip_name_lookup::IpAddress::Ipv6(a))
                }
                Ok(None) => break,
                Err(error) => return failed(error),
            }
        }
        if addresses.is_empty() {
            // "This function never succeeds with 0 results."
            return Ok(Err(ip_name_lookup::ErrorCode::NameUnresolvable));
        }
        Ok(Ok(addresses))
    }
}
