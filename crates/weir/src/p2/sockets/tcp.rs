//! `wasi:sockets/tcp@0.2.x` and `tcp-create-socket`: the `start-*`/`finish-*` steps and
//! stream resources over the TCP core (`crate::sockets::tcp`).

use crate::WasiCtxView;
use crate::bindings::wasi::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress};
use crate::bindings::wasi::sockets::tcp::{self as tcp_bindings, ShutdownType};
use crate::bindings::wasi::sockets::tcp_create_socket;
use crate::io::{InputStreamResource, OutputStreamResource, PollableResource, subscribe};
use crate::sockets::tcp::*;
use crate::sockets::{Buffer, Network, SocketResult, from_socket_addr, to_socket_addr};
use wasmtime::component::Resource;

type SocketHandle = Resource<TcpSocket>;

type StreamPair = (
    Resource<InputStreamResource>,
    Resource<OutputStreamResource>,
);

impl tcp_create_socket::Host for WasiCtxView<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<SocketHandle> {
        let socket = TcpSocket::create(&self.ctx.sockets, family)?;
        Ok(self.table.push(socket)?)
    }
}

impl tcp_bindings::Host for WasiCtxView<'_> {}

impl tcp_bindings::HostTcpSocket for WasiCtxView<'_> {
    fn start_bind(
        &mut self,
        socket: SocketHandle,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let policy = self.table.get(&network)?.policy.clone();
        let stats = self.ctx.sockets.stats.clone();
        let tcp = self.tcp(&socket)?;
        tcp.bind(&policy, &stats, to_socket_addr(local_address))?;
        tcp.state = TcpState::BindStarted;
        Ok(())
    }

    fn finish_bind(&mut self, socket: SocketHandle) -> SocketResult<()> {
        let tcp = self.tcp(&socket)?;
        if tcp.state != TcpState::BindStarted {
            return Err(ErrorCode::NotInProgress.into());
        }
        tcp.state = TcpState::Bound;
        Ok(())
    }

    fn start_connect(
        &mut self,
        socket: SocketHandle,
        network: Resource<Network>,
        remote_address: IpSocketAddress,
    ) -> SocketResult<()> {
        let policy = self.table.get(&network)?.policy.clone();
        let stats = self.ctx.sockets.stats.clone();
        let tcp = self.tcp(&socket)?;
        tcp.start_connect(&policy, &stats, to_socket_addr(remote_address))
    }

    fn finish_connect(&mut self, socket: SocketHandle) -> SocketResult<StreamPair> {
        let tcp = self.tcp(&socket)?;
        if tcp.state != TcpState::Connecting {
            return Err(ErrorCode::NotInProgress.into());
        }
        if !tcp.connect_settled() {
            return Err(ErrorCode::WouldBlock.into());
        }
        tcp.finish_connect()?;
        let streams = tcp.streams();
        self.push_streams(streams)
    }

    fn start_listen(&mut self, socket: SocketHandle) -> SocketResult<()> {
        let stats = self.ctx.sockets.stats.clone();
        let tcp = self.tcp(&socket)?;
        tcp.listen(&stats)?;
        tcp.state = TcpState::ListenStarted;
        Ok(())
    }

    fn finish_listen(&mut self, socket: SocketHandle) -> SocketResult<()> {
        let tcp = self.tcp(&socket)?;
        if tcp.state != TcpState::ListenStarted {
            return Err(ErrorCode::NotInProgress.into());
        }
        tcp.state = TcpState::Listening;
        Ok(())
    }

    fn accept(
        &mut self,
        socket: SocketHandle,
    ) -> SocketResult<(
        SocketHandle,
        Resource<InputStreamResource>,
        Resource<OutputStreamResource>,
    )> {
        let limit = TcpLimit::of(&self.ctx.sockets);
        let accepted = self.tcp(&socket)?.accept(&limit)?;
        let (input, output) = self.push_streams(accepted.streams())?;
        let accepted = self.table.push(accepted)?;
        Ok((accepted, input, output))
    }

    fn local_address(&mut self, socket: SocketHandle) -> SocketResult<IpSocketAddress> {
        Ok(from_socket_addr(self.tcp(&socket)?.local_address()?))
    }

    fn remote_address(&mut self, socket: SocketHandle) -> SocketResult<IpSocketAddress> {
        Ok(from_socket_addr(self.tcp(&socket)?.remote_address()?))
    }

    fn is_listening(&mut self, socket: SocketHandle) -> wasmtime::Result<bool> {
        Ok(self.table.get(&socket)?.state == TcpState::Listening)
    }

    fn address_family(&mut self, socket: SocketHandle) -> wasmtime::Result<IpAddressFamily> {
        Ok(self.table.get(&socket)?.shared.family)
    }

    fn set_listen_backlog_size(&mut self, socket: SocketHandle, value: u64) -> SocketResult<()> {
        self.tcp(&socket)?.set_listen_backlog_size(value)
    }

    fn keep_alive_enabled(&mut self, socket: SocketHandle) -> SocketResult<bool> {
        self.tcp(&socket)?.keep_alive_enabled()
    }

    fn set_keep_alive_enabled(&mut self, socket: SocketHandle, value: bool) -> SocketResult<()> {
        self.tcp(&socket)?.set_keep_alive_enabled(value)
    }

    fn keep_alive_idle_time(&mut self, socket: SocketHandle) -> SocketResult<u64> {
        self.tcp(&socket)?.keep_alive_idle_time()
    }

    fn set_keep_alive_idle_time(&mut self, socket: SocketHandle, value: u64) -> SocketResult<()> {
        self.tcp(&socket)?.set_keep_alive_idle_time(value)
    }

    fn keep_alive_interval(&mut self, socket: SocketHandle) -> SocketResult<u64> {
        self.tcp(&socket)?.keep_alive_interval()
    }

    fn set_keep_alive_interval(&mut self, socket: SocketHandle, value: u64) -> SocketResult<()> {
        self.tcp(&socket)?.set_keep_alive_interval(value)
    }

    fn keep_alive_count(&mut self, socket: SocketHandle) -> SocketResult<u32> {
        self.tcp(&socket)?.keep_alive_count()
    }

    fn set_keep_alive_count(&mut self, socket: SocketHandle, value: u32) -> SocketResult<()> {
        self.tcp(&socket)?.set_keep_alive_count(value)
    }

    fn hop_limit(&mut self, socket: SocketHandle) -> SocketResult<u8> {
        self.tcp(&socket)?.hop_limit()
    }

    fn set_hop_limit(&mut self, socket: SocketHandle, value: u8) -> SocketResult<()> {
        self.tcp(&socket)?.set_hop_limit(value)
    }

    fn receive_buffer_size(&mut self, socket: SocketHandle) -> SocketResult<u64> {
        self.tcp(&socket)?.buffer_size(Buffer::Receive)
    }

    fn set_receive_buffer_size(&mut self, socket: SocketHandle, value: u64) -> SocketResult<()> {
        self.tcp(&socket)?.set_buffer_size(Buffer::Receive, value)
    }

    fn send_buffer_size(&mut self, socket: SocketHandle) -> SocketResult<u64> {
        self.tcp(&socket)?.buffer_size(Buffer::Send)
    }

    fn set_send_buffer_size(&mut self, socket: SocketHandle, value: u64) -> SocketResult<()> {
        self.tcp(&socket)?.set_buffer_size(Buffer::Send, value)
    }

    fn subscribe(&mut self, socket: SocketHandle) -> wasmtime::Result<Resource<PollableResource>> {
        subscribe(self.table, &socket)
    }

    fn shutdown(&mut self, socket: SocketHandle, how: ShutdownType) -> SocketResult<()> {
        let tcp = self.tcp(&socket)?;
        tcp.require_connected()?;
        let shared = &tcp.shared;
        if matches!(how, ShutdownType::Receive | ShutdownType::Both) {
            shared.shutdown_receive()?;
        }
        if matches!(how, ShutdownType::Send | ShutdownType::Both) {
            shared.shutdown_send()?;
        }
        Ok(())
    }

    fn drop(&mut self, socket: SocketHandle) -> wasmtime::Result<()> {
        self.table.delete(socket)?;
        Ok(())
    }
}

impl WasiCtxView<'_> {
    fn tcp(&mut self, socket: &SocketHandle) -> SocketResult<&mut TcpSocket> {
        Ok(self.table.get_mut(socket)?)
    }

    fn push_streams(
        &mut self,
        (input, output): (TcpInputStream, TcpOutputStream),
    ) -> SocketResult<StreamPair> {
        let input = self.table.push(InputStreamResource::new(input))?;
        let output = self.table.push(OutputStreamResource::new(output))?;
        Ok((input, output))
    }
}
