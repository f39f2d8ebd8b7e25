//! `wasi:sockets/network@0.2.x` and `instance-network`.

use crate::WasiCtxView;
use crate::bindings::wasi::sockets::instance_network;
use crate::bindings::wasi::sockets::network::{self as network_bindings, ErrorCode};
use crate::io::IoError;
use crate::sockets::*;
use wasmtime::component::Resource;

impl network_bindings::Host for WasiCtxView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.into_guest()
    }

    fn network_error_code(
        &mut self,
        err: Resource<IoError>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(self
            .table
            .get(&err)?
            .as_io()
            .map(crate::sys::socket_error_code))
    }
}

impl network_bindings::HostNetwork for WasiCtxView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(network)?;
        Ok(())
    }
}

impl instance_network::Host for WasiCtxView<'_> {
    fn instance_network(&mut self) -> wasmtime::Result<Resource<Network>> {
        let network = Network {
            policy: self.ctx.sockets.config.policy.clone(),
        };
        Ok(self.table.push(network)?)
    }
}
