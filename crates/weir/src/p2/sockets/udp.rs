//! `wasi:sockets/udp@0.2.x` and `udp-create-socket`: the socket and datagram-stream
//! resources over the UDP core (`crate::sockets::udp`).

use crate::WasiCtxView;
use crate::bindings::wasi::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress};
use crate::bindings::wasi::sockets::udp::{
    self as udp_bindings, IncomingDatagram, OutgoingDatagram,
};
use crate::bindings::wasi::sockets::udp_create_socket;
use crate::io::{PollableResource, subscribe};
use crate::sockets::udp::*;
use crate::sockets::{
    Buffer, Network, SocketResult, SocketSlot, from_socket_addr, get_buffer_size, hop_limit,
    set_buffer_size, set_hop_limit, to_socket_addr,
};
use wasmtime::component::Resource;

type Socket = Resource<UdpSocket>;

impl udp_create_socket::Host for WasiCtxView<'_> {
    fn create_udp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Socket> {
        let sockets = &self.ctx.sockets;
        if !sockets.config.udp {
            return Err(ErrorCode::AccessDenied.into());
        }
        let slot = SocketSlot::take(&sockets.open_udp_sockets, sockets.config.max_udp_sockets)?;
        let socket = UdpSocket::new(family, sockets.stats.clone(), slot)?;
        Ok(self.table.push(socket)?)
    }
}

impl udp_bindings::Host for WasiCtxView<'_> {}

impl udp_bindings::HostUdpSocket for WasiCtxView<'_> {
    fn start_bind(
        &mut self,
        socket: Socket,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let policy = self.table.get(&network)?.policy.clone();
        let stats = self.ctx.sockets.stats.clone();
        let udp = self.udp(&socket)?;
        match udp.state {
            UdpState::Unbound => {}
            UdpState::BindStarted => return Err(ErrorCode::ConcurrencyConflict.into()),
            UdpState::Bound | UdpState::Connected(_) => return Err(ErrorCode::InvalidState.into()),
        }
        udp.bind_to(policy, &stats, to_socket_addr(local_address))?;
        udp.state = UdpState::BindStarted;
        Ok(())
    }

    fn finish_bind(&mut self, socket: Socket) -> SocketResult<()> {
        let udp = self.udp(&socket)?;
        if udp.state != UdpState::BindStarted {
            return Err(ErrorCode::NotInProgress.into());
        }
        udp.state = UdpState::Bound;
        Ok(())
    }

    fn stream(
        &mut self,
        socket: Socket,
        remote_address: Option<IpSocketAddress>,
    ) -> SocketResult<(
        Resource<IncomingDatagramStream>,
        Resource<OutgoingDatagramStream>,
    )> {
        let udp = self.udp(&socket)?;
        if !matches!(udp.state, UdpState::Bound | UdpState::Connected(_)) {
            return Err(ErrorCode::InvalidState.into());
        }
        let remote = remote_address.map(to_socket_addr);
        let generation = udp.reassociate(remote)?;
        let incoming = udp.incoming(generation)?;
        let outgoing = udp.outgoing(generation, remote)?;
        Ok((self.table.push(incoming)?, self.table.push(outgoing)?))
    }

    fn local_address(&mut self, socket: Socket) -> SocketResult<IpSocketAddress> {
        let udp = self.udp(&socket)?;
        if matches!(udp.state, UdpState::Unbound | UdpState::BindStarted) {
            return Err(ErrorCode::InvalidState.into());
        }
        Ok(from_socket_addr(udp.shared.socket.get_ref().local_addr()?))
    }

    fn remote_address(&mut self, socket: Socket) -> SocketResult<IpSocketAddress> {
        match self.udp(&socket)?.state {
            UdpState::Connected(remote) => Ok(from_socket_addr(remote)),
            _ => Err(ErrorCode::InvalidState.into()),
        }
    }

    fn address_family(&mut self, socket: Socket) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&socket)?.shared.family)
    }

    fn unicast_hop_limit(&mut self, socket: Socket) -> SocketResult<u8> {
        let udp = self.udp(&socket)?;
        hop_limit(udp.shared.socket.get_ref().into(), udp.shared.family)
    }

    fn set_unicast_hop_limit(&mut self, socket: Socket, value: u8) -> SocketResult<()> {
        let udp = self.udp(&socket)?;
        set_hop_limit(udp.shared.socket.get_ref().into(), udp.shared.family, value)
    }

    fn receive_buffer_size(&mut self, socket: Socket) -> SocketResult<u64> {
        let udp = self.udp(&socket)?;
        get_buffer_size(udp.shared.socket.get_ref().into(), Buffer::Receive)
    }

    fn set_receive_buffer_size(&mut self, socket: Socket, value: u64) -> SocketResult<()> {
        let udp = self.udp(&socket)?;
        set_buffer_size(udp.shared.socket.get_ref().into(), Buffer::Receive, value)
    }

    fn send_buffer_size(&mut self, socket: Socket) -> SocketResult<u64> {
        let udp = self.udp(&socket)?;
        get_buffer_size(udp.shared.socket.get_ref().into(), Buffer::Send)
    }

    fn set_send_buffer_size(&mut self, socket: Socket, value: u64) -> SocketResult<()> {
        let udp = self.udp(&socket)?;
        set_buffer_size(udp.shared.socket.get_ref().into(), Buffer::Send, value)?;
        udp.shared.refresh_send_buffer_bytes()?;
        Ok(())
    }

    fn subscribe(&mut self, socket: Socket) -> wasmtime::Result<Resource<PollableResource>> {
        subscribe(self.table, &socket)
    }

    fn drop(&mut self, socket: Socket) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}

impl udp_bindings::HostIncomingDatagramStream for WasiCtxView<'_> {
    fn receive(
        &mut self,
        stream: Resource<IncomingDatagramStream>,
        max_results: u64,
    ) -> SocketResult<Vec<IncomingDatagram>> {
        self.table.get_mut(&stream)?.receive(max_results)
    }

    fn subscribe(
        &mut self,
        stream: Resource<IncomingDatagramStream>,
    ) -> wasmtime::Result<Resource<PollableResource>> {
        subscribe(self.table, &stream)
    }

    fn drop(&mut self, stream: Resource<IncomingDatagramStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl udp_bindings::HostOutgoingDatagramStream for WasiCtxView<'_> {
    fn check_send(&mut self, stream: Resource<OutgoingDatagramStream>) -> SocketResult<u64> {
        self.table.get_mut(&stream)?.check_send()
    }

    fn send(
        &mut self,
        stream: Resource<OutgoingDatagramStream>,
        datagrams: Vec<OutgoingDatagram>,
    ) -> SocketResult<u64> {
        self.table.get_mut(&stream)?.send(datagrams)
    }

    fn subscribe(
        &mut self,
        stream: Resource<OutgoingDatagramStream>,
    ) -> wasmtime::Result<Resource<PollableResource>> {
        subscribe(self.table, &stream)
    }

    fn drop(&mut self, stream: Resource<OutgoingDatagramStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl WasiCtxView<'_> {
    fn udp(&mut self, socket: &Socket) -> SocketResult<&mut UdpSocket> {
        Ok(self.table.get_mut(socket)?)
    }
}
